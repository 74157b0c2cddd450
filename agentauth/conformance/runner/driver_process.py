"""A driver under test, as a child process spoken to over its standard input and output.

Everything the child writes is untrusted: replies are read with a deadline and a size
limit and parsed strictly (:func:`~agentauth.conformance.interface.parse_reply`). A child
that stalls, dies, writes garbage or answers the wrong request is a
:class:`DriverBroken`; the runner reports it as a failure of the check that was running,
and starts the driver afresh for the next check.
"""

from __future__ import annotations

import os
import selectors
import shlex
import subprocess
import tempfile
import time
from typing import Any

from ...errors import AgentAuthError
from ..interface import INTERFACE_VERSION, MAX_LINE, Reply, encode_line, parse_reply

__all__ = ["DriverBroken", "DriverProcess", "Refused", "Unimplemented"]


class DriverBroken(Exception):
    """The driver broke the interface: no reply in time, a malformed reply, or it exited."""


class Refused(Exception):
    """The driver answered with an ``error``: ``code`` is a registry code."""

    def __init__(self, op: str, code: str, message: str) -> None:
        super().__init__(f"{op} refused with {code}: {message}")
        self.op, self.code, self.message = op, code, message


class Unimplemented(Exception):
    """The driver answered ``unimplemented``: the check is skipped."""


class DriverProcess:
    """One running driver. ``call`` sends a request and returns the reply's result."""

    __slots__ = ("_buffer", "_closed", "_next_id", "_proc", "_selector", "_stderr", "_writable",
                 "command", "hello", "timeout")

    def __init__(self, command: str, *, timeout: float = 10.0) -> None:
        self.command = command
        self.timeout = timeout
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115  (closed in close())
        try:
            self._proc = subprocess.Popen(  # noqa: S603  (the user's own driver command)
                shlex.split(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self._stderr, bufsize=0)
        except (OSError, ValueError) as exc:
            self._stderr.close()
            raise DriverBroken(f"cannot start the driver: {type(exc).__name__}: {exc}") from None
        self._closed = False
        assert self._proc.stdout is not None and self._proc.stdin is not None
        os.set_blocking(self._proc.stdout.fileno(), False)
        os.set_blocking(self._proc.stdin.fileno(), False)  # a driver that stops reading
        self._selector = selectors.DefaultSelector()       # cannot hang the runner
        self._selector.register(self._proc.stdout, selectors.EVENT_READ)
        self._writable = selectors.DefaultSelector()
        self._writable.register(self._proc.stdin, selectors.EVENT_WRITE)
        self._buffer = b""
        self._next_id = 0
        self.hello: dict[str, Any] = {}

    def start(self) -> dict[str, Any]:
        """Send ``hello``; return its result (``interface`` must be ours)."""
        try:
            result = self.call("hello", interface=[INTERFACE_VERSION])
        except (Refused, Unimplemented) as exc:
            raise DriverBroken(f"hello: {exc}") from None
        if result.get("interface") != INTERFACE_VERSION:
            raise DriverBroken(f"hello: the driver chose interface "
                               f"{str(result.get('interface'))[:20]}, not {INTERFACE_VERSION}")
        self.hello = result
        return result

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (the runner's checks of the driver's own parsing)."""
        assert self._proc.stdin is not None
        fd = self._proc.stdin.fileno()
        deadline = time.monotonic() + self.timeout
        view = memoryview(data)
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DriverBroken(f"the driver read no input for {self.timeout:g} s")
            if not self._writable.select(left):
                continue
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                continue
            except OSError:
                raise DriverBroken(f"the driver stopped reading ({self._exit_note()})") from None

    def request(self, op: str, **params: Any) -> Reply:
        """Send one request and return its parsed reply, whatever its kind."""
        self._next_id += 1
        request_id = self._next_id
        self.send_raw(encode_line({"id": request_id, "op": op, **params}))
        return self.read_reply(request_id, op)

    def read_reply(self, request_id: int | None, op: str) -> Reply:
        """Read the next line and parse it as the reply to ``request_id``."""
        line = self._read_line(op)
        try:
            return parse_reply(line, request_id)
        except AgentAuthError as exc:
            raise DriverBroken(f"{op}: bad reply: {exc}") from None

    def call(self, op: str, **params: Any) -> dict[str, Any]:
        """Send one request; return its result, or raise :class:`Refused` or
        :class:`Unimplemented`."""
        reply = self.request(op, **params)
        if reply.kind == "error":
            raise Refused(op, reply.code, reply.message)
        if reply.kind == "unimplemented":
            raise Unimplemented(f"{op}: {reply.message}")
        return reply.result

    def _read_line(self, op: str) -> bytes:
        deadline = time.monotonic() + self.timeout
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line, self._buffer = self._buffer[:end], self._buffer[end + 1:]
                return line
            if len(self._buffer) > MAX_LINE:
                raise DriverBroken(f"{op}: a reply line over {MAX_LINE} bytes")
            left = deadline - time.monotonic()
            if left <= 0:
                raise DriverBroken(f"{op}: no reply within {self.timeout:g} s")
            if not self._selector.select(left):
                continue
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                raise DriverBroken(f"{op}: the driver closed its output "
                                   f"({self._exit_note()})")
            self._buffer += chunk

    def _exit_note(self) -> str:
        try:
            code = self._proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return "still running"
        return f"exit status {code}; stderr: {self.stderr_tail()!r}"

    def stderr_tail(self, limit: int = 300) -> str:
        """The end of what the driver wrote to standard error."""
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - limit))
            return self._stderr.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def close(self) -> None:
        """Ask the driver to shut down, then make sure it has gone."""
        if self._closed:
            return
        self._closed = True
        if self._proc.poll() is None:
            try:
                self._next_id += 1
                assert self._proc.stdin is not None
                os.write(self._proc.stdin.fileno(),
                         encode_line({"id": self._next_id, "op": "shutdown"}))
            except OSError:  # (BlockingIOError included: it is not reading; it gets EOF)
                pass
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.close()
            except OSError:
                pass
            try:
                self._proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._selector.close()
        self._writable.close()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._stderr.close()
