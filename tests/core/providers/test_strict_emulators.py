"""The emulators refuse what the real APIs refuse (each rule with its source), so polyroute's tests meet real rules."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.emulators import anthropic_format as claude
from tests.emulators import openai_format as oai
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


# -- media in tool results ------------------------------------------------------------------------------------------

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="


def _claude_result(*blocks: dict[str, Any]) -> dict[str, Any]:
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": list(blocks)}
    return _claude_body(
        [
            {"role": "user", "content": "Screenshot?"},
            {"role": "assistant", "content": [USE]},
            {"role": "user", "content": [result]},
        ]
    )


def _png(media_type: str = "image/png", data: str = PNG_B64) -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def test_claude_tool_results_take_anthropic_blocks_and_real_images() -> None:
    assert claude.check_request(_claude_result({"type": "text", "text": "Here."}, _png())) is None
    # an OpenAI part where an Anthropic block belongs: refused by the SDK's types (text, image, document…)
    problem = claude.check_request(
        _claude_result({"type": "image_url", "image_url": {"url": "data:image/png;base64,"}})
    )
    assert problem is not None and "MessageCreateParams" in problem
    # the bytes must be the declared type (anthropics/claude-code#13131)
    assert claude.check_request(_claude_result(_png("image/jpeg"))) == (
        "messages.2.content.0.content.0.image.source.base64.data: Image does not match the provided media type "
        "image/jpeg"
    )
    assert claude.check_request(_claude_result(_png(data="bm90IGFuIGltYWdl"))) is not None  # "not an image"


def _gemini_tool_turn(response_part: dict[str, Any]) -> dict[str, Any]:
    call = {"functionCall": {"name": "shot", "args": {}}, "thoughtSignature": "skip_thought_signature_validator"}
    return {
        "contents": [
            {"role": "user", "parts": [{"text": "Screenshot?"}]},
            {"role": "model", "parts": [call]},
            {"role": "user", "parts": [{"functionResponse": {"name": "shot", "response": {}, **response_part}}]},
        ]
    }


INLINE = {"inlineData": {"mimeType": "image/png", "data": PNG_B64}}


def test_gemini_function_response_parts() -> None:
    emu = GeminiEmulator(response("A pixel."))
    assert emu(_gemini_request("gemini-3-flash-preview", _gemini_tool_turn({"parts": [INLINE]}))).status == 200
    older = emu(_gemini_request("gemini-2.5-flash", _gemini_tool_turn({"parts": [INLINE]})))
    assert older.status == 400 and "need Gemini 3" in _message(older)
    uri = {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/a.png"}}
    on_api = emu(_gemini_request("gemini-3-flash-preview", _gemini_tool_turn({"parts": [uri]})))
    assert _message(on_api) == (
        'Invalid JSON payload received. Unknown name "fileData" at '
        "'contents[2].parts[0].function_response.parts[0]': Cannot find field."
    )
    vertex = GeminiEmulator(response("A pixel."), vertex=True)
    assert vertex(_gemini_request("gemini-3-flash-preview", _gemini_tool_turn({"parts": [uri]}))).status == 200
    named = {"inlineData": {**INLINE["inlineData"], "displayName": "shot.png"}}
    assert 'Unknown name "displayName"' in _message(
        emu(_gemini_request("gemini-3-flash-preview", _gemini_tool_turn({"parts": [named]})))
    )
    gif = {"inlineData": {"mimeType": "image/gif", "data": PNG_B64}}
    assert emu(_gemini_request("gemini-3-flash-preview", _gemini_tool_turn({"parts": [gif]}))).status == 400
    text = {"inlineData": {"mimeType": "image/png", "data": "a screenshot, as text"}}
    assert "Base64 decoding failed" in _message(
        emu(_gemini_request("gemini-3-flash-preview", _gemini_tool_turn({"parts": [text]})))
    )


def test_openai_chat_tool_messages_take_text_only_and_answer_the_calls_right_after() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "shot", "arguments": "{}"}}
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}
    head = [{"role": "user", "content": "Screenshot?"}, {"role": "assistant", "content": None, "tool_calls": [call]}]
    tool = {"role": "tool", "tool_call_id": "call_1", "content": [image]}
    assert oai.check_chat_messages([*head, tool]) == (
        "Invalid 'messages[2]'. Image URLs are only allowed for messages with role 'user', but this message with role "
        "'tool' contains an image URL.",
        "messages[2]",
    )
    assert oai.check_chat_messages([*head, tool], tool_media=True) is None  # Mistral
    text = {"role": "tool", "tool_call_id": "call_1", "content": "Here."}
    assert oai.check_chat_messages([*head, text, {"role": "user", "content": [image]}]) is None
    problem = oai.check_chat_messages([*head, {"role": "user", "content": [image]}, text])
    assert problem is not None and "The following tool_call_ids did not have response messages: call_1" in problem[0]
