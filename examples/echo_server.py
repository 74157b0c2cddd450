"""An echo server: every authenticated, trusted agent gets its messages back.

Terminal 1::

    python examples/echo_server.py --key server.key --port 7000 --trust <client agent id>

It prints its own agent id; give that to the client. Without ``--trust`` it accepts every
agent that proves its key (it says so). ``--key`` names a key file: made on first use.
"""

from __future__ import annotations

import argparse
import sys

import anyio
from anyio.abc import SocketAttribute
from keyfile import load_or_create

from agentauth import AgentAuthStream, HandshakePolicy, accept_any_peer, create_listener


async def echo(channel: AgentAuthStream) -> None:
    print(f"{channel.peer_id} connected", flush=True)
    async for message in channel:
        await channel.send(message)
    print(f"{channel.peer_id} closed", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key", required=True, help="key file (created if missing)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7000, help="0: any free port")
    parser.add_argument("--trust", action="append", default=[], metavar="AGENT_ID",
                        help="an agent id to accept (repeat for several)")
    args = parser.parse_args()
    identity = load_or_create(args.key)
    if args.trust:
        policy = HandshakePolicy(trust=args.trust)
    else:
        print("no --trust given: accepting every agent that proves its key", flush=True)
        policy = HandshakePolicy(trust=accept_any_peer)
    listener = await create_listener(args.host, args.port, identity, policy)
    port = listener.extra(SocketAttribute.local_port)
    print(f"server agent id {identity.agent_id}", flush=True)
    print(f"listening on {args.host}:{port}", flush=True)
    async with listener:
        await listener.serve(echo)


if __name__ == "__main__":
    try:
        anyio.run(main)
    except KeyboardInterrupt:
        sys.exit(0)
