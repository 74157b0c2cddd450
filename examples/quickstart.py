"""Two agents: alice serves reports; bob reads one with the capability alice gave him."""
import anyio

from agentauth import Agent, CapabilityDenied
from agentauth.agent import Incoming
from agentauth.capability import Grant

alice, bob = Agent.generate(), Agent.generate()

@alice.handles("reports/**", "read")              # enforced for every request
async def read_report(request: Incoming) -> bytes:  # .peer_id .args .body .capability
    return f"{request.resource} for {request.peer_id[:20]}...".encode()

async def main() -> None:
    chain = alice.delegate(to=bob.id, grants=[Grant("reports/**", {"read"})], ttl="1h")
    async with alice, alice.serve("127.0.0.1", 0) as server, bob.connect(
            "127.0.0.1", server.port, expect=alice.id, capability=chain) as peer:
        print(await peer.request("reports/q3", "read"))      # allowed
        try:
            await peer.request("reports/q3", "delete")       # not granted
        except CapabilityDenied as refused:
            print("refused:", refused.code, refused.refusal)

anyio.run(main)
