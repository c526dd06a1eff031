"""Anthropic's Messages API served in-process: the ``anthropic`` SDK on the router's transport, as the openai SDK."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import httpx2
import pytest

from polyroute import Router
from tests.core.test_usage import COUNTS, KEY, Collected, Start, anthropic_cache_usage, assert_same_usage, openai_usage
from tests.emulators import Reply, Request
from tests.emulators import anthropic_format as claude
from tests.emulators.openai_format import chunks, completion


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


def test_the_anthropic_sdk_in_process_on_a_mock_route() -> None:
    router = Router(
        {
            "models": [
                {
                    "name": "smart",
                    "deployments": [
                        {"provider": "mock", "model": "mock-1", "tool_calls": [{"name": "add", "arguments": {"a": 1}}]}
                    ],
                }
            ]
        }
    )
    client = anthropic.Anthropic(
        api_key="unused", base_url="http://polyroute", http_client=httpx2.Client(transport=router.transport())
    )
    tool = {"name": "add", "input_schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}
    answer = client.messages.create(
        model="smart",
        max_tokens=50,
        messages=[{"role": "user", "content": "1 + 0?"}],
        tools=[tool],  # type: ignore[list-item]
    )
    assert answer.stop_reason == "tool_use"
    assert answer.content[0].type == "tool_use"
    assert answer.content[0].input == {"a": 1}
    with client.messages.stream(model="smart", max_tokens=50, messages=[{"role": "user", "content": "hi"}]) as stream:
        text = "".join(stream.text_stream)
    assert text.startswith("Hello from polyroute's mock provider")
    with pytest.raises(anthropic.NotFoundError, match="nope"):
        client.messages.create(model="nope", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    router.close()


# -- cost and usage records: a streamed answer costs what the whole one does ---------------------------------------


def _client(router: Router, mode: str) -> Any:
    if mode == "sync":
        return anthropic.Anthropic(
            api_key="unused",
            base_url="http://polyroute",
            max_retries=0,
            http_client=httpx2.Client(transport=router.transport()),
        )
    return anthropic.AsyncAnthropic(
        api_key="unused",
        base_url="http://polyroute",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=router.transport()),
    )


def _cost(usage: Any) -> float | None:
    """The ``cost`` polyroute adds to a Messages usage (the SDK keeps unknown fields as extras)."""
    return (usage.model_extra or {}).get("cost")


def ask(router: Router, mode: str, *, stream: bool) -> float | None:
    """One Messages call through the anthropic SDK in-process (a stream read to its end); the cost it reports: the
    answer's ``usage.cost``, or a stream's in its ``message_delta``.
    """
    kwargs: dict[str, Any] = {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}

    def from_events(events: list[Any]) -> float | None:
        [delta] = [event for event in events if event.type == "message_delta"]
        return _cost(delta.usage)

    if mode == "sync":
        client = _client(router, mode)
        if not stream:
            return _cost(client.messages.create(**kwargs).usage)
        with client.messages.stream(**kwargs) as events:
            return from_events(list(events))

    async def go() -> float | None:
        client = _client(router, mode)
        try:
            if not stream:
                return _cost((await client.messages.create(**kwargs)).usage)
            async with client.messages.stream(**kwargs) as events:
                return from_events([event async for event in events])
        finally:
            await router.aclose()

    return asyncio.run(go())


def messages_router(deployment: dict[str, Any]) -> tuple[Router, Collected]:
    collected = Collected()
    router = Router(
        {
            "models": [{"name": "m", "deployments": [deployment]}],
            "usage": {"callback": collected, "flush_interval": 0.05},
        }
    )
    return router, collected


def test_a_native_claude_stream_costs_and_records_what_the_whole_answer_does(emulator: Start, mode: str) -> None:
    """Cache reads and writes, which Anthropic counts apart from ``input_tokens``, are in both records and both costs,
    and the figure is the one Chat Completions gives for the same tokens."""
    usage = anthropic_cache_usage()
    emu = emulator(claude.scripted(["Cached answer."], repeat_last=True, usage=usage))
    router, collected = messages_router(
        {"provider": "anthropic", "model": "claude-sonnet-4-5", "api_base": emu.url, "api_key": KEY}
    )
    answered = ask(router, mode, stream=False)
    streamed_cost = ask(router, mode, stream=True)
    router.openai_client().chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    router.close()
    whole, streamed, chat = collected.calls()
    assert_same_usage(whole, streamed)
    assert {k: getattr(chat, k) for k in COUNTS} == {k: getattr(whole, k) for k in COUNTS}
    read, write = usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"]
    assert whole.input_tokens == usage["input_tokens"] + read + write
    assert (whole.cached_tokens, whole.cache_write_tokens, whole.output_tokens) == (read, write, usage["output_tokens"])
    assert answered == streamed_cost == whole.cost
    assert (whole.api, streamed.api) == ("messages", "messages")


@pytest.mark.parametrize("key", ["cached_tokens", "cache_write_tokens"])
def test_a_translated_stream_costs_and_records_what_the_whole_answer_does(emulator: Start, mode: str, key: str) -> None:
    usage = openai_usage("openai__pydantic-ai__test_openai_chat_prompt_cache_e2e.yaml", key)

    def handle(request: Request) -> Reply:
        body = request.json()
        if body.get("stream"):
            return Reply.sse(chunks(["An", " answer."], model=body["model"], usage=usage))
        return Reply(body=completion("An answer.", model=body["model"], usage=usage))

    emu = emulator(handle)
    router, collected = messages_router(
        {"provider": "openai", "model": "gpt-4o", "api_base": emu.url + "/v1", "api_key": KEY}
    )
    answered = ask(router, mode, stream=False)
    streamed_cost = ask(router, mode, stream=True)
    router.openai_client().chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    router.close()
    whole, streamed, chat = collected.calls()
    assert_same_usage(whole, streamed)
    assert {k: getattr(chat, k) for k in COUNTS} == {k: getattr(whole, k) for k in COUNTS}
    assert whole.input_tokens == usage["prompt_tokens"]
    assert whole.output_tokens == usage["completion_tokens"]
    assert answered == streamed_cost == whole.cost


# -- errors in Anthropic's shape -------------------------------------------------------------------------------------


def test_errors_come_in_anthropics_shape_in_process(emulator: Start) -> None:
    """The anthropic SDK raises its own class with Anthropic's ``error.type`` and polyroute's message, as from
    Anthropic; an overloaded Claude keeps ``overloaded_error``."""
    busy = emulator(
        lambda request: Reply.json(
            {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}, 429
        )
    )
    overloaded = emulator(lambda request: claude.overloaded())
    router = Router(
        {
            "models": [
                {
                    "name": "gpt",
                    "deployments": [
                        {"provider": "openai", "model": "gpt-4o", "api_base": busy.url + "/v1", "api_key": KEY}
                    ],
                },
                {
                    "name": "claude",
                    "deployments": [
                        {
                            "provider": "anthropic",
                            "model": "claude-sonnet-4-5",
                            "api_base": overloaded.url,
                            "api_key": KEY,
                        }
                    ],
                },
            ],
            "retry": {"last_resort_retries": 0},
        }
    )
    client = _client(router, "sync")
    ask_kwargs: dict[str, Any] = {"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="nope", **ask_kwargs)
    with pytest.raises(anthropic.BadRequestError) as server_tool:
        client.messages.create(model="gpt", tools=[{"type": "web_search_20250305", "name": "web_search"}], **ask_kwargs)
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(model="gpt", **ask_kwargs)
    with pytest.raises(anthropic.InternalServerError) as busy_claude:
        client.messages.create(model="claude", **ask_kwargs)
    with pytest.raises(anthropic.BadRequestError) as malformed:
        client.post("/v1/messages", body={"model": "gpt", "messages": []}, cast_to=object)
    router.close()
    assert (missing.value.type, server_tool.value.type, limited.value.type) == (
        "not_found_error",
        "invalid_request_error",
        "rate_limit_error",
    )
    assert busy_claude.value.type == "overloaded_error"
    assert busy_claude.value.api_message is not None and "Overloaded" in busy_claude.value.api_message
    assert malformed.value.type == "invalid_request_error"
    assert malformed.value.api_message == "max_tokens: an integer is required"
    assert missing.value.body["type"] == "error"  # type: ignore[index]
    assert missing.value.api_message is not None and "nope" in missing.value.api_message
    assert server_tool.value.api_message is not None and "web_search_20250305" in server_tool.value.api_message


def test_an_error_after_the_commit_is_anthropics_error_event(emulator: Start) -> None:
    """Claude overloads mid-stream: the client's stream ends with ``event: error`` of type ``overloaded_error``,
    which the SDK raises (as from Anthropic)."""
    events = claude.events(claude.message([claude.text("one two three four")]), pieces=4)
    emu = emulator(lambda request: Reply.sse([*events[:5], claude.error_event("overloaded_error", "Overloaded")]))
    router = Router(
        {
            "models": [
                {
                    "name": "m",
                    "deployments": [
                        {"provider": "anthropic", "model": "claude-sonnet-4-5", "api_base": emu.url, "api_key": KEY}
                    ],
                }
            ]
        }
    )
    received: list[str] = []
    client = _client(router, "sync")
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client.messages.stream(model="m", max_tokens=50, messages=[{"role": "user", "content": "hi"}]) as stream,
    ):
        received.extend(stream.text_stream)
    router.close()
    assert "".join(received) == "one two th"  # two deltas, then the error
    assert caught.value.type == "overloaded_error"
    assert caught.value.api_message == "anthropic/claude-sonnet-4-5: Overloaded"


def test_a_messages_answer_counts_its_tokens_against_tpm(emulator: Start) -> None:
    """Messages usage has no ``total_tokens``: input plus output are what the tpm bucket is charged."""
    usage = {"prompt_tokens": 200, "completion_tokens": 100, "total_tokens": 300}

    def answer(request: Request) -> Reply:
        return Reply(body=completion("ok", model=request.json()["model"], usage=usage))

    def deployment(name: str, **extra: Any) -> dict[str, Any]:
        emu = emulator(answer)
        return {"provider": "openai-compatible", "model": "m", "id": name, "api_base": f"{emu.url}/v1", **extra}

    router = Router({"models": [{"name": "m", "deployments": [deployment("limited", tpm=250), deployment("other")]}]})
    client = anthropic.Anthropic(
        api_key="unused", base_url="http://polyroute", http_client=httpx2.Client(transport=router.transport())
    )
    served = []
    for _ in range(2):
        raw = client.messages.with_raw_response.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
        served.append(raw.headers["x-polyroute-deployment"])
    assert served == ["limited", "other"]  # 300 tokens spent: the bucket of 250 a minute is empty
    router.close()
