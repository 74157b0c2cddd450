"""Load over loopback TCP: agentauth channels against TLS 1.3 with client certificates
(through anyio's own TLS support), client and server in separate processes, same run.

Usage::

    python -m benchmarks.load [--quick] [--rounds N] [--json PATH]

For each protocol a server process is started; this process is the client. Per round and
protocol, in alternating order: handshakes per second and the latency of each handshake
(connect to established, ``--concurrency`` at once), echo round trips per second over
established channels, and memory per idle established session at 1,000 and 10,000
concurrent sessions: the growth of a fresh server process's resident set while it holds
that many idle channels, divided by the count.
The table gives medians over the rounds and the ratios the targets are about.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import ByteStream, SocketAttribute
from anyio.streams.tls import TLSListener, TLSStream
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agentauth import AgentAuthStream, HandshakePolicy, Identity, connect, create_listener

from .peers import ServerProcess, certificate, pem

__all__ = ["main"]

HOST = "127.0.0.1"
PROTOCOLS = ("agentauth", "tls")
ECHO = b"x" * 64

# ------------------------------------------------------------------ key material


def make_material(directory: Path) -> None:
    """Keys for both protocols: agentauth seeds, and a private CA with Ed25519 leaves."""
    (directory / "server.seed").write_bytes(os.urandom(32))
    (directory / "client.seed").write_bytes(os.urandom(32))
    ca_key = Ed25519PrivateKey.generate()
    ca = certificate("agents CA", ca_key, "agents CA", ca_key, ca=True)
    (directory / "ca.crt").write_bytes(pem(ca))
    for name in ("server", "client"):
        key = Ed25519PrivateKey.generate()
        leaf = certificate(f"{name}.test", key, "agents CA", ca_key, ca=False)
        (directory / f"{name}.crt").write_bytes(pem(leaf))
        (directory / f"{name}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))


def tls_context(directory: Path, side: str) -> ssl.SSLContext:
    """Mutual TLS 1.3 as deployed: CA-issued leaves, OpenSSL's defaults otherwise."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if side == "server"
                             else ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(directory / f"{side}.crt", directory / f"{side}.key")
    context.load_verify_locations(directory / "ca.crt")
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def identities(directory: Path) -> tuple[Identity, Identity]:
    return (Identity.from_seed((directory / "server.seed").read_bytes()),
            Identity.from_seed((directory / "client.seed").read_bytes()))


# ------------------------------------------------------------------ the server


async def serve(protocol: str, directory: Path) -> None:
    """Echo every message (agentauth) or every chunk (TLS) until stdin closes."""
    server_id, client_id = identities(directory)
    async with anyio.create_task_group() as tg:
        if protocol == "agentauth":
            async def echo(channel: AgentAuthStream) -> None:
                async for message in channel:
                    await channel.send(message)

            listener = await create_listener(
                HOST, 0, server_id, HandshakePolicy(trust=[client_id.agent_id]),
                handshake_timeout=60, max_half_open=100_000)
            port = listener.extra(SocketAttribute.local_port)
            tg.start_soon(listener.serve, echo)
        else:
            async def echo_tls(stream: TLSStream) -> None:
                async with stream:
                    try:
                        async for chunk in stream:
                            await stream.send(chunk)
                    except (anyio.BrokenResourceError, anyio.EndOfStream):
                        pass

            tcp = await anyio.create_tcp_listener(local_host=HOST, local_port=0)
            port = tcp.extra(SocketAttribute.local_port)
            tls = TLSListener(tcp, tls_context(directory, "server"),
                              standard_compatible=False, handshake_timeout=60)
            tg.start_soon(tls.serve, echo_tls)
        print(f"PORT {port}", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)  # until the client is done
        tg.cancel_scope.cancel()


# ------------------------------------------------------------------ the client


class Client:
    """Opens channels of one protocol to its server process."""

    def __init__(self, protocol: str, directory: Path, port: int) -> None:
        self.protocol, self.port = protocol, port
        self.server_id, self.client_id = identities(directory)
        self.context = tls_context(directory, "client")

    async def open(self) -> ByteStream | AgentAuthStream:
        if self.protocol == "agentauth":
            return await connect(HOST, self.port, self.client_id,
                                 expect=self.server_id.agent_id, handshake_timeout=60)
        stream: ByteStream = await anyio.connect_tcp(
            HOST, self.port, ssl_context=self.context, tls_hostname="server.test",
            tls_standard_compatible=False)
        return stream

    async def echo(self, channel: ByteStream | AgentAuthStream) -> None:
        await channel.send(ECHO)
        if isinstance(channel, AgentAuthStream):
            await channel.receive()
            return
        got = 0
        while got < len(ECHO):
            got += len(await channel.receive())


async def _gather(count: int, concurrency: int,
                  job: Callable[[int], Awaitable[None]]) -> None:
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(i: int) -> None:
        async with limiter:
            await job(i)

    async with anyio.create_task_group() as tg:
        for i in range(count):
            tg.start_soon(one, i)


async def handshakes(client: Client, count: int, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []

    async def job(_: int) -> None:
        start = time.perf_counter()
        channel = await client.open()
        latencies.append(time.perf_counter() - start)
        await anyio.aclose_forcefully(channel)

    start = time.perf_counter()
    await _gather(count, concurrency, job)
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {"handshakes_per_s": count / elapsed,
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]}


async def echoes(client: Client, channels: int, seconds: float) -> float:
    opened = [await client.open() for _ in range(channels)]
    done = 0
    end = time.perf_counter() + seconds

    async def loop(channel: ByteStream | AgentAuthStream) -> None:
        nonlocal done
        while time.perf_counter() < end:
            await client.echo(channel)
            done += 1

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for channel in opened:
            tg.start_soon(loop, channel)
    elapsed = time.perf_counter() - start
    for channel in opened:
        await anyio.aclose_forcefully(channel)
    return done / elapsed


def rss(pid: int) -> int:
    """Resident set size of a process, in bytes (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def memory(protocol: str, directory: Path, count: int) -> float:
    """KiB per idle established session in a fresh server process."""
    server = ServerProcess("benchmarks.load", protocol, "--dir", str(directory))
    try:
        client = Client(protocol, directory, server.port)
        first = await client.open()  # the server's first-connection costs, outside the count
        await client.echo(first)
        before = rss(server.process.pid)
        opened: list[ByteStream | AgentAuthStream] = [first]

        async def job(_: int) -> None:
            opened.append(await client.open())

        await _gather(count, 64, job)
        for channel in opened[-64:]:  # each server task is now past its handshake
            await client.echo(channel)
        after = rss(server.process.pid)
        for channel in opened:
            await anyio.aclose_forcefully(channel)
        return (after - before) / count / 1024
    finally:
        server.stop()


# ------------------------------------------------------------------ the run



async def measure(directory: Path, rounds: int, quick: bool,
                  sizes: Sequence[int]) -> dict[str, dict[str, list[float]]]:
    results: dict[str, dict[str, list[float]]] = {p: {} for p in PROTOCOLS}
    count, seconds = (200, 0.5) if quick else (2000, 3.0)
    for round_ in range(rounds):
        order = PROTOCOLS if round_ % 2 == 0 else PROTOCOLS[::-1]
        for protocol in order:
            # A fresh process: memory starts equal.
            server = ServerProcess("benchmarks.load", protocol, "--dir", str(directory))
            try:
                client = Client(protocol, directory, server.port)
                figures: dict[str, float] = {}
                figures.update(await handshakes(client, count // 10, 16))  # warm-up
                figures.update(await handshakes(client, count, 16))
                figures["echo_per_s"] = await echoes(client, 16, seconds)
            finally:
                server.stop()
            for size in sizes:
                figures[f"server_per_session_{size}"] = await memory(protocol, directory, size)
            for key, value in figures.items():
                results[protocol].setdefault(key, []).append(value)
    return results


def report(results: dict[str, dict[str, list[float]]], sizes: Sequence[int]) -> tuple[
        str, list[dict[str, Any]]]:
    med = {p: {k: statistics.median(v) for k, v in r.items()} for p, r in results.items()}
    a, t = med["agentauth"], med["tls"]
    rows = [("handshakes per second", "handshakes_per_s", "{:,.0f}"),
            ("handshake latency p50, ms", "p50_ms", "{:.2f}"),
            ("handshake latency p99, ms", "p99_ms", "{:.2f}"),
            ("echo round trips per second", "echo_per_s", "{:,.0f}")]
    for size in sizes:
        rows.append((f"server KiB per idle session, {size:,}", f"server_per_session_{size}",
                     "{:.1f}"))
    lines = [f"{'':38} {'agentauth':>12} {'TLS 1.3':>12} {'ratio':>7}"]
    for label, key, fmt in rows:
        lines.append(f"{label:38} {fmt.format(a[key]):>12} {fmt.format(t[key]):>12} "
                     f"{a[key] / t[key]:>7.2f}")
    targets: list[dict[str, Any]] = [
        {"name": "handshakes/s agentauth / TLS", "ratio": a["handshakes_per_s"]
         / t["handshakes_per_s"], "bound": 2.0, "at_most": False},
        {"name": "p99 latency agentauth / TLS", "ratio": a["p99_ms"] / t["p99_ms"],
         "bound": 1.0, "at_most": True},
        *({"name": f"server memory per idle session agentauth / TLS, {size:,}",
           "ratio": a[f"server_per_session_{size}"] / t[f"server_per_session_{size}"],
           "bound": 1.0, "at_most": True} for size in sizes),
    ]
    lines.append("")
    lines.append(f"{'target':58} {'ratio':>7} {'bound':>8}  result")
    for target in targets:
        passed = (target["ratio"] <= target["bound"] if target["at_most"]
                  else target["ratio"] >= target["bound"])
        target["passed"] = passed
        sign = "<=" if target["at_most"] else ">="
        lines.append(f"{target['name']:58} {target['ratio']:>7.2f} {sign} "
                     f"{target['bound']:<5}  {'PASS' if passed else 'MISS'}")
    return "\n".join(lines), targets


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run, not a measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--serve", choices=PROTOCOLS, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        anyio.run(serve, args.serve, args.dir)
        return 0
    sizes = (100, 300) if args.quick else (1000, 10000)
    rounds = 1 if args.quick else args.rounds
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        make_material(directory)
        results = anyio.run(measure, directory, rounds, args.quick, sizes)
    text, targets = report(results, sizes)
    print(f"python {sys.version.split()[0]}, {rounds} round(s), medians")
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"rounds": rounds, "results": results,
                                         "targets": targets}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
