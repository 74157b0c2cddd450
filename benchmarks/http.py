"""HTTP requests per second through uvicorn: the same app with no authentication, behind a
bearer-JWT check (PyJWT, EdDSA), and behind the agentauth middleware; same run.

Usage::

    python -m benchmarks.http [--quick] [--rounds N] [--seconds S] [--json PATH]

Each mode's server is a separate process (uvicorn, one worker, h11, loopback); this
process is the load client: ``--connections`` keep-alive connections, each sending a
``POST /echo`` with a 64-byte JSON body and reading the answer, for ``--seconds``. Every
answer must be 200, or the run fails (a refusal is cheap and would flatter the figure).
Requests are built before the clock starts, so the server is the bottleneck; the
client's own work per request (signing the request and checking the signed answer for
agentauth; none for a bearer token made once) is timed apart, in this process, and added
to the server's: the target compares what each scheme adds to a request, end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agentauth import Identity, MemoryReplayStore
from agentauth.http import AgentAuthMiddleware, HTTPMessage, Signer, Verifier, check_response

from .peers import ServerProcess

__all__ = ["main"]

HOST = "127.0.0.1"
MODES = ("none", "jwt", "agentauth-requests", "agentauth")
BODY = json.dumps({"task": "summarise", "id": 12345, "pad": "x" * 22}).encode()
SERVER = Identity.from_seed(bytes(range(32)))
CLIENT = Identity.from_seed(bytes(range(32, 64)))
JWT_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(64, 96)))

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


# ------------------------------------------------------------------ the servers


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The app every mode serves: read the body, answer a small JSON document."""
    if scope["type"] != "http":
        return
    more = True
    size = 0
    while more:
        event = await receive()
        size += len(event.get("body", b""))
        more = event.get("more_body", False)
    body = b'{"ok":true,"received":%d}' % size
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def jwt_app(app: App) -> App:
    """A bearer-token check as deployed: PyJWT decodes and verifies an EdDSA token."""
    public = JWT_KEY.public_key()

    async def check(scope: Scope, receive: Receive, send: Send) -> None:
        token = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        try:
            claims = jwt.decode(token.removeprefix(b"Bearer ").decode(), public,
                                algorithms=["EdDSA"], audience="server")
            scope = {**scope, "user": claims["sub"]}
        except jwt.PyJWTError:
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)

    return check


def server_app(mode: str) -> App:
    if mode == "jwt":
        return jwt_app(echo_app)
    if mode.startswith("agentauth"):
        return AgentAuthMiddleware(echo_app, identity=SERVER, verifier=Verifier([CLIENT]),
                                   replay=MemoryReplayStore(),
                                   sign_responses=mode == "agentauth")
    return echo_app


def serve(mode: str) -> None:
    """Serve one mode until stdin closes; print the port first."""
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted sockets inherit it
    sock.bind((HOST, 0))
    sock.listen(1024)
    server = uvicorn.Server(uvicorn.Config(server_app(mode), log_level="warning",
                                           access_log=False, lifespan="off", http="h11",
                                           loop="asyncio"))

    def stop() -> None:
        sys.stdin.read()
        server.should_exit = True

    threading.Thread(target=stop, daemon=True).start()
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    server.run(sockets=[sock])



# ------------------------------------------------------------------ the client


def raw(port: int, extra: Sequence[tuple[str, str]]) -> bytes:
    head = ["POST /echo HTTP/1.1", f"host: {HOST}:{port}", "content-type: application/json",
            f"content-length: {len(BODY)}", *(f"{k}: {v}" for k, v in extra)]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + BODY


def signed_request(port: int, signer: Signer) -> bytes:
    message = HTTPMessage.from_headers([("host", f"{HOST}:{port}"),
                                        ("content-type", "application/json")],
                                       method="POST", scheme="http",
                                       authority=f"{HOST}:{port}", path="/echo")
    return raw(port, signer.sign_request(message, BODY).headers)


def requests_for(mode: str, port: int, count: int) -> list[bytes]:
    if mode.startswith("agentauth"):
        signer = Signer(CLIENT)
        return [signed_request(port, signer) for _ in range(count)]
    if mode == "jwt":
        token = jwt.encode({"sub": "client", "aud": "server", "exp": int(time.time()) + 3600},
                           JWT_KEY, algorithm="EdDSA")
        return [raw(port, [("authorization", f"Bearer {token}")])] * count
    return [raw(port, [])] * count


async def load(port: int, requests: list[bytes], connections: int, seconds: float
               ) -> tuple[int, float]:
    """Requests answered and seconds taken, over ``connections`` keep-alive connections."""
    done = 0
    end = time.perf_counter() + seconds
    pending = iter(requests)

    async def run() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for request in pending:
                if time.perf_counter() >= end:
                    break
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"refused: {head.splitlines()[0]!r}")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                await reader.readexactly(length)
                done += 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(run() for _ in range(connections)))
    return done, time.perf_counter() - start


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_call(work: Callable[[int], object], count: int, seconds: float) -> float:
    """Median seconds per call of ``work(i)`` over five batches, ``i`` cycling below
    ``count`` (distinct inputs: nothing is remembered from one call to the next)."""
    samples = []
    for _ in range(5):
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 5:
            work(calls % count)
            calls += 1
        samples.append((time.perf_counter() - start) / calls)
    return statistics.median(samples)


def client_cost(seconds: float, count: int = 2000) -> dict[str, float]:
    """The agentauth client's work per request: sign it, check the signed answer (each a
    distinct message, as in use)."""
    signer, server = Signer(CLIENT), Signer(SERVER)
    message = HTTPMessage.from_headers([("host", "h:1"), ("content-type", "application/json")],
                                       method="POST", authority="h:1", path="/echo")
    answer = b'{"ok":true,"received":64}'
    exchanges = []
    for _ in range(count):
        sent = signer.sign_request(message, BODY)
        request = message.with_fields(sent.headers)
        response = HTTPMessage.from_headers([("content-type", "application/json")],
                                            status=200, request=request)
        signed = response.with_fields(server.sign_response(response, sent.nonce,
                                                           answer).headers)
        exchanges.append((signed, sent.nonce))
    return {
        "sign_s": per_call(lambda i: signer.sign_request(message, BODY), count, seconds),
        "check_s": per_call(lambda i: check_response(
            exchanges[i][0], answer, request_nonce=exchanges[i][1], server=SERVER.agent_id),
            count, seconds),
        "jwt_mint_s": per_call(lambda i: jwt.encode({"sub": "client", "aud": "server"},
                                                    JWT_KEY, algorithm="EdDSA"), count,
                               seconds),
    }


def measure(rounds: int, seconds: float, connections: int
            ) -> dict[str, dict[str, list[float]]]:
    """Per mode: requests per second and server CPU µs per request, one value a round."""
    results: dict[str, dict[str, list[float]]] = {
        mode: {"requests_per_s": [], "cpu_us": []} for mode in MODES}
    servers = {mode: ServerProcess("benchmarks.http", mode) for mode in MODES}
    try:
        for round_ in range(rounds):
            order = MODES[round_ % len(MODES):] + MODES[:round_ % len(MODES)]
            for mode in order:
                server = servers[mode]
                asyncio.run(load(server.port, requests_for(mode, server.port, 200),
                                 connections, seconds))
                batch = requests_for(mode, server.port, int(6000 * seconds))
                before = cpu_seconds(server.process.pid)
                done, elapsed = asyncio.run(load(server.port, batch, connections, seconds))
                used = cpu_seconds(server.process.pid) - before
                results[mode]["requests_per_s"].append(done / elapsed)
                results[mode]["cpu_us"].append(1e6 * used / done)
    finally:
        for server in servers.values():
            server.stop()
    return results


def report(results: dict[str, dict[str, list[float]]], client: dict[str, float]
           ) -> tuple[str, list[dict[str, Any]], dict[str, float]]:
    rps = {mode: statistics.median(r["requests_per_s"]) for mode, r in results.items()}
    cpu = {mode: statistics.median(r["cpu_us"]) for mode, r in results.items()}
    added = {mode: cpu[mode] - cpu["none"] for mode in MODES}
    sign, check = 1e6 * client["sign_s"], 1e6 * client["check_s"]
    lines = [f"{'mode':44} {'requests/s':>11} {'server CPU µs':>14} {'added µs':>9}"]
    for mode, label in (("none", "no authentication"), ("jwt", "bearer JWT (EdDSA) check"),
                        ("agentauth-requests", "agentauth, requests verified"),
                        ("agentauth", "agentauth, requests verified, answers signed")):
        lines.append(f"{label:44} {rps[mode]:>11,.0f} {cpu[mode]:>14.1f} {added[mode]:>9.1f}")
    lines.append(f"{'agentauth client: sign a request':44} {'':>11} {'':>14} {sign:>9.1f}")
    lines.append(f"{'agentauth client: check a signed answer':44} {'':>11} {'':>14} "
                 f"{check:>9.1f}")
    lines.append(f"{'(a JWT minted per request, client)':44} {'':>11} {'':>14} "
                 f"{1e6 * client['jwt_mint_s']:>9.1f}")
    jwt_added = added["jwt"]
    targets: list[dict[str, Any]] = [
        {"name": "request signing + verification / JWT check",
         "ratio": (added["agentauth-requests"] + sign) / jwt_added, "bound": 2.0},
        {"name": "mutual (both directions, both ends) / JWT check",
         "ratio": (added["agentauth"] + sign + check) / jwt_added, "bound": 2.0},
        {"name": "server's added cost, mutual / JWT check",
         "ratio": added["agentauth"] / jwt_added, "bound": 2.0},
    ]
    lines += ["", f"{'target (server CPU per request)':50} {'ratio':>7} {'bound':>8}  result"]
    for target in targets:
        target["at_most"] = True
        target["passed"] = target["ratio"] <= target["bound"]
        lines.append(f"{target['name']:50} {target['ratio']:>7.2f} <= {target['bound']:<5}  "
                     f"{'PASS' if target['passed'] else 'MISS'}")
    by_rate = ((1e6 / rps["agentauth-requests"] - 1e6 / rps["none"] + sign)
               / (1e6 / rps["jwt"] - 1e6 / rps["none"]))
    lines.append(f"{'(the first, from requests/s instead of CPU time)':50} {by_rate:>7.2f}")
    return "\n".join(lines), targets, rps


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run, not a measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--json", type=os.fsencode)
    parser.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    rounds, seconds = (1, 0.3) if args.quick else (args.rounds, args.seconds)
    results = measure(rounds, seconds, args.connections)
    client = client_cost(0.2 if args.quick else 2.0, 200 if args.quick else 2000)
    text, targets, rps = report(results, client)
    print(f"python {sys.version.split()[0]}, {rounds} round(s) of {seconds:g} s, "
          f"{args.connections} connections, medians")
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"rounds": rounds, "results": results, "requests_per_s": rps,
                       "client": client, "targets": targets}, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
