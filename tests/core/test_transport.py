"""The transport end to end: openai SDK and plain httpx / httpx2 clients against a loopback OpenAI emulator."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from collections.abc import Callable
from typing import Any

import openai
import pytest

from polyroute import Router, _compat
from tests.core.routing_helpers import call
from tests.emulators import Emulator, Reply, Request
from tests.emulators.openai_format import chunks, completion, handler

KEY = "sk-test-secret-0123456789abcdef"
MESSAGES = [{"role": "user", "content": "hi"}]
LIBS = [lib.__name__ for lib in _compat.LIBS]


def make_router(emu: Emulator, **deployment: Any) -> Router:
    return Router(
        {
            "models": [
                {
                    "name": "m",
                    "deployments": [
                        {
                            "provider": "openai",
                            "model": "gpt-up",
                            "api_base": emu.url + "/v1",
                            "api_key": KEY,
                            **deployment,
                        }
                    ],
                }
            ]
        }
    )


def test_non_stream_sync(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(handler("Hello there"))
    client = make_router(emu).openai_client()
    raw = client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    result = raw.parse()
    assert result.choices[0].message.content == "Hello there"
    assert raw.headers["x-polyroute-deployment"] == "openai/gpt-up"
    assert raw.headers["x-polyroute-attempts"] == "1"
    sent = emu.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json()["model"] == "gpt-up"  # the deployment's model, not the route name


async def test_non_stream_async(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(handler("Hello async"))
    client = make_router(emu).async_openai_client()
    result = await client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    assert result.choices[0].message.content == "Hello async"
    assert result.usage is not None and result.usage.total_tokens == 15


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_compressed_answer_is_decoded(emulator: Callable[..., Emulator], asynchronous: bool) -> None:
    """polyroute asks for no compression and reads an unencoded body as it is; a server that gzips anyway (or a
    replayed cassette) still gets its body decoded.
    """
    body = gzip.compress(json.dumps(completion("Squeezed")).encode())
    emu = emulator(
        lambda request: Reply(body=body, headers={"content-type": "application/json", "content-encoding": "gzip"})
    )
    result, _ = call("async" if asynchronous else "sync", make_router(emu))
    assert result.choices[0].message.content == "Squeezed"
    assert "accept-encoding" not in emu.requests[0].headers


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_patched_upstream_transport_is_still_called(
    emulator: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch, asynchronous: bool
) -> None:
    """A non-streamed call goes to httpcore's pool under the HTTP library's own transport, skipping its wrapper;
    but a library that patches the transport's method (vcrpy records there, a test may mock there) is called,
    with the same decorator-wrapped name the stock method has.
    """
    import functools

    lib = _compat.UPSTREAM
    seen: list[str] = []
    if asynchronous:
        stock_async = lib.AsyncHTTPTransport.handle_async_request

        @functools.wraps(stock_async)
        async def spy_async(self: Any, request: Any) -> Any:
            seen.append(str(request.url))
            return await stock_async(self, request)

        monkeypatch.setattr(lib.AsyncHTTPTransport, "handle_async_request", spy_async)
    else:
        stock = lib.HTTPTransport.handle_request

        @functools.wraps(stock)
        def spy(self: Any, request: Any) -> Any:
            seen.append(str(request.url))
            return stock(self, request)

        monkeypatch.setattr(lib.HTTPTransport, "handle_request", spy)
    emu = emulator(handler("Seen"))
    result, _ = call("async" if asynchronous else "sync", make_router(emu))
    assert result.choices[0].message.content == "Seen"
    assert seen == [emu.url + "/v1/chat/completions"]


@pytest.mark.parametrize("lib", [m.__name__ for m in _compat.LIBS])
def test_what_the_loop_reads_of_an_answers_headers_in_any_case(lib: str) -> None:
    """The loop reads an upstream answer's headers in one pass over their raw names: any case (a replayed
    cassette's ``Content-Encoding``), a repeated or bad ``content-length`` ignored, ``identity`` not an encoding, and
    only the ``x-ratelimit-*`` headers kept for the router.
    """
    from polyroute.transport import _head  # pyright: ignore[reportPrivateUsage]

    headers = next(m for m in _compat.LIBS if m.__name__ == lib).Headers
    head = _head(
        headers(
            [
                ("Content-Encoding", "gzip"),
                ("Content-Length", "42"),
                ("X-RateLimit-Remaining-Requests", "7"),
                ("x-ratelimit-reset-requests", "1s"),
                ("Server", "x"),
            ]
        )
    )
    assert (head.encoded, head.length) == (True, 42)
    assert head.limits == {"x-ratelimit-remaining-requests": "7", "x-ratelimit-reset-requests": "1s"}
    plain = _head(headers([("content-encoding", "identity"), ("content-length", "4"), ("content-length", "4")]))
    assert (plain.encoded, plain.length, plain.limits) == (False, None, None)
    assert _head(headers([("content-length", "x1")])).length is None
    assert _head({"Content-Length": "3"}).length == 3  # a plain mapping too


def test_caller_key_is_never_forwarded(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(handler())
    client = make_router(emu).openai_client(api_key="sk-caller-should-not-leak")
    client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    assert "sk-caller-should-not-leak" not in json.dumps(emu.requests[0].headers)


def test_stream_sync_with_usage(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(handler("abcdefghij", pieces=5))
    client = make_router(emu).openai_client()
    stream = client.chat.completions.create(
        model="m",
        messages=MESSAGES,
        stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    )
    got = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in got if c.choices)
    assert text == "abcdefghij"
    assert got[-1].choices == [] and got[-1].usage is not None and got[-1].usage.completion_tokens == 5
    assert [c.choices[0].finish_reason for c in got if c.choices][-1] == "stop"
    # the router always asks upstream for usage (to count cost), even when the caller does not
    assert emu.requests[0].json()["stream_options"] == {"include_usage": True}


def test_stream_without_usage_hides_usage_chunk(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(handler("abcdef", pieces=3))
    client = make_router(emu).openai_client()
    got = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))  # type: ignore[arg-type]
    assert all(c.choices for c in got)
    assert all(c.usage is None for c in got)


async def test_stream_async(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(handler("streaming async", pieces=4))
    client = make_router(emu).async_openai_client()
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "streaming async"


def _gated_stream(gate: threading.Event, pieces: int) -> Callable[[Request], Reply]:
    """Sends the first chunks, then waits for the test to release the rest: proves incremental delivery."""

    def chunk_iter():
        events = chunks([f"p{i}" for i in range(pieces)])
        yield from events[:3]
        assert gate.wait(5), "the test never released the gate: chunks were not delivered incrementally"
        yield from events[3:]

    return lambda request: Reply(chunks=chunk_iter(), headers={"content-type": "text/event-stream"})


def test_stream_is_incremental_sync(emulator: Callable[..., Emulator]) -> None:
    gate = threading.Event()
    emu = emulator(_gated_stream(gate, 4))
    client = make_router(emu).openai_client()
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    iterator = iter(stream)
    first = [next(iterator), next(iterator)]  # arrive while upstream is still blocked on the gate
    assert first[1].choices[0].delta.content == "p0"
    gate.set()
    rest = [c.choices[0].delta.content for c in iterator if c.choices and c.choices[0].delta.content]
    assert rest == ["p1", "p2", "p3"]


async def test_stream_is_incremental_async(emulator: Callable[..., Emulator]) -> None:
    gate = threading.Event()
    emu = emulator(_gated_stream(gate, 4))
    client = make_router(emu).async_openai_client()
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    iterator = stream.__aiter__()
    await iterator.__anext__()
    second = await iterator.__anext__()
    assert second.choices[0].delta.content == "p0"
    gate.set()
    rest = [c.choices[0].delta.content async for c in iterator if c.choices and c.choices[0].delta.content]
    assert rest == ["p1", "p2", "p3"]


def test_early_close_closes_upstream(emulator: Callable[..., Emulator]) -> None:
    sent: list[int] = []

    def slow(request: Request) -> Reply:
        def gen():
            for i, event in enumerate(chunks([f"w{i}" for i in range(200)])):
                sent.append(i)
                yield event

        return Reply(chunks=gen(), chunk_delay=0.01, headers={"content-type": "text/event-stream"})

    emu = emulator(slow)
    client = make_router(emu).openai_client()
    with client.chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream:  # type: ignore[arg-type]
        for i, _ in enumerate(stream):
            if i == 3:
                break
    count = len(sent)
    asyncio.run(asyncio.sleep(0.3))
    assert len(sent) < 60, "upstream kept streaming after the caller closed the stream"
    assert len(sent) - count < 40


@pytest.mark.parametrize("lib_name", LIBS)
def test_plain_http_clients_sync(emulator: Callable[..., Emulator], lib_name: str) -> None:
    lib = next(m for m in _compat.LIBS if m.__name__ == lib_name)
    emu = emulator(handler("plain"))
    router = make_router(emu)
    with lib.Client(transport=router.transport(), base_url="http://anything/v1") as client:
        response = client.post("/chat/completions", json={"model": "m", "messages": MESSAGES})
        assert response.status_code == 200
        assert response.json()["choices"][0]["message"]["content"] == "plain"
        with client.stream(
            "POST", "/chat/completions", json={"model": "m", "messages": MESSAGES, "stream": True}
        ) as streamed:
            body = b"".join(streamed.iter_bytes())
        assert body.endswith(b"data: [DONE]\n\n")
        models = client.get("/models").json()
        assert [m["id"] for m in models["data"]] == ["m"]


@pytest.mark.parametrize("lib_name", LIBS)
async def test_plain_http_clients_async(emulator: Callable[..., Emulator], lib_name: str) -> None:
    lib = next(m for m in _compat.LIBS if m.__name__ == lib_name)
    emu = emulator(handler("plain async"))
    router = make_router(emu)
    async with lib.AsyncClient(transport=router.async_transport(), base_url="http://anything/v1") as client:
        response = await client.post("/chat/completions", json={"model": "m", "messages": MESSAGES})
        assert response.json()["choices"][0]["message"]["content"] == "plain async"
        async with client.stream(
            "POST", "/chat/completions", json={"model": "m", "messages": MESSAGES, "stream": True}
        ) as streamed:
            body = b"".join([part async for part in streamed.aiter_bytes()])
        assert b'"content":"pl"' in body and body.endswith(b"data: [DONE]\n\n")


def test_models_endpoint_lists_route_names(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(handler())
    client = make_router(emu).openai_client()
    assert [m.id for m in client.models.list()] == ["m"]


def test_unknown_path_is_openai_404(emulator: Callable[..., Emulator]) -> None:
    client = make_router(emulator(handler())).openai_client()
    with pytest.raises(openai.NotFoundError) as caught:
        client.completions.create(model="m", prompt="hi")
    assert "chat/completions" in caught.value.message
    assert caught.value.code == "unknown_url"


@pytest.mark.parametrize("path", ["/chat/completions", "/embeddings", "/messages", "/messages/count_tokens"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_a_method_other_than_post_is_a_404_naming_what_is_served(
    emulator: Callable[..., Emulator], path: str, method: str
) -> None:
    """GET /v1/chat/completions and the like: a 404, as OpenAI answers one ("Invalid URL (GET …)"), that says the
    path is served for POST; it was a 400 ("use POST"), which reads as a bad body. Messages answer in Anthropic's
    shape (not_found_error). Nothing goes upstream.
    """
    emu = emulator(handler())
    with make_router(emu).http_client(timeout=60) as http:
        response = http.request(method, path + "?x=1")
    assert response.status_code == 404, response.text
    words = f"Invalid URL ({method} /v1{path}): polyroute serves POST /v1{path}"
    if path.startswith("/messages"):
        assert response.json() == {"type": "error", "error": {"type": "not_found_error", "message": words}}
    else:
        assert response.json()["error"] == {
            "message": words,
            "type": "invalid_request_error",
            "param": None,
            "code": "unknown_url",
        }
    assert emu.requests == []


def test_get_chat_completions_is_the_sdks_not_found(emulator: Callable[..., Emulator]) -> None:
    client = make_router(emulator(handler())).openai_client()
    with pytest.raises(openai.NotFoundError, match=r"Invalid URL \(GET /v1/chat/completions\)") as caught:
        client.get("/chat/completions", cast_to=object)
    assert caught.value.status_code == 404 and caught.value.type == "invalid_request_error"


def test_unknown_model_is_404_naming_known_models(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(handler())
    client = make_router(emu).openai_client()
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="nope", messages=MESSAGES)  # type: ignore[arg-type]
    assert "'nope'" in caught.value.message and "m" in caught.value.message
    assert caught.value.code == "model_not_found"
    assert emu.requests == []
    with pytest.raises(openai.NotFoundError, match="'bogus' is not a provider polyroute knows"):
        client.chat.completions.create(model="bogus/x", messages=MESSAGES)  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError, match="name the model after the provider: 'openai/<model>'"):
        client.chat.completions.create(model="openai/", messages=MESSAGES)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"model": "m"}', "'messages' is required"),
        (b'{"model": "m", "messages": []}', "'messages' is required"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "'model' is required"),
        (b'{"model": "m", "messages": [{"role": "wizard", "content": "x"}]}', "messages[0].role"),
        (b'{"model": "m", "messages": [{"role": "user", "content": 5}]}', "messages[0].content"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}', "'temperature'"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}', "'max_tokens'"),
        (b'{"model": "m", "messages": [{"role": "tool", "content": "x"}]}', "tool_call_id"),
        (
            b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}',
            "tools[0]",
        ),
        (
            b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}}',
            "response_format",
        ),
    ],
)
@pytest.mark.parametrize("lib_name", LIBS)
def test_bad_input_is_400_and_nothing_goes_upstream(
    emulator: Callable[..., Emulator], body: bytes, fragment: str, lib_name: str
) -> None:
    lib = next(m for m in _compat.LIBS if m.__name__ == lib_name)
    emu = emulator(handler())
    with lib.Client(transport=make_router(emu).transport(), base_url="http://x/v1") as client:
        response = client.post("/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert fragment in error["message"]
    assert emu.requests == []


def test_bad_input_raises_sdk_bad_request(emulator: Callable[..., Emulator]) -> None:
    client = make_router(emulator(handler())).openai_client()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], temperature=9)
    assert caught.value.param == "temperature"


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (403, openai.PermissionDeniedError),
        (404, openai.NotFoundError),
        (422, openai.UnprocessableEntityError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (529, openai.InternalServerError),
    ],
)
def test_upstream_errors_become_sdk_errors(emulator: Callable[..., Emulator], status: int, error_class: type) -> None:
    body = {
        "error": {"message": f"upstream says {status}", "type": "upstream_type", "code": "upstream_code", "param": None}
    }
    emu = emulator(lambda request: Reply.json(body, status=status, x_request_id="req_123"))
    client = make_router(emu).openai_client(max_retries=2)  # x-should-retry: false keeps the SDK from re-running
    with pytest.raises(error_class) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    assert f"upstream says {status}" in caught.value.message
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(emu.requests) == (3 if status in (429, 500, 529) else 1)  # a lone deployment: 2 router retries
    if status == 529:
        assert caught.value.status_code == 503


def test_error_messages_never_carry_the_key(emulator: Callable[..., Emulator]) -> None:
    leaky = {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_request_error"}}
    emu = emulator(lambda request: Reply.json(leaky, status=401))
    client = make_router(emu).openai_client()
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    assert KEY not in caught.value.message
    assert KEY not in caught.value.response.text


def test_missing_key_is_a_clear_401(emulator: Callable[..., Emulator]) -> None:
    router = Router({"models": [{"name": "m", "deployments": [{"provider": "anthropic", "model": "claude-x"}]}]})
    with pytest.raises(openai.AuthenticationError) as caught:
        router.openai_client().chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    assert "ANTHROPIC_API_KEY" in caught.value.message


def test_basic_failover_to_next_deployment(emulator: Callable[..., Emulator]) -> None:
    down = emulator(lambda request: Reply.json({"error": {"message": "overloaded"}}, status=503))
    up = emulator(handler("from the second"))
    router = Router(
        {
            "models": [
                {
                    "name": "m",
                    "deployments": [
                        {"provider": "openai", "model": "a", "api_base": down.url + "/v1", "api_key": KEY},
                        {"provider": "openai", "model": "b", "api_base": up.url + "/v1", "api_key": KEY},
                    ],
                }
            ]
        }
    )
    raw = router.openai_client().chat.completions.with_raw_response.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    assert raw.parse().choices[0].message.content == "from the second"
    assert raw.headers["x-polyroute-deployment"] == "openai/b"
    assert raw.headers["x-polyroute-attempts"] == "2"


def test_request_error_does_not_fail_over(emulator: Callable[..., Emulator]) -> None:
    bad = emulator(lambda request: Reply.json({"error": {"message": "bad param"}}, status=400))
    up = emulator(handler())
    router = Router(
        {
            "models": [
                {
                    "name": "m",
                    "deployments": [
                        {"provider": "openai", "model": "a", "api_base": bad.url + "/v1", "api_key": KEY},
                        {"provider": "openai", "model": "b", "api_base": up.url + "/v1", "api_key": KEY},
                    ],
                }
            ]
        }
    )
    with pytest.raises(openai.BadRequestError):
        router.openai_client().chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    assert up.requests == []


def test_connection_refused_fails_over(emulator: Callable[..., Emulator]) -> None:
    up = emulator(handler("reachable"))
    router = Router(
        {
            "models": [
                {
                    "name": "m",
                    "deployments": [
                        {"provider": "openai-compatible", "model": "a", "api_base": "http://127.0.0.1:9/v1"},
                        {"provider": "openai", "model": "b", "api_base": up.url + "/v1", "api_key": KEY},
                    ],
                }
            ]
        }
    )
    result = router.openai_client().chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    assert result.choices[0].message.content == "reachable"


def test_mid_stream_cut_becomes_sdk_error(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(
        lambda request: Reply(
            chunks=chunks(["a", "b", "c", "d"]), cut_after=3, headers={"content-type": "text/event-stream"}
        )
    )
    client = make_router(emu).openai_client()
    seen: list[str] = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):  # type: ignore[arg-type]
            if chunk.choices and chunk.choices[0].delta.content:
                seen.append(chunk.choices[0].delta.content)
    assert seen == ["a", "b"]


def test_stream_without_finish_is_an_error_not_success(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(lambda request: Reply.sse(chunks(["a", "b"], finish=False, done=False)))
    client = make_router(emu).openai_client()
    with pytest.raises(openai.APIError) as caught:
        list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))  # type: ignore[arg-type]
    assert "without a finish_reason" in str(caught.value.message)


def test_cost_is_reported(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(
        lambda request: Reply(
            body=completion("x", usage={"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500})
        )
    )
    router = make_router(emu, prices={"input": 2.0, "output": 8.0})
    raw = router.openai_client().chat.completions.with_raw_response.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    expected = (1000 * 2.0 + 500 * 8.0) / 1_000_000
    assert float(raw.headers["x-polyroute-cost"]) == pytest.approx(expected)
    usage = raw.parse().usage
    assert usage is not None and getattr(usage, "cost", None) == pytest.approx(expected)


def test_direct_provider_routes_without_config(
    emulator: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator(handler("direct"))
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", KEY)
    router = Router()
    with pytest.raises(openai.NotFoundError):
        router.openai_client().chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
    # a configured base is needed for openai-compatible; direct names use provider defaults
    router = Router(
        {
            "models": [
                {
                    "name": "x",
                    "deployments": [{"provider": "openai-compatible", "model": "local", "api_base": emu.url + "/v1"}],
                }
            ]
        }
    )
    result = router.openai_client().chat.completions.create(model="x", messages=MESSAGES)  # type: ignore[arg-type]
    assert result.choices[0].message.content == "direct"
    assert emu.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert Router().route("openai/gpt-4o").targets[0].model == "gpt-4o"
    assert Router().route("anthropic:claude-sonnet-4-5").targets[0].provider == "anthropic"


def test_reasoning_stream_commits_on_the_first_reasoning_token(emulator: Callable[..., Emulator]) -> None:
    """DeepSeek-style chunks (``content: null`` + ``reasoning_content``) reach the caller before the answer does."""
    gate = threading.Event()

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        body = {
            "id": "x",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "deepseek-reasoner",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            "usage": None,
        }
        return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"

    def events():
        yield chunk({"role": "assistant", "content": None, "reasoning_content": ""})
        yield chunk({"content": None, "reasoning_content": "Thinking"})
        assert gate.wait(5), "reasoning was held back until the answer"
        yield chunk({"content": "Answer", "reasoning_content": None})
        yield chunk({"content": "", "reasoning_content": None}, "stop")
        yield "data: [DONE]\n\n"

    emu = emulator(lambda request: Reply(chunks=events(), headers={"content-type": "text/event-stream"}))
    router = make_router(emu, provider="deepseek", model="deepseek-reasoner")
    stream = iter(router.openai_client().chat.completions.create(model="m", messages=MESSAGES, stream=True))  # type: ignore[arg-type]
    first, second = next(stream), next(stream)
    assert (
        getattr(second.choices[0].delta, "reasoning_content", None) == "Thinking"
        or getattr(first.choices[0].delta, "reasoning_content", None) == "Thinking"
    )
    gate.set()
    rest = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert rest == ["Answer"]


_DEEP = b"[" * 3000 + b"]" * 3000


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/v1/responses", b'{"model":"m","input":"broken \\ud83d"}', "\\ud83d"),
        ("/v1/chat/completions", b'{"model":"m","messages":[{"role":"user","content":"x \\udc00 y"}]}', "\\udc00"),
        # echoed in the answer (metadata), or in the error naming it (an unknown field, an unknown response id)
        ("/v1/responses", b'{"model":"m","input":"hi","metadata":{"k":"\\ud83d"}}', "\\ud83d"),
        ("/v1/responses", b'{"model":"m","input":"hi","\\ud83d":1}', "\\ud83d"),
        ("/v1/responses", b'{"model":"m","input":"hi","previous_response_id":"\\ud83d"}', "\\ud83d"),
        ("/v1/embeddings", b'{"model":"m","input":"\\udbff"}', "\\udbff"),
        ("/v1/responses", b'{"model":"m","input":"hi","metadata":{"k":' + _DEEP + b"}}", "more than 200 levels"),
        ("/v1/chat/completions", b'{"model":"m","messages":' + _DEEP + b"}", "more than 200 levels"),
    ],
)
def test_json_no_provider_takes_is_a_400_naming_it(
    emulator: Callable[..., Emulator], path: str, body: bytes, words: str
) -> None:
    """JSON may escape a lone UTF-16 surrogate (a raw HTTP caller's half emoji), or nest thousands of levels: no
    provider can be sent either, and an answer or an error echoing a surrogate could not be written. A 400 that
    names it, before anything reads the body; nothing upstream, and the deployment stays up for the next call.
    """
    emu = emulator(handler("fine"))
    deployment = {"provider": "openai", "model": "m", "api_base": emu.url + "/v1", "api_key": "sk-test"}
    router = Router({"models": [{"name": "m", "deployments": [deployment]}]})
    with router.http_client() as http:
        r = http.post(path, content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["type"] == "invalid_request_error" and words in error["message"]
        assert emu.requests == []
        assert http.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES}).status_code == 200


@pytest.mark.parametrize("lib", LIBS)
def test_an_async_call_from_another_event_loop_is_told_so(lib: str) -> None:
    """trio (or anyio on trio) drives the async client without asyncio: a 500 that says so, not "a bug in
    polyroute". The coroutine is driven here as such a loop would, with no asyncio loop running.
    """
    module = next(m for m in _compat.LIBS if m.__name__ == lib)
    router = Router({"models": [{"name": "m", "deployments": [{"provider": "mock", "model": "x"}]}]})
    request = module.Request("POST", "http://polyroute/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
    pending = router.transport().handle_async_request(request)
    with pytest.raises(StopIteration) as done:
        pending.send(None)
    response = done.value.value
    assert response.status_code == 500
    error = json.loads(response.read())["error"]
    assert error["code"] == "unsupported_event_loop"
    assert "runs on asyncio" in error["message"] and "trio" in error["message"]


@pytest.mark.parametrize("lib", LIBS)
def test_an_upstream_error_that_says_nothing_is_described_by_the_one_under_it(lib: str) -> None:
    """uvloop resets read as ``ReadError('')``: "could not be reached: ReadError: " said nothing; the OS error under
    it does. A key in either is still redacted.
    """
    from polyroute.transport import _detail  # pyright: ignore[reportPrivateUsage]

    module = next(m for m in _compat.LIBS if m.__name__ == lib)
    silent = module.ReadError("")
    silent.__cause__ = ConnectionResetError(104, "Connection reset by peer")
    assert _detail(silent) == "[Errno 104] Connection reset by peer"
    assert _detail(module.ConnectError(f"refused for key {KEY}")) == "refused for key [redacted]"
    assert _detail(module.ReadError("")) == "(no detail)"
