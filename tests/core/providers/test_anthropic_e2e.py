"""End to end: the openai SDK → polyroute → a loopback Anthropic emulator speaking the Messages API."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest

from polyroute import Router
from tests.emulators import Emulator, Reply
from tests.emulators import anthropic_format as claude
from tests.emulators.server import Handler

KEY = "sk-ant-e2e-0123456789abcdef"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}

Start = Callable[[Handler], Emulator]


def router_for(*emulators: Emulator, model: str = "claude-sonnet-4-5") -> Router:
    deployments = [
        {"provider": "anthropic", "model": model, "api_base": emu.url, "api_key": KEY, "id": f"claude-{i}"}
        for i, emu in enumerate(emulators)
    ]
    return Router({"models": [{"name": "claude", "deployments": deployments}], "retry": {"backoff": 0}})


def test_sync_text(emulator: Start) -> None:
    script = claude.scripted(["Hello from Claude!"])
    emu = emulator(script)
    client = router_for(emu).openai_client()
    completion = client.chat.completions.create(
        model="claude",
        messages=[{"role": "system", "content": "Be nice."}, {"role": "user", "content": "Hi"}],
        max_tokens=50,
    )
    assert completion.choices[0].message.content == "Hello from Claude!"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens == 10
    request = emu.requests[0]
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert script.bodies[0]["system"] == [{"type": "text", "text": "Be nice."}]
    assert script.bodies[0]["max_tokens"] == 50


async def test_async_stream_with_usage(emulator: Start) -> None:
    emu = emulator(claude.scripted([claude.thinking("Greeting time.", "Hello there, friend!")], pieces=5))
    client = router_for(emu).async_openai_client()
    stream = await client.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, reasoning, finish, usage, blocks = "", "", None, None, []
    async for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            extra = choice.delta.model_extra or {}
            reasoning += extra.get("reasoning_content") or ""
            blocks += extra.get("thinking_blocks") or []
            finish = choice.finish_reason or finish
    assert text == "Hello there, friend!"
    assert reasoning == "Greeting time."
    assert [b["type"] for b in blocks] == ["thinking"] and blocks[0]["signature"]
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == 5


@pytest.mark.parametrize("stream", [False, True])
def test_tool_loop_with_thinking_signatures(emulator: Start, stream: bool) -> None:
    """Thinking + tools over two turns: the signed thinking block must come back, or the emulator (like Claude)
    answers 400.
    """
    script = claude.scripted(
        [
            claude.tool_use(
                "get_weather", {"city": "Paris"}, text="Let me check.", thinking="I need the weather tool."
            ),
            "It is sunny in Paris.",
        ]
    )
    emu = emulator(script)
    client = router_for(emu).openai_client()
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    kwargs: dict[str, Any] = {"model": "claude", "tools": [WEATHER], "reasoning_effort": "low"}

    if stream:
        assistant: dict[str, Any] = {"role": "assistant", "content": "", "tool_calls": [], "thinking_blocks": []}
        calls: dict[int, dict[str, Any]] = {}
        with client.chat.completions.create(messages=messages, stream=True, **kwargs) as chunks:
            for chunk in chunks:
                for choice in chunk.choices:
                    delta = choice.delta
                    assistant["content"] += delta.content or ""
                    assistant["thinking_blocks"] += (delta.model_extra or {}).get("thinking_blocks") or []
                    for tc in delta.tool_calls or ():
                        entry = calls.setdefault(
                            tc.index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
                        )
                        entry["id"] = tc.id or entry["id"]
                        if tc.function:
                            entry["function"]["name"] += tc.function.name or ""
                            entry["function"]["arguments"] += tc.function.arguments or ""
        assistant["tool_calls"] = [calls[i] for i in sorted(calls)]
    else:
        first = client.chat.completions.create(messages=messages, **kwargs)
        assert first.choices[0].finish_reason == "tool_calls"
        assert (first.choices[0].message.model_extra or {})["reasoning_content"] == "I need the weather tool."
        assistant = first.choices[0].message.model_dump(exclude_none=True)
    call = assistant["tool_calls"][0]
    assert call["id"] == "toolu_emu_0_2"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    messages += [assistant, {"role": "tool", "tool_call_id": call["id"], "content": "Sunny, 22C"}]
    second = client.chat.completions.create(messages=messages, **kwargs)
    assert second.choices[0].message.content == "It is sunny in Paris."
    replayed = script.bodies[1]["messages"][1]["content"]
    assert replayed[0]["type"] == "thinking" and replayed[0]["signature"] in script.signatures
    assert script.bodies[1]["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "toolu_emu_0_2",
        "content": "Sunny, 22C",
    }


def test_529_fails_over_to_the_next_deployment(emulator: Start) -> None:
    busy = emulator(claude.scripted([claude.overloaded()]))
    healthy = emulator(claude.scripted(["Served by the second deployment."]))
    client = router_for(busy, healthy).openai_client()
    response = client.chat.completions.with_raw_response.create(
        model="claude", messages=[{"role": "user", "content": "Hi"}]
    )
    assert response.parse().choices[0].message.content == "Served by the second deployment."
    assert response.headers["x-polyroute-deployment"] == "claude-1"
    assert len(busy.requests) == 1 and len(healthy.requests) == 1


def test_529_everywhere_is_a_503(emulator: Start) -> None:
    emu = emulator(claude.scripted([claude.overloaded()], repeat_last=True))
    client = router_for(emu).openai_client()
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "Hi"}])
    assert info.value.status_code == 503
    assert KEY not in str(info.value.body)


def test_mid_stream_error_event_becomes_an_api_error(emulator: Start) -> None:
    msg = claude.message([claude.text("Partial answer that will be cut")])
    events = [*claude.events(msg)[:5], claude.error_event("overloaded_error", "Overloaded")]
    emu = emulator(lambda request: Reply.sse(events))
    client = router_for(emu).openai_client()
    text = ""
    with pytest.raises(openai.APIError) as info:
        for chunk in client.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "Hi"}], stream=True
        ):
            for choice in chunk.choices:
                text += choice.delta.content or ""
                assert choice.finish_reason is None
    assert text  # content arrived before the error: no failover, an in-band error
    assert "Overloaded" in str(info.value.message)


async def test_stream_cut_before_message_stop_is_an_error(emulator: Start) -> None:
    msg = claude.message([claude.text("This stream will not finish properly")])
    events = claude.events(msg)
    emu = emulator(lambda request: Reply.sse(events, cut_after=len(events) - 2))
    client = router_for(emu).async_openai_client()
    stream = await client.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    finishes = []
    with pytest.raises(openai.APIError):
        async for chunk in stream:
            finishes += [c.finish_reason for c in chunk.choices if c.finish_reason]
    assert finishes == []


@pytest.mark.parametrize(
    "name", ["pydantic-ai__test_anthropic_model_thinking_part_stream.yaml", "simonw-llm-anthropic__test_tools.yaml"]
)
def test_recorded_stream_through_the_sdk(emulator: Start, name: str) -> None:
    recorded = claude.load(name)[0]
    assert recorded.sse is not None
    emu = emulator(claude.replay([recorded]))
    client = router_for(emu).openai_client()
    text, calls = "", 0
    for chunk in client.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "Hi"}], stream=True
    ):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            calls += sum(1 for tc in choice.delta.tool_calls or () if tc.id)
    native_text = "".join(
        json.loads(line[5:])["delta"].get("text", "")
        for line in recorded.sse.splitlines()
        if line.startswith("data:") and '"text_delta"' in line
    )
    assert text == native_text
    assert calls == recorded.sse.count('"type":"tool_use"')


def test_response_format_fallback_tool(emulator: Start) -> None:
    script = claude.scripted([claude.tool_use("city", {"city": "Oslo"})])
    emu = emulator(script)
    client = router_for(emu, model="claude-sonnet-4-0").openai_client()
    completion = client.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "A city?"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
        },
    )
    assert json.loads(completion.choices[0].message.content or "") == {"city": "Oslo"}
    assert completion.choices[0].finish_reason == "stop"
    assert script.bodies[0]["tool_choice"] == {"type": "tool", "name": "city"}


def test_bad_request_is_a_400_and_not_failed_over(emulator: Start) -> None:
    first = emulator(claude.scripted([claude.error(400, "invalid_request_error", "messages: bad")]))
    second = emulator(claude.scripted(["never"]))
    client = router_for(first, second).openai_client()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "Hi"}])
    assert "messages: bad" in str(info.value.message)
    assert second.requests == []


def test_unsupported_content_is_a_400_naming_the_fix(emulator: Start) -> None:
    emu = emulator(claude.scripted(["never"]))
    client = router_for(emu).openai_client()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="claude",
            messages=[
                {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}
            ],
        )
    assert "audio" in str(info.value.message)
    assert emu.requests == []
