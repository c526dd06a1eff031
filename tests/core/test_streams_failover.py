"""The stream-commit boundary and hedging: fail over until the first content chunk reached the caller, an in-band
error after it; slow first tokens, cut streams, error events, cancellation closing upstream. Sync and async."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import openai
import pytest

from tests.core.routing_helpers import MESSAGES, MODES, call, counted_chunks, dep, make_router, ok, status, stream_text
from tests.emulators import Emulator, Reply, Request
from tests.emulators.openai_format import chunks
from tests.emulators.server import sse_events

Start = Callable[..., Emulator]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


def test_error_status_before_stream_fails_over(emulator: Start, mode: str) -> None:
    down = emulator(status(503))
    up = emulator(ok("streamed"))
    text, headers = stream_text(mode, make_router(dep(down, "a"), dep(up, "b")))
    assert text == "streamed"
    assert headers["x-polyroute-deployment"] == "b"


def test_slow_first_byte_hits_ttft_timeout_and_fails_over(emulator: Start, mode: str) -> None:
    slow = emulator(lambda request: Reply.sse(chunks(["late"]), first_byte_delay=1.0))
    up = emulator(ok("fast"))
    router = make_router(dep(slow, "slow", ttft_timeout=0.2), dep(up, "fast"))
    started = time.monotonic()
    text, headers = stream_text(mode, router)
    assert text == "fast"
    assert headers["x-polyroute-attempts"] == "2"
    assert time.monotonic() - started < 0.9


async def test_headers_fast_but_first_token_late_fails_over_async(emulator: Start) -> None:
    # The role chunk arrives at once, the content only after 0.6 s: no first token within 0.2 s.
    events = chunks(["late"])
    slow = emulator(lambda request: Reply.sse(events, chunk_delay=0.6))
    up = emulator(ok("fast"))
    router = make_router(dep(slow, "slow", ttft_timeout=0.2), dep(up, "fast"))
    client = router.async_openai_client()
    started = time.monotonic()
    raw = await client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    assert time.monotonic() - started < 0.55
    assert raw.headers["x-polyroute-deployment"] == "fast"
    async with raw.parse() as stream:  # type: ignore[attr-defined]
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "fast"
    await router.aclose()


def test_headers_fast_but_first_token_late_sync(emulator: Start) -> None:
    # A sync read cannot be interrupted: the deadline is checked as bytes arrive. Bytes without content past the
    # deadline fail over; a hung body is bounded by the deployment's timeout.
    events = chunks(["late"])
    padded = [events[0], ": keep-alive\n\n", ": keep-alive\n\n", *events[1:]]
    slow = emulator(lambda request: Reply.sse(padded, chunk_delay=0.15))
    up = emulator(ok("fast"))
    router = make_router(dep(slow, "slow", ttft_timeout=0.2), dep(up, "fast"))
    text, headers = stream_text("sync", router)
    assert text == "fast"
    assert headers["x-polyroute-deployment"] == "fast"
    hung = emulator(lambda request: Reply.sse([events[0], *events[1:]], chunk_delay=2.0))
    router = make_router(dep(hung, "hung", ttft_timeout=0.1, timeout=0.3), dep(up, "fast"))
    started = time.monotonic()
    assert stream_text("sync", router)[0] == "fast"
    assert time.monotonic() - started < 1.0


def test_ttft_timeout_does_not_limit_the_committed_stream(emulator: Start, mode: str) -> None:
    steady = emulator(lambda request: Reply.sse(chunks(["a", "b", "c"]), chunk_delay=0.3))
    router = make_router(dep(steady, "steady", ttft_timeout=0.5))
    text, _ = stream_text(mode, router)
    assert text == "abc"


def test_error_event_before_content_fails_over(emulator: Start, mode: str) -> None:
    erroring = emulator(
        lambda request: Reply.sse(sse_events([{"error": {"message": "overloaded", "type": "server_error"}}]))
    )
    up = emulator(ok("rescued"))
    text, _ = stream_text(mode, make_router(dep(erroring, "a"), dep(up, "b")))
    assert text == "rescued"


def test_cut_before_content_fails_over(emulator: Start, mode: str) -> None:
    cut = emulator(lambda request: Reply.sse(chunks(["x", "y"]), cut_after=1))  # only the role chunk
    up = emulator(ok("rescued"))
    text, headers = stream_text(mode, make_router(dep(cut, "a"), dep(up, "b")))
    assert text == "rescued"
    assert headers["x-polyroute-attempts"] == "2"


def test_cut_after_content_is_an_in_band_error_not_a_failover(emulator: Start, mode: str) -> None:
    cut = emulator(lambda request: Reply.sse(chunks(["a", "b", "c", "d"]), cut_after=3))
    other = emulator(ok("never"))
    with pytest.raises(openai.APIError) as caught:
        stream_text(mode, make_router(dep(cut, "a"), dep(other, "b")))
    assert caught.value.partial == "ab"  # type: ignore[attr-defined]
    assert other.requests == []


def test_error_event_mid_stream_is_an_in_band_error(emulator: Start, mode: str) -> None:
    events = chunks(["a", "b"], finish=False, done=False)
    events += sse_events([{"error": {"message": "upstream fell over", "type": "server_error"}}])
    broken = emulator(lambda request: Reply.sse(events))
    other = emulator(ok("never"))
    with pytest.raises(openai.APIError) as caught:
        stream_text(mode, make_router(dep(broken, "a"), dep(other, "b")))
    assert "upstream fell over" in str(caught.value.message)
    assert caught.value.partial == "ab"  # type: ignore[attr-defined]
    assert other.requests == []


def test_stream_ending_without_finish_is_an_error(emulator: Start, mode: str) -> None:
    unfinished = emulator(lambda request: Reply.sse(chunks(["a", "b"], finish=False, done=False)))
    with pytest.raises(openai.APIError) as caught:
        stream_text(mode, make_router(dep(unfinished, "a")))
    assert "without a finish_reason" in str(caught.value.message)


def test_stream_releases_the_deployment_when_done(emulator: Start, mode: str) -> None:
    up = emulator(ok("abc"))
    router = make_router(dep(up, "a"))
    stream_text(mode, router)
    assert router.state(router.route("m").targets[0]).in_flight == 0


def test_cancelling_mid_stream_closes_upstream_sync(emulator: Start) -> None:
    sent: list[int] = []
    emu = emulator(lambda request: Reply.sse(list(counted_chunks(300, sent)), chunk_delay=0.01))
    emu.handler = lambda request: Reply(
        chunks=counted_chunks(300, sent), chunk_delay=0.01, headers={"content-type": "text/event-stream"}
    )
    router = make_router(dep(emu, "a"))
    with router.openai_client().chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream:  # type: ignore[arg-type]
        for i, _ in enumerate(stream):
            if i == 3:
                break
    assert router.state(router.route("m").targets[0]).in_flight == 0
    time.sleep(0.3)
    count = len(sent)
    time.sleep(0.2)
    assert len(sent) - count < 3, "upstream kept streaming after the caller closed the stream"
    assert len(sent) < 100


async def test_cancelling_mid_stream_closes_upstream_async(emulator: Start) -> None:
    sent: list[int] = []
    emu = emulator(
        lambda request: Reply(
            chunks=counted_chunks(300, sent), chunk_delay=0.01, headers={"content-type": "text/event-stream"}
        )
    )
    router = make_router(dep(emu, "a"))
    client = router.async_openai_client()

    async def consume() -> None:
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        async with stream:
            async for _ in stream:
                await asyncio.sleep(0)

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0.15)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert router.state(router.route("m").targets[0]).in_flight == 0
    await asyncio.sleep(0.3)
    count = len(sent)
    await asyncio.sleep(0.2)
    assert len(sent) - count < 3, "upstream kept streaming after the caller was cancelled"
    await router.aclose()


# -- hedging ------------------------------------------------------------------------------------------------------


def _slow_then(delay: float, text: str) -> Callable[[Request], Reply]:
    def handle(request: Request) -> Reply:
        reply = ok(text)(request)
        reply.first_byte_delay = delay
        return reply

    return handle


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_hedge_starts_a_second_deployment_and_the_first_answer_wins(emulator: Start, mode: str, stream: bool) -> None:
    slow = emulator(_slow_then(0.8, "slow"))
    fast = emulator(ok("fast"))
    router = make_router(dep(slow, "slow"), dep(fast, "fast"), hedge_after_ms=100)
    started = time.monotonic()
    if stream:
        text, headers = stream_text(mode, router)
    else:
        result, headers = call(mode, router)
        text = result.choices[0].message.content
    assert text == "fast"
    assert time.monotonic() - started < 0.7
    assert headers["x-polyroute-deployment"] == "fast"
    assert headers["x-polyroute-attempts"] == "2"  # the loser counts as an attempt, cancelled
    # the loser may be cancelled before its request reached the slow upstream (a loaded machine delays its connect)
    assert len(slow.requests) <= 1 and len(fast.requests) == 1
    if mode == "async":  # the loser task was cancelled and its connection closed before we answered
        assert router.state(router.route("m").targets[0]).in_flight == 0


def test_hedge_not_needed_when_first_answers_in_time(emulator: Start, mode: str) -> None:
    first = emulator(ok("first"))
    second = emulator(ok("second"))
    router = make_router(dep(first, "first"), dep(second, "second"), hedge_after_ms=300)
    text, headers = stream_text(mode, router)
    assert text == "first"
    assert headers["x-polyroute-attempts"] == "1"
    assert second.requests == []


def test_hedge_with_failures_still_fails_over(emulator: Start, mode: str) -> None:
    down = emulator(status(500))
    slow = emulator(_slow_then(0.2, "slow but fine"))
    router = make_router(dep(down, "down"), dep(slow, "slow"), hedge_after_ms=50)
    result, headers = call(mode, router)
    assert result.choices[0].message.content == "slow but fine"
    assert headers["x-polyroute-deployment"] == "slow"
