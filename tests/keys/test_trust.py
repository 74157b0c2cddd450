"""Trust stores (spec 14.3): validated on load, errors with their line and field, and the
policy the handshake and the chain verifier take."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentauth import (
    FileError,
    HandshakePolicy,
    Identity,
    Initiator,
    Responder,
    TrustStore,
    TrustStoreError,
)
from agentauth.capability import Grant, delegate, verify_chain

ALICE, BOB, ROOT, MALLORY = (Identity.from_seed(bytes([i + 10]) * 32) for i in range(4))


def text(*blocks: str) -> str:
    return "version = 1\n" + "".join(blocks)


def peer(name: str, agent_id: str, extra: str = "") -> str:
    return f'\n[[peer]]\nname = "{name}"\nid = "{agent_id}"\n{extra}'


def anchor(name: str, agent_id: str, namespace: str = "**") -> str:
    return f'\n[[anchor]]\nname = "{name}"\nid = "{agent_id}"\nnamespace = "{namespace}"\n'


def refused(source: str) -> str:
    with pytest.raises(TrustStoreError) as info:
        TrustStore.parse(source, "trust.toml")
    assert info.value.code == "trust_store_invalid"
    return info.value.message


def test_round_trip_and_accessors() -> None:
    store = TrustStore.parse(text(peer("alice", ALICE.agent_id), peer("bob", BOB.agent_id),
                                  anchor("corp", ROOT.agent_id, "reports/**")))
    assert store.peer_ids == {ALICE.agent_id, BOB.agent_id}
    assert dict(store.anchors) == {ROOT.agent_id: "reports/**"}
    assert store.trusts(ALICE.peer) and not store.trusts(MALLORY.peer)
    assert TrustStore.parse(store.dumps()).entries == store.entries
    assert repr(store) == "TrustStore(2 peer(s), 1 anchor(s))"
    assert store.remove("bob").peer_ids == {ALICE.agent_id}


@pytest.mark.parametrize(("source", "expected"), [
    ("version = 2\n", "line 1: version: version 2"),
    ("", "version: the field 'version' is missing"),
    ('version = "1"\n', "line 1: version"),
    ("version = 1\ncolour = 3\n", "line 2: colour: unknown field"),
    (text(peer("alice", "did:key:z6Mkbogus")), "line 5: peer[0].id:"),
    (text(peer("alice", ALICE.agent_id, "colour = 1\n")), "line 6: peer[0].colour: unknown"),
    (text(peer("alice", ALICE.agent_id), peer("bob", "nope")), "line 9: peer[1].id:"),
    (text('\n[[peer]]\nid = "x"\n'), "line 3: peer[0]: the field 'name' is missing"),
    (text(peer("a b", ALICE.agent_id)), "line 4: peer[0].name: a name is"),
    (text(peer("alice", ALICE.agent_id), peer("alice", BOB.agent_id)),
     "line 7: peer[1]: the name 'alice' is used twice"),
    (text(peer("alice", ALICE.agent_id), peer("al", ALICE.agent_id)),
     "line 7: peer[1]: did:key:"),
    (text(anchor("corp", ROOT.agent_id, "a/**/b")), "line 6: anchor[0].namespace"),
    (text('\n[[anchor]]\nname = "corp"\nid = "' + ROOT.agent_id + '"\n'),
     "line 3: anchor[0]: the field 'namespace' is missing"),
    (text(peer("alice", ALICE.agent_id, 'next = "abc"\n')), "line 6: peer[0].next"),
    (text(peer("alice", ALICE.agent_id, "retired = 3\n")), "line 6: peer[0].retired"),
    (text(peer("alice", ALICE.agent_id, f'retired = ["{ALICE.agent_id}"]\n')),
     "was rotated away"),
    ("version = 1\n[[peer]\n", "not valid TOML"),
    ("version = 1\npeer = 3\n", "line 2: peer: write each peer as a [[peer]] table"),
])
def test_each_fault_names_its_line_or_field(source: str, expected: str) -> None:
    message = refused(source)
    assert expected in message, message
    assert message.startswith("trust.toml:")


def test_toml_syntax_errors_carry_the_line() -> None:
    assert "line 3" in refused('version = 1\n\nname = "unterminated\n')


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_random_text_is_a_store_or_a_typed_error(source: str) -> None:
    with contextlib.suppress(TrustStoreError):
        TrustStore.parse(source)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_stores_are_a_store_or_a_typed_error(data: st.DataObject) -> None:
    good = text(peer("alice", ALICE.agent_id), anchor("corp", ROOT.agent_id, "reports/**"))
    cut = data.draw(st.integers(0, len(good)))
    mutated = good[:cut] + data.draw(st.text(max_size=5)) + good[cut + data.draw(
        st.integers(0, 5)):]
    with contextlib.suppress(TrustStoreError):
        TrustStore.parse(mutated)


def test_files_writable_by_others_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "trust.toml"
    TrustStore().add_peer("alice", ALICE.agent_id).save(path)
    path.chmod(0o644)
    assert TrustStore.load(path).peer_ids == {ALICE.agent_id}
    for mode in (0o664, 0o646):
        path.chmod(mode)
        with pytest.raises(TrustStoreError) as info:
            TrustStore.load(path)
        assert info.value.code == "trust_store_permissions"
    path.chmod(0o600)
    path.write_bytes(b"version = 1\n\xff\n")
    with pytest.raises(TrustStoreError) as info:
        TrustStore.load(path)
    assert "not UTF-8" in info.value.message


def test_changes_are_checked() -> None:
    store = TrustStore().add_peer("alice", ALICE.agent_id)
    with pytest.raises(Exception) as info:
        store.add_peer("alice", BOB.agent_id)
    assert getattr(info.value, "code", None) == "invalid_argument"
    with pytest.raises(Exception) as info:
        store.remove("nobody")
    assert getattr(info.value, "code", None) == "invalid_argument"
    with pytest.raises(Exception) as info:
        store.add_anchor("corp", ROOT.agent_id, "a/**/b")
    assert getattr(info.value, "code", None) == "invalid_argument"


def handshake(initiator: Identity, responder: Identity, policy: HandshakePolicy) -> str:
    client = Initiator(initiator, HandshakePolicy(trust=[responder.agent_id]),
                       expect=responder.agent_id)
    server = Responder(responder, policy)
    hs2 = server.receive_message(client.start())
    assert hs2 is not None
    hs3 = client.receive_message(hs2)
    assert hs3 is not None
    try:
        server.receive_message(hs3)
    except Exception as exc:
        return getattr(exc, "code", "error")
    assert server.result is not None
    return server.result.peer_id


def test_the_store_is_the_handshake_policy_and_the_anchors() -> None:
    store = TrustStore.parse(text(peer("alice", ALICE.agent_id),
                                  anchor("corp", ROOT.agent_id, "reports/**")))
    policy = store.handshake_policy(max_skew=60)
    assert handshake(ALICE, BOB, policy) == ALICE.agent_id
    assert handshake(MALLORY, BOB, policy) == "untrusted_peer"
    now = int(time.time())
    token = delegate(ROOT, ALICE.agent_id, [Grant("reports/q3", {"read"})], not_before=now,
                     expires=now + 60)
    assert verify_chain([token], store.anchors, now=now)
    outside = delegate(ROOT, ALICE.agent_id, [Grant("hr/**", {"read"})], not_before=now,
                       expires=now + 60)
    with pytest.raises(Exception) as info:
        verify_chain([outside], store.anchors, now=now)
    assert getattr(info.value, "code", None) == "root_scope"


def test_entries_made_in_code_are_checked_too() -> None:
    from agentauth.keys.trust import TrustEntry  # noqa: PLC0415

    with pytest.raises(TrustStoreError):
        TrustStore([TrustEntry("peer", "bad name", ALICE.peer)])
    with pytest.raises(TrustStoreError):
        TrustStore([TrustEntry("friend", "alice", ALICE.peer)])


def test_concurrent_editors_lose_nothing(tmp_path: Path) -> None:
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    path = tmp_path / "trust.toml"
    TrustStore().save(path)
    script = ("import sys\n"
              "from agentauth import Identity, TrustStore\n"
              "from agentauth.keys.trust import editing\n"
              "for i in range(40):\n"
              "    with editing(sys.argv[1]):\n"
              "        store = TrustStore.load(sys.argv[1])\n"
              "        store.add_peer(f'{sys.argv[2]}-{i}', Identity.generate().agent_id"
              ").save(sys.argv[1])\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    editors = [subprocess.Popen([sys.executable, "-c", script, str(path), name], env=env)
               for name in ("a", "b")]
    assert [e.wait(timeout=120) for e in editors] == [0, 0]
    assert len(TrustStore.load(path).peer_ids) == 80


def test_live_trust_follows_the_file(tmp_path: Path,
                                     caplog: pytest.LogCaptureFixture) -> None:
    from agentauth.keys.rotation import rotate  # noqa: PLC0415
    from agentauth.keys.trust import LiveTrust  # noqa: PLC0415

    path = tmp_path / "trust.toml"
    TrustStore().add_peer("alice", ALICE.agent_id).add_anchor("corp", ROOT.agent_id,
                                                              "reports/**").save(path)
    clock = [0.0]
    live = LiveTrust(path, interval=10, clock=lambda: clock[0])
    policy = HandshakePolicy(trust=live)
    assert handshake(ALICE, BOB, policy) == ALICE.agent_id
    assert dict(live.anchors) == {ROOT.agent_id: "reports/**"}
    store, _ = TrustStore.load(path).accept_rotation(rotate(ALICE, MALLORY, now=1))
    store.save(path)  # alice moved to a new key: the running policy follows
    assert handshake(MALLORY, BOB, policy) == "untrusted_peer"  # not looked at yet
    clock[0] = 10.0
    assert handshake(MALLORY, BOB, policy) == MALLORY.agent_id
    assert handshake(ALICE, BOB, policy) == "untrusted_peer"  # the retired key
    path.write_text("version = 1\n[[peer]\n")  # a broken edit: fail closed, and say so
    clock[0] = 20.0
    with caplog.at_level("ERROR", logger="agentauth.keys.trust"):
        assert handshake(MALLORY, BOB, policy) == "untrusted_peer"
    assert "nobody is trusted" in caplog.text and live.store is None
    assert dict(live.anchors) == {}
    store.save(path)
    clock[0] = 30.0
    assert live(MALLORY.peer) and live.store is not None
    path.unlink()
    clock[0] = 40.0
    assert not live(MALLORY.peer)
    with pytest.raises(FileError) as info:
        LiveTrust(path)
    assert info.value.code == "file_not_found"


HAND_EDITED = f"""# Alice's trust store: who may talk to her, and whose chains she accepts.
version = 1

# The build bot, pinned after the 2026 audit.
[[peer]]
name = "bob"      # build bot
id = "{BOB.agent_id}"

[[peer]]
name = "mallory"
id = "{MALLORY.agent_id}"  # on probation

# Corporate root; only reports.
[[anchor]]
name = "corp"
id = "{ROOT.agent_id}"
namespace = "reports/**"  # not finance
"""


def test_saving_keeps_a_hand_edited_files_comments_and_order(tmp_path: Path) -> None:
    from agentauth.keys.rotation import rotate  # noqa: PLC0415

    path = tmp_path / "trust.toml"
    path.write_text(HAND_EDITED)
    store = TrustStore.load(path).add_peer("alice", ALICE.agent_id)
    store.save(path)
    saved = path.read_text()
    assert saved.startswith(HAND_EDITED.split("# Corporate root", maxsplit=1)[0].rstrip())
    assert saved.index('name = "mallory"') < saved.index('name = "alice"') < saved.index(
        "# Corporate root") < saved.index('name = "corp"')
    for line in HAND_EDITED.splitlines():
        assert line in saved
    assert [e.name for e in TrustStore.load(path).entries] == ["bob", "mallory", "alice",
                                                               "corp"]
    # A rotation changes the entry in place; a removal takes out only that entry.
    new = Identity.from_seed(bytes([99]) * 32)
    moved, _ = TrustStore.load(path).accept_rotation(rotate(BOB, new, now=1))
    moved.remove("mallory").save(path)
    saved = path.read_text()
    assert 'name = "bob"      # build bot' in saved and new.agent_id in saved
    assert "mallory" not in saved and "# on probation" not in saved
    for line in ("# Alice's trust store", "# The build bot", "# Corporate root",
                 'namespace = "reports/**"  # not finance'):
        assert line in saved
    reloaded = TrustStore.load(path)
    assert [e.name for e in reloaded.entries] == ["bob", "alice", "corp"]
    assert reloaded.get("bob") == moved.get("bob")
    # What tomlkit cannot edit in place (an inline array) is written afresh, and loads the same.
    path.write_text(f'version = 1\npeer = [{{name = "bob", id = "{BOB.agent_id}"}}]\n')
    TrustStore.load(path).add_peer("alice", ALICE.agent_id).save(path)
    assert [e.name for e in TrustStore.load(path).entries] == ["bob", "alice"]


def test_a_lone_surrogate_is_a_typed_error_naming_where() -> None:
    # Text a caller decoded with surrogateescape: the document model refuses the string
    # with no field to name, and the refusal is still a TrustStoreError (fuzzing found it).
    assert refused('["did:key:z6Mk\udcbb"]\n').endswith(
        "trust.toml: a key or value is not valid Unicode text (it holds a lone surrogate)")
    assert "line 2: peer[0]: a key or value is not valid Unicode" in refused(
        'version = 1\n[[peer]]\n"a\udcbb" = 1\n')
