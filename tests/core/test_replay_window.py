"""The unordered receive window against a model of what it must accept.

The model is the definition: a counter is accepted if it is above every counter accepted so
far, or within ``REPLAY_WINDOW`` of the highest and not accepted before; otherwise it is
``stale`` (too far behind) or ``replayed``. Forged messages at any counter change nothing.
Messages are sealed for real at the chosen counters (all in epoch 0).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from support import outcome, sessions

from agentauth import REPLAY_WINDOW, Session

W = REPLAY_WINDOW


class Model:
    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.top = -1

    def expect(self, counter: int) -> str:
        if counter > self.top:
            return "ok"
        if self.top - counter >= W:
            return "stale"
        return "replayed" if counter in self.seen else "ok"

    def accept(self, counter: int) -> None:
        self.seen.add(counter)
        self.top = max(self.top, counter)


def result(session: Session, message: bytes) -> str:
    return outcome(lambda: session.open(message))


@st.composite
def schedules(draw: st.DrawFn) -> list[tuple[str, int]]:
    """Deliveries and forgeries: mostly near the front, some repeats, some long jumps."""
    ops: list[tuple[str, int]] = []
    front = 0
    for _ in range(draw(st.integers(1, 60))):
        kind = draw(st.sampled_from(["next", "next", "next", "skip", "back", "repeat",
                                     "jump", "forge"]))
        if kind == "next":
            ops.append(("deliver", front))
            front += 1
        elif kind == "skip":
            front += draw(st.integers(1, 200))
            ops.append(("deliver", front))
            front += 1
        elif kind == "back":
            ops.append(("deliver", max(0, front - draw(st.integers(1, W + 70)))))
        elif kind == "repeat" and ops:
            ops.append(("deliver", draw(st.sampled_from(ops))[1]))
        elif kind == "jump":
            front += draw(st.sampled_from([W - 1, W, W + 1, 2 * W + 63, 64, 65, 33 * 64]))
            ops.append(("deliver", front))
            front += 1
        else:
            ops.append(("forge", draw(st.integers(0, front + 3 * W))))
    return ops


@settings(max_examples=300, deadline=None, database=None)
@given(ops=schedules())
def test_unordered_window_matches_the_model(ops: list[tuple[str, int]]) -> None:
    a, b = sessions(False)
    model = Model()
    for kind, counter in ops:
        a._send_n = counter
        message = a.seal(counter.to_bytes(8, "big"))
        if kind == "forge":
            message = message[:-1] + bytes([message[-1] ^ 0x80])
            expected = model.expect(counter)
            assert result(b, message) == (
                "decrypt_failed" if expected == "ok" else expected)
            continue
        expected = model.expect(counter)
        assert result(b, message) == expected, (kind, counter, model.top)
        if expected == "ok":
            model.accept(counter)
    # Finally, every counter around the front answers as the model says.
    for counter in range(max(0, model.top - W - 5), model.top + 3):
        a._send_n = counter
        message = a.seal(b"")
        expected = model.expect(counter)
        assert result(b, message) == expected, counter
        if expected == "ok":
            model.accept(counter)
