"""A real redis-server for the tests: started on a free loopback port, with its data in a
temporary folder (appendonly, unless asked to be volatile), stopped at the end; and a TCP
fault proxy that delays replies past a client's timeout. A machine without redis-server
fails these tests (CI installs it); nothing is skipped."""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class RedisServer:
    """One redis-server process at a time on a fixed port (so it can be restarted)."""

    def __init__(self, folder: str, *, volatile: bool = False, extra: Sequence[str] = ()
                 ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (Debian: apt-get install "
                               "redis-server); the Redis tests need a real server")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._command = [binary, "--port", str(self.port), "--bind", "127.0.0.1",
                         "--dir", folder, "--save", "", "--maxmemory-policy", "noeviction",
                         "--appendonly", "no" if volatile else "yes", "--loglevel", "notice",
                         *extra]
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        process = self.process = subprocess.Popen(
            self._command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        for line in process.stdout:  # ends at EOF if the server dies
            if "Ready to accept connections" in line:
                break
        else:
            raise RuntimeError(f"redis-server exited with {process.wait()}")
        # Keep reading its log, so that a full pipe never blocks the server.
        threading.Thread(target=process.stdout.read, daemon=True).start()

    def stop(self, kill: bool = False) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.send_signal(signal.SIGCONT)  # in case it was paused
            process.kill() if kill else process.terminate()
            process.wait(timeout=10)

    def pause(self) -> None:
        """Stop the process (SIGSTOP): connections are accepted by the kernel, nothing is
        answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@contextmanager
def redis_process(*, volatile: bool = False, extra: Sequence[str] = ()
                  ) -> Iterator[RedisServer]:
    """Run redis-server (``extra``: more options) until the block ends."""
    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer(folder, volatile=volatile, extra=extra)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@contextmanager
def redis_server(*, volatile: bool = False) -> Iterator[str]:
    """Run redis-server until the block ends; yield its URL."""
    with redis_process(volatile=volatile) as server:
        yield server.url


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of ``port``. Requests pass at once; each chunk of
    replies is held for ``delay`` seconds with probability ``late`` (so a client with a
    shorter timeout gives up, although the server did the work), and every reply between
    :meth:`hold` and :meth:`release` is held until the release (``holding`` is set once
    one is: a test waits on events, not on time). Threads, one pair per connection;
    :meth:`close` ends them all."""

    def __init__(self, port: int, *, late: float, delay: float, seed: int = 1) -> None:
        self._target = port
        self.late, self._delay = late, delay  # late may be changed at any time
        self._random = random.Random(seed)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.holding = threading.Event()
        self._gate: threading.Event | None = None
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                if self._closed.is_set():
                    return
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self._target))
            except OSError:
                client.close()  # the server is down: the client sees its connection closed
                continue
            with self._lock:
                self._sockets |= {client, server}
            for source, sink, hold in ((client, server, False), (server, client, True)):
                thread = threading.Thread(target=self._pump, args=(source, sink, hold),
                                          daemon=True)
                self._threads.append(thread)
                thread.start()

    def _pump(self, source: socket.socket, sink: socket.socket, hold: bool) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    late = hold and self._random.random() < self.late
                    gate = self._gate if hold else None
                if gate is not None:
                    self.holding.set()
                    gate.wait()
                    if self._closed.is_set():
                        return
                if late and self._closed.wait(self._delay):
                    return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)  # the other pump's recv ends too
            with self._lock:  # each socket is the source of one pump: closed once
                self._sockets.discard(source)
                self._threads = [t for t in self._threads if t.is_alive()]
            source.close()

    def hold(self) -> None:
        """Hold every reply from now on until :meth:`release`."""
        with self._lock:
            self.holding.clear()
            self._gate = threading.Event()

    def release(self) -> None:
        """Let the held replies, and every later one, through."""
        with self._lock:
            gate, self._gate = self._gate, None
        if gate is not None:
            gate.set()

    def retarget(self, port: int) -> None:
        """Send new connections to ``port`` and cut the open ones (a failover: the same
        address now reaches another server)."""
        with self._lock:
            self._target = port
            for end in self._sockets:
                with suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed.set()
        self.release()
        with suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread in accept
        self._listener.close()
        with self._lock:
            for end in self._sockets:
                with suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)

