"""An echo client: connects to the echo server it expects, sends each message, prints
what comes back.

Terminal 2::

    python examples/echo_client.py --key client.key --port 7000 \\
        --server did:key:z6Mk... hello world

It prints its own agent id first (the server's ``--trust`` wants it).
"""

from __future__ import annotations

import argparse

import anyio
from keyfile import load_or_create

from agentauth import connect


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key", required=True, help="key file (created if missing)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7000)
    parser.add_argument("--server", required=True, metavar="AGENT_ID",
                        help="the server's agent id: anyone else is refused")
    parser.add_argument("messages", nargs="+")
    args = parser.parse_args()
    identity = load_or_create(args.key)
    print(f"client agent id {identity.agent_id}", flush=True)
    async with await connect(args.host, args.port, identity, expect=args.server) as channel:
        print(f"connected to {channel.peer_id}", flush=True)
        for text in args.messages:
            await channel.send(text.encode())
            print(f"echo: {(await channel.receive()).decode()}", flush=True)


if __name__ == "__main__":
    anyio.run(main)
