"""A listener in a process with few file descriptors to spare (driven by test_aio_emfile.py).

Usage: ``python fd_starved_server.py BACKEND SPARE``. Serves BOB's echo to ALICE on a free
loopback port, with RLIMIT_NOFILE set so that only SPARE more descriptors can be opened,
and with caps and a handshake timeout high enough that silent connections hold their
descriptors. Writes to stdout ``port N``, then ``log LEVEL MESSAGE`` for every log record;
when stdin ends it stops serving and writes ``stats accepted=.. failed=.. refused=..
accept_errors=..``.
"""

from __future__ import annotations

import logging
import os
import resource
import sys

import anyio
from anyio.abc import SocketAttribute
from support import ALICE, BOB

from agentauth import AgentAuthStream, HandshakePolicy, create_listener


async def echo(channel: AgentAuthStream) -> None:
    async for message in channel:
        await channel.send(message)


async def main(spare: int) -> None:
    listener = await create_listener(
        "127.0.0.1", 0, BOB, HandshakePolicy(trust=[ALICE.agent_id]),
        handshake_timeout=60, max_half_open=10_000, max_half_open_per_source=10_000)
    highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 1 + spare, hard))
    print("port", listener.extra(SocketAttribute.local_port), flush=True)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, echo)
        await anyio.to_thread.run_sync(sys.stdin.buffer.read, abandon_on_cancel=True)
        tg.cancel_scope.cancel()
    print(f"stats accepted={listener.accepted} failed={listener.failed} "
          f"refused={listener.refused} accept_errors={listener.accept_errors}", flush=True)


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="log %(levelname)s %(message)s")
    anyio.run(main, int(sys.argv[2]), backend=sys.argv[1])
