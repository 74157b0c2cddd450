"""A real redis-server for the tests: started on a free loopback port with persistence
off, stopped at the end. A machine without redis-server fails these tests (CI installs
it); nothing is skipped."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def redis_server() -> Iterator[str]:
    """Run redis-server until the block ends; yield its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (Debian: apt-get install "
                           "redis-server); the Redis tests need a real server")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--maxmemory-policy", "noeviction", "--loglevel", "notice"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        for line in process.stdout:  # ends at EOF if the server dies
            if "Ready to accept connections" in line:
                break
        else:
            raise RuntimeError(f"redis-server exited with {process.wait()}")
        # Keep reading its log, so that a full pipe never blocks the server.
        threading.Thread(target=process.stdout.read, daemon=True).start()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
