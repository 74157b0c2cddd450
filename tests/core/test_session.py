"""Sessions after a real handshake: sealing, both receive modes, rekey, close, export.

A few tests reach far counters by setting the sender's private ``_send_n`` (and, for the
last epoch, ``_send_limit``): sealing 2**32 messages is not an option in a unit test.
The sender's key is left alone, so this is exactly what a sender that got there honestly
would hold as long as the counter stays inside epoch 0 (the tests say when it does not).
"""

from __future__ import annotations

import pytest
from support import flip, make_pair, outcome, raises, sessions

from agentauth import REPLAY_WINDOW, HandshakePolicy, Session, accept_any_peer
from agentauth.crypto import ChaCha20Poly1305
from agentauth.session import EPOCH_BITS, OVERHEAD

EPOCH = 1 << EPOCH_BITS


def counter_of(message: bytes) -> int:
    return int.from_bytes(message[:8], "little") & ((1 << 56) - 1)


@pytest.mark.parametrize("ordered", [True, False])
def test_seal_and_open_both_ways(ordered: bool) -> None:
    a, b = sessions(ordered)
    for payload in (b"", b"x", bytes(range(256)) * 40):
        message = a.seal(payload)
        assert len(message) == len(payload) + OVERHEAD
        assert b.open(message) == payload
        assert a.open(b.seal(payload[::-1])) == payload[::-1]
    assert a.seal(b"same") != a.seal(b"same")  # fresh counter, fresh nonce
    assert "ordered" in repr(a) and not a.closed and not b.peer_closed


@pytest.mark.parametrize("ordered", [True, False])
def test_directions_use_different_keys(ordered: bool) -> None:
    a, b = sessions(ordered)
    with raises("decrypt_failed"):
        a.open(a.seal(b"to myself"))
    with raises("decrypt_failed"):
        b.open(b.seal(b"to myself"))


def test_ordered_replay_and_skip() -> None:
    a, b = sessions(True)
    first, second, third = a.seal(b"1"), a.seal(b"2"), a.seal(b"3")
    with raises("out_of_order"):
        b.open(second)
    assert b.open(first) == b"1"
    with raises("replayed"):
        b.open(first)
    assert b.open(second) == b"2"
    assert b.open(third) == b"3"
    with raises("replayed"):
        b.open(second)


# (byte index, mask, code in ordered mode, code in unordered mode) for the first message.
FLIPS = [
    (0, 0x01, "out_of_order", "decrypt_failed"),  # counter 0 -> 1
    (3, 0x80, "out_of_order", "decrypt_failed"),  # counter 0 -> 2**31
    (7, 0x01, "decrypt_failed", "decrypt_failed"),  # DATA -> CLOSE
    (7, 0x02, "decrypt_failed", "decrypt_failed"),  # DATA -> REKEY
    (7, 0x04, "malformed", "malformed"),  # type 4 does not exist
    (8, 0x01, "decrypt_failed", "decrypt_failed"),  # first ciphertext byte
    (12, 0x80, "decrypt_failed", "decrypt_failed"),
    (-16, 0x01, "decrypt_failed", "decrypt_failed"),  # first tag byte
    (-1, 0x80, "decrypt_failed", "decrypt_failed"),  # last tag byte
]


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize(("index", "mask", "if_ordered", "if_unordered"), FLIPS)
def test_bit_flip_leaves_receive_state_unchanged(ordered: bool, index: int, mask: int,
                                                 if_ordered: str, if_unordered: str) -> None:
    a, b = sessions(ordered)
    first, second = a.seal(b"payload one"), a.seal(b"payload two")
    with raises(if_ordered if ordered else if_unordered):
        b.open(flip(first, index, mask))
    assert not b.peer_closed
    assert b.open(first) == b"payload one"
    assert b.open(second) == b"payload two"


def test_unordered_accepts_each_counter_once_in_any_order() -> None:
    a, b = sessions(False)
    messages = [a.seal(bytes([i])) for i in range(200)]
    order = list(range(199, -1, -3)) + [i for i in range(200) if (199 - i) % 3]
    assert sorted(order) == list(range(200))
    for i in order:
        assert b.open(messages[i]) == bytes([i])
    for i in (0, 1, 64, 128, 199):
        with raises("replayed"):
            b.open(messages[i])


def test_unordered_window_edge() -> None:
    a, b = sessions(False)
    early = [a.seal(b"0"), a.seal(b"1")]
    a._send_n = REPLAY_WINDOW  # counter 2048: counter 0 is now one behind the window
    latest = a.seal(b"top")
    assert b.open(latest) == b"top"
    with raises("stale"):
        b.open(early[0])
    assert b.open(early[1]) == b"1"  # top - 1 = 2047 < REPLAY_WINDOW: still inside
    with raises("replayed"):
        b.open(early[1])
    with raises("replayed"):
        b.open(latest)


def test_unordered_far_jump_clears_old_bits() -> None:
    a, b = sessions(False)
    old = [a.seal(bytes([i])) for i in range(70)]
    assert b.open(old[5]) == bytes([5])
    a._send_n = 5 * REPLAY_WINDOW + 3
    assert b.open(a.seal(b"far")) == b"far"
    for message in old:
        with raises("stale"):
            b.open(message)
    a._send_n = 5 * REPLAY_WINDOW + 3 - REPLAY_WINDOW + 1  # oldest counter still inside
    assert b.open(a.seal(b"edge")) == b"edge"


def test_forged_high_counter_does_not_move_the_window() -> None:
    a, b = sessions(False)
    first = a.seal(b"first")
    forged = (10 * REPLAY_WINDOW).to_bytes(8, "little") + first[8:]
    for _ in range(2):
        with raises("decrypt_failed"):
            b.open(forged)
    assert b.open(first) == b"first"  # had the window moved, counter 0 would be stale
    assert b.open(a.seal(b"second")) == b"second"


@pytest.mark.parametrize("ordered", [True, False])
def test_rekey(ordered: bool) -> None:
    a, b = sessions(ordered)
    before, rekey = a.seal(b"before"), a.rekey()
    after = a.seal(b"after")
    assert counter_of(after) == EPOCH and len(rekey) == OVERHEAD
    assert [b.open(m) for m in (before, rekey, after)] == [b"before", None, b"after"]
    assert b.open(a.seal(b"again")) == b"again"
    assert a.open(b.seal(b"reply")) == b"reply"  # the other direction did not change
    with raises("replayed" if ordered else "stale"):  # 2**32 counters behind
        b.open(before)


def test_unordered_survives_a_lost_rekey_message() -> None:
    a, b = sessions(False)
    assert b.open(a.seal(b"0")) == b"0"
    a.rekey()  # lost in transit
    assert b.open(a.seal(b"new epoch")) == b"new epoch"


def test_ordered_rekey_must_arrive_before_the_new_epoch() -> None:
    a, b = sessions(True)
    rekey, after = a.rekey(), a.seal(b"after")
    with raises("out_of_order"):
        b.open(after)
    assert b.open(rekey) is None
    assert b.open(after) == b"after"


def test_unordered_old_epoch_messages_within_the_window() -> None:
    a, b = sessions(False)
    a._send_n = EPOCH - 3  # still epoch 0: the key is the one the handshake gave
    old = [a.seal(b"-3"), a.seal(b"-2"), a.seal(b"-1")]
    new = a.seal(b"epoch 1")  # the sender moved to epoch 1 by itself (REKEY of its key)
    assert counter_of(new) == EPOCH
    assert b.open(new) == b"epoch 1"
    assert [b.open(m) for m in reversed(old)] == [b"-1", b"-2", b"-3"]
    with raises("replayed"):
        b.open(old[0])
    a._send_n = EPOCH + REPLAY_WINDOW + 10
    assert b.open(a.seal(b"far")) == b"far"
    assert b._recv_prev is None  # the whole window is in epoch 1: epoch 0's key is dropped
    with raises("stale"):
        b.open(old[1])


def test_epoch_two_ahead_has_no_key() -> None:
    a, b = sessions(False)
    genuine = a.seal(b"genuine")
    a._send_n = 2 * EPOCH  # key is still epoch 0's: the receiver refuses before decrypting
    a._send_limit = 3 * EPOCH
    with raises("decrypt_failed"):
        b.open(a.seal(b"x"))
    assert b.open(genuine) == b"genuine"


@pytest.mark.parametrize("ordered", [True, False])
def test_close(ordered: bool) -> None:
    a, b = sessions(ordered)
    pending = a.seal(b"late")
    close = a.close()
    assert a.closed and len(close) == OVERHEAD
    for call in (lambda: a.seal(b"x"), a.close, a.rekey):
        assert outcome(call) == "invalid_state"
    if not ordered:
        assert b.open(close) is None  # out of order is fine in unordered mode ...
    else:
        assert b.open(pending) == b"late"
        assert b.open(close) is None
    assert b.peer_closed
    for message in (pending, close, bytes(OVERHEAD)):
        with raises("session_closed"):
            b.open(message)
    assert a.open(b.seal(b"half-closed")) == b"half-closed"  # b may still send
    assert a.open(b.close()) is None and a.peer_closed


@pytest.mark.parametrize("kind", [1, 2], ids=["close", "rekey"])
def test_control_message_with_payload_is_refused(kind: int) -> None:
    # Senders never put a payload in CLOSE or REKEY; a receiver refuses one, changing nothing.
    # Built with the sender's private key, as only a non-conforming sender could.
    a, b = sessions(True)
    header = (kind << 56).to_bytes(8, "little")
    message = header + ChaCha20Poly1305(a._send_key).encrypt(b"\0" * 4 + header, b"junk", None)
    with raises("malformed"):
        b.open(message)
    assert b.peer_closed is False
    assert b.open(a.seal(b"next")) == b"next"  # counter 0 was not consumed


def test_sizes() -> None:
    limit = OVERHEAD + 100
    a, b = sessions(True, HandshakePolicy(trust=accept_any_peer, max_message=limit))
    for size in (0, 1, 8, OVERHEAD - 1):
        with raises("malformed"):
            b.open(bytes(size))
    for size in (limit + 1, 10 * limit):
        with raises("oversize"):
            b.open(bytes(size))  # refused on its length alone, before the header is read
    assert b.open(a.seal(bytes(100))) == bytes(100)  # exactly at the limit
    with raises("invalid_argument"):  # the sender refuses what its own limit would refuse
        a.seal(bytes(101))
    big = sessions(True)[0].seal(bytes(101))  # a sender with a larger limit
    with raises("oversize"):
        b.open(big)
    with raises("invalid_argument"):
        Session(bytes(32), bytes(32), bytes(64), bytes(64), max_message=OVERHEAD - 1)


def test_counter_exhaustion_keeps_the_last_counter_for_close() -> None:
    a, _ = sessions(True)
    # Jump to the start of the last epoch (the key is not that epoch's: only the sender's
    # counting is under test here).
    a._send_limit = a._send_n = (1 << 56) - (1 << 32)
    assert counter_of(a.seal(b"first of the last epoch")) == (1 << 56) - (1 << 32)
    a._send_n = (1 << 56) - 2
    assert counter_of(a.seal(b"last data")) == (1 << 56) - 2
    for call in (lambda: a.seal(b"one more"), a.rekey):
        assert outcome(call) == "counter_exhausted"
    assert not a.closed
    close = a.close()  # the last counter is CLOSE's
    assert int.from_bytes(close[:8], "little") == 1 << 56 | (1 << 56) - 1
    assert a.closed and outcome(a.close) == "invalid_state"


def test_rekey_drops_the_old_sending_key_at_once() -> None:
    a, b = sessions(True)
    old = a._send_key
    rekey = a.rekey()
    assert a._send_key != old  # not kept until the next send
    assert b.open(rekey) is None and b.open(a.seal(b"x")) == b"x"


def test_exporter() -> None:
    a, b = sessions(True)
    assert a.export(b"label") == b.export(b"label")
    assert len(a.export(b"label")) == 32
    values = {a.export(b"label", b"", 32), a.export(b"label2"), a.export(b"label", b"ctx"),
              a.export(b"label", b"", 31), a.export(b"label", b"", 64), a.export(b"l", b"abel")}
    assert len(values) == 6
    assert a.export(b"label", b"", 31) != a.export(b"label")[:31]  # not a truncation
    assert a.export(b"x" * 255, b"c", 1) == b.export(b"x" * 255, b"c", 1)
    for label, length in ((b"", 32), (b"x" * 256, 32), (b"l", 0), (b"l", 65)):
        with raises("invalid_argument"):
            a.export(label, b"", length)
    assert a.channel_binding == b.channel_binding
    before = a.export(b"label")
    assert b.open(a.rekey()) is None and a.open(b.rekey()) is None
    assert a.export(b"label") == before == b.export(b"label")  # rekey does not change it


def test_each_handshake_gives_its_own_binding_and_exporter() -> None:
    first, second = make_pair(run=b"1"), make_pair(run=b"2")
    first.run()
    second.run()
    (a1, b1), (a2, b2) = first.sessions(), second.sessions()
    assert a1.channel_binding == b1.channel_binding != a2.channel_binding == b2.channel_binding
    assert a1.export(b"l") == b1.export(b"l") != a2.export(b"l") == b2.export(b"l")
    with raises("decrypt_failed"):
        b2.open(a1.seal(b"wrong session"))


def test_unordered_first_message_in_epoch_one_keeps_epoch_zero_for_late_ones() -> None:
    # The receiver builds its epoch-0 cipher lazily; a session whose first arrival is
    # already in epoch 1 must still accept epoch 0's late messages inside the window.
    a, b = sessions(False)
    a._send_n = EPOCH - 1  # still epoch 0: the key is the one the handshake gave
    old, new = a.seal(b"epoch 0"), a.seal(b"epoch 1")
    assert counter_of(new) == EPOCH
    assert b.open(new) == b"epoch 1"
    assert b.open(old) == b"epoch 0"
    with raises("replayed"):
        b.open(old)


@pytest.mark.parametrize("ordered", [True, False])
def test_forged_first_messages_do_not_stop_the_genuine_one(ordered: bool) -> None:
    a, b = sessions(ordered)
    genuine = a.seal(b"first")
    for index in (8, 20, len(genuine) - 1):
        with raises("decrypt_failed"):
            b.open(flip(genuine, index))
    assert b.open(genuine) == b"first"
    assert b.open(a.seal(b"second")) == b"second"
