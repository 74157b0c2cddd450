"""The audit log file (spec section 14.5): audit events kept as a tamper-evident file.

:class:`AuditFileHandler` appends each event of the ``agentauth.audit`` logger to a file as
one JSON line that carries its sequence number, the SHA-256 of the line before it
(``prev``) and its own (``hash``, over the line's bytes before ``,"hash":``).
:func:`verify_audit_log` walks the chain and names the first record that was edited,
dropped, reordered or cut short.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import BinaryIO, Final

from .. import crypto, files
from ..errors import AuditLogError

try:
    import fcntl
except ImportError:  # pragma: no cover  (not on Windows: one writer per file there)
    fcntl = None  # type: ignore[assignment]

__all__ = ["GENESIS", "AuditFileHandler", "AuditSummary", "format_record", "verify_audit_log"]

GENESIS: Final = "0" * 64  # the ``prev`` of the first record
_RESERVED = frozenset({"seq", "prev", "time", "event", "hash"})
_SUFFIX_LEN = len(',"hash":"') + 64 + len('"}')
_MAX_RECORD = 64 * 1024


def format_record(seq: int, prev: str, created: float, data: dict[str, str | int]) -> bytes:
    """The exact line of record ``seq`` (newline included): its number, the previous
    record's hash, its time in milliseconds, its fields, then its own hash (spec section
    14). What the log writes, and what the key vectors publish."""
    record: dict[str, object] = {"seq": seq, "prev": prev, "time": round(created, 3)}
    record.update((k, v) for k, v in data.items() if k not in _RESERVED or k == "event")
    body = json.dumps(record, separators=(",", ":"), ensure_ascii=True)[:-1]
    digest = crypto.sha256(body.encode("ascii")).hex()
    return f'{body},"hash":"{digest}"}}\n'.encode("ascii")


def _parse(line: bytes, number: int | None) -> tuple[int, str, str]:
    """(seq, prev, hash) of one record line (without its newline), its own hash checked;
    ``number`` is the record's, counted from 1 (None: the last of a log being extended)."""
    name = "the last record" if number is None else f"record {number}"
    if len(line) < _SUFFIX_LEN + 2 or not line.endswith(b'"}'):
        raise AuditLogError(f"{name} is not a complete record",
                            code="audit_log_broken", record=number)
    body, suffix = line[:-_SUFFIX_LEN], line[-_SUFFIX_LEN:]
    written = suffix[len(b',"hash":"'):-2]
    if not suffix.startswith(b',"hash":"'):
        raise AuditLogError(f"{name} has no hash", code="audit_log_broken",
                            record=number)
    try:
        record = json.loads(body + b"}")
        text = written.decode("ascii")
    except (ValueError, UnicodeDecodeError, RecursionError):  # nesting: never written
        raise AuditLogError(f"{name} is not valid JSON",
                            code="audit_log_broken", record=number) from None
    if (type(record) is not dict or type(record.get("seq")) is not int
            or type(record.get("prev")) is not str):
        raise AuditLogError(f"{name} lacks its sequence number or link",
                            code="audit_log_broken", record=number)
    if not crypto.equal(crypto.sha256(body).hex().encode(), written):
        raise AuditLogError(f"{name} (seq {record['seq']}) was edited: its hash "
                            f"does not match its content", code="audit_log_broken",
                            record=number)
    return record["seq"], record["prev"], text


@dataclass(frozen=True, slots=True)
class AuditSummary:
    """What a verified log holds: its number of records and the hash of the last one."""

    records: int
    head: str


def _walk(file: BinaryIO) -> tuple[int, str]:
    """(number of records, hash of the last) of a log, every record and link checked."""
    expected_seq, prev = 1, GENESIS
    number = 0
    for number, raw in enumerate(iter(lambda: file.readline(_MAX_RECORD + 1), b""), 1):
        if len(raw) > _MAX_RECORD:
            raise AuditLogError(f"record {number} is longer than {_MAX_RECORD} bytes",
                                code="audit_log_broken", record=number)
        if not raw.endswith(b"\n"):
            raise AuditLogError(f"record {number} is cut short (no end of line)",
                                code="audit_log_broken", record=number)
        seq, link, digest = _parse(raw[:-1], number)
        if seq > expected_seq:
            raise AuditLogError(f"record {number} has seq {seq}: record(s) "
                                f"{expected_seq}..{seq - 1} were dropped",
                                code="audit_log_broken", record=number)
        if seq < expected_seq:
            raise AuditLogError(f"record {number} has seq {seq} after "
                                f"{expected_seq - 1}: records were reordered or "
                                f"repeated", code="audit_log_broken",
                                record=number)
        if link != prev:
            raise AuditLogError(f"record {number} does not follow record {number - 1}: "
                                f"one of them was rewritten", code="audit_log_broken",
                                record=number)
        expected_seq, prev = seq + 1, digest
    return number, prev


def verify_audit_log(path: str | os.PathLike[str], *, head: str | None = None
                     ) -> AuditSummary:
    """Check every record of an audit log file and the chain between them.

    Raises :class:`AuditLogError` naming the first record (counted from 1) that was edited,
    is missing (a gap in the sequence), out of order, or incomplete. Records dropped from
    the end leave a shorter valid log: pass the ``head`` hash kept elsewhere to catch that.
    A path that is not a readable regular file is a :class:`~agentauth.errors.FileError`.
    """
    # A regular file only (a FIFO must not hang the check, nor a device feed it forever);
    # its size is not capped, since each record is read with its own bound.
    descriptor = files.open_regular(path, what="audit log")
    try:
        with os.fdopen(descriptor, "rb") as file:
            number, prev = _walk(file)
    except OSError as exc:
        raise files.os_error(exc, os.fspath(path), "audit log", "read") from None
    if head is not None and head != prev:
        raise AuditLogError(f"the last of the {number} records is not the expected head: "
                            f"records were dropped from the end", code="audit_log_broken")
    return AuditSummary(number, prev)


def _last_record(descriptor: int, size: int) -> tuple[int, str]:
    """(seq, hash) of the last record of a file of ``size`` bytes ((0, GENESIS) if empty)."""
    if size == 0:
        return 0, GENESIS
    start = max(0, size - _MAX_RECORD)
    tail = os.pread(descriptor, size - start, start)
    if not tail.endswith(b"\n"):
        raise AuditLogError("the audit log ends in an incomplete record",
                            code="audit_log_broken")
    line = tail[:-1].rsplit(b"\n", 1)[-1]
    seq, _, digest = _parse(line, None)
    return seq, digest


class AuditFileHandler(logging.Handler):
    """A logging handler that appends audit events to a hash-chained file.

    Attach it to the ``agentauth.audit`` logger. Records other than audit events are
    ignored. Each write takes an exclusive lock on the file and reads the last record
    again, so processes can share one log; a log whose last record is broken is not
    extended (the handler reports the error through ``logging``'s usual path). The lock is
    waited for at most ``timeout`` seconds, since whoever holds it (a stopped process)
    would otherwise hold up every audited decision; the record is then reported the same
    way, not written.

    The file is created (owner-only) if it does not exist; a path that is not a regular
    file, or whose folder is missing, is refused at once (:class:`~agentauth.errors.FileError`),
    as is a file that does not end in a valid record (``audit_log_broken``).
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False,
                 timeout: float = 5.0) -> None:
        super().__init__(logging.INFO)
        files.check_timeout(timeout)
        self.path = os.fspath(path)
        self._fsync = fsync
        self._timeout = timeout
        # Created if missing (0600); anything but a regular file is refused here, since
        # records "written" to a FIFO or a device would vanish, or block every decision.
        self._descriptor = files.open_regular(self.path, os.O_RDWR | os.O_CREAT
                                              | os.O_APPEND, 0o600, what="audit log")
        try:
            _last_record(self._descriptor, os.fstat(self._descriptor).st_size)
        except BaseException:
            os.close(self._descriptor)
            raise

    def emit(self, record: logging.LogRecord) -> None:
        """Append ``record`` if it is an audit event."""
        data = getattr(record, "audit", None)
        if not isinstance(data, dict):
            return
        try:
            self.acquire()
            try:
                self._append(record.created, data)
            finally:
                self.release()
        except Exception:
            self.handleError(record)

    def _append(self, created: float, data: dict[str, str | int]) -> None:
        descriptor = self._descriptor
        files.lock(descriptor, self.path, self._timeout, what="audit log",
                   held="locked by another process")
        try:
            seq, prev = _last_record(descriptor, os.fstat(descriptor).st_size)
            os.write(descriptor, format_record(seq + 1, prev, created, data))
            if self._fsync:
                os.fsync(descriptor)
        finally:
            if fcntl is not None:
                fcntl.flock(descriptor, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the file."""
        self.acquire()
        try:
            if self._descriptor >= 0:
                os.close(self._descriptor)
                self._descriptor = -1
        finally:
            self.release()
        super().close()
