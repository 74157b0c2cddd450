"""Files at paths a user gives: one set of rules for reading and writing them (spec 14.7).

Reading (:func:`read_file`): open without blocking and without taking a terminal
(``O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY``), ``fstat`` the descriptor, require a
regular file, refuse one larger than the caller's limit before reading a byte, and read at
most the limit plus one byte, so a file that grows while it is read is refused, never cut
short. A FIFO, a device such as ``/dev/zero``, a directory or a socket is refused at once.

Writing (:func:`write_file`): the bytes go to a new file beside the target (a random name,
``O_EXCL``, the mode given), are flushed to disk, and only then take the target's name: a
hard link when the target must not exist (which, like ``O_EXCL``, never replaces a name), a
rename with ``force``. So a writer that dies part way leaves no partial file; an existing
name is never written through (a symbolic link there is replaced, not followed); and a path
that is not a regular file (a directory, FIFO or device) is never replaced. A refused write
leaves nothing behind.

Every failure is a :class:`~agentauth.errors.FileError` whose message names the path.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import stat
import time
from collections.abc import Callable, Sequence

from .errors import FileError, InvalidArgument

try:
    import fcntl
except ImportError:  # pragma: no cover  (not POSIX: no locks to take)
    fcntl = None  # type: ignore[assignment]

__all__ = ["NO_LINK", "check_target", "check_timeout", "lock", "open_regular", "os_error",
           "path_argument", "read_file", "read_head", "read_prefix", "sync_folder",
           "temporary_name", "write_file"]

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_NOCTTY = getattr(os, "O_NOCTTY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CHUNK = 1 << 16
# Where a file system cannot make a hard link, a new file is created in place instead.
NO_LINK = frozenset(getattr(errno, n) for n in ("EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS",
                                                "EMLINK") if hasattr(errno, n))


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def os_error(exc: OSError, name: str, what: str, doing: str) -> FileError:
    """The typed error for a system call on ``name`` that failed with ``exc`` (``doing``:
    what could not be done to it: "read", "written", "opened")."""
    number = exc.errno
    if number == errno.ENOENT:
        folder = os.path.dirname(name)
        if folder and not os.path.isdir(folder):
            return FileError(f"the folder of {what} {name!r} does not exist",
                             code="file_not_found")
        return FileError(f"{what} {name!r} does not exist", code="file_not_found")
    if number == errno.ENOTDIR:
        return FileError(f"{what} {name!r}: a part of the path is not a folder",
                         code="file_not_found")
    if number == errno.EISDIR:
        return FileError(f"{what} {name!r} is a directory, not a regular file",
                         code="file_not_regular")
    if number in (errno.ENXIO, errno.ELOOP, errno.ENODEV):  # a FIFO or socket, a link
        return FileError(f"{what} {name!r} is not a regular file", code="file_not_regular")
    if number in (errno.EACCES, errno.EPERM, errno.EROFS):
        return FileError(f"{what} {name!r} cannot be {doing}: {os.strerror(number)}",
                         code="file_permission")
    reason = os.strerror(number) if number else type(exc).__name__
    return FileError(f"{what} {name!r} cannot be {doing}: {reason}", code="file_io")


def open_regular(path: str | os.PathLike[str], flags: int = os.O_RDONLY, mode: int = 0o600,
                 *, what: str = "file") -> int:
    """A descriptor of the regular file at ``path``, opened with ``flags`` (and
    close-on-exec, no controlling terminal); anything but a regular file is refused
    (``file_not_regular``) before a byte moves. Opening never blocks (a FIFO), and the
    descriptor blocks again once it is known to be a regular file. The caller closes it."""
    name = os.fspath(path)
    try:
        descriptor = os.open(name, flags | _NONBLOCK | _CLOEXEC | _NOCTTY, mode)
    except OSError as exc:
        raise os_error(exc, name, what, "opened") from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise FileError(f"{what} {name!r} is {_kind(info.st_mode)}, not a regular file",
                            code="file_not_regular")
        os.set_blocking(descriptor, True)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def _read(descriptor: int, limit: int) -> bytes:
    """Up to ``limit`` bytes, in as many reads as it takes."""
    chunks = []
    left = limit
    while left > 0:
        chunk = os.read(descriptor, min(left, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_file(path: str | os.PathLike[str], limit: int, *, what: str = "file",
              check: Callable[[os.stat_result], None] | None = None) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` of them.

    Refused: a missing file or folder (``file_not_found``), anything but a regular file
    (``file_not_regular``), a file larger than ``limit`` before reading, or that grew past
    it while read (``file_too_large``), and what the system refuses (``file_permission``,
    ``file_io``). ``check`` is called with the descriptor's ``stat`` result before reading
    (a key file's mode bits, say) and refuses by raising."""
    name = os.fspath(path)
    descriptor = open_regular(name, what=what)
    try:
        info = os.fstat(descriptor)
        if check is not None:
            check(info)
        if info.st_size > limit:
            raise FileError(f"{what} {name!r} is larger than {limit} bytes",
                            code="file_too_large")
        data = _read(descriptor, limit + 1)
    except OSError as exc:
        raise os_error(exc, name, what, "read") from None
    finally:
        os.close(descriptor)
    if len(data) > limit:
        raise FileError(f"{what} {name!r} grew past {limit} bytes while read",
                        code="file_too_large")
    return data


def read_prefix(path: str | os.PathLike[str], size: int, *, what: str = "file") -> bytes:
    """The first ``size`` bytes (or fewer) of the regular file at ``path``, by the rules
    of :func:`read_file` but for the size: the rest of the file is not read."""
    return read_head(path, size, what=what)[0]


def read_head(path: str | os.PathLike[str], size: int, *, what: str = "file"
              ) -> tuple[bytes, os.stat_result]:
    """:func:`read_prefix`, and the ``stat`` of the very file read (the descriptor's), by
    which a caller can tell whether the path still names that file afterwards."""
    name = os.fspath(path)
    descriptor = open_regular(name, what=what)
    try:
        return _read(descriptor, size), os.fstat(descriptor)
    except OSError as exc:
        raise os_error(exc, name, what, "read") from None
    finally:
        os.close(descriptor)


def check_target(path: str | os.PathLike[str], *, force: bool = False,
                 keep: Callable[[str], bool] | None = None, what: str = "file",
                 inputs: Sequence[tuple[str | os.PathLike[str], str]] = ()) -> None:
    """Refuse, as :func:`write_file` would, to write ``path``: a command checks this before
    it does anything else, so that a refused write leaves nothing behind, not even the
    other files the command would have made first.

    ``inputs`` are the other files of the command (path, what it is): an output that is
    one of them, by name (through linked folders) or as another hard link, is refused
    (``file_exists``) even with ``force``, since writing it would destroy what the command
    has just read or written there (a revocation store replaced by a notice)."""
    name = os.fspath(path)
    for other, role in inputs:
        if _same_file(name, os.fspath(other)):
            raise FileError(f"{what} {name!r} is also the {role} of this command: write it "
                            f"elsewhere", code="file_exists")
    try:
        info: os.stat_result | None = os.lstat(name)
    except FileNotFoundError as exc:
        folder = os.path.dirname(name)
        if folder and not os.path.isdir(folder):
            raise os_error(exc, name, what, "written") from None
        info = None
    except OSError as exc:
        raise os_error(exc, name, what, "written") from None
    if info is not None:
        if not force:
            raise FileError(f"{what} {name!r} exists already", code="file_exists")
        if not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
            raise FileError(f"{what} {name!r} is {_kind(info.st_mode)}: only a regular file "
                            f"is replaced", code="file_not_regular")
        if stat.S_ISREG(info.st_mode) and keep is not None and keep(name):
            raise FileError(f"{what} {name!r} is a key file: it is never overwritten",
                            code="file_exists")


def _same_file(output: str, other: str) -> bool:
    """Whether writing ``output`` would replace the file ``other`` (or the one it will be,
    once made): its name, resolved but for its last part (a symbolic link there is
    replaced, never followed), is ``other``'s, or it is another hard link to that file."""
    folder, base = os.path.split(output)
    if os.path.join(os.path.realpath(folder or "."), base) == os.path.realpath(other):
        return True
    try:
        return not os.path.islink(output) and os.path.samefile(output, other)
    except (OSError, ValueError):
        return False  # one of them does not exist (yet): not the same file


def temporary_name(name: str) -> str:
    """A new name beside ``name`` for a file that will take ``name`` once whole: random,
    hidden, and short whatever ``name``'s length (a target name of the system's greatest
    length must not make its temporary one too long)."""
    folder, base = os.path.split(name)
    return os.path.join(folder, f".{base[:32]}.{os.urandom(8).hex()}.tmp")


def write_file(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600,
               force: bool = False, keep: Callable[[str], bool] | None = None,
               what: str = "file") -> None:
    """Write ``data`` as the regular file ``path`` (permission bits ``mode``), atomically.

    Without ``force`` an existing name of any kind is refused (``file_exists``). With
    ``force`` a regular file or a symbolic link is replaced by a rename (never written
    through), unless ``keep(path)`` says the file must be kept (a key file, say:
    ``file_exists``); a directory, FIFO, device or socket is always refused
    (``file_not_regular``). A refused or failed write leaves nothing behind."""
    name = os.fspath(path)
    check_target(name, force=force, keep=keep, what=what)
    folder = os.path.dirname(name)
    temporary = temporary_name(name)
    _write_new(temporary, data, mode, name, what)
    try:
        if force:
            os.replace(temporary, name)
        else:
            try:
                os.link(temporary, name, follow_symlinks=False)
            except FileExistsError:
                raise FileError(f"{what} {name!r} exists already", code="file_exists"
                                ) from None
            except OSError as exc:
                if exc.errno not in NO_LINK:
                    raise
                _write_new(name, data, mode, name, what)  # a file system without links
    except OSError as exc:
        raise os_error(exc, name, what, "written") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    sync_folder(folder)


def _write_new(name: str, data: bytes, mode: int, target: str, what: str) -> None:
    """Create ``name`` (``O_EXCL``, ``mode``) holding ``data``, on disk; removed on
    failure. Errors name ``target``, the file the caller asked for."""
    try:
        descriptor = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
                             | _CLOEXEC | _NOCTTY, 0o600)
    except FileExistsError:
        raise FileError(f"{what} {target!r} exists already", code="file_exists") from None
    except OSError as exc:
        raise os_error(exc, target, what, "written") from None
    try:
        os.fchmod(descriptor, mode)  # whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view):]
        os.fsync(descriptor)
    except BaseException as exc:
        os.close(descriptor)
        os.unlink(name)
        if isinstance(exc, OSError):
            raise os_error(exc, target, what, "written") from None
        raise
    os.close(descriptor)


def sync_folder(folder: str) -> None:
    """Flush a directory's entries to disk, where the system allows it (POSIX)."""
    if os.name != "posix":  # pragma: no cover
        return
    with contextlib.suppress(OSError):  # the file is in place whatever this says
        descriptor = os.open(folder or ".", os.O_RDONLY | _CLOEXEC)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def check_timeout(timeout: float) -> None:
    """Refuse a wait that is not a number of seconds from 0 to 600 (NaN included)."""
    if type(timeout) not in (int, float) or not 0 <= timeout <= 600:
        raise InvalidArgument("timeout is a number of seconds from 0 to 600")


def lock(descriptor: int, name: str, timeout: float, *, what: str, held: str) -> None:
    """Take the exclusive ``flock`` on ``descriptor`` (the file or folder ``name``),
    waiting at most ``timeout`` seconds: whoever can open a file can hold its lock, and
    no caller may hang on that. Refused: ``file_io`` saying it is ``held``."""
    if fcntl is None:  # pragma: no cover
        return
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FileError(f"{what} {name!r} is {held} (waited {timeout:g} s for its "
                                f"lock)", code="file_io") from None
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.05)
        except OSError as exc:  # a file system without locks, say
            raise os_error(exc, name, what, "locked") from None


def path_argument(value: str) -> str:
    """The ``type`` of a command-line path option: any path but the empty one, which an
    option would otherwise take for "not given" (``verify --revoked ''`` skipped the
    revocation check and said ``ok``). A usage error, exit status 2."""
    if not value:
        raise argparse.ArgumentTypeError("a path cannot be empty")
    return value
