"""Every Anthropic cassette and capture in tests/fixtures/anthropic/ (copied from the shared corpus), replayed.

- answers: the translated text, reasoning, tool calls, finish reason and usage equal what the native response
  says, non-streamed and streamed, the stream re-split every 1, 7, 13 bytes and whole;
- requests: each recorded native request, expressed in OpenAI's format, translates back to the same native
  messages (so what a client sends back after a tool call or thinking turn is what Anthropic accepted), and
  validates against the official SDK's request types;
- errors: each recorded error maps to the right OpenAI status, type and request id.

Expectations are computed here from the native bodies, independently of the adapter.
"""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

import pytest

from polyroute.providers import anthropic
from polyroute.providers._base import Target
from tests.core.providers.test_anthropic_convert import accumulate, run_stream, target
from tests.emulators import anthropic_format as claude

INTERACTIONS = [i for name in claude.fixture_names() for i in claude.load(name)]
ANSWERS = [i for i in INTERACTIONS if i.status == 200 and i.body is not None]
STREAMS = [i for i in INTERACTIONS if i.status == 200 and i.sse is not None]
ERRORS = [i for i in INTERACTIONS if i.status >= 400]
_CLIENT_BLOCKS = frozenset({"text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking"})


def _expressible(request: dict[str, Any] | None) -> bool:
    """Requests OpenAI's format can express: not the count_tokens call, no server-tool blocks (web search)."""
    if request is None or "max_tokens" not in request:
        return False
    blocks = [b for m in request["messages"] if isinstance(m["content"], list) for b in m["content"]]
    return all(b["type"] in _CLIENT_BLOCKS for b in blocks)


REQUESTS = [i for i in INTERACTIONS if _expressible(i.request)]

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def ids(items: list[claude.Interaction]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for item in items:
        seen[item.name] = seen.get(item.name, 0) + 1
        out.append(f"{item.name}#{seen[item.name]}")
    return out


def expected_from_message(msg: dict[str, Any]) -> dict[str, Any]:
    """What the OpenAI answer must say, read straight from a native message."""
    content = msg["content"]
    usage = msg["usage"]
    cache_read = usage.get("cache_read_input_tokens") or 0
    cache_write = usage.get("cache_creation_input_tokens") or 0
    tools = [(b["id"], b["name"], b.get("input") or {}) for b in content if b["type"] == "tool_use"]
    return {
        "text": "".join(b["text"] for b in content if b["type"] == "text"),
        "reasoning": "".join(b["thinking"] for b in content if b["type"] == "thinking"),
        "thinking_blocks": [
            {"type": "thinking", "thinking": b["thinking"], "signature": b["signature"]}
            if b["type"] == "thinking"
            else {"type": "redacted_thinking", "data": b["data"]}
            for b in content
            if b["type"] in ("thinking", "redacted_thinking")
        ],
        "tools": tools,
        "finish": _FINISH[msg["stop_reason"]],
        "prompt": usage["input_tokens"] + cache_read + cache_write,
        "cached": cache_read,
        "completion": usage["output_tokens"],
    }


def message_from_sse(sse: str) -> dict[str, Any]:
    """A native message rebuilt from its SSE events, the way Anthropic documents the stream."""
    msg: dict[str, Any] = {}
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, str] = {}
    for raw in sse.split("\n\n"):
        data = "\n".join(line[5:].strip() for line in raw.splitlines() if line.startswith("data:"))
        if not data:
            continue
        event = json.loads(data)
        kind = event["type"]
        if kind == "message_start":
            msg = dict(event["message"])
            msg["usage"] = dict(msg["usage"])
        elif kind == "content_block_start":
            blocks[event["index"]] = dict(event["content_block"])
        elif kind == "content_block_delta":
            block, delta = blocks[event["index"]], event["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] += delta["signature"]
            elif delta["type"] == "input_json_delta":
                partial[event["index"]] = partial.get(event["index"], "") + delta["partial_json"]
        elif kind == "message_delta":
            msg["stop_reason"] = event["delta"]["stop_reason"]
            msg["usage"].update({k: v for k, v in event["usage"].items() if v is not None})
    for index, text in partial.items():
        if text:
            blocks[index]["input"] = json.loads(text)
    msg["content"] = [blocks[i] for i in sorted(blocks)]
    return msg


def request_body(interaction: claude.Interaction, stream: bool) -> Any:
    return {"model": "c", "messages": [{"role": "user", "content": "replayed"}], "stream": stream}


def target_for(interaction: claude.Interaction) -> Target:
    model = (interaction.request or {}).get("model") or "claude-sonnet-4-5"
    return target(model)


@pytest.mark.parametrize("interaction", ANSWERS, ids=ids(ANSWERS))
def test_non_streamed_answer(interaction: claude.Interaction) -> None:
    assert interaction.body is not None
    expected = expected_from_message(interaction.body)
    completion = anthropic.parse_response(
        json.dumps(interaction.body).encode(), target_for(interaction), request_body(interaction, False)
    )
    choice = completion["choices"][0]
    message = choice["message"]
    assert (message["content"] or "") == expected["text"]
    assert message.get("reasoning_content", "") == expected["reasoning"]
    assert message.get("thinking_blocks", []) == expected["thinking_blocks"]
    calls = [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message.get("tool_calls", [])
    ]
    assert calls == expected["tools"]
    assert choice["finish_reason"] == expected["finish"]
    usage = completion["usage"]
    assert usage["prompt_tokens"] == expected["prompt"]
    assert usage["completion_tokens"] == expected["completion"]
    assert usage["total_tokens"] == expected["prompt"] + expected["completion"]
    assert usage.get("prompt_tokens_details", {}).get("cached_tokens", 0) == expected["cached"]


def check_stream(result: dict[str, Any], expected: dict[str, Any]) -> None:
    assert result["content"] == expected["text"]
    assert result["reasoning"] == expected["reasoning"]
    assert result["thinking_blocks"] == expected["thinking_blocks"]
    calls = [(c["id"], c["name"], json.loads(c["arguments"])) for _, c in sorted(result["tool_calls"].items())]
    assert calls == expected["tools"]
    assert result["finish_reason"] == expected["finish"]
    assert result["finishes"] == 1
    usage = result["usage"]
    assert usage["prompt_tokens"] == expected["prompt"]
    assert usage["completion_tokens"] == expected["completion"]
    assert usage.get("prompt_tokens_details", {}).get("cached_tokens", 0) == expected["cached"]


@pytest.mark.parametrize("step", [1, 7, 13, 1 << 30])
@pytest.mark.parametrize("interaction", STREAMS, ids=ids(STREAMS))
def test_streamed_answer(interaction: claude.Interaction, step: int) -> None:
    assert interaction.sse is not None
    expected = expected_from_message(message_from_sse(interaction.sse))
    body = {**request_body(interaction, True), "stream_options": {"include_usage": True}}
    result = run_stream(interaction.sse.encode(), target_for(interaction), body, step)
    check_stream(result, expected)


@pytest.mark.parametrize("interaction", ANSWERS, ids=ids(ANSWERS))
def test_same_answer_streamed_and_not(interaction: claude.Interaction) -> None:
    """Each recorded message, streamed as Anthropic would stream it, translates to the same answer."""
    assert interaction.body is not None
    expected = expected_from_message(interaction.body)
    sse = "".join(claude.events(interaction.body, pieces=4))
    body = {**request_body(interaction, True), "stream_options": {"include_usage": True}}
    check_stream(run_stream(sse.encode(), target_for(interaction), body, 11), expected)


def test_usage_chunk_only_when_asked() -> None:
    sse = STREAMS[0].sse
    assert sse is not None
    result = run_stream(sse.encode(), target_for(STREAMS[0]), request_body(STREAMS[0], True), 64)
    assert result["usage"] is None


# -- requests ---------------------------------------------------------------------------------------------------


def to_openai_messages(native: dict[str, Any]) -> list[dict[str, Any]]:
    """A recorded native request's system and messages, as a client would send them in OpenAI's format."""
    out: list[dict[str, Any]] = []
    system = native.get("system")
    if isinstance(system, str):
        out.append({"role": "system", "content": system})
    elif system:
        out.append({"role": "system", "content": [{"type": "text", "text": b["text"]} for b in system]})
    for msg in native["messages"]:
        content = msg["content"]
        if isinstance(content, str):
            out.append({"role": msg["role"], "content": content})
            continue
        if msg["role"] == "assistant":
            out.append(assistant_message(content))
            continue
        parts: list[dict[str, Any]] = []
        for block in content:
            if block["type"] == "tool_result":
                result = block.get("content", "")
                if isinstance(result, list):
                    result = [{"type": "text", "text": b["text"]} for b in result]
                out.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": result})
            elif block["type"] == "text":
                part = {"type": "text", "text": block["text"]}
                if "cache_control" in block:
                    part["cache_control"] = block["cache_control"]
                parts.append(part)
            elif block["type"] == "image":
                source = block["source"]
                url = (
                    source["url"] if source["type"] == "url" else f"data:{source['media_type']};base64,{source['data']}"
                )
                parts.append({"type": "image_url", "image_url": {"url": url}})
            else:  # pragma: no cover - no such block in the fixtures
                raise AssertionError(block)
        if parts:
            out.append({"role": "user", "content": parts})
    return out


def assistant_message(content: list[dict[str, Any]]) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(b["text"] for b in content if b["type"] == "text") or None,
    }
    blocks = [b for b in content if b["type"] in ("thinking", "redacted_thinking")]
    if blocks:
        message["thinking_blocks"] = blocks
    calls = [
        {"id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": json.dumps(b["input"])}}
        for b in content
        if b["type"] == "tool_use"
    ]
    if calls:
        message["tool_calls"] = calls
    return message


def normalized(messages: list[dict[str, Any]], drop_blank_text: bool = False) -> list[dict[str, Any]]:
    """String content as one text block; ``is_error: false`` (the default) left out; blank text blocks a client
    added on its own (llm sends ``" "`` before tool calls Claude made without text) dropped when asked.
    """
    out = []
    for msg in messages:
        content = msg["content"]
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        blocks = []
        for block in content:
            block = dict(block)
            if drop_blank_text and block["type"] == "text" and not block["text"].strip():
                continue
            if block.get("is_error") is False:
                del block["is_error"]
            blocks.append(block)
        out.append({"role": msg["role"], "content": blocks})
    return out


def openai_tools(native: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {"name": t["name"], "description": t.get("description", ""), "parameters": t["input_schema"]},
        }
        for t in native.get("tools") or ()
        if "input_schema" in t
    ]


@pytest.mark.parametrize("interaction", REQUESTS, ids=ids(REQUESTS))
def test_recorded_request_round_trips(interaction: claude.Interaction) -> None:
    native = interaction.request
    assert native is not None
    body: dict[str, Any] = {"model": "c", "messages": to_openai_messages(native), "max_tokens": native["max_tokens"]}
    tools = openai_tools(native)
    if tools:
        body["tools"] = tools
    request = anthropic.build_request(body, target(native["model"]))  # type: ignore[arg-type]
    ours = json.loads(request.content)
    # Blank text is never sent (Anthropic refuses whitespace-only text), though llm's " " beside tool_use passed.
    assert normalized(ours["messages"]) == normalized(native["messages"], drop_blank_text=True)
    if native.get("system"):
        recorded = native["system"]
        recorded_text = recorded if isinstance(recorded, str) else "".join(b["text"] for b in recorded)
        assert "".join(b["text"] for b in ours["system"]) == recorded_text
    assert claude.check_request(ours) is None


def follow_ups() -> list[tuple[claude.Interaction, claude.Interaction]]:
    pairs = []
    for first, second in itertools.pairwise(INTERACTIONS):
        if (
            first.name == second.name
            and first.status == 200
            and _expressible(first.request)
            and _expressible(second.request)
            and len(second.request["messages"]) > len(first.request["messages"])
        ):
            pairs.append((first, second))
    return pairs


FOLLOW_UPS = follow_ups()


@pytest.mark.parametrize(("first", "second"), FOLLOW_UPS, ids=[f.name for f, _ in FOLLOW_UPS])
def test_translated_answer_is_what_the_next_turn_sends_back(
    first: claude.Interaction, second: claude.Interaction
) -> None:
    """Our OpenAI answer to turn 1, sent back as history, becomes exactly the assistant turn Anthropic accepted
    in turn 2 (thinking signatures, tool ids, text), streamed or not.
    """
    assert first.request is not None and second.request is not None
    recorded_turn = second.request["messages"][len(first.request["messages"])]
    assert recorded_turn["role"] == "assistant"
    t = target(first.request["model"])
    body: Any = {"model": "c", "messages": [{"role": "user", "content": "x"}], "stream": first.sse is not None}
    if first.sse is not None:
        streamed = run_stream(first.sse.encode(), t, body, 13)
        answer: dict[str, Any] = {"role": "assistant", "content": streamed["content"] or None}
        if streamed["thinking_blocks"]:
            answer["thinking_blocks"] = streamed["thinking_blocks"]
            answer["reasoning_content"] = streamed["reasoning"]
        if streamed["tool_calls"]:
            answer["tool_calls"] = [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for _, c in sorted(streamed["tool_calls"].items())
            ]
    else:
        assert first.body is not None
        answer = dict(anthropic.parse_response(json.dumps(first.body).encode(), t, body)["choices"][0]["message"])
    history = to_openai_messages({"messages": first.request["messages"]})
    history.append(answer)
    history += to_openai_messages({"messages": second.request["messages"][len(first.request["messages"]) + 1 :]})
    tools = openai_tools(second.request)
    request: dict[str, Any] = {"model": "c", "messages": history}
    if tools:
        request["tools"] = tools
    ours = json.loads(anthropic.build_request(request, t).content)  # type: ignore[arg-type]
    assert normalized(ours["messages"]) == normalized(second.request["messages"], drop_blank_text=True)


def test_fixtures_cover_the_features() -> None:
    """Guard: the fixtures still hold what these tests claim to cover."""
    assert len(ANSWERS) >= 20 and len(STREAMS) >= 10 and len(ERRORS) >= 6
    kinds = {b["type"] for i in ANSWERS for b in (i.body or {})["content"]}
    assert {"text", "thinking", "redacted_thinking", "tool_use"} <= kinds
    assert any("signature_delta" in (i.sse or "") for i in STREAMS)
    assert any("input_json_delta" in (i.sse or "") for i in STREAMS)
    assert any(name for name, _ in [(f.name, s) for f, s in FOLLOW_UPS] if "thinking" in name)
    assert base64  # used by the emulator's signatures; keeps the import honest


# -- errors -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("interaction", ERRORS, ids=ids(ERRORS))
def test_recorded_error(interaction: claude.Interaction) -> None:
    assert interaction.body is not None
    native = interaction.body["error"]
    error = anthropic.classify_error(
        interaction.status, interaction.headers, json.dumps(interaction.body).encode(), target()
    )
    assert error.status == {529: 503}.get(interaction.status, interaction.status)
    assert native["message"] in error.message
    assert error.request_id == interaction.headers.get("request-id", interaction.body.get("request_id"))
    expected_type = {
        400: "invalid_request_error",
        401: "authentication_error",
        404: "not_found_error",
        429: "rate_limit_error",
    }[interaction.status]
    assert error.error_type == expected_type
    if "prompt is too long" in native["message"]:
        assert error.code == "context_length_exceeded"
    else:
        assert error.code == native["type"]
    if interaction.status == 429:
        assert error.retryable
        assert error.retry_after is not None
    else:
        assert not error.retryable


def test_accumulate_helper_sees_every_chunk() -> None:
    """The helper must not hide a duplicated role or finish (so the stream tests above can fail)."""
    chunk = {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": "stop"}]}
    assert accumulate([chunk, chunk])["finishes"] == 2
