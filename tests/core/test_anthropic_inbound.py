"""Messages → Chat Completions and back (:mod:`polyroute.anthropic_inbound`): pure functions, no I/O."""

from __future__ import annotations

from typing import Any

import pytest

from polyroute.anthropic_inbound import MessagesEventEncoder, from_chat_completion, to_chat_request
from polyroute.errors import InvalidRequestError, UnsupportedFeatureError


def test_a_request_with_system_tools_images_and_tool_results() -> None:
    native: dict[str, Any] = {
        "model": "m",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look:"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "sig"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "t1", "name": "look", "input": {"x": 1}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "and?"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "a cat"}],
                        "is_error": True,
                    },
                ],
            },
        ],
        "tools": [{"name": "look", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "thinking": {"type": "enabled", "budget_tokens": 9000},
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u1"},
        "stream": True,
    }
    chat = to_chat_request(native)
    assert chat["messages"] == [
        {"role": "system", "content": [{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look:"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "look", "arguments": '{"x":1}'}}],
            "reasoning_content": "hm",
            "thinking_blocks": [{"type": "thinking", "thinking": "hm", "signature": "sig"}],
        },
        # the tool result answers the previous turn, so it comes first (OpenAI's order too)
        {"role": "tool", "tool_call_id": "t1", "content": "Error: a cat"},
        {"role": "user", "content": "and?"},
    ]
    assert chat["tools"] == [{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}]
    assert chat["tool_choice"] == "required"
    assert chat["parallel_tool_calls"] is False
    assert chat["reasoning_effort"] == "medium"
    assert chat["max_completion_tokens"] == 100
    assert chat["stop"] == ["END"]
    assert chat["user"] == "u1"
    assert chat["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "server tool 'web_search_20250305'"),
        ({"top_k": 3}, "top_k"),
        ({"mcp_servers": []}, "mcp_servers"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "search_result", "source": "s", "title": "t", "content": []}]}
                ]
            },
            "'search_result' content block",
        ),
    ],
)
def test_what_only_claude_takes_is_refused_strictly_and_skipped_for_routing(extra: dict[str, Any], says: str) -> None:
    native = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], **extra}
    with pytest.raises(UnsupportedFeatureError, match=says):
        to_chat_request(native)
    assert to_chat_request(native, strict=False)["model"] == "m"


def test_malformed_requests_say_what_to_fix() -> None:
    with pytest.raises(InvalidRequestError, match="model"):
        to_chat_request({"messages": []})
    with pytest.raises(InvalidRequestError, match="tools: must be a list"):
        to_chat_request({"model": "m", "messages": [], "tools": {"name": "f"}})
    with pytest.raises(InvalidRequestError, match=r"messages\[0\].role"):
        to_chat_request({"model": "m", "messages": [{"role": "tool", "content": "x"}]})


def test_a_system_message_between_turns_stays_in_place() -> None:
    """Claude Code sends ``{"role": "system"}`` messages inside ``messages`` (the SDK's ``SystemMessageParam``)."""
    chat = to_chat_request(
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "system", "content": [{"type": "text", "text": "Now be brief."}]},
            ],
        }
    )
    assert chat["messages"][1] == {"role": "system", "content": [{"type": "text", "text": "Now be brief."}]}


def test_a_completion_becomes_a_message() -> None:
    completion: Any = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "length",
                "message": {
                    "role": "assistant",
                    "content": "Partial",
                    "reasoning_content": "thinking…",
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":2}'}}],
                },
            }
        ],
        "usage": {"prompt_tokens": 100, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 60}},
    }
    message = from_chat_completion(completion, "route")
    assert message["model"] == "route"
    assert message["content"] == [
        {"type": "thinking", "thinking": "thinking…", "signature": ""},
        {"type": "text", "text": "Partial"},
        {"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 2}},
    ]
    assert message["stop_reason"] == "max_tokens"
    assert message["usage"] == {
        "input_tokens": 40,
        "output_tokens": 7,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 60,
    }


def _chunk(delta: dict[str, Any] | None = None, finish: str | None = None, usage: Any = None) -> Any:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"choices": choices, "usage": usage}


def test_chunks_become_message_events_block_by_block() -> None:
    encoder = MessagesEventEncoder("route")
    chunks = [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"reasoning_content": "Let me "}),
        _chunk({"reasoning_content": "think."}),
        _chunk({"content": "Two calls."}),
        _chunk(
            {"tool_calls": [{"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": ""}}]}
        ),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"x":'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        _chunk(
            {"tool_calls": [{"index": 1, "id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}
        ),
        _chunk({}, "tool_calls"),
        _chunk(None, usage={"prompt_tokens": 30, "completion_tokens": 12}),
    ]
    events = [e for c in chunks for e in encoder.feed(c)] + encoder.finish()
    summary = [
        (e["type"], e.get("index"), (e.get("delta") or e.get("content_block") or {}).get("type")) for e in events
    ]
    assert summary == [
        ("message_start", None, None),
        ("ping", None, None),
        ("content_block_start", 0, "thinking"),
        ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "thinking_delta"),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, "text"),
        ("content_block_delta", 1, "text_delta"),
        ("content_block_stop", 1, None),
        ("content_block_start", 2, "tool_use"),
        ("content_block_delta", 2, "input_json_delta"),
        ("content_block_delta", 2, "input_json_delta"),
        ("content_block_stop", 2, None),
        ("content_block_start", 3, "tool_use"),
        ("content_block_delta", 3, "input_json_delta"),
        ("content_block_stop", 3, None),
        ("message_delta", None, None),
        ("message_stop", None, None),
    ]
    assert events[9]["content_block"] == {"type": "tool_use", "id": "a", "name": "f", "input": {}}
    assert "".join(e["delta"]["partial_json"] for e in events[10:12]) == '{"x":1}'
    assert events[-2]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert events[-2]["usage"]["input_tokens"] == 30
    assert events[-2]["usage"]["output_tokens"] == 12


def test_an_empty_stream_still_starts_and_stops() -> None:
    events = MessagesEventEncoder("route").finish()
    assert [e["type"] for e in events] == ["message_start", "ping", "message_delta", "message_stop"]
