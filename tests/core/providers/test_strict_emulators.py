"""The emulators refuse what the real APIs refuse (each rule with its source), so polyroute's tests meet real rules."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.emulators import anthropic_format as claude
from tests.emulators.gemini_format import GeminiEmulator, response
from tests.emulators.server import Reply, Request

SIGNED = "c2lnbmVk"
TOOLS = [{"name": "get_weather", "input_schema": {"type": "object"}}]


def _claude_body(messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 4096, "messages": messages, "tools": TOOLS, **extra}


def _loop(assistant: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": assistant},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
    ]


USE = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
THINKING = {"type": "enabled", "budget_tokens": 1024}


def test_thinking_tool_loop_must_start_the_last_assistant_turn_with_its_thinking() -> None:
    # Anthropic's 400 as users report it (e.g. n8n-io/n8n#22550, epam/ai-dial-adapter-bedrock#290).
    problem = claude.check_request(_claude_body(_loop([{"type": "text", "text": "Checking."}, USE]), thinking=THINKING))
    assert problem is not None
    assert problem.startswith(
        "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found `text`."
    )
    assert "a final `assistant` message must start with a thinking block" in problem
    signed = [{"type": "thinking", "thinking": "Call it.", "signature": SIGNED}, USE]
    assert claude.check_request(_claude_body(_loop(signed), thinking=THINKING), {SIGNED}) is None
    assert claude.check_request(_claude_body(_loop(signed), thinking=THINKING), set()) is not None  # not issued here
    # Without thinking, the same plain loop is fine: that is the documented way out.
    assert claude.check_request(_claude_body(_loop([USE]))) is None


def test_forced_tools_and_thinking_are_refused() -> None:
    body = _claude_body([{"role": "user", "content": "Hi"}], thinking=THINKING, tool_choice={"type": "any"})
    assert claude.check_request(body) == "Thinking may not be enabled when tool_choice forces tool use."


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("\n", "messages: text content blocks must contain non-whitespace text"),
        ([{"type": "text", "text": "  "}], "messages: text content blocks must contain non-whitespace text"),
        ([{"type": "text", "text": ""}], "messages: text content blocks must be non-empty"),
    ],
)
def test_blank_text_is_refused(content: Any, message: str) -> None:
    body = _claude_body(
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": content},
            {"role": "user", "content": "Go on"},
        ]
    )
    assert claude.check_request(body) == message


def test_unknown_top_level_fields_are_refused() -> None:
    assert claude.check_request(_claude_body([{"role": "user", "content": "Hi"}], seed=1)) == (
        "seed: Extra inputs are not permitted"
    )


def _gemini_request(model: str, body: dict[str, Any]) -> Request:
    path = f"/v1beta/models/{model}:generateContent"
    return Request("POST", path, {}, {"x-goog-api-key": "k"}, json.dumps(body).encode())


def _message(reply: Reply) -> str:
    assert isinstance(reply.body, dict)
    return reply.body["error"]["message"]


def _gemini_history(signature: str | None) -> dict[str, Any]:
    call: dict[str, Any] = {"functionCall": {"name": "weather", "args": {}}}
    if signature is not None:
        call["thoughtSignature"] = signature
    return {
        "contents": [
            {"role": "user", "parts": [{"text": "Weather?"}]},
            {"role": "model", "parts": [call]},
            {"role": "user", "parts": [{"functionResponse": {"name": "weather", "response": {"output": "sunny"}}}]},
        ]
    }


def test_gemini_3_wants_the_signature_it_issued_on_current_turn_calls_and_2_5_does_not() -> None:
    first = response(None, calls=[{"name": "weather", "args": {}, "thoughtSignature": SIGNED}])
    emu = GeminiEmulator(first, response("Sunny."))
    assert (
        emu(
            _gemini_request("gemini-3-flash-preview", {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]})
        ).status
        == 200
    )
    missing = emu(_gemini_request("gemini-3-flash-preview", _gemini_history(None)))
    assert missing.status == 400
    assert "Function call is missing a thought_signature in functionCall parts" in _message(missing)
    assert emu(_gemini_request("gemini-3-flash-preview", _gemini_history("Zm9yZ2Vk"))).status == 400
    assert emu(_gemini_request("gemini-3-flash-preview", _gemini_history(SIGNED))).status == 200
    assert (
        emu(_gemini_request("gemini-3-flash-preview", _gemini_history("skip_thought_signature_validator"))).status
        == 200
    )
    assert emu(_gemini_request("gemini-2.5-flash", _gemini_history(None))).status == 200


def test_gemini_refuses_unknown_fields() -> None:
    emu = GeminiEmulator(response("Hi"))
    body = {"contents": [{"role": "user", "parts": [{"text": "Hi", "mediaResolution": "LOW"}]}]}
    reply = emu(_gemini_request("gemini-2.5-flash", body))
    assert reply.status == 400
    assert _message(reply) == (
        """Invalid JSON payload received. Unknown name "mediaResolution" at 'contents[0].parts[0]': Cannot find field."""
    )
    plain = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}], "seed": 1}
    reply = emu(_gemini_request("gemini-2.5-flash", plain))
    assert reply.status == 400
    assert _message(reply) == 'Invalid JSON payload received. Unknown name "seed": Cannot find field.'


def test_gemini_refuses_empty_text_parts_and_empty_contents() -> None:
    emu = GeminiEmulator(response("Hi"))
    empty_text = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}, {"role": "model", "parts": [{"text": ""}]}]}
    reply = emu(_gemini_request("gemini-2.5-flash", empty_text))
    assert reply.status == 400
    assert "contents[1].parts[0].data: required oneof field 'data' must have one initialized field" in _message(reply)
    no_parts = {"contents": [{"role": "user", "parts": []}]}
    assert "contents.parts must not be empty" in _message(emu(_gemini_request("gemini-2.5-flash", no_parts)))
    spaces = {"contents": [{"role": "user", "parts": [{"text": " "}]}]}
    assert emu(_gemini_request("gemini-2.5-flash", spaces)).status == 200  # proxies send " " as the workaround
