"""The mock provider through the whole router: failover, streaming, tool calls, usage, timeouts, broken streams."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import openai
import pytest

from polyroute import Router
from polyroute.mock import CREATED, DEFAULT_TEXT

MESSAGES: Any = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOLS: Any = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]


def mock(**fields: Any) -> dict[str, Any]:
    return {"provider": "mock", "model": "mock-1", **fields}


def router(*deployments: dict[str, Any], **config: Any) -> Router:
    return Router({"models": [{"name": "agent", "deployments": list(deployments)}], **config})


def call(r: Router, mode: str, stream: bool, **kwargs: Any) -> tuple[str, dict[str, str], list[Any]]:
    """One call, sync or async, streamed or not: (text, response headers, chunks or [completion])."""

    async def acall() -> tuple[str, dict[str, str], list[Any]]:
        async with r.async_openai_client() as client:
            if stream:
                async with client.chat.completions.with_streaming_response.create(
                    model="agent", messages=MESSAGES, stream=True, **kwargs
                ) as response:
                    got = [c async for c in await response.parse()]
                    return _text(got), dict(response.headers), got
            raw = await client.chat.completions.with_raw_response.create(model="agent", messages=MESSAGES, **kwargs)
            completion = raw.parse()
            return completion.choices[0].message.content or "", dict(raw.headers), [completion]

    if mode == "async":
        return asyncio.run(acall())
    with r.openai_client() as client:
        if stream:
            with client.chat.completions.with_streaming_response.create(
                model="agent", messages=MESSAGES, stream=True, **kwargs
            ) as response:
                got = list(response.parse())
                return _text(got), dict(response.headers), got
        raw = client.chat.completions.with_raw_response.create(model="agent", messages=MESSAGES, **kwargs)
        completion = raw.parse()
        return completion.choices[0].message.content or "", dict(raw.headers), [completion]


def _text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_failover_scenario_end_to_end(mode: str, stream: bool) -> None:
    r = router(
        mock(id="primary", error=503, error_message="Service unavailable (simulated)"),
        mock(id="flaky", error=429, fail_times=1, response="flaky recovered"),
        mock(id="backup", model="mock-small", response="served by the backup", chunk_size=4),
    )
    text, headers, _ = call(r, mode, stream)
    assert (text, headers["x-polyroute-deployment"], headers["x-polyroute-attempts"]) == (
        "served by the backup",
        "backup",
        "3",
    )
    text, headers, _ = call(r, mode, stream)  # flaky failed once only; the primary still fails
    assert (text, headers["x-polyroute-deployment"], headers["x-polyroute-attempts"]) == (
        "flaky recovered",
        "flaky",
        "2",
    )


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_every_deployment_failing_reaches_the_caller(mode: str) -> None:
    r = router(mock(error=429, error_message="Rate limit reached (simulated)"))
    with pytest.raises(openai.RateLimitError, match="Rate limit reached"):
        call(r, mode, False)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_stream_in_chunks_with_the_same_usage_as_json(mode: str) -> None:
    r = router(mock(response="abcdefghijklmnopqrstuvw", chunk_size=5))
    text, _, chunks = call(r, mode, True, stream_options={"include_usage": True})
    assert text == "abcdefghijklmnopqrstuvw"
    assert [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content] == [
        "abcde",
        "fghij",
        "klmno",
        "pqrst",
        "uvw",
    ]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    streamed = chunks[-1].usage
    _, _, (completion,) = call(r, mode, False)
    assert streamed is not None and completion.usage is not None
    assert streamed.model_dump() == completion.usage.model_dump()
    assert completion.usage.completion_tokens == 6  # 23 characters, about four a token
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 6
    assert completion.usage.model_dump()["cost"] > 0  # priced from the catalog like a real model


def test_usage_chunk_only_when_asked() -> None:
    _, _, chunks = call(router(mock()), "sync", True)
    assert all(c.usage is None for c in chunks)
    assert _text(chunks) == DEFAULT_TEXT


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_tool_calls_then_text(mode: str, stream: bool) -> None:
    r = router(mock(response="It is sunny.", tool_calls=[{"name": "weather", "arguments": {"city": "Paris"}}]))
    _, _, got = call(r, mode, stream, tools=TOOLS)
    if stream:
        calls = [t for c in got if c.choices for t in c.choices[0].delta.tool_calls or []]
        assert calls[0].id == "call_mock0" and calls[0].function.name == "weather"
        assert "".join(t.function.arguments or "" for t in calls) == '{"city": "Paris"}'
        assert [c.choices[0].finish_reason for c in got if c.choices][-1] == "tool_calls"
    else:
        message = got[0].choices[0].message
        assert got[0].choices[0].finish_reason == "tool_calls"
        assert message.tool_calls[0].function.name == "weather"
        assert message.tool_calls[0].function.arguments == '{"city": "Paris"}'
    text, _, _ = call(r, mode, stream)  # no tools offered: a text answer
    assert text == "It is sunny."


def test_tool_result_gets_the_text_answer() -> None:
    r = router(mock(response="It is sunny.", tool_calls=[{"name": "weather", "arguments": {}}]))
    history = [
        *MESSAGES,
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "call_mock0", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_mock0", "content": "sunny"},
    ]
    with r.openai_client() as client:
        completion = client.chat.completions.create(model="agent", messages=history, tools=TOOLS)
    assert completion.choices[0].message.content == "It is sunny."


def test_answers_are_deterministic() -> None:
    _, _, (first,) = call(router(mock()), "sync", False)
    _, _, (again,) = call(router(mock()), "sync", False)
    assert first.model_dump() == again.model_dump()
    assert first.created == CREATED and first.id.startswith("chatcmpl-mock")


def test_max_tokens_cuts_the_answer() -> None:
    _, _, (completion,) = call(router(mock(response="one two three four five six")), "sync", False, max_tokens=2)
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == "one two "
    assert completion.usage is not None and completion.usage.completion_tokens == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_latency(mode: str) -> None:
    started = time.perf_counter()
    text, _, _ = call(router(mock(response="slow", latency=0.2)), mode, False)
    assert text == "slow" and time.perf_counter() - started >= 0.2


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_latency_past_the_timeout_fails_over(mode: str, stream: bool) -> None:
    r = router(mock(id="slow", latency=5, timeout=0.1), mock(id="fast", response="fast"))
    started = time.perf_counter()
    text, headers, _ = call(r, mode, stream)
    assert (text, headers["x-polyroute-deployment"]) == ("fast", "fast")
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_broken_stream_after_content_is_an_error_in_the_stream(mode: str) -> None:
    r = router(mock(response="one two three four five six", broken_stream=True), mock(id="never", response="x"))
    with pytest.raises(openai.APIError, match=r"mock broken_stream|peer closed"):
        call(r, mode, True)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_broken_body_before_commit_fails_over(mode: str) -> None:
    r = router(mock(id="broken", broken_stream=True), mock(id="backup", response="backup"))
    text, headers, _ = call(r, mode, False)
    assert (text, headers["x-polyroute-deployment"]) == ("backup", "backup")


def test_retry_after_cools_the_deployment_down() -> None:
    r = router(mock(id="limited", error=429, fail_times=1, retry_after=30), mock(id="backup", response="backup"))
    assert call(r, "sync", False)[1]["x-polyroute-attempts"] == "2"
    _, headers, _ = call(r, "sync", False)  # limited would answer now, but asked for 30 s of rest
    assert (headers["x-polyroute-deployment"], headers["x-polyroute-attempts"]) == ("backup", "1")
