"""An agent configured from files: a key file, a trust store, SQLite state and an audit
file, each one argument (and the state surviving a restart)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import anyio
import pytest
from support.aio import DEADLINE
from support.redis_server import redis_server

from agentauth import (
    Agent,
    AuthenticationError,
    Identity,
    InvalidArgument,
    InvalidState,
    ReplayDetected,
    StoreError,
    TrustStore,
)
from agentauth.agent import Incoming
from agentauth.audit import AUDIT_LOGGER
from agentauth.capability import Grant, decode_chain
from agentauth.keys.auditlog import verify_audit_log

pytestmark = pytest.mark.anyio


async def test_an_agent_from_files_serves_audits_and_keeps_its_state(tmp_path: Path) -> None:
    bob = Agent.generate()
    key, trust, state = tmp_path / "alice.key", tmp_path / "trust.toml", tmp_path / "alice.db"
    Identity.generate().save(key, "correct horse", preset="interactive")
    TrustStore().add_peer("bob", bob.id).save(trust)
    audit = tmp_path / "audit.log"
    alice = Agent.load(key, passphrase="correct horse", trust=str(trust), state=str(state),
                       audit=audit)

    @alice.handles("reports/**", "read")
    async def read(request: Incoming) -> bytes:
        return request.peer_id.encode()

    chain = alice.delegate(to=bob.id, grants=[Grant("reports/**", {"read"})], ttl=600)
    sealed = bob.seal(to=alice.id, body=b"once")
    with anyio.fail_after(DEADLINE):
        async with alice, alice.serve("127.0.0.1", 0) as server, bob.connect(
                "127.0.0.1", server.port, expect=alice.id, capability=chain) as peer:
            assert await peer.request("reports/q3", "read") == bob.id.encode()
            assert (await alice.open(sealed)).payload == b"once"
            alice.revoke(chain)
    with pytest.raises(StoreError) as closed:  # the stores its state opened closed with it
        await alice.open(bob.seal(to=alice.id, body=b"later"))
    assert closed.value.code == "store_unavailable"
    assert alice._audit is None  # closed with the agent, and taken off the logger
    assert all(h.__class__.__name__ != "AuditFileHandler"
               for h in logging.getLogger(AUDIT_LOGGER).handlers)
    assert verify_audit_log(audit).records >= 2  # the handshake and the chain, at least

    again = Agent.load(key, passphrase="correct horse", trust=trust, state=state)
    with pytest.raises(ReplayDetected):  # the nonce was kept on disk
        await again.open(sealed)
    assert again.revocations.is_revoked(decode_chain(chain)[-1].id) is True


async def test_an_untrusted_sender_s_envelope_is_refused() -> None:
    bob, mallory = Agent.generate(), Agent.generate()
    alice = Agent.generate(trust=[bob.id])
    assert (await alice.open(bob.seal(to=alice.id, body=b"hi"))).payload == b"hi"
    with pytest.raises(AuthenticationError) as caught:
        await alice.open(mallory.seal(to=alice.id, body=b"hi"))
    assert caught.value.code == "untrusted_peer"


@pytest.mark.parametrize(("ttl", "seconds"), [("90s", 90), ("15m", 900), ("1h", 3600),
                                               ("7d", 604800), (30, 30), (0.5, 1)])
def test_ttl_forms(ttl: str | float, seconds: int) -> None:
    alice, bob = Agent.generate(), Agent.generate()
    link = decode_chain(alice.delegate(to=bob.id, grants=[Grant("a", {"r"})], ttl=ttl))[0]
    assert link.expires - link.not_before == seconds


@pytest.mark.parametrize("ttl", ["1 h", "1w", "", -1, 0, float("nan"), True])
def test_bad_ttls_are_refused(ttl: object) -> None:
    alice = Agent.generate()
    with pytest.raises(InvalidArgument):
        alice.delegate(to=alice.id, grants=[Grant("a", {"r"})], ttl=ttl)  # type: ignore[arg-type]


async def test_replicas_sharing_redis_state_refuse_each_other_s_replays() -> None:
    bob = Agent.generate()
    key = Identity.generate()
    with redis_server() as url:
        first, second = Agent(key, state=url), Agent(key, state=url)  # two replicas
        sealed = bob.seal(to=first.id, body=b"once")
        assert (await first.open(sealed)).payload == b"once"
        with pytest.raises(ReplayDetected):
            await second.open(sealed)
        chain = first.delegate(to=bob.id, grants=[Grant("a", {"r"})])
        first.revoke(chain)
        assert second.revocations.is_revoked(decode_chain(chain)[-1].id) is True


def test_without_the_redis_extra_a_redis_state_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # as if the client were absent
    with pytest.raises(InvalidState, match=r"agentauth\[redis\]"):
        Agent.generate(state="redis://127.0.0.1:1")
