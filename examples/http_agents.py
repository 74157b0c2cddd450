"""Two agents over real HTTP: Alice serves reports (Starlette under uvicorn, behind the
agentauth middleware); Bob calls her with httpx, every request signed and every answer
checked to come from Alice and to answer that very request. Alice delegated Bob a
capability to read ``reports/**`` and to call her MCP-style endpoint; the middleware
checks it on each request, and the MCP protocol headers are covered by the signature.

    python examples/http_agents.py

Alice's server listens on a free port of 127.0.0.1 for the length of the run.
"""

from __future__ import annotations

import socket
import threading
import time

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentauth import AgentAuthError, Identity, MemoryReplayStore
from agentauth.capability import Grant, delegate, encode_chain
from agentauth.http import AgentAuth, AgentAuthMiddleware, Verifier

alice, bob = Identity.generate(), Identity.generate()


async def mcp(request: Request) -> JSONResponse:
    # An MCP-style JSON-RPC endpoint (streamable HTTP): its protocol headers are signed.
    call = await request.json()
    covered = [c for c in request.auth.covered if c.startswith('"mcp-')]
    return JSONResponse({"jsonrpc": "2.0", "id": call["id"],
                         "result": {"tool": call["params"]["name"], "signed": covered}})


async def report(request: Request) -> JSONResponse:
    # The middleware let this through: the caller is authenticated, its capability checked.
    name = request.path_params["name"]
    return JSONResponse({"report": name, "total": 42, "for": request.user.agent_id,
                         "allowed_by": list(request.auth.scopes)})


server_app = AgentAuthMiddleware(
    Starlette(routes=[Route("/reports/{name}", report, methods=["GET", "DELETE"]),
                      Route("/mcp", mcp, methods=["POST"])]),
    identity=alice,                        # signs every answer
    verifier=Verifier(trust=lambda peer: True),  # any agent, if its capability holds
    replay=MemoryReplayStore(),            # each signed request is accepted once
    anchors={alice.agent_id: "**"},        # capabilities rooted at Alice herself
    require_capability=True,
)


def serve() -> tuple[uvicorn.Server, threading.Thread, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # clients queue here until the server takes them: no waiting needed
    server = uvicorn.Server(uvicorn.Config(server_app, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}"


def main() -> int:
    server, thread, url = serve()
    now = int(time.time())
    chain = encode_chain([delegate(alice, bob, [Grant("reports/**", {"get"}),
                                                Grant("mcp", {"post"})],
                                   not_before=now, expires=now + 3600)])
    auth = AgentAuth(bob, server=alice.agent_id, chain=chain)
    try:
        with httpx.Client(base_url=url, auth=auth) as client:
            answer = client.get("/reports/q3")
            print(f"GET /reports/q3 -> {answer.status_code} {answer.json()} "
                  f"(signed by alice, answering this request)")
            tool = client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                             "params": {"name": "summarise"}},
                               headers={"mcp-protocol-version": "2025-06-18",
                                        "mcp-method": "tools/call"})
            print(f"POST /mcp tools/call -> {tool.status_code} {tool.json()['result']}")
            refused = client.delete("/reports/q3")
            print(f"DELETE /reports/q3 -> {refused.status_code} "
                  f"{refused.headers['agentauth-error']}: the capability allows get only")
        replayed = httpx.Request("GET", url + "/reports/q4")
        AgentAuth(bob, chain=chain).sign(replayed)
        with httpx.Client() as raw:
            first = raw.send(replayed)
            again = raw.send(httpx.Request("GET", replayed.url, headers=replayed.headers))
        print(f"the same signed request twice -> {first.status_code}, then "
              f"{again.status_code} {again.headers['agentauth-error']}")
        with httpx.Client(base_url=url, auth=AgentAuth(bob, server=bob.agent_id,
                                                       chain=chain)) as client:
            try:
                client.get("/reports/q3")
            except AgentAuthError as error:
                print(f"expecting another server's key -> refused [{error.code}]")
    finally:
        server.should_exit = True
        thread.join()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
