"""Alice serves HTTP with the trust and stores of her channels; bob calls it, signed."""
from typing import Any

import anyio
import httpx

from agentauth import Agent
from agentauth.capability import Grant

bob = Agent.generate()
alice = Agent.generate(trust=[bob.id])  # one trust for channels, envelopes and HTTP

async def app(scope: Any, receive: Any, send: Any) -> None:  # any ASGI app
    body = f"{scope['path']} for {scope['user'].agent_id[:20]}...".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})

async def main() -> None:
    chain = alice.delegate(to=bob.id, grants=[Grant("reports/**", {"get"})], ttl="1h")
    served = httpx.ASGITransport(alice.asgi(app))  # or uvicorn.run(alice.asgi(app))
    async with httpx.AsyncClient(transport=served, base_url="http://alice.example",
                                 auth=bob.http_auth(alice.id, capability=chain)) as client:
        print((await client.get("/reports/q3")).text)  # allowed; alice's answer checked
        refused = await client.get("/secrets/plans")   # outside the grant
        print(refused.status_code, refused.headers["agentauth-error"])

anyio.run(main)
