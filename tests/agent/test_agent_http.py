"""One agent configures its channels and its HTTP: ``agent.http_auth`` signs requests as the
agent, ``agent.asgi`` checks them with the agent's trust, replay store, anchors and
revocations, over a real uvicorn on 127.0.0.1 (its own asyncio loop in a thread) with an
httpx client on the test's backend (spec 15.7)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse
from starlette.routing import Route
from support.aio import DEADLINE
from support.http_server import serving

import agentauth
from agentauth import (
    Agent,
    AgentAuthError,
    InvalidArgument,
    InvalidState,
    MemoryReplayStore,
    TrustStore,
)
from agentauth.agent import Incoming
from agentauth.capability import Grant
from agentauth.http import AgentAuthMiddleware
from agentauth.keys import LiveTrust

pytestmark = pytest.mark.anyio

READ = [Grant("reports/**", {"get"})]


async def whoami(request: StarletteRequest) -> JSONResponse:
    auth = request.scope["auth"]
    return JSONResponse({"agent": request.user.agent_id,
                         "capability": None if auth.request is None else auth.request.resource})


def routes() -> Starlette:
    return Starlette(routes=[Route("/whoami", whoami),
                             Route("/reports/{name}", whoami),
                             Route("/secrets/{name}", whoami)])


@contextmanager
def behind(agent: Agent, **options: Any) -> Iterator[str]:
    """``agent``'s middleware around the routes, served on loopback; its base URL."""
    with serving(agent.asgi(routes(), **options)) as url:
        yield url


def refusal(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.headers["agentauth-error"]


async def test_a_request_signed_by_one_agent_is_accepted_by_another_s_middleware() -> None:
    bob = Agent.generate()
    alice = Agent.generate(trust=[bob.id])
    with behind(alice) as url:
        async with httpx.AsyncClient(base_url=url, auth=bob.http_auth(alice.id)) as client:
            answer = await client.get("/whoami")  # its signature by alice is checked too
    assert answer.status_code == 200
    assert answer.json() == {"agent": bob.id, "capability": None}
    assert "signature" in answer.headers


async def test_an_agent_the_server_does_not_trust_is_refused() -> None:
    bob, mallory = Agent.generate(), Agent.generate()
    alice = Agent.generate(trust=[bob.id])
    with behind(alice) as url:
        async with httpx.AsyncClient(base_url=url, auth=mallory.http_auth(alice.id)) as client:
            answer = await client.get("/whoami")
    assert refusal(answer) == (401, "untrusted_peer")
    assert "accept-signature" in answer.headers


async def test_the_agent_s_middleware_refuses_a_request_signed_for_another_host() -> None:
    bob = Agent.generate()
    alice = Agent.generate(trust=[bob.id])
    with behind(alice, authorities=["alice.example"]) as url:
        async with httpx.AsyncClient(base_url=url, auth=bob.http_auth(alice.id)) as client:
            answer = await client.get("/whoami")
    assert refusal(answer) == (401, "wrong_recipient")


async def test_a_request_replayed_to_another_app_of_the_same_agent_is_refused(
        tmp_path: Path) -> None:
    # Two apps (two processes behind a balancer, say) of one agent keep their nonces in
    # the agent's store: a request one accepted, the other refuses.
    bob = Agent.generate()
    alice = Agent.generate(trust=[bob.id], state=tmp_path / "state")
    request = httpx.Request("GET", "http://127.0.0.1/whoami")
    bob.http_auth().sign(request)
    with behind(alice) as first, behind(alice) as second:
        async with httpx.AsyncClient() as client:
            once = await client.send(_to(request, first))
            again = await client.send(_to(request, second))
    assert once.status_code == 200
    assert refusal(again) == (401, "replayed")


def _to(request: httpx.Request, base: str) -> httpx.Request:
    # The same signed bytes, its Host line too, sent to a server's port (no authorities
    # are given to the middleware: the port is not checked here).
    return httpx.Request(request.method, base + request.url.raw_path.decode(),
                         headers=request.headers.raw)


async def test_capabilities_allow_and_refuse_with_their_refusal_places() -> None:
    # With no trust, every request needs a capability rooted at the agent (as on its
    # channels): one without is refused, one within its grant allowed, one outside it
    # refused with the places of the refusal, one whose link was revoked refused.
    alice, bob = Agent.generate(), Agent.generate()
    chain = alice.delegate(to=bob.id, grants=READ, ttl="10m")
    with behind(alice) as url:
        async with httpx.AsyncClient(base_url=url,
                                     auth=bob.http_auth(alice.id, capability=chain)) as client:
            allowed = await client.get("/reports/q3")
            outside = await client.get("/secrets/plans")
            alice.revoke(chain)
            revoked = await client.get("/reports/q3")
        async with httpx.AsyncClient(base_url=url, auth=bob.http_auth(alice.id)) as client:
            bare = await client.get("/reports/q3")
    assert allowed.status_code == 200
    assert allowed.json() == {"agent": bob.id, "capability": "reports/q3"}
    assert refusal(outside) == (403, "not_authorized")
    # the places in what bob sent (link 0, grant 0), never alice's rule (spec 10.6)
    assert json.loads(outside.content)["error"]["data"]["refusal"] == {
        "kind": "resource", "link": 0, "grant": 0}
    assert refusal(revoked) == (403, "revoked")
    assert refusal(bare) == (403, "not_authorized")


async def test_one_trust_store_file_governs_channels_and_http(tmp_path: Path) -> None:
    bob = Agent.generate()
    path = tmp_path / "trust.toml"
    TrustStore().add_peer("bob", bob.id).save(path)
    alice = Agent.generate(trust=LiveTrust(path, interval=0))

    @alice.handles("status", "read", capability=False)
    async def status(request: Incoming) -> bytes:
        return request.peer_id.encode()

    with anyio.fail_after(DEADLINE), behind(alice) as url:
        async with alice, alice.serve("127.0.0.1", 0) as server, httpx.AsyncClient(
                base_url=url, auth=bob.http_auth(alice.id)) as client:
            async with bob.connect("127.0.0.1", server.port, expect=alice.id) as peer:
                assert await peer.request("status", "read") == bob.id.encode()
            assert (await client.get("/whoami")).status_code == 200
            TrustStore.load(path).remove("bob").save(path)  # one change: both follow it
            with pytest.raises(AgentAuthError):
                async with bob.connect("127.0.0.1", server.port, expect=alice.id) as peer:
                    await peer.request("status", "read")
            assert refusal(await client.get("/whoami")) == (401, "untrusted_peer")


async def test_one_trust_store_object_admits_the_same_peers_on_channels_and_http() -> None:
    bob, carol = Agent.generate(), Agent.generate()
    alice = Agent.generate(trust=TrustStore().add_peer("bob", bob.id))

    @alice.handles("status", "read", capability=False)
    async def status(request: Incoming) -> bytes:
        return b"up"

    with anyio.fail_after(DEADLINE), behind(alice) as url:
        async with alice, alice.serve("127.0.0.1", 0) as server:
            for agent, admitted in ((bob, True), (carol, False)):
                async with httpx.AsyncClient(base_url=url,
                                             auth=agent.http_auth(alice.id)) as client:
                    code = (await client.get("/whoami")).status_code
                assert code == (200 if admitted else 401)
                if admitted:
                    async with agent.connect("127.0.0.1", server.port,
                                             expect=alice.id) as peer:
                        assert await peer.request("status", "read") == b"up"
                else:
                    with pytest.raises(AgentAuthError):
                        async with agent.connect("127.0.0.1", server.port,
                                                 expect=alice.id) as peer:
                            await peer.request("status", "read")


def test_requests_without_capabilities_need_the_agent_s_trust() -> None:
    alice = Agent.generate()
    with pytest.raises(InvalidState):
        alice.asgi(routes(), require_capability=False)
    with pytest.raises(InvalidArgument):  # not read as a truth value either way
        Agent.generate(trust=[alice.id]).asgi(routes(), require_capability=0)  # type: ignore[arg-type]
    assert isinstance(alice.asgi(routes()), AgentAuthMiddleware)
    trusting = Agent.generate(trust=[alice.id])
    with pytest.raises(InvalidArgument):  # the agent's stores are not given twice
        trusting.asgi(routes(), replay=MemoryReplayStore())
    with pytest.raises(InvalidArgument):
        trusting.http_auth(chain=b"")
    assert isinstance(trusting.asgi(routes(), require_capability=True), AgentAuthMiddleware)


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agent_http.py"


def test_the_http_example_runs_and_is_the_readme_s() -> None:
    done = subprocess.run([sys.executable, str(EXAMPLE)],
                          env={**os.environ, "PYTHONPATH": str(EXAMPLE.parents[1])},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    allowed, refused = done.stdout.splitlines()
    assert allowed.startswith("/reports/q3 for did:key:z6Mk")
    assert refused == "403 not_authorized"
    readme = (EXAMPLE.parents[1] / "README.md").read_text(encoding="utf-8")
    assert f"```python\n{EXAMPLE.read_text(encoding='utf-8')}```" in readme


def test_without_the_http_extra_an_agent_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(agentauth, "http")
    monkeypatch.setitem(sys.modules, "agentauth.http", None)  # as if httpx were absent
    alice = Agent.generate()
    for make in (alice.http_auth, lambda: alice.asgi(routes()), alice.verifier):
        with pytest.raises(InvalidState, match=r"agentauth\[http\]"):
            make()
