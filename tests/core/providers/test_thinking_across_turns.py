"""Thinking across turns, end to end: the openai SDK (as AutoGen, ag2, openai-agents, pydantic-ai send it) →
polyroute → the strict Anthropic and Gemini emulators.

Those clients resend an assistant turn as plain ``{role, content, tool_calls}``: no ``thinking_blocks``, no
``provider_specific_fields``. A tool loop with ``reasoning_effort`` must still complete.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import openai
import pytest

from polyroute import Router
from tests.emulators import Emulator, Reply
from tests.emulators import anthropic_format as claude
from tests.emulators.gemini_format import GeminiEmulator, response
from tests.emulators.server import Handler

Start = Callable[[Handler], Emulator]

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
QUESTION = [{"role": "user", "content": "Weather in Paris, then in London?"}]


def claude_router(emu: Emulator, model: str = "claude-sonnet-4-5") -> Router:
    deployment = {"provider": "anthropic", "model": model, "api_base": emu.url, "api_key": "test-key"}
    return Router({"models": [{"name": "claude", "deployments": [deployment]}], "retry": {"backoff": 0}})


def gemini_router(emu: Emulator, model: str = "gemini-3-flash-preview") -> Router:
    deployment = {"provider": "gemini", "model": model, "api_base": emu.url, "api_key": "test-key"}
    return Router({"models": [{"name": "gemini", "deployments": [deployment]}], "retry": {"backoff": 0}})


def claude_loop_script() -> claude.Scripted:
    return claude.scripted(
        [
            claude.tool_use("get_weather", {"city": "Paris"}, thinking="Paris first.", text="Checking Paris."),
            claude.tool_use("get_weather", {"city": "London"}, thinking="Now London."),
            claude.thinking("Both known.", "Sunny in Paris, rainy in London."),
        ]
    )


def plain_turn(content: str | None, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The assistant turn as AutoGen / openai-agents / pydantic-ai send it back: no thinking, no extra fields."""
    return {
        "role": "assistant",
        "content": content,
        "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in calls
        ],
    }


def answer(client: openai.OpenAI, model: str, messages: list[dict[str, Any]], stream: bool) -> tuple[Any, list, str]:
    """One call: (content, tool calls as dicts, finish reason), streamed or not."""
    kwargs: dict[str, Any] = {"model": model, "messages": messages, "tools": [TOOL], "reasoning_effort": "low"}
    return answer_with(client, kwargs, stream)


def answer_with(client: openai.OpenAI, kwargs: dict[str, Any], stream: bool) -> tuple[Any, list, str]:
    if not stream:
        choice = client.chat.completions.create(**kwargs).choices[0]
        calls = [
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
            for c in choice.message.tool_calls or ()
            if c.type == "function"
        ]
        return choice.message.content, calls, choice.finish_reason
    text, finish, calls = "", "", {}
    for chunk in client.chat.completions.create(**kwargs, stream=True):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or ():
                slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] = call.id or slot["id"]
                if call.function:
                    slot["name"] += call.function.name or ""
                    slot["arguments"] += call.function.arguments or ""
    return text or None, [calls[i] for i in sorted(calls)], finish


async def async_answer(
    client: openai.AsyncOpenAI, model: str, messages: list[dict[str, Any]], stream: bool
) -> tuple[Any, list, str]:
    kwargs: dict[str, Any] = {"model": model, "messages": messages, "tools": [TOOL], "reasoning_effort": "low"}
    if not stream:
        choice = (await client.chat.completions.create(**kwargs)).choices[0]
        calls = [
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
            for c in choice.message.tool_calls or ()
            if c.type == "function"
        ]
        return choice.message.content, calls, choice.finish_reason
    text, finish, calls = "", "", {}
    async for chunk in await client.chat.completions.create(**kwargs, stream=True):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or ():
                slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] = call.id or slot["id"]
                if call.function:
                    slot["name"] += call.function.name or ""
                    slot["arguments"] += call.function.arguments or ""
    return text or None, [calls[i] for i in sorted(calls)], finish


def tool_results(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    weather = {"Paris": "sunny", "London": "rainy"}
    return [
        {"role": "tool", "tool_call_id": c["id"], "content": weather[json.loads(c["arguments"])["city"]]} for c in calls
    ]


def run_loop(client: openai.OpenAI, model: str, stream: bool, rewrite_id: Callable[[str], str] = str) -> str:
    messages: list[dict[str, Any]] = list(QUESTION)
    for _ in range(5):
        content, calls, finish = answer(client, model, messages, stream)
        if finish != "tool_calls":
            return content
        calls = [{**c, "id": rewrite_id(c["id"])} for c in calls]
        messages += [plain_turn(content, calls), *tool_results(calls)]
    raise AssertionError("the loop did not end")


async def async_run_loop(client: openai.AsyncOpenAI, model: str, stream: bool) -> str:
    messages: list[dict[str, Any]] = list(QUESTION)
    for _ in range(5):
        content, calls, finish = await async_answer(client, model, messages, stream)
        if finish != "tool_calls":
            return content
        messages += [plain_turn(content, calls), *tool_results(calls)]
    raise AssertionError("the loop did not end")


def assert_thinking_replayed(script: claude.Scripted) -> None:
    assert len(script.bodies) == 3
    for body in script.bodies:
        assert body["thinking"]["type"] == "enabled"  # thinking stayed on for the whole loop
    last = script.bodies[2]["messages"]
    assert [m["content"][0]["type"] for m in last if m["role"] == "assistant"] == ["thinking", "thinking"]


# -- Anthropic: blocks re-attached from the router's store ----------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_claude_tool_loop_with_plain_assistant_turns_sync(emulator: Start, stream: bool) -> None:
    script = claude_loop_script()
    client = claude_router(emulator(script)).openai_client()
    assert run_loop(client, "claude", stream) == "Sunny in Paris, rainy in London."
    assert_thinking_replayed(script)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_claude_tool_loop_with_plain_assistant_turns_async(emulator: Start, stream: bool) -> None:
    script = claude_loop_script()
    client = claude_router(emulator(script)).async_openai_client()
    assert await async_run_loop(client, "claude", stream) == "Sunny in Paris, rainy in London."
    assert_thinking_replayed(script)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_claude_store_gone_turns_thinking_off_with_a_warning(
    emulator: Start, stream: bool, caplog: pytest.LogCaptureFixture
) -> None:
    script = claude_loop_script()
    emu = emulator(script)
    first = claude_router(emu).openai_client()
    content, calls, _ = answer(first, "claude", list(QUESTION), stream)
    history = [*QUESTION, plain_turn(content, calls), *tool_results(calls)]
    fresh = claude_router(emu).openai_client()  # a new process: its store never saw these calls
    with caplog.at_level(logging.WARNING, logger="polyroute"):
        content, calls, finish = answer(fresh, "claude", history, stream)
    assert finish == "tool_calls" and calls  # accepted: no 400 the user cannot fix
    assert "thinking" not in script.bodies[1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "thinking turned off for this request" in warnings[0]
    history += [plain_turn(content, calls), *tool_results(calls)]
    content, calls, finish = answer(fresh, "claude", history, stream)
    assert (content, finish) == ("Sunny in Paris, rainy in London.", "stop")  # the loop completes


def test_claude_blocks_are_not_restored_when_thinking_is_off(emulator: Start) -> None:
    script = claude_loop_script()
    client = claude_router(emulator(script)).openai_client()
    content, calls, _ = answer(client, "claude", list(QUESTION), False)
    history = [*QUESTION, plain_turn(content, calls), *tool_results(calls)]
    client.chat.completions.create(model="claude", messages=history, tools=[TOOL])  # no reasoning_effort
    assert "thinking" not in script.bodies[1]
    assert [b["type"] for b in script.bodies[1]["messages"][1]["content"]] == ["text", "tool_use"]


def test_claude_store_is_bounded() -> None:
    from polyroute._thinking import ThinkingStore

    store = ThinkingStore(max_entries=3)
    block = {"type": "thinking", "thinking": "x", "signature": "s"}
    for i in range(5):
        store.remember_blocks([f"call_{i}"], [block])
    assert len(store) == 3
    assert store.blocks_for(["call_0"]) is None and store.blocks_for(["call_4"]) == [block]
    small = ThinkingStore(max_chars=10)
    small.remember_blocks(["a"], [{"type": "thinking", "thinking": "12345", "signature": "123"}])
    small.remember_blocks(["b"], [{"type": "thinking", "thinking": "12345", "signature": "123"}])
    assert small.blocks_for(["a"]) is None and small.blocks_for(["b"]) is not None


# -- Anthropic: forced tools, JSON mode, blank text, refusals ---------------------------------------------------


FORCED = ["required", {"type": "function", "function": {"name": "get_weather"}}]


SAME_SCHEMA = {
    "type": "json_schema",
    "json_schema": {"name": "get_weather", "schema": TOOL["function"]["parameters"], "strict": True},
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("tool_choice", FORCED, ids=["required", "named"])
@pytest.mark.parametrize("response_format", [None, SAME_SCHEMA, {"type": "json_object"}], ids=["", "schema", "json"])
def test_claude_one_forced_tool_with_thinking_is_answered_by_structured_output(
    emulator: Start, tool_choice: Any, stream: bool, response_format: Any
) -> None:
    # LangChain with_structured_output / instructor TOOLS on Claude 4.5 with reasoning_effort: thinking stays on;
    # instructor's RESPONSES_TOOLS also sends the schema as text.format (response_format): a forced call has no text.
    script = claude.scripted([claude.thinking("Paris it is.", '{"city":"Paris"}')])
    client = claude_router(emulator(script)).openai_client()
    kwargs: dict[str, Any] = {"model": "claude", "messages": QUESTION, "tools": [TOOL], "tool_choice": tool_choice}
    if response_format is not None:
        kwargs["response_format"] = response_format
    content, calls, finish = answer_with(client, kwargs | {"reasoning_effort": "low"}, stream)
    assert finish == "tool_calls" and not content
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [("get_weather", {"city": "Paris"})]
    sent = script.bodies[0]
    assert sent["thinking"]["type"] == "enabled" and "tool_choice" not in sent and "tools" not in sent
    assert sent["output_config"]["format"]["schema"]["properties"] == {"city": {"type": "string"}}


@pytest.mark.parametrize(
    ("model", "tools"),
    [("claude-sonnet-4-20250514", [TOOL]), ("claude-sonnet-4-5", [TOOL, {**TOOL, "function": {"name": "other"}}])],
    ids=["no-structured-outputs", "two-tools"],
)
@pytest.mark.parametrize("tool_choice", FORCED, ids=["required", "named"])
def test_claude_other_forced_tools_with_thinking_turn_thinking_off(
    emulator: Start, tool_choice: Any, model: str, tools: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    script = claude.scripted([claude.tool_use("get_weather", {"city": "Paris"})])
    client = claude_router(emulator(script), model=model).openai_client()
    with caplog.at_level(logging.WARNING, logger="polyroute"):
        completion = client.chat.completions.create(
            model="claude", messages=QUESTION, tools=tools, tool_choice=tool_choice, reasoning_effort="medium"
        )
    calls = completion.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls if c.type == "function"] == ["get_weather"]
    assert "thinking" not in script.bodies[0] and script.bodies[0]["tool_choice"]["type"] in ("any", "tool")
    assert any("tool_choice" in r.getMessage() and "thinking turned off" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("model", "says"),
    [
        ("claude-sonnet-4-5", "use response_format json_schema"),
        ("claude-sonnet-4-20250514", "has no native structured outputs"),
    ],
)
def test_claude_json_mode_with_thinking_is_an_accurate_400(emulator: Start, model: str, says: str) -> None:
    script = claude.scripted(["{}"])
    client = claude_router(emulator(script), model=model).openai_client()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="claude", messages=QUESTION, response_format={"type": "json_object"}, reasoning_effort="low"
        )
    message = caught.value.message
    assert says in message and "reasoning_effort" in message
    assert message.count(model) <= 1  # named once, as the deployment
    assert not script.bodies


def test_claude_blank_text_never_reaches_anthropic(emulator: Start) -> None:
    script = claude.scripted(["Fine."])
    client = claude_router(emulator(script)).openai_client()
    history: list[Any] = [
        {"role": "system", "content": " "},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "\n"},
        {"role": "user", "content": [{"type": "text", "text": "   "}, {"type": "text", "text": "Go on."}]},
        {
            "role": "assistant",
            "content": " \n",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"P"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "  "},
    ]
    completion = client.chat.completions.create(model="claude", messages=history, tools=[TOOL])
    assert completion.choices[0].message.content == "Fine."
    sent = script.bodies[0]
    assert "system" not in sent
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][0]["content"] == [
        {"type": "text", "text": "Weather in Paris?"},
        {"type": "text", "text": "Go on."},
    ]
    assert [b["type"] for b in sent["messages"][1]["content"]] == ["tool_use"]
    assert [b["type"] for b in sent["messages"][2]["content"]] == ["tool_result"]


def test_claude_only_blank_messages_is_a_clear_400(emulator: Start) -> None:
    script = claude.scripted(["never"])
    client = claude_router(emulator(script)).openai_client()
    with pytest.raises(openai.BadRequestError, match="empty or whitespace-only"):
        client.chat.completions.create(model="claude", messages=[{"role": "user", "content": " \n"}])
    assert not script.bodies


def refusal_reply(stream: bool) -> Callable[[Any], Reply]:
    def handle(request: Any) -> Reply:
        msg = claude.message([claude.text("I can")], stop_reason="refusal")
        if stream:
            return Reply(chunks=claude.events(msg), headers={"content-type": "text/event-stream"})
        return Reply(body=msg)

    return handle


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_claude_refusal_is_content_filter_with_a_refusal(emulator: Start, stream: bool) -> None:
    client = claude_router(emulator(claude.scripted([refusal_reply(stream)]))).openai_client()
    if not stream:
        choice = client.chat.completions.create(model="claude", messages=QUESTION).choices[0]
        assert choice.finish_reason == "content_filter"
        assert choice.message.refusal and "refusal" in choice.message.refusal
        assert choice.message.content == "I can"
        return
    refusal, content, finish = "", "", None
    for chunk in client.chat.completions.create(model="claude", messages=QUESTION, stream=True):
        for choice in chunk.choices:
            refusal += choice.delta.refusal or ""
            content += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert finish == "content_filter" and "refusal" in refusal and content == "I can"


# -- Gemini: signatures re-attached from the store ---------------------------------------------------------------

SIG_PARIS = "UGFyaXMgc2lnbmF0dXJl"
SIG_LONDON = "TG9uZG9uIHNpZ25hdHVyZQ=="


def gemini_loop() -> GeminiEmulator:
    return GeminiEmulator(
        response(
            None,
            calls=[{"name": "get_weather", "args": {"city": "Paris"}, "thoughtSignature": SIG_PARIS}],
            response_id="resp-1",
        ),
        response(
            None,
            calls=[{"name": "get_weather", "args": {"city": "London"}, "thoughtSignature": SIG_LONDON}],
            response_id="resp-2",
        ),
        response("Sunny in Paris, rainy in London.", response_id="resp-3"),
    )


def short_id(call_id: str) -> str:
    """A client that keeps tool-call ids short (OpenAI caps them at 40 characters), cutting the encoded signature."""
    return call_id.split("__gts_")[0]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_gemini_tool_loop_with_shortened_ids_gets_the_real_signatures_back(emulator: Start, stream: bool) -> None:
    emu = gemini_loop()
    client = gemini_router(emulator(emu)).openai_client()
    assert run_loop(client, "gemini", stream, rewrite_id=short_id) == "Sunny in Paris, rainy in London."
    model_turns = [c for c in emu.bodies[2]["contents"] if c["role"] == "model"]
    assert [t["parts"][0]["thoughtSignature"] for t in model_turns] == [SIG_PARIS, SIG_LONDON]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_gemini_tool_loop_with_plain_assistant_turns_async(emulator: Start, stream: bool) -> None:
    emu = gemini_loop()
    client = gemini_router(emulator(emu)).async_openai_client()
    assert await async_run_loop(client, "gemini", stream) == "Sunny in Paris, rainy in London."
    model_turns = [c for c in emu.bodies[2]["contents"] if c["role"] == "model"]
    assert [t["parts"][0]["thoughtSignature"] for t in model_turns] == [SIG_PARIS, SIG_LONDON]


def test_gemini_store_gone_sends_the_placeholder_with_a_warning(
    emulator: Start, caplog: pytest.LogCaptureFixture
) -> None:
    emu = gemini_loop()
    server = emulator(emu)
    content, calls, _ = answer(gemini_router(server).openai_client(), "gemini", list(QUESTION), False)
    calls = [{**c, "id": short_id(c["id"])} for c in calls]
    history = [*QUESTION, plain_turn(content, calls), *tool_results(calls)]
    with caplog.at_level(logging.WARNING, logger="polyroute"):
        _, calls, finish = answer(gemini_router(server).openai_client(), "gemini", history, False)
    assert finish == "tool_calls"
    assert emu.bodies[1]["contents"][1]["parts"][0]["thoughtSignature"] == "skip_thought_signature_validator"
    assert [r for r in caplog.records if "placeholder signature" in r.getMessage()]


def test_gemini_empty_text_never_reaches_gemini(emulator: Start) -> None:
    emu = GeminiEmulator(response("Fine."))
    client = gemini_router(emulator(emu), model="gemini-2.5-flash").openai_client()
    history: list[Any] = [
        {"role": "system", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "Hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": ""}]},
        {"role": "user", "content": ""},
        {"role": "user", "content": "Again?"},
    ]
    assert client.chat.completions.create(model="gemini", messages=history).choices[0].message.content == "Fine."
    assert emu.bodies[0]["contents"] == [{"role": "user", "parts": [{"text": "Hi"}, {"text": "Again?"}]}]
    assert emu.bodies[0]["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
