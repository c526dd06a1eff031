"""Anthropic's Messages API through ``polyroute serve``, with the official ``anthropic`` SDK: natively to an
Anthropic deployment (body and stream untouched but for model and key), translated to any other."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import pytest

from tests.emulators import Emulator
from tests.emulators import anthropic_format as claude
from tests.emulators.server import Handler, Reply, Request
from tests.serve.helpers import KEY, PROVIDER_KEY, ToolThenText, anthropic_route, config, openai_route, serving

StartEmulator = Callable[[Handler], Emulator]

WEATHER_TOOL: dict[str, Any] = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def client(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key=KEY, max_retries=0)


def tool_result_turns(tool_use: Any) -> list[dict[str, Any]]:
    """The conversation after a tool call, with its result, as Claude Code sends it."""
    return [
        *ASK,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in tool_use.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": tool_use.content[-1].id, "content": "sunny, 22 °C"},
                {"type": "text", "text": "Answer briefly."},
            ],
        },
    ]


# -- translated: an OpenAI-format deployment -----------------------------------------------------------------------


def test_a_tool_loop_translated_to_chat(emulator: StartEmulator) -> None:
    upstream = ToolThenText()
    emu = emulator(upstream)
    with serving(config([openai_route("gpt", emu.url)])) as server:
        sdk = client(server.url)
        first = sdk.messages.create(
            model="gpt",
            max_tokens=200,
            system="Be terse.",
            messages=ASK,
            tools=[WEATHER_TOOL],  # type: ignore[arg-type]
        )
        second = sdk.messages.create(
            model="gpt",
            max_tokens=200,
            messages=tool_result_turns(first),
            tools=[WEATHER_TOOL],  # type: ignore[arg-type]
        )
    assert first.stop_reason == "tool_use"
    assert first.model == "gpt"
    [call] = first.content
    assert call.type == "tool_use"
    assert (call.name, call.input) == ("get_weather", {"city": "Paris"})
    assert second.stop_reason == "end_turn"
    assert second.content[0].type == "text"
    assert second.content[0].text == "It is sunny in Paris."
    assert second.usage.input_tokens == 10
    assert second.usage.output_tokens == 5
    sent = upstream.bodies[1]
    assert sent["model"] == "gpt-emu"
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool", "user"]
    assert sent["messages"][1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": call.id, "content": "sunny, 22 °C"}
    assert sent["tools"][0]["function"]["parameters"] == WEATHER_TOOL["input_schema"]
    assert upstream.bodies[0]["messages"][0] == {"role": "system", "content": "Be terse."}


def test_a_streamed_tool_call_and_answer_translated_to_chat(emulator: StartEmulator) -> None:
    upstream = ToolThenText()
    emu = emulator(upstream)
    with serving(config([openai_route("gpt", emu.url)])) as server:
        sdk = client(server.url)
        with sdk.messages.stream(model="gpt", max_tokens=200, messages=ASK, tools=[WEATHER_TOOL]) as stream:  # type: ignore[arg-type]
            kinds = [event.type for event in stream]
            first = stream.get_final_message()
        with sdk.messages.stream(
            model="gpt",
            max_tokens=200,
            messages=tool_result_turns(first),
            tools=[WEATHER_TOOL],  # type: ignore[arg-type]
        ) as stream:
            text = "".join(stream.text_stream)
            second = stream.get_final_message()
    assert kinds[0] == "message_start"
    assert "input_json" in kinds
    assert kinds[-1] == "message_stop"
    [call] = first.content
    assert call.type == "tool_use"
    assert (call.id, call.name, call.input) == ("call_emu_1", "get_weather", {"city": "Paris"})
    assert first.stop_reason == "tool_use"
    assert first.usage.output_tokens == 9
    assert text == "It is sunny in Paris."
    assert second.stop_reason == "end_turn"
    assert upstream.bodies[0]["stream"] is True


def test_errors_come_in_anthropics_shape(emulator: StartEmulator) -> None:
    def overloaded(request: Request) -> Reply:
        return Reply.json(
            {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}, 429
        )

    emu = emulator(ToolThenText())
    busy = emulator(overloaded)
    cfg = config([openai_route("gpt", emu.url), openai_route("busy", busy.url)])
    cfg["retry"] = {"last_resort_retries": 0}
    with serving(cfg) as server:
        sdk = client(server.url)
        with pytest.raises(anthropic.NotFoundError) as missing:
            sdk.messages.create(model="nope", max_tokens=10, messages=ASK)  # type: ignore[arg-type]
        with pytest.raises(anthropic.BadRequestError) as server_tool:
            sdk.messages.create(
                model="gpt",
                max_tokens=10,
                messages=ASK,  # type: ignore[arg-type]
                tools=[{"type": "web_search_20250305", "name": "web_search"}],  # type: ignore[list-item]
            )
        with pytest.raises(anthropic.RateLimitError) as limited:
            sdk.messages.create(model="busy", max_tokens=10, messages=ASK)  # type: ignore[arg-type]
        with pytest.raises(anthropic.AuthenticationError):
            anthropic.Anthropic(base_url=server.url, api_key=PROVIDER_KEY, max_retries=0).messages.create(
                model="gpt",
                max_tokens=10,
                messages=ASK,  # type: ignore[arg-type]
            )
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert "nope" in missing.value.message
    assert server_tool.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "web_search_20250305" in server_tool.value.message
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


def test_count_tokens_is_estimated_for_a_route_without_claude(emulator: StartEmulator) -> None:
    emu = emulator(ToolThenText())
    with serving(config([openai_route("gpt", emu.url)])) as server:
        counted = client(server.url).messages.count_tokens(model="gpt", messages=ASK)  # type: ignore[arg-type]
    assert 5 < counted.input_tokens < 40


# -- native: an Anthropic deployment --------------------------------------------------------------------------------


def test_an_anthropic_deployment_gets_the_body_natively(emulator: StartEmulator) -> None:
    script = claude.scripted([claude.tool_use("get_weather", {"city": "Paris"}), "Sunny."])
    emu = emulator(script)
    with serving(config([anthropic_route("claude", emu.url)])) as server:
        sdk = client(server.url)
        first = sdk.messages.create(
            model="claude",
            max_tokens=300,
            messages=ASK,  # type: ignore[arg-type]
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            extra_body={"top_k": 5},
            metadata={"user_id": "u-1"},
        )
        second = sdk.messages.create(
            model="claude", max_tokens=300, messages=tool_result_turns(first), tools=[WEATHER_TOOL]
        )  # type: ignore[arg-type]
    assert first.content[0].type == "tool_use"
    assert first.content[0].input == {"city": "Paris"}
    assert first.model == "claude"  # the name asked for (Claude Code keeps thinking only from the model it asked)
    assert second.content[0].type == "text"
    assert second.content[0].text == "Sunny."
    sent = script.bodies[0]
    assert sent == {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 300,
        "messages": ASK,
        "tools": [WEATHER_TOOL],
        "top_k": 5,
        "metadata": {"user_id": "u-1"},
    }
    assert {r.headers.get("x-api-key") for r in emu.requests} == {PROVIDER_KEY}


def test_a_native_stream_keeps_thinking_signatures(emulator: StartEmulator) -> None:
    script = claude.scripted(
        [claude.thinking("The user wants weather.", claude.tool_use("get_weather", {"city": "Paris"})[0])]
    )
    emu = emulator(script)
    with (
        serving(config([anthropic_route("claude", emu.url)])) as server,
        client(server.url).messages.stream(
            model="claude",
            max_tokens=4000,
            messages=ASK,  # type: ignore[arg-type]
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            thinking={"type": "enabled", "budget_tokens": 2000},
        ) as stream,
    ):
        final = stream.get_final_message()
    assert final.model == "claude"
    thought, call = final.content
    assert thought.type == "thinking"
    assert thought.thinking == "The user wants weather."
    assert thought.signature in script.signatures
    assert call.type == "tool_use"
    assert call.input == {"city": "Paris"}
    assert script.bodies[0]["thinking"] == {"type": "enabled", "budget_tokens": 2000}


def test_count_tokens_goes_to_an_anthropic_deployment(emulator: StartEmulator) -> None:
    def count(request: Request) -> Reply:
        assert request.path == "/v1/messages/count_tokens"
        assert request.headers["x-api-key"] == PROVIDER_KEY
        assert request.json()["model"] == "claude-sonnet-4-5-20250929"
        return Reply(body={"input_tokens": 42})

    emu = emulator(count)
    with serving(config([anthropic_route("claude", emu.url)])) as server:
        counted = client(server.url).messages.count_tokens(model="claude", messages=ASK)  # type: ignore[arg-type]
    assert counted.input_tokens == 42


def test_a_stream_cut_after_it_began_ends_with_an_error_event(emulator: StartEmulator) -> None:
    """After the commit nothing fails over: the Messages stream ends with Anthropic's ``error`` event."""
    from tests.serve.helpers import text_events

    emu = emulator(lambda request: Reply.sse(text_events(["one ", "two ", "three ", "four"]), cut_after=3))
    with serving(config([openai_route("gpt", emu.url)])) as server:
        received: list[str] = []
        sdk = client(server.url)
        with (
            pytest.raises(anthropic.APIStatusError) as caught,
            sdk.messages.stream(model="gpt", max_tokens=50, messages=ASK) as stream,  # type: ignore[arg-type]
        ):
            received.extend(stream.text_stream)
    assert received == ["one ", "two "]
    assert caught.value.body["error"]["type"] in ("api_error", "overloaded_error")  # type: ignore[index]


def test_a_native_stream_fails_over_before_its_first_token(emulator: StartEmulator) -> None:
    busy = emulator(lambda request: claude.overloaded())
    script = claude.scripted(["From the second deployment."])
    healthy = emulator(script)
    route = anthropic_route("claude", busy.url)
    route["deployments"] += anthropic_route("claude", healthy.url)["deployments"]
    with (
        serving(config([route])) as server,
        client(server.url).messages.stream(model="claude", max_tokens=50, messages=ASK) as stream,  # type: ignore[arg-type]
    ):
        text = "".join(stream.text_stream)
    assert text == "From the second deployment."
    assert len(busy.requests) >= 1
    assert len(script.bodies) == 1


def test_max_tokens_is_lowered_to_what_the_deployment_can_write(emulator: StartEmulator) -> None:
    """Claude Code asks for max_tokens 32000; an OpenAI-format deployment that writes at most 1000 would answer 400."""
    upstream = ToolThenText()
    emu = emulator(upstream)
    route = openai_route("gpt", emu.url)
    route["deployments"][0]["capabilities"] = {"max_output_tokens": 1000}
    with (
        serving(config([route])) as server,
        client(server.url).messages.stream(model="gpt", max_tokens=32000, messages=ASK) as stream,  # type: ignore[arg-type]
    ):
        text = "".join(stream.text_stream)
    assert text == "It is sunny in Paris."
    assert upstream.bodies[0]["max_tokens"] == 1000


def test_an_overloaded_claude_keeps_its_error_type_and_a_stream_carries_its_cost(emulator: StartEmulator) -> None:
    """The transport's Messages errors are Anthropic's already (the server passes them on as they are: a Claude
    529 stays ``overloaded_error``, not the ``api_error`` its 503 would say); a stream's ``message_delta`` carries
    the cost the whole answer does."""
    busy = emulator(lambda request: claude.overloaded())
    healthy = emulator(claude.scripted(["Sunny."], repeat_last=True))
    cfg = config([anthropic_route("busy", busy.url), anthropic_route("claude", healthy.url)])
    cfg["retry"] = {"last_resort_retries": 0}
    with serving(cfg) as server:
        sdk = client(server.url)
        with pytest.raises(anthropic.InternalServerError) as overloaded:
            sdk.messages.create(model="busy", max_tokens=10, messages=ASK)  # type: ignore[arg-type]
        whole = sdk.messages.create(model="claude", max_tokens=10, messages=ASK)  # type: ignore[arg-type]
        with sdk.messages.stream(model="claude", max_tokens=10, messages=ASK) as stream:  # type: ignore[arg-type]
            [delta] = [event for event in stream if event.type == "message_delta"]
    assert overloaded.value.type == "overloaded_error"
    assert overloaded.value.api_message is not None and "Overloaded" in overloaded.value.api_message
    cost = (whole.usage.model_extra or {}).get("cost")
    assert cost is not None and cost > 0
    assert (delta.usage.model_extra or {}).get("cost") == cost
