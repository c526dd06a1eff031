"""Gemini end to end: the openai SDK → Router → transport → a loopback Gemini emulator, and back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from polyroute import Router
from polyroute.providers import gemini
from tests.emulators import Emulator
from tests.emulators.gemini_format import GeminiEmulator, rate_limited, response, sse_body, stream_events
from tests.emulators.server import Reply

SIG = "EpwICpkI+/+/c2lnbmF0dXI="
USAGE = {"promptTokenCount": 12, "candidatesTokenCount": 6, "thoughtsTokenCount": 4, "totalTokenCount": 22}
WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def router(*urls: str, model: str = "gemini-3-flash-preview") -> Router:
    deployments = [
        {"provider": "gemini", "model": model, "api_key": f"g-key-{i}", "api_base": url, "id": f"gemini-{i}"}
        for i, url in enumerate(urls)
    ]
    return Router({"models": [{"name": "g", "deployments": deployments}]})


def test_sync_completion(emulator: Callable[..., Emulator]) -> None:
    emu = GeminiEmulator(response("Paris.", thought="The capital.", usage=USAGE))
    server = emulator(emu)
    client = router(server.url).openai_client()
    completion = client.chat.completions.create(
        model="g",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}],
        temperature=0.1,
        max_tokens=50,
    )
    message = completion.choices[0].message
    assert message.content == "Paris."
    assert (message.model_extra or {}).get("reasoning_content") == "The capital."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 10)
    assert completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 4
    sent = emu.bodies[0]
    assert sent["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert sent["generationConfig"] == {"temperature": 0.1, "maxOutputTokens": 50}
    assert server.requests[0].path == "/v1beta/models/gemini-3-flash-preview:generateContent"


async def test_async_completion_and_stream(emulator: Callable[..., Emulator]) -> None:
    server = emulator(GeminiEmulator(response("Bonjour tout le monde, ça va ?", usage=USAGE), chunk_size=3))
    client = router(server.url).async_openai_client()
    completion = await client.chat.completions.create(model="g", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == "Bonjour tout le monde, ça va ?"
    stream = await client.chat.completions.create(
        model="g", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
    )
    text, finish, usage = "", None, None
    async for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert (text, finish) == ("Bonjour tout le monde, ça va ?", "stop")
    assert usage is not None and usage.total_tokens == 22
    assert server.requests[1].path.endswith(":streamGenerateContent") and server.requests[1].query == {"alt": ["sse"]}


def test_sync_stream_is_incremental_and_cut_streams_are_errors(emulator: Callable[..., Emulator]) -> None:
    events = stream_events(response("one two three four", usage=USAGE), pieces=4)
    cut = Reply(chunks=[sse_body(events[:2])], headers={"content-type": "text/event-stream"})
    server = emulator(GeminiEmulator(response("one two three four", usage=USAGE), cut, chunk_size=2))
    client = router(server.url).openai_client()
    pieces = [
        c.choices[0].delta.content
        for c in client.chat.completions.create(model="g", messages=[{"role": "user", "content": "x"}], stream=True)
        if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) == 3 and "".join(pieces) == "one two three four"
    with pytest.raises(openai.APIError, match="without a finishReason"):
        for _ in client.chat.completions.create(model="g", messages=[{"role": "user", "content": "x"}], stream=True):
            pass


def _first_turn() -> dict[str, Any]:
    return response(None, calls=[{"name": "weather", "args": {"city": "Paris"}, "thoughtSignature": SIG}], usage=USAGE)


@pytest.mark.parametrize("keep", ["full message", "id, name and arguments only"])
@pytest.mark.parametrize("streamed", [False, True])
def test_two_turn_tool_loop_round_trips_the_thought_signature(
    emulator: Callable[..., Emulator], keep: str, streamed: bool
) -> None:
    emu = GeminiEmulator(_first_turn(), response("Sunny in Paris.", usage=USAGE))
    server = emulator(emu)
    client = router(server.url).openai_client()
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    if streamed:
        calls: dict[int, dict[str, Any]] = {}
        finish = None
        for chunk in client.chat.completions.create(model="g", messages=messages, tools=[WEATHER], stream=True):
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                for tc in choice.delta.tool_calls or ():
                    call = calls.setdefault(tc.index, {"type": "function", "function": {"name": "", "arguments": ""}})
                    call["id"] = tc.id or call.get("id")
                    if tc.function:
                        call["function"]["name"] += tc.function.name or ""
                        call["function"]["arguments"] += tc.function.arguments or ""
                    fields = (tc.model_extra or {}).get("provider_specific_fields")
                    if fields and keep == "full message":
                        call["provider_specific_fields"] = fields
        tool_calls = [calls[i] for i in sorted(calls)]
        assert finish == "tool_calls"
    else:
        first = client.chat.completions.create(model="g", messages=messages, tools=[WEATHER])
        assert first.choices[0].finish_reason == "tool_calls"
        message = first.choices[0].message.model_dump(exclude_none=True)
        tool_calls = message["tool_calls"]
        if keep != "full message":
            tool_calls = [{"id": c["id"], "type": "function", "function": c["function"]} for c in tool_calls]
    assert tool_calls[0]["function"] == {"name": "weather", "arguments": '{"city":"Paris"}'}
    messages.append({"role": "assistant", "content": None, "tool_calls": tool_calls})
    messages.append({"role": "tool", "tool_call_id": tool_calls[0]["id"], "content": "sunny, 21°C"})

    second = client.chat.completions.create(model="g", messages=messages, tools=[WEATHER])
    assert second.choices[0].message.content == "Sunny in Paris."
    replayed = emu.bodies[1]["contents"]
    assert replayed[1]["parts"][0]["thoughtSignature"] == SIG  # the real one, not the placeholder
    assert replayed[1]["parts"][0]["functionCall"]["name"] == "weather"
    assert replayed[2]["parts"][0]["functionResponse"]["name"] == "weather"
    assert replayed[2]["parts"][0]["functionResponse"]["response"] == {"output": "sunny, 21°C"}


def test_a_history_without_signatures_still_gets_through(emulator: Callable[..., Emulator]) -> None:
    """A tool call from another provider (or a client that rebuilt the ids) gets Gemini's documented placeholder."""
    emu = GeminiEmulator(response("Done."))
    server = emulator(emu)
    messages = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "toolu_01", "type": "function", "function": {"name": "weather", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "toolu_01", "content": "sunny"},
    ]
    completion = router(server.url).openai_client().chat.completions.create(model="g", messages=messages)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == "Done."
    assert emu.bodies[0]["contents"][1]["parts"][0]["thoughtSignature"] == gemini.SKIP_SIGNATURE


@pytest.mark.parametrize("streamed", [False, True])
def test_429_with_retry_info_fails_over_and_cools_the_deployment(
    emulator: Callable[..., Emulator], streamed: bool
) -> None:
    limited = emulator(GeminiEmulator(rate_limited("30s")))
    healthy = emulator(GeminiEmulator(response("From the second deployment.")))
    r = router(limited.url, healthy.url)
    client = r.openai_client()
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(
            model="g", messages=[{"role": "user", "content": "hi"}], stream=streamed
        )
        assert raw.headers["x-polyroute-deployment"] == "gemini-1"
        parsed = raw.parse()
        if streamed:
            text = "".join(c.choices[0].delta.content or "" for c in parsed if c.choices)  # type: ignore[union-attr]
        else:
            text = parsed.choices[0].message.content  # type: ignore[union-attr]
        assert text == "From the second deployment."
    assert len(limited.requests) == 1  # RetryInfo's 30s kept the second call away from it


def test_every_deployment_rate_limited_is_a_429_that_the_sdk_does_not_retry(emulator: Callable[..., Emulator]) -> None:
    server = emulator(GeminiEmulator(rate_limited("0.01s")))
    client = router(server.url).openai_client(max_retries=2)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="g", messages=[{"role": "user", "content": "hi"}])
    assert "exceeded your current quota" in str(info.value.message)
    assert "g-key-0" not in str(info.value.body)
    assert (
        len(server.requests) == 3
    )  # a lone deployment: the router's 2 retries (retry.last_resort_retries), no SDK ones
