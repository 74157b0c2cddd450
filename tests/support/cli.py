"""The command line as its own process, without paying its start-up each time.

``python3 -m agentauth`` spends most of a short command importing the package (half a
second of processor time). Here one server process imports the command line once; for
each command it forks a child that takes the caller's working folder, environment,
standard streams and passed descriptors, runs ``agentauth/__main__.py`` as ``python3 -m``
does, and exits with its status. The caller gets the exit status, stdout, stderr and the
child's processor time, as from ``subprocess.run``: each command is still a real process
of its own (exit status, descriptors, files, no state shared with the test), only
forked from a warm interpreter instead of started cold. What start-up itself does (the
installed entry point, a terminal's prompt, limits set before exec) is tested by the few
tests that still start ``python3 -m agentauth``.

The server is started on first use (one per test process) and stopped by
:func:`stop`, which the suite's conftest calls at the end; it also exits when its
standard input closes, so it never outlives the test process.

Run as a script, this module is the server (``python3 cli.py SOCKET``) or, for programs
that start ``agentauth`` themselves, a small client that has the server run one command
with the client's own folder, environment and standard streams (:func:`command`).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import runpy
import select
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT_DIR = Path(__file__).resolve().parents[2]
_MAX_MESSAGE = 1 << 20
_VARIABLE = "AGENTAUTH_TEST_COMMAND_SERVER"  # the server's address, for command()'s words


@dataclass(frozen=True)
class Ran:
    """How a command ended: as ``subprocess.CompletedProcess`` has it, plus the processor
    time the child used (its own and its waited-for children's) and whether it was killed
    for outliving ``timeout`` (then ``returncode`` is -9)."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    cpu: float
    hung: bool


class _Server:
    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="agentauth-cli-")
        self.address = os.path.join(self._folder.name, "socket")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(ROOT_DIR), *filter(None, [os.environ.get("PYTHONPATH")])])}
        self.process = subprocess.Popen(
            [sys.executable, __file__, self.address], env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE)
        assert self.process.stdout is not None
        ready = self.process.stdout.readline()
        if ready != b"ready\n":
            self.stop()
            raise RuntimeError(f"the command server did not start: {ready!r}")

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()  # the server exits when its standard input ends
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()
        self._folder.cleanup()


_server: _Server | None = None
_lock = threading.Lock()


def _address() -> str:
    global _server  # noqa: PLW0603  (one server for the test process, made on first use)
    with _lock:
        if _server is None or _server.process.poll() is not None:
            _server = _Server()
        return _server.address


def stop() -> None:
    """Stop the server, if one was started."""
    global _server
    with _lock:
        server, _server = _server, None
    if server is not None:
        server.stop()


def agentauth(argv: Sequence[str], *, cwd: str | os.PathLike[str], env: Mapping[str, str],
              stdin: int | None = None, fds: Sequence[int] = (), timeout: float = 60
              ) -> Ran:
    """Run ``agentauth argv`` in ``cwd`` with exactly the environment ``env``; stdin is
    the descriptor ``stdin`` (else ``/dev/null``) and every descriptor in ``fds`` is
    passed under its own number, as ``subprocess.run(pass_fds=fds)`` does. A command
    still running after ``timeout`` seconds is killed."""
    with (open(os.devnull, "rb") as null, tempfile.TemporaryFile() as out,
          tempfile.TemporaryFile() as err):
        streams = [null.fileno() if stdin is None else stdin, out.fileno(), err.fileno()]
        status, cpu = _run(_address(), argv, os.fspath(cwd), env, streams, fds, timeout)
        out.seek(0)
        err.seek(0)
        return Ran(["agentauth", *argv], status, out.read().decode(), err.read().decode(),
                   cpu, status == -signal.SIGKILL)


def command() -> tuple[list[str], dict[str, str]]:
    """For a program that starts ``agentauth`` itself (the conformance runner starting a
    driver, a shell function): the words that start it as a process forked by the
    server, and what its environment must hold for them."""
    return [sys.executable, __file__, "run"], {_VARIABLE: _address()}


def _run(address: str, argv: Sequence[str], cwd: str, env: Mapping[str, str],
         streams: list[int], fds: Sequence[int], timeout: float | None) -> tuple[int, float]:
    """Have the server at ``address`` run a command; return its exit status and processor
    time. Closing the connection (this process ends) kills the command."""
    request = json.dumps({"argv": list(argv), "cwd": cwd, "env": dict(env),
                          "fds": list(fds)}).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as connection:
        connection.connect(address)
        socket.send_fds(connection, [request], [*streams, *fds])
        pid = json.loads(connection.recv(_MAX_MESSAGE))["pid"]
        connection.settimeout(timeout)
        try:
            reply = connection.recv(_MAX_MESSAGE)
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            connection.settimeout(None)
            reply = connection.recv(_MAX_MESSAGE)
        result = json.loads(reply)
        return result["status"], result["cpu"]


def _client(argv: list[str]) -> int:
    """``python3 cli.py run ARGS``: run ``agentauth ARGS`` through the server named in the
    environment, with this process's folder, environment and standard streams; exit as
    it exits."""
    status, _ = _run(os.environ[_VARIABLE], argv, os.getcwd(), os.environ, [0, 1, 2], (),
                     None)
    return status if status >= 0 else 128 - status


# ------------------------------------------------------------------- the server


def _serve(address: str) -> None:
    import agentauth.cli  # noqa: F401, PLC0415  (the import every child shares)

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(address)
    listener.listen(64)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    with selectors.DefaultSelector() as selector:
        selector.register(listener, selectors.EVENT_READ)
        selector.register(sys.stdin, selectors.EVENT_READ)
        while True:
            ready = {key.fileobj for key, _ in selector.select()}
            if sys.stdin in ready:
                return  # the test process has gone or called stop()
            connection, _ = listener.accept()
            if os.fork() == 0:
                listener.close()
                _handle(connection)  # never returns
            connection.close()


def _handle(connection: socket.socket) -> None:
    """In a child of the server: fork the command, report its pid, wait, report how it
    ended."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        message, received, _, _ = socket.recv_fds(connection, _MAX_MESSAGE, 256)
        request = json.loads(message)
        pid = os.fork()
        if pid == 0:
            try:
                connection.close()
                _command(request, received)  # returns only if this code is wrong
            finally:
                traceback.print_exc()
                os._exit(70)
        for descriptor in received:
            os.close(descriptor)
        connection.send(json.dumps({"pid": pid}).encode())
        ended = os.pidfd_open(pid)
        readable, _, _ = select.select([connection.fileno(), ended], [], [])
        if connection.fileno() in readable:  # the caller has gone: so does its command
            os.kill(pid, signal.SIGKILL)
        _, status, usage = os.wait4(pid, 0)
        connection.send(json.dumps({"status": os.waitstatus_to_exitcode(status),
                                    "cpu": usage.ru_utime + usage.ru_stime}).encode())
    finally:
        os._exit(0)


def _command(request: dict[str, Any], received: list[int]) -> None:
    """Become ``python3 -m agentauth`` for ``request``, then exit."""
    targets = [0, 1, 2, *request["fds"]]
    spare = max([*targets, *received]) + 1  # above every number in play
    high = [fcntl.fcntl(d, fcntl.F_DUPFD_CLOEXEC, spare) for d in received]
    for source, target in zip(high, targets, strict=True):
        os.dup2(source, target)  # inheritable, as pass_fds leaves them
    start = 0
    for keep in sorted(set(targets)):  # every other descriptor is closed, as close_fds
        if keep > start:  # (an empty range would close them all)
            os.closerange(start, keep)
        start = keep + 1
    os.closerange(start, os.sysconf("SC_OPEN_MAX"))
    encoding, errors = sys.stdout.encoding, sys.stdout.errors  # as the server started
    sys.stdin = open(0, encoding=encoding, errors=errors, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", buffering=1 if os.isatty(1) else -1,  # noqa: SIM115
                      encoding=encoding, errors=errors, closefd=False)
    sys.stderr = open(2, "w", buffering=1, encoding=encoding,  # noqa: SIM115
                      errors="backslashreplace", closefd=False)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["-m", *request["argv"]]
    status = 0
    try:
        runpy.run_module("agentauth", run_name="__main__", alter_sys=True)
    except SystemExit as exc:  # read as the interpreter reads sys.exit()'s argument
        if isinstance(exc.code, int):
            status = exc.code
        elif exc.code is not None:
            print(exc.code, file=sys.stderr)
            status = 1
    except BaseException:  # an uncaught exception: its traceback, and exit 1
        traceback.print_exc()
        status = 1
    for thread in threading.enumerate():  # the interpreter waits for these at exit
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):
            stream.flush()
    os._exit(status)


if __name__ == "__main__":
    if sys.argv[1] == "run":
        sys.exit(_client(sys.argv[2:]))
    _serve(sys.argv[1])
