"""AgentAuthStream over in-memory byte streams: handshake, attributes, messages, ends,
limits and broken transports. Every test runs on asyncio and on trio."""

from __future__ import annotations

import anyio
import pytest
from support import ALICE, BOB, CAROL, raises
from support.aio import DEADLINE, memory_pair, stream_pair, trusting

from agentauth import AgentAuthAttribute, AgentAuthStream, Role

pytestmark = pytest.mark.anyio


async def test_handshake_attributes_and_messages_both_ways() -> None:
    with anyio.fail_after(DEADLINE):
        a, b = await stream_pair(*memory_pair())
        assert a.peer_id == BOB.agent_id and b.peer_id == ALICE.agent_id
        assert a.extra(AgentAuthAttribute.peer_key) == BOB.peer
        assert (a.extra(AgentAuthAttribute.channel_binding)
                == b.extra(AgentAuthAttribute.channel_binding))
        assert a.extra(AgentAuthAttribute.role) is Role.INITIATOR
        assert b.extra(AgentAuthAttribute.role) is Role.RESPONDER
        for payload in (b"", b"x", bytes(range(256)) * 300):
            await a.send(payload)
            assert await b.receive() == payload
            await b.send(payload[::-1])
            assert await a.receive() == payload[::-1]
        await a.aclose()
        await b.aclose()


async def test_orderly_close_is_end_of_stream_on_both_sides() -> None:
    with anyio.fail_after(DEADLINE):
        a, b = await stream_pair(*memory_pair())
        await a.send(b"last words")
        await a.send_eof()
        assert [m async for m in b] == [b"last words"]  # iteration ends at the CLOSE
        with pytest.raises(anyio.ClosedResourceError):
            await a.send(b"after eof")
        await b.send(b"reply after half-close")
        assert await a.receive() == b"reply after half-close"
        await b.aclose()  # sends b's CLOSE
        with pytest.raises(anyio.EndOfStream):
            await a.receive()
        await a.aclose()


async def test_concurrent_senders_keep_the_order_valid() -> None:
    with anyio.fail_after(DEADLINE):
        a, b = await stream_pair(*memory_pair(buffer=1))
        received: list[bytes] = []

        async def reader() -> None:
            async for message in b:
                received.append(message)

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            async with anyio.create_task_group() as senders:
                for i in range(20):
                    senders.start_soon(a.send, i.to_bytes(2, "big"))
            await a.send_eof()
        assert sorted(received) == [i.to_bytes(2, "big") for i in range(20)]
        await a.aclose()
        await b.aclose()


async def test_unexpected_peer_and_untrusted_peer() -> None:
    with anyio.fail_after(DEADLINE):
        left, right = memory_pair()
        with raises("unexpected_peer"):
            await stream_pair(left, right, i_options={"expect": CAROL.agent_id})
        left, right = memory_pair()
        out: dict[str, BaseException] = {}

        async def respond() -> None:
            try:
                await AgentAuthStream.wrap(right, BOB, trusting(CAROL), initiator=False)
            except Exception as exc:
                out["r"] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(respond)
            a = await AgentAuthStream.wrap(left, ALICE, trusting(BOB), initiator=True,
                                           expect=BOB.agent_id)
        assert getattr(out["r"], "code", None) == "untrusted_peer"
        # The initiator finished first; the responder's alert says why (spec 4.14).
        with raises("peer_refused") as info:
            await a.receive()
        assert getattr(info.value, "claimed", None) == "untrusted_peer"


async def test_peer_that_stalls_times_the_handshake_out() -> None:
    with anyio.fail_after(DEADLINE):
        left, _right = memory_pair()  # nobody answers
        with raises("handshake_timeout"):
            await AgentAuthStream.wrap(left, ALICE, trusting(BOB), initiator=True,
                                       expect=BOB.agent_id, handshake_timeout=0.2)


@pytest.mark.parametrize("cut", [0, 2, 10])
async def test_peer_that_closes_mid_handshake(cut: int) -> None:
    with anyio.fail_after(DEADLINE):
        left, right = memory_pair()

        async def half_answer() -> None:
            hs1 = await right.receive()
            assert hs1
            frame = (158).to_bytes(4, "big") + bytes(154)  # an HS2-sized frame, cut short
            await right.send(frame[:cut])
            await right.aclose()

        async with anyio.create_task_group() as tg:
            tg.start_soon(half_answer)
            with raises("unexpected_eof"):
                await AgentAuthStream.wrap(left, ALICE, trusting(BOB), initiator=True,
                                           expect=BOB.agent_id)


async def test_oversize_frames_are_refused_before_reading_them() -> None:
    with anyio.fail_after(DEADLINE):
        left, right = memory_pair()

        async def huge() -> None:
            await right.receive()
            await right.send((1 << 31).to_bytes(4, "big"))  # and nothing after it

        async with anyio.create_task_group() as tg:
            tg.start_soon(huge)
            with raises("oversize"):
                await AgentAuthStream.wrap(left, ALICE, trusting(BOB), initiator=True,
                                           expect=BOB.agent_id)
        a, b = await stream_pair(*memory_pair(), r_options={})
        await a.transport_stream.send((b._max_frame + 1).to_bytes(4, "big"))
        with raises("oversize"):
            await b.receive()
        with raises("oversize"):  # the channel stays broken
            await b.receive()


async def test_truncation_is_not_an_orderly_end() -> None:
    with anyio.fail_after(DEADLINE):
        a, b = await stream_pair(*memory_pair())
        await a.send(b"complete")
        await a.transport_stream.aclose()  # the transport ends without a CLOSE
        assert await b.receive() == b"complete"
        with raises("unexpected_eof"):
            await b.receive()


async def test_a_flipped_bit_breaks_the_channel_for_good() -> None:
    with anyio.fail_after(DEADLINE):
        left, right = memory_pair()
        a, b = await stream_pair(left, right)
        message = a._session.seal(b"genuine")
        damaged = bytearray(len(message).to_bytes(4, "big") + message)
        damaged[20] ^= 0x10
        await left.send(bytes(damaged))
        with raises("decrypt_failed"):
            await b.receive()
        await a.send(b"too late")
        with raises("decrypt_failed"):
            await b.receive()


async def test_idle_timeout_and_lifetime() -> None:
    with anyio.fail_after(DEADLINE):
        a, b = await stream_pair(*memory_pair(), r_options={"idle_timeout": 0.2})
        with raises("idle_timeout"):
            await b.receive()
        with pytest.raises(anyio.EndOfStream):  # the peer sees an orderly end
            await a.receive()
        a, b = await stream_pair(*memory_pair(), i_options={"max_lifetime": 0.3})
        with raises("lifetime_exceeded"):
            async for _ in a:
                pass
        with raises("lifetime_exceeded"):
            await a.send(b"x")


async def test_aclose_does_not_hang_on_a_peer_that_never_reads() -> None:
    with anyio.fail_after(DEADLINE):
        a, b = await stream_pair(*memory_pair(buffer=0))
        with anyio.fail_after(3):
            await a.aclose()  # CLOSE cannot be delivered: gives up after a second
        await b.aclose()


@pytest.mark.parametrize("bad", [{"handshake_timeout": 0}, {"idle_timeout": -1.0},
                                 {"max_lifetime": float("inf")}, {"initiator": None}])
async def test_arguments_are_checked_before_any_io(bad: dict[str, object]) -> None:
    left, _ = memory_pair()
    options: dict[str, object] = {"initiator": True, **bad}
    with raises("invalid_argument"):
        await AgentAuthStream.wrap(left, ALICE, trusting(BOB), **options)  # type: ignore[arg-type]
    with raises("invalid_argument"):
        a, _b = await stream_pair(*memory_pair())
        await a.send("text")  # type: ignore[arg-type]
