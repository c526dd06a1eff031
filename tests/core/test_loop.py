"""The request loop's guarantees: every claimed deployment is released whatever ends its call, the router owns its
pools, streams commit on real content only, malformed upstream events, deadlines, retries of a lone deployment."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from polyroute import Router
from polyroute.api import is_content_chunk as _is_content
from polyroute.api import is_raw_content as _raw_is_content
from tests.core.routing_helpers import MESSAGES, call, dep, make_router, ok, sequence, status, stream_text
from tests.emulators import Emulator, Reply, Request
from tests.emulators import gemini_format as gemini_emu
from tests.emulators.openai_format import AZURE_PROMPT_FILTER, chunks, completion

Start = Callable[..., Emulator]


class Switch:
    """A handler whose behaviour the test changes between calls."""

    def __init__(self, handler: Callable[[Request], Reply]) -> None:
        self.handler = handler

    def __call__(self, request: Request) -> Reply:
        return self.handler(request)


def _open_circuit(emulator: Start, provider: str = "openai") -> tuple[Router, Switch, Any]:
    """A router with one deployment whose circuit is open, due for its half-open probe."""
    switch = Switch(status(500))
    emu = emulator(switch)
    deployment = dep(emu, "d") | {"provider": provider}
    router = make_router(deployment, retry={"allowed_fails": 1, "cooldown": 0.2, "same_deployment_retries": 0})
    state = router.state(router.route("m").targets[0])
    with pytest.raises(openai.InternalServerError):
        call("sync", router)
    assert state.circuit == "open"
    time.sleep(0.25)
    return router, switch, state


def _reachable_again(router: Router, switch: Switch, state: Any) -> None:
    switch.handler = ok("back")
    time.sleep(0.25)
    result, _ = call("sync", router)
    assert result.choices[0].message.content == "back"
    assert state.circuit == "closed"
    assert not state.probing
    assert state.in_flight == 0


def test_probe_refused_by_the_adapter_is_released(emulator: Start) -> None:
    router, switch, state = _open_circuit(emulator, provider="together")
    with pytest.raises(openai.BadRequestError):  # together cannot carry service_tier: refused before any call
        call("sync", router, service_tier="flex")
    assert not state.probing
    _reachable_again(router, switch, state)


def test_probe_cancelled_by_the_caller_is_released(emulator: Start) -> None:
    router, switch, state = _open_circuit(emulator)
    switch.handler = lambda request: Reply(hang=1.0)

    async def cancelled() -> None:
        client = router.async_openai_client()
        task = asyncio.ensure_future(client.chat.completions.create(model="m", messages=MESSAGES))  # type: ignore[arg-type]
        await asyncio.sleep(0.2)
        assert state.probing
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await router.aclose()

    asyncio.run(cancelled())
    assert not state.probing
    assert state.in_flight == 0
    _reachable_again(router, switch, state)


def test_probe_interrupted_by_keyboard_interrupt_is_released(emulator: Start) -> None:
    router, switch, state = _open_circuit(emulator)
    switch.handler = lambda request: Reply(hang=1.0)

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(KeyboardInterrupt):
            call("sync", router)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert not state.probing
    assert state.in_flight == 0
    _reachable_again(router, switch, state)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_probe_stream_closed_early_is_released(emulator: Start, mode: str) -> None:
    router, switch, state = _open_circuit(emulator)
    switch.handler = ok("a long answer, read only in part")

    if mode == "sync":
        with router.openai_client().chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream:  # type: ignore[arg-type]
            next(iter(stream))
    else:

        async def first_only() -> None:
            client = router.async_openai_client()
            stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
            async with stream:
                await stream.__aiter__().__anext__()
            await router.aclose()

        asyncio.run(first_only())
    assert not state.probing
    assert state.in_flight == 0
    _reachable_again(router, switch, state)


# -- the router owns its pools -----------------------------------------------------------------------------------


def _slow_stream(pieces: int = 8, delay: float = 0.03) -> Callable[[Request], Reply]:
    """Streams ``pieces`` words slowly; answers a non-streamed call at once."""

    def handle(request: Request) -> Reply:
        if not request.json().get("stream"):
            return Reply(body=completion("now"))
        return Reply.sse(chunks([f"w{i} " for i in range(pieces)]), chunk_delay=delay)

    return handle


def test_closing_one_client_leaves_another_clients_stream_working(emulator: Start) -> None:
    router = make_router(dep(emulator(_slow_stream()), "d"))
    first, second = router.openai_client(), router.openai_client()
    first.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]  # its pool is in use
    with second.chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream:  # type: ignore[arg-type]
        pieces = iter(stream)
        text = [next(pieces).choices[0].delta.content or ""]
        first.close()
        text += [c.choices[0].delta.content or "" for c in pieces if c.choices]
    assert "".join(text) == "".join(f"w{i} " for i in range(8))
    second.close()
    router.close()


def test_closing_one_async_client_leaves_another_clients_stream_working(emulator: Start) -> None:
    router = make_router(dep(emulator(_slow_stream()), "d"))

    async def go() -> str:
        first, second = router.async_openai_client(), router.async_openai_client()
        await first.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
        stream = await second.chat.completions.create(model="m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        text: list[str] = []
        async with stream:
            async for chunk in stream:
                if chunk.choices:
                    text.append(chunk.choices[0].delta.content or "")
                if len(text) == 2:
                    await first.close()
        await second.close()
        return "".join(text)

    assert asyncio.run(go()) == "".join(f"w{i} " for i in range(8))


def test_router_is_a_context_manager_that_closes_its_pools(emulator: Start) -> None:
    emu = emulator(ok("hi"))
    with make_router(dep(emu, "d")) as router:
        assert router.openai_client().chat.completions.create(model="m", messages=MESSAGES).choices  # type: ignore[arg-type]
        transport = router.transport()
        assert transport._sync_inner is not None  # pyright: ignore[reportPrivateUsage]
    assert transport._sync_inner is None  # pyright: ignore[reportPrivateUsage]

    async def go() -> None:
        async with make_router(dep(emu, "d")) as router:
            client = router.async_openai_client()
            assert (await client.chat.completions.create(model="m", messages=MESSAGES)).choices  # type: ignore[arg-type]

    asyncio.run(go())


def test_transport_is_created_once_under_concurrent_threads(emulator: Start) -> None:
    router = make_router(dep(emulator(ok("hi")), "d"))
    barrier = threading.Barrier(16)
    seen: list[object] = []

    def grab() -> None:
        barrier.wait()
        seen.append(router.transport())

    threads = [threading.Thread(target=grab) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(t) for t in seen}) == 1


# -- commit on real content only ---------------------------------------------------------------------------------


def _compact(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": choices, **extra}


NOT_CONTENT = [
    AZURE_PROMPT_FILTER,
    _chunk({"role": "assistant", "content": "", "refusal": None}),
    _chunk({"role": "assistant", "content": None}),
    _chunk({"role": "assistant"}, content_filter_results={}),
    _chunk({}),
    _chunk({"content": ""}),
    _chunk({"reasoning_content": ""}),
    _chunk({"content": None, "refusal": None}),
    _chunk(None, usage={"prompt_tokens": 1, "completion_tokens": 0, "total_tokens": 1}),
    _chunk({"content": ""}, usage=None),
]
CONTENT = [
    _chunk({"content": "Hi"}),
    _chunk({"content": "\\n"}),
    _chunk({"content": '"'}),
    _chunk({"role": "assistant", "content": "Hi"}),
    _chunk({"content": "", "reasoning_content": "thinking"}),
    _chunk({"content": None, "refusal": "I can't"}),
    _chunk(
        {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}
    ),
    _chunk({"role": "assistant", "content": None, "tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
    {"choices": [{"content_filter_results": {}, "delta": {"content": " date"}, "finish_reason": None, "index": 0}]},
]


@pytest.mark.parametrize("chunk", NOT_CONTENT + CONTENT)
def test_raw_and_parsed_paths_agree_on_what_commits(chunk: dict[str, Any]) -> None:
    expected = chunk in CONTENT
    assert _is_content(chunk) is expected  # type: ignore[arg-type]
    assert _raw_is_content(_compact(chunk)) is expected
    assert _raw_is_content(json.dumps(chunk).encode()) is expected  # spaced JSON, as some vendors write it


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("azure", [False, True], ids=["openai", "azure"])
def test_a_stream_cut_before_its_first_token_fails_over(emulator: Start, mode: str, azure: bool) -> None:
    # Only metadata (Azure's prompt filter, the role chunk) came before the cut: nothing reached the caller.
    cut = emulator(lambda request: Reply.sse(chunks(["never"], azure=azure), cut_after=2 if azure else 1))
    up = emulator(ok("fine"))
    text, headers = stream_text(mode, make_router(dep(cut, "cut"), dep(up, "up")))
    assert text == "fine"
    assert headers["x-polyroute-deployment"] == "up"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_azure_stream_passes_through_with_its_metadata_chunk(emulator: Start, mode: str) -> None:
    emu = emulator(lambda request: Reply.sse(chunks(["a", "b"], azure=True)))
    text, _ = stream_text(mode, make_router(dep(emu, "azure-like")))
    assert text == "ab"


# -- malformed upstream events -----------------------------------------------------------------------------------

BAD_LINES = {
    "not-json": "data: {this is not json\n\n",
    "truncated": 'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"x"\n\n',
    "no-choices": 'data: {"id":"c","object":"chat.completion.chunk","choices":7}\n\n',
}


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("bad", list(BAD_LINES))
def test_malformed_event_before_commit_fails_over(emulator: Start, mode: str, bad: str) -> None:
    events = chunks(["never"])
    broken = emulator(lambda request: Reply.sse([events[0], BAD_LINES[bad], *events[1:]]))
    up = emulator(ok("fine"))
    text, headers = stream_text(mode, make_router(dep(broken, "broken"), dep(up, "up")))
    assert text == "fine"
    assert headers["x-polyroute-deployment"] == "up"


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("bad", list(BAD_LINES))
def test_malformed_event_after_commit_is_an_in_band_api_error(emulator: Start, mode: str, bad: str) -> None:
    events = chunks(["one ", "two"])
    broken = emulator(lambda request: Reply.sse([*events[:2], BAD_LINES[bad], *events[2:]]))
    with pytest.raises(openai.APIError) as caught:
        stream_text(mode, make_router(dep(broken, "broken")))
    assert caught.value.partial == "one "  # type: ignore[attr-defined]
    assert "could not read" in caught.value.message
    assert not isinstance(caught.value, openai.InternalServerError)


# -- deadlines ---------------------------------------------------------------------------------------------------


def _trickle_json(request: Request) -> Reply:
    body = json.dumps(completion("late")).encode()
    pieces = [body[i : i + 8] for i in range(0, len(body), 8)]
    return Reply(chunks=pieces, chunk_delay=0.05, headers={"content-type": "application/json"})


def _whitespace_then_answer(request: Request) -> Reply:
    events = chunks(["late"])
    return Reply.sse([events[0], *[": keep-alive\n\n"] * 40, "\n" * 5, *events[1:]], chunk_delay=0.05)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_trickling_body_times_out_at_the_deployment_timeout(emulator: Start, mode: str) -> None:
    slow = emulator(_trickle_json)  # ~20 pieces, 50 ms apart: each read is quick, the whole is 1 s
    up = emulator(ok("fast"))
    router = make_router(dep(slow, "slow", timeout=0.3), dep(up, "fast"))
    started = time.monotonic()
    result, headers = call(mode, router)
    assert result.choices[0].message.content == "fast"
    assert headers["x-polyroute-attempts"] == "2"
    assert time.monotonic() - started < 0.7


def _scripted_server(pieces: list[tuple[float, bytes]]) -> tuple[str, Callable[[], None]]:
    """A server that reads a request and then sends each piece after its delay (seconds): a whole answer, with
    the gaps a test needs. Its base URL and a stop function.
    """
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.recv(65536)
            for delay, piece in pieces:
                if stop.wait(delay):
                    return
                conn.sendall(piece)
            stop.wait(10)

    def accept() -> None:
        with contextlib.suppress(OSError):
            while not stop.is_set():
                threading.Thread(target=handle, args=(server.accept()[0],), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()

    def close() -> None:
        stop.set()
        server.close()

    return f"http://127.0.0.1:{server.getsockname()[1]}/v1", close


def _trickling_headers_server() -> tuple[str, Callable[[], None]]:
    """A server that answers ``HTTP/1.1 200 OK`` and then one header line every 0.1 s: each read comes well within
    httpcore's per-read timeout, the headers never end. Its base URL and a stop function.
    """
    lines = [(0.1, b"x-slow-%d: y\r\n" % i) for i in range(50)]
    return _scripted_server([(0.0, b"HTTP/1.1 200 OK\r\n"), *lines])


def _late_body(delays: list[float]) -> list[tuple[float, bytes]]:
    """Headers with a ``content-length`` at once, then the JSON body in ``len(delays)`` pieces after those gaps."""
    body = json.dumps(completion("late")).encode()
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
    size = -(-len(body) // len(delays))
    return [(0.0, head)] + [(delay, body[i * size : (i + 1) * size]) for i, delay in enumerate(delays)]


_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n"


@pytest.mark.parametrize(
    ("mode", "pieces", "timeout", "within"),
    [
        # a sync body, each piece well within a read's timeout, the whole far past the deadline: the watchdog ends it
        ("sync", _late_body([0.05] * 40), 1.0, 1.5),
        # a sync body's one read that would outlast the deadline: its read timeout is what is left of the deadline,
        # not all of it (1.7 s)
        ("sync", [(0.7, _HEAD)], 1.0, 1.5),
        # async header lines that keep coming, each within httpcore's per-read timeout (a new user's trial found
        # this unbounded once: the server's 5 s)
        ("async", [(0.0, b"HTTP/1.1 200 OK\r\n"), *[(0.1, b"x-slow-%d: y\r\n" % i) for i in range(50)]], 0.4, 2.0),
    ],
    ids=["sync-trickling-body", "sync-late-body", "async-trickling-headers"],
)
def test_a_slow_upstream_ends_at_the_deployment_timeout(
    emulator: Start, mode: str, pieces: list[tuple[float, bytes]], timeout: float, within: float
) -> None:
    """However slowly the upstream answers, the attempt ends at the deployment's ``timeout`` and fails over."""
    base, close = _scripted_server(pieces)
    try:
        up = emulator(ok("fast"))
        router = make_router(dep(base, "slow", timeout=timeout), dep(up, "fast"))
        started = time.monotonic()
        result, headers = call(mode, router)
        assert result.choices[0].message.content == "fast"
        assert headers["x-polyroute-attempts"] == "2"
        assert time.monotonic() - started < within
    finally:
        close()


def test_a_sync_body_in_pieces_is_read_whole(emulator: Start) -> None:
    """A body that needs several reads (the watchdog armed after the first) is read to its end."""
    base, close = _scripted_server(_late_body([0.0, 0.05, 0.05, 0.05]))
    try:
        result, headers = call("sync", make_router(dep(base, "pieces", timeout=5.0)))
        assert result.choices[0].message.content == "late"
        assert headers["x-polyroute-attempts"] == "1"
    finally:
        close()


def test_async_caller_cancelling_while_headers_trickle_is_the_callers_cancel(emulator: Start) -> None:
    """The deadline cancels an async call's task from the watchdog; a cancel of the caller's own (``wait_for``)
    stays the caller's: it propagates as such, at once, and the task is not cancelled again later.
    """
    base, close = _trickling_headers_server()
    try:
        up = emulator(ok("fast"))
        router = make_router(dep(base, "slow", timeout=0.6), dep(up, "fast"))
        client = router.async_openai_client()

        async def main() -> tuple[float, str]:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.chat.completions.create(model="m", messages=MESSAGES), 0.2)
            waited = time.monotonic() - started
            await asyncio.sleep(0.8)  # past the abandoned attempt's deadline: its alarm must not cancel this task
            again = await client.chat.completions.create(model="m", messages=MESSAGES)
            return waited, str(again.choices[0].message.content)

        waited, text = asyncio.run(main())
        assert waited < 0.5
        assert text == "fast"
    finally:
        close()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_keep_alive_whitespace_before_the_first_token_times_out(emulator: Start, mode: str) -> None:
    slow = emulator(_whitespace_then_answer)
    up = emulator(ok("fast"))
    router = make_router(dep(slow, "slow", timeout=0.3), dep(up, "fast"))
    started = time.monotonic()
    text, headers = stream_text(mode, router)
    assert text == "fast"
    assert headers["x-polyroute-attempts"] == "2"
    assert time.monotonic() - started < 1.5  # the whitespace alone lasts 2 s; slack for a loaded CI machine


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_ttft_holds_when_headers_arrive_and_the_body_stalls(emulator: Start, mode: str) -> None:
    # The role chunk comes at once, the content after 1.5 s: no first token within ttft_timeout=0.2.
    slow = emulator(lambda request: Reply.sse(chunks(["late"]), chunk_delay=1.5))
    up = emulator(ok("fast"))
    router = make_router(dep(slow, "slow", ttft_timeout=0.2), dep(up, "fast"))
    started = time.monotonic()
    text, _ = stream_text(mode, router)
    assert text == "fast"
    # 0.21-0.32 s alone; 0.79 s once with every test environment running on 2 cores: the bound only has to be well
    # under the 1.5 s stall that waiting for the body would take
    assert time.monotonic() - started < 1.2


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    ("gaps", "idle", "partial", "within"),
    [
        # silence right after the commit: the stream ends stream_idle_timeout later, with an in-band error
        ([1.0], 0.2, "one ", 0.6),
        # a chunk soon after the commit, then silence: due 0.6 s after that chunk, not a whole timeout later (the
        # watchdog once looked again only a period after the alarm moved: 1.2 s)
        ([0.1, 3.0], 0.6, "one two ", 1.05),
    ],
    ids=["after-commit", "after-a-later-chunk"],
)
def test_a_stream_idle_after_its_commit_ends_with_an_in_band_error(
    emulator: Start, mode: str, gaps: list[float], idle: float, partial: str, within: float
) -> None:
    events = chunks(["one ", "two ", "three"])

    def stall() -> Iterator[str]:
        yield from events[:2]  # the role chunk, then "one ": committed
        for i, gap in enumerate(gaps):
            time.sleep(gap)
            yield events[2 + i]
        yield from events[2 + len(gaps) :]

    stalled = emulator(lambda request: Reply.sse(stall()))
    router = Router({"models": [{"name": "m", "deployments": [dep(stalled, "d")]}], "stream_idle_timeout": idle})
    started = time.monotonic()
    with pytest.raises(openai.APIError) as caught:
        stream_text(mode, router)
    assert f"stream_idle_timeout={idle:g}" in caught.value.message
    assert caught.value.partial == partial  # type: ignore[attr-defined]
    assert time.monotonic() - started < within


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_pings_are_not_silence(emulator: Start, mode: str) -> None:
    """Keep-alive comments (OpenAI's, a proxy's) while the model thinks, longer in all than the idle timeout: the
    upstream is not silent, the stream goes on to its end.
    """
    events = chunks(["one ", "two"])

    def pings_after_commit() -> Iterator[str]:
        yield from events[:2]
        for _ in range(10):
            time.sleep(0.1)
            yield ": ping\n\n"
        yield from events[2:]

    pinging = emulator(lambda request: Reply.sse(pings_after_commit()))
    router = Router({"models": [{"name": "m", "deployments": [dep(pinging, "d")]}], "stream_idle_timeout": 0.4})
    assert stream_text(mode, router)[0] == "one two"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_every_attempt_timing_out_is_the_sdks_timeout_error(emulator: Start, mode: str) -> None:
    hung = emulator(lambda request: Reply(hang=1.0))
    router = make_router(dep(hung, "a", timeout=0.2), dep(hung, "b", timeout=0.2))
    with pytest.raises(openai.APITimeoutError) as caught:
        call(mode, router)
    assert "a timed out" in str(caught.value.__cause__) and "b timed out" in str(caught.value.__cause__)


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_refusal_is_not_hidden_behind_an_unreachable_deployment(emulator: Start, api: str) -> None:
    """One deployment refuses the request itself (chat: a tool result that answers no call; Responses: a freeform
    tool it cannot take), the other cannot be reached: the caller gets an error that says what the first refused,
    not the SDK's retryable connection error.
    """
    live = emulator(gemini_emu.GeminiEmulator(gemini_emu.response("never")))
    router = make_router(
        {"provider": "gemini", "model": "gemini-2.5-flash", "api_base": live.url, "api_key": "k", "id": "live"},
        dep("http://127.0.0.1:9/v1", "dead"),
    )
    client = router.openai_client(max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        if api == "chat":
            orphan: Any = {"role": "tool", "tool_call_id": "nope", "content": "x"}
            client.chat.completions.create(model="m", messages=[*MESSAGES, orphan])
        else:
            freeform = {"type": "custom", "name": "apply_patch"}
            client.responses.create(model="m", input="hi", tools=[freeform])  # type: ignore[list-item]
    refusal = "tool result 'nope'" if api == "chat" else "custom tools (freeform input)"
    assert refusal in caught.value.message and "dead could not be reached" in caught.value.message
    assert live.requests == []


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_every_attempt_unreachable_is_the_sdks_connection_error(emulator: Start, mode: str) -> None:
    reset = emulator(lambda request: Reply(reset=True))
    router = make_router(dep(reset, "a"), dep("http://127.0.0.1:9/v1", "b"))
    with pytest.raises(openai.APIConnectionError) as caught:
        call(mode, router)
    assert not isinstance(caught.value, openai.APITimeoutError)
    assert "a could not be reached" in str(caught.value.__cause__)
    # the attempts are in that one message: their own chained tracebacks are not shown under it
    assert caught.value.__cause__.__suppress_context__ and caught.value.__cause__.__cause__ is None


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_callers_timeout_bounds_everything(emulator: Start, mode: str) -> None:
    slow = emulator(_trickle_json)
    router = make_router(dep(slow, "a"), dep(slow, "b"))
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        call(mode, router, client={"timeout": 0.4})
    assert time.monotonic() - started < 0.8


# -- one deployment: retries -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("first", [529, 503, 429])
def test_a_lone_deployment_is_retried_after_a_transient_failure(emulator: Start, mode: str, first: int) -> None:
    lone = emulator(sequence(status(first), status(503), ok("third time")))
    router = make_router(dep(lone, "lone"), retry={"backoff": 0.01})
    result, headers = call(mode, router)
    assert result.choices[0].message.content == "third time"
    assert headers["x-polyroute-attempts"] == "3"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_lone_deployment_honours_retry_after_ms(emulator: Start, mode: str) -> None:
    lone = emulator(sequence(status(429, **{"retry-after-ms": "150"}), ok("later")))
    router = make_router(dep(lone, "lone"))
    started = time.monotonic()
    result, _ = call(mode, router)
    assert result.choices[0].message.content == "later"
    assert time.monotonic() - started >= 0.15


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_lone_deployment_gives_up_after_its_retries_and_says_so(emulator: Start, mode: str) -> None:
    lone = emulator(status(503))
    router = make_router(dep(lone, "lone"), retry={"backoff": 0.01, "allowed_fails": 10})
    with pytest.raises(openai.InternalServerError) as caught:
        call(mode, router, client={"max_retries": 2})
    assert len(lone.requests) == 3  # the first call and 2 retries; the SDK does not re-run them
    assert caught.value.response.headers["x-should-retry"] == "false"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_long_retry_after_is_not_waited_for(emulator: Start, mode: str) -> None:
    lone = emulator(status(429, **{"retry-after": "30"}))
    router = make_router(dep(lone, "lone"))
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError):
        call(mode, router)
    assert len(lone.requests) == 1
    assert time.monotonic() - started < 0.5


# -- hedging: the loser really stops ----------------------------------------------------------------------------


def test_sync_hedge_loser_is_closed_at_once(emulator: Start) -> None:
    closed_at: list[float] = []

    def pinging(request: Request) -> Reply:
        def events() -> Iterator[str]:
            try:
                yield chunks(["x"])[0]  # headers and the role chunk, then keep-alive pings and no token
                for _ in range(60):
                    time.sleep(0.05)
                    yield ": ping\n\n"
            finally:
                closed_at.append(time.monotonic())

        return Reply.sse(events())

    slow = emulator(pinging)
    fast = emulator(ok("fast"))
    router = make_router(dep(slow, "slow"), dep(fast, "fast"), hedge_after_ms=150)
    slow_state = router.state(router.route("m").targets[0])
    text, headers = stream_text("sync", router)
    answered = time.monotonic()
    assert text == "fast"
    assert headers["x-polyroute-deployment"] == "fast"
    deadline = answered + 2.0
    while not closed_at and time.monotonic() < deadline:
        time.sleep(0.02)
    assert closed_at and closed_at[0] - answered < 0.5  # not when the pings run out, 3 s later
    time.sleep(0.1)
    assert slow_state.in_flight == 0


def test_sync_hedge_loser_waiting_for_headers_is_stopped(emulator: Start) -> None:
    slow = emulator(lambda request: Reply(hang=2.0))  # accepts, then says nothing: no headers
    fast = emulator(ok("fast"))
    router = make_router(dep(slow, "slow"), dep(fast, "fast"), hedge_after_ms=150)
    slow_state = router.state(router.route("m").targets[0])
    result, headers = call("sync", router)
    answered = time.monotonic()
    assert result.choices[0].message.content == "fast"
    assert headers["x-polyroute-deployment"] == "fast"
    while slow_state.in_flight and time.monotonic() - answered < 2.5:
        time.sleep(0.02)
    assert time.monotonic() - answered < 0.5  # its thread stopped and freed the slot, not when the hang ended


# -- a body its content-encoding does not decode --------------------------------------------------------------------


def _not_gzip(request: Request) -> Reply:
    """A gateway's HTML error page marked gzip (it is not): the body cannot be read."""
    headers = {"content-encoding": "gzip"}
    if request.json().get("stream"):
        return Reply.sse(["<html>bad gateway</html>"], headers={"content-type": "text/event-stream", **headers})
    return Reply(body=b"<html>bad gateway</html>", headers={"content-type": "application/json", **headers})


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("streamed", [False, True])
def test_a_body_that_does_not_decode_fails_over(emulator: Start, mode: str, streamed: bool) -> None:
    """Not polyroute's bug (it was a 500 "internal error" with no failover): that deployment's 502, and the next."""
    bad = emulator(_not_gzip)
    good = emulator(ok("decoded"))
    router = make_router(dep(bad, "bad"), dep(good, "good"))
    if streamed:
        text, headers = stream_text(mode, router)
    else:
        result, headers = call(mode, router)
        text = result.choices[0].message.content
    assert (text, headers["x-polyroute-deployment"], headers["x-polyroute-attempts"]) == ("decoded", "good", "2")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_body_that_does_not_decode_is_named_in_the_error(emulator: Start, mode: str) -> None:
    bad = emulator(_not_gzip)
    router = make_router(dep(bad, "bad"), retry={"max_attempts": 1})
    with pytest.raises(openai.APIStatusError) as caught:
        call(mode, router, client={"max_retries": 0})
    assert caught.value.status_code == 502
    assert "bad: 502 answered a body its content-encoding does not decode: Error -3" in caught.value.message
