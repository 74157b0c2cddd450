"""A listener in a process with few file descriptors to spare (driven by test_aio_overload.py).

Usage: ``python fd_starved_server.py BACKEND SPARE KIND``. Serves BOB's echo to ALICE on a
free loopback port, over plain TCP (KIND ``tcp``) or TLS (``tls``: anyio's TLSListener, no
client certificate asked), with RLIMIT_NOFILE set so that only SPARE more descriptors can
be opened, and with caps and a handshake timeout high enough that silent connections hold their
descriptors. Writes to stdout ``port N``, then ``log LEVEL MESSAGE`` for every log record;
when stdin ends it stops serving and writes ``stats accepted=.. failed=.. refused=..
accept_errors=..``.
"""

from __future__ import annotations

import logging
import os
import resource
import ssl
import sys
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Listener, SocketAttribute
from anyio.streams.tls import TLSListener

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for its support
from agentauth import AgentAuthListener, AgentAuthStream, HandshakePolicy
from support import ALICE, BOB
from support.aio import tls_contexts


async def echo(channel: AgentAuthStream) -> None:
    async for message in channel:
        await channel.send(message)


async def main(spare: int, kind: str) -> None:
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    inner: Listener[Any] = tcp
    if kind == "tls":
        context = tls_contexts()[0]
        context.verify_mode = ssl.CERT_NONE
        inner = TLSListener(tcp, context)
    listener = AgentAuthListener(
        inner, BOB, HandshakePolicy(trust=[ALICE.agent_id]),
        handshake_timeout=60, max_half_open=10_000, max_half_open_per_source=10_000)
    highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 1 + spare, hard))
    print("port", tcp.extra(SocketAttribute.local_port), flush=True)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, echo)
        await anyio.to_thread.run_sync(sys.stdin.buffer.read, abandon_on_cancel=True)
        tg.cancel_scope.cancel()
    print(f"stats accepted={listener.accepted} failed={listener.failed} "
          f"refused={listener.refused} accept_errors={listener.accept_errors}", flush=True)


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="log %(levelname)s %(message)s")
    anyio.run(main, int(sys.argv[2]), sys.argv[3], backend=sys.argv[1])
