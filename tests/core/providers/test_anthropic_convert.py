"""The Anthropic adapter's pure functions: OpenAI requests → Messages requests, native answers and errors back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from polyroute import Router
from polyroute.errors import StreamInterruptedError, UnsupportedFeatureError, UpstreamStatusError
from polyroute.providers import anthropic
from polyroute.providers._base import Target
from tests.emulators import anthropic_format as claude

KEY = "sk-ant-test-0123456789"


def target(model: str = "claude-sonnet-4-5", **deployment: Any) -> Target:
    config = {"provider": "anthropic", "model": model, "api_key": KEY, **deployment}
    return Router({"models": [{"name": "c", "deployments": [config]}]}).route("c").targets[0]


def build(body: dict[str, Any], t: Target | None = None) -> tuple[dict[str, Any], Any]:
    """The native body (checked like Anthropic's API would) and the upstream request."""
    request = anthropic.build_request({"model": "c", **body}, t or target())  # type: ignore[typeddict-item]
    native = json.loads(request.content)
    problem = claude.check_request(native)
    assert problem is None, problem
    return native, request


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


# -- requests ---------------------------------------------------------------------------------------------------


def test_endpoint_headers_and_defaults() -> None:
    native, request = build({"messages": [user("Hi")]})
    assert request.method == "POST"
    assert request.url == "https://api.anthropic.com/v1/messages"
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.stream is False
    assert native == {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        "max_tokens": 64000,  # the catalog's output limit for the model
    }


def test_deployment_version_headers_params_and_base() -> None:
    t = target(
        "claude-unknown-model",
        api_version="2024-01-01",
        headers={"anthropic-beta": "files-api-2025-04-14"},
        params={"top_k": 5},
        api_base="https://proxy.example/anthropic/v1",
    )
    native, request = build({"messages": [user("Hi")], "stream": True}, t)
    assert request.url == "https://proxy.example/anthropic/v1/messages"
    assert request.headers["anthropic-version"] == "2024-01-01"
    assert request.headers["anthropic-beta"] == "files-api-2025-04-14"
    assert request.stream is True
    assert native["stream"] is True
    assert native["top_k"] == 5
    assert native["max_tokens"] == anthropic.DEFAULT_MAX_TOKENS  # no catalog row: the fallback


def test_system_developer_sampling_stop_user() -> None:
    native, _ = build(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
                user("Hi"),
            ],
            "max_completion_tokens": 100,
            "stop": "END",
            "temperature": 0.2,
            "top_p": 0.5,
            "user": "user-42",
        }
    )
    assert native["system"] == [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use metric units."}]
    assert native["max_tokens"] == 100
    assert native["stop_sequences"] == ["END"]
    assert native["temperature"] == 0.2
    assert "top_p" not in native  # never both
    assert native["metadata"] == {"user_id": "user-42"}


@pytest.mark.parametrize(("field", "value"), [("seed", 7), ("presence_penalty", 0.5), ("frequency_penalty", 1.0)])
def test_parameters_claude_cannot_honour_are_refused_unless_dropped(field: str, value: Any) -> None:
    with pytest.raises(UnsupportedFeatureError, match="drop_params") as info:
        build({"messages": [user("Hi")], field: value})
    assert info.value.param == field
    native, _ = build({"messages": [user("Hi")], field: value}, target(drop_params=[field]))
    assert field not in native


def test_native_fields_pass_through() -> None:
    native, _ = build(
        {
            "messages": [user("Hi")],
            "top_k": 3,
            "cache_control": {"type": "ephemeral"},
            "thinking": {"type": "enabled", "budget_tokens": 2000},
            "temperature": 0.3,
        }
    )
    assert native["top_k"] == 3
    assert native["cache_control"] == {"type": "ephemeral"}
    assert native["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    assert "temperature" not in native  # thinking takes no temperature


def test_sampling_free_api_version_drops_knobs() -> None:
    native, _ = build({"messages": [user("Hi")], "temperature": 0.3}, target(api_version="2026-10-21"))
    assert "temperature" not in native


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("n", 2, "n"),
        ("logprobs", True, "logprobs"),
        ("modalities", ["text", "audio"], "audio"),
        ("web_search_options", {}, "web_search_options"),
        ("functions", [{"name": "f"}], "tools"),
    ],
)
def test_unsupported_fields_say_what_to_change(field: str, value: Any, needle: str) -> None:
    with pytest.raises(UnsupportedFeatureError) as info:
        anthropic.build_request({"model": "c", "messages": [user("Hi")], field: value}, target())  # type: ignore[misc]
    assert info.value.status == 400
    assert needle in info.value.message
    assert KEY not in info.value.message


def test_tool_results_merge_into_one_user_turn() -> None:
    native, _ = build(
        {
            "tools": [WEATHER],
            "messages": [
                user("Weather in Paris and Rome?"),
                {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        call("toolu_1", "get_weather", {"city": "Paris"}),
                        call("toolu_2", "get_weather", {"city": "Rome"}),
                    ],
                },
                {"role": "tool", "tool_call_id": "toolu_1", "content": "Sunny"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "Rain"}]},
                user("And tomorrow?"),
            ],
        }
    )
    assert native["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
        ],
    }
    assert native["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "Rain"}]},
            {"type": "text", "text": "And tomorrow?"},
        ],
    }
    assert len(native["messages"]) == 3
    assert native["tools"] == [
        {
            "name": "get_weather",
            "input_schema": WEATHER["function"]["parameters"],
            "description": "Weather for a city",
        }
    ]


def test_unanswered_tool_use_gets_an_error_result_and_stray_results_become_text() -> None:
    native, _ = build(
        {
            "tools": [WEATHER],
            "messages": [
                user("Weather?"),
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [call("toolu_1", "get_weather", {"city": "Oslo"})],
                },
                user("Never mind, say hi."),
                {"role": "tool", "tool_call_id": "toolu_gone", "content": "42"},
            ],
        }
    )
    follow = native["messages"][2]["content"]
    assert follow[0] == {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": anthropic.MISSING_RESULT,
        "is_error": True,
    }
    assert follow[1] == {"type": "text", "text": "Never mind, say hi."}
    assert follow[2]["type"] == "text" and "toolu_gone" in follow[2]["text"] and "42" in follow[2]["text"]


def test_tool_use_at_the_end_is_answered_too() -> None:
    native, _ = build(
        {
            "tools": [WEATHER],
            "messages": [
                user("Weather?"),
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [call("toolu_1", "get_weather", {"city": "Oslo"})],
                },
            ],
        }
    )
    assert native["messages"][-1]["content"][0]["tool_use_id"] == "toolu_1"


def test_tool_history_without_tools_declares_them_uncallable() -> None:
    """AutoGen's reflection call: tool history, no tools (FRAMEWORKS.md §8)."""
    native, _ = build(
        {
            "messages": [
                user("Weather?"),
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [call("toolu_1", "get_weather", {"city": "Oslo"})],
                },
                {"role": "tool", "tool_call_id": "toolu_1", "content": "Snow"},
            ]
        }
    )
    assert [t["name"] for t in native["tools"]] == ["get_weather"]
    assert native["tool_choice"] == {"type": "none"}
    assert native["messages"][1]["content"][0]["id"] == "toolu_1"  # the history itself is untouched


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        ({"type": "function", "function": {"name": "get_weather"}}, None, {"type": "tool", "name": "get_weather"}),
        ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
    ],
)
def test_tool_choice(choice: Any, parallel: bool | None, expected: dict[str, Any]) -> None:
    body: dict[str, Any] = {"messages": [user("Hi")], "tools": [WEATHER]}
    if choice is not None:
        body["tool_choice"] = choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    native, _ = build(body)
    assert native["tool_choice"] == expected


def test_images_documents_and_cache_control() -> None:
    native, _ = build(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                        {
                            "type": "file",
                            "file": {"file_data": "data:application/pdf;base64,JVBERi0x", "filename": "a.pdf"},
                        },
                        {"type": "text", "text": "Describe.", "cache_control": {"type": "ephemeral"}},
                    ],
                },
                {"role": "user", "content": "Briefly.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            ]
        }
    )
    content = native["messages"][0]["content"]
    assert content[0] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    assert content[1] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
    assert content[2] == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"},
        "title": "a.pdf",
    }
    assert content[3] == {"type": "text", "text": "Describe.", "cache_control": {"type": "ephemeral"}}
    assert content[4] == {"type": "text", "text": "Briefly.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}


@pytest.mark.parametrize(
    ("part", "needle"),
    [
        ({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}, "audio"),
        ({"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}, "image/bmp"),
        ({"type": "file", "file": {"file_id": "file-abc"}}, "file_data"),
    ],
)
def test_content_anthropic_cannot_take(part: dict[str, Any], needle: str) -> None:
    with pytest.raises(UnsupportedFeatureError) as info:
        anthropic.build_request({"model": "c", "messages": [{"role": "user", "content": [part]}]}, target())
    assert needle in info.value.message
    assert info.value.param == "messages[0].content"


def test_images_refused_for_a_model_without_vision() -> None:
    t = target(capabilities={"vision": False})
    with pytest.raises(UnsupportedFeatureError, match="images"):
        anthropic.build_request(
            {
                "model": "c",
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}
                ],
            },
            t,
        )


def test_thinking_blocks_round_trip_first_in_the_turn() -> None:
    blocks = [
        {"type": "thinking", "thinking": "Let me think.", "signature": "c2lnMQ=="},
        {"type": "redacted_thinking", "data": "ZW5jcnlwdGVk"},
        {"type": "thinking", "thinking": "unsigned, from elsewhere"},
    ]
    native, _ = build(
        {
            "tools": [WEATHER],
            "reasoning_effort": "low",
            "messages": [
                user("Weather?"),
                {
                    "role": "assistant",
                    "content": "Calling.",
                    "reasoning_content": "Let me think.",
                    "thinking_blocks": blocks,
                    "tool_calls": [call("toolu_1", "get_weather", {"city": "Oslo"})],
                },
                {"role": "tool", "tool_call_id": "toolu_1", "content": "Snow"},
            ],
        }
    )
    assert native["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "Let me think.", "signature": "c2lnMQ=="},
        {"type": "redacted_thinking", "data": "ZW5jcnlwdGVk"},
        {"type": "text", "text": "Calling."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
    ]


@pytest.mark.parametrize(
    ("effort", "max_tokens", "budget", "expected_max"),
    [
        ("minimal", None, 1024, 64000),
        ("high", None, 16384, 64000),
        ("xhigh", None, 32768, 64000),
        ("max", None, 63999, 64000),  # below max_tokens, itself the model's output limit
        ("medium", 3000, 2999, 3000),
    ],
)
def test_reasoning_effort_becomes_a_thinking_budget(
    effort: str, max_tokens: int | None, budget: int, expected_max: int
) -> None:
    body: dict[str, Any] = {"messages": [user("Hi")], "reasoning_effort": effort, "temperature": 0.5}
    if max_tokens:
        body["max_tokens"] = max_tokens
    native, _ = build(body)
    assert native["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert native["max_tokens"] == expected_max
    assert "temperature" not in native


def test_reasoning_effort_none_and_errors() -> None:
    native, _ = build({"messages": [user("Hi")], "reasoning_effort": "none"})
    assert "thinking" not in native
    with pytest.raises(UnsupportedFeatureError, match="max_tokens"):
        anthropic.build_request(
            {"model": "c", "messages": [user("Hi")], "reasoning_effort": "low", "max_tokens": 500}, target()
        )
    with pytest.raises(UnsupportedFeatureError, match="thinking"):
        anthropic.build_request(
            {"model": "c", "messages": [user("Hi")], "reasoning_effort": "low"}, target("claude-3-5-haiku-latest")
        )
    with pytest.raises(UnsupportedFeatureError, match="reasoning_effort"):
        anthropic.build_request({"model": "c", "messages": [user("Hi")], "reasoning_effort": "maximal"}, target())


@pytest.mark.parametrize(
    ("model", "native"),
    [
        ("claude-sonnet-4-5", True),
        ("claude-sonnet-4-5-20250929", True),
        ("claude-haiku-4-5", True),
        ("claude-opus-4-1", True),
        ("claude-opus-4-6", True),
        ("claude-sonnet-5", True),
        ("anthropic.claude-sonnet-4-5-20250929-v1:0", True),
        ("claude-sonnet-4-0", False),
        ("claude-sonnet-4-20250514", False),
        ("claude-opus-4-20250514", False),
        ("claude-3-7-sonnet-latest", False),
        ("claude-3-5-haiku-latest", False),
        ("some-other-model", False),
    ],
)
def test_native_structured_output_rule(model: str, native: bool) -> None:
    assert anthropic.native_structured_output(target(model)) is native


def test_native_structured_output_respects_capabilities() -> None:
    assert not anthropic.native_structured_output(target(capabilities={"json_schema": False}))


SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "city",
        "schema": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "where": {"type": "object", "properties": {"country": {"type": "string"}}},
            },
            "required": ["city"],
        },
    },
}


def test_json_schema_native_output_config() -> None:
    native, _ = build({"messages": [user("Where?")], "response_format": SCHEMA_FORMAT})
    schema = native["output_config"]["format"]["schema"]
    assert native["output_config"]["format"]["type"] == "json_schema"
    assert schema["additionalProperties"] is False
    assert schema["properties"]["where"]["additionalProperties"] is False
    assert "tools" not in native


def test_json_schema_forced_tool_where_not_native() -> None:
    t = target("claude-sonnet-4-0")
    native, _ = build({"messages": [user("Where?")], "response_format": SCHEMA_FORMAT}, t)
    assert native["tools"][-1]["name"] == "city"
    assert native["tool_choice"] == {"type": "tool", "name": "city"}
    assert "output_config" not in native
    body: Any = {"model": "c", "messages": [user("Where?")], "response_format": SCHEMA_FORMAT}
    answer = claude.message([claude.tool_use("city", {"city": "Oslo"}, id="toolu_9")[0]], stop_reason="tool_use")
    completion = anthropic.parse_response(json.dumps(answer).encode(), t, body)
    choice = completion["choices"][0]
    assert json.loads(choice["message"]["content"] or "") == {"city": "Oslo"}
    assert "tool_calls" not in choice["message"]
    assert choice["finish_reason"] == "stop"
    streamed = run_stream("".join(claude.events(answer)).encode(), t, {**body, "stream": True}, step=5)
    assert json.loads(streamed["content"]) == {"city": "Oslo"}
    assert streamed["tool_calls"] == {}
    assert streamed["finish_reason"] == "stop"


def test_json_object_with_user_tools_forces_any_tool() -> None:
    native, _ = build({"messages": [user("Hi")], "tools": [WEATHER], "response_format": {"type": "json_object"}})
    assert [t["name"] for t in native["tools"]] == ["get_weather", "json_response"]
    assert native["tool_choice"] == {"type": "any"}


def test_strict_tools_only_where_supported() -> None:
    strict = {**WEATHER, "function": {**WEATHER["function"], "strict": True}}
    native, _ = build({"messages": [user("Hi")], "tools": [strict]})
    assert native["tools"][0]["strict"] is True
    assert native["tools"][0]["input_schema"]["additionalProperties"] is False
    native, _ = build({"messages": [user("Hi")], "tools": [strict]}, target("claude-3-5-haiku-latest"))
    assert "strict" not in native["tools"][0]


# -- responses and streams ---------------------------------------------------------------------------------------


def run_stream(raw: bytes, t: Target, body: Any, step: int) -> dict[str, Any]:
    """Feed ``raw`` in ``step``-byte pieces; accumulate the chunks the way a client does."""
    decoder = anthropic.stream_decoder()
    translator = anthropic.stream_translator(t, body)
    chunks: list[Any] = []
    for i in range(0, len(raw), step):
        for event in decoder.feed(raw[i : i + step]):
            chunks += translator.feed(event)
    for event in decoder.flush():
        chunks += translator.feed(event)
    chunks += translator.finish()
    return accumulate(chunks)


def accumulate(chunks: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "content": "",
        "reasoning": "",
        "tool_calls": {},
        "finish_reason": None,
        "usage": None,
        "thinking_blocks": [],
        "finishes": 0,
        "roles": 0,
    }
    for chunk in chunks:
        if chunk.get("usage"):
            out["usage"] = chunk["usage"]
        for choice in chunk["choices"]:
            delta = choice["delta"]
            out["roles"] += "role" in delta
            out["content"] += delta.get("content") or ""
            out["reasoning"] += delta.get("reasoning_content") or ""
            out["thinking_blocks"] += delta.get("thinking_blocks") or []
            for call_delta in delta.get("tool_calls") or ():
                entry = out["tool_calls"].setdefault(call_delta["index"], {"id": None, "name": None, "arguments": ""})
                if call_delta.get("id"):
                    entry["id"] = call_delta["id"]
                function = call_delta.get("function") or {}
                if function.get("name"):
                    entry["name"] = function["name"]
                entry["arguments"] += function.get("arguments") or ""
            if choice["finish_reason"]:
                out["finish_reason"] = choice["finish_reason"]
                out["finishes"] += 1
    return out


def test_usage_convention() -> None:
    usage = anthropic._from_anthropic_usage(
        {"input_tokens": 3, "cache_read_input_tokens": 1111, "cache_creation_input_tokens": 418, "output_tokens": 33}
    )
    assert usage == {
        "prompt_tokens": 1532,
        "completion_tokens": 33,
        "total_tokens": 1565,
        "prompt_tokens_details": {"cached_tokens": 1111, "cache_creation_tokens": 418},
    }


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
    ],
)
def test_finish_reasons_streamed_and_not(reason: str, expected: str) -> None:
    content = [claude.text("Hi")]
    if reason == "tool_use":
        content.append({"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}})
    msg = claude.message(content, stop_reason=reason)
    body: Any = {"model": "c", "messages": [user("Hi")]}
    completion = anthropic.parse_response(json.dumps(msg).encode(), target(), body)
    assert completion["choices"][0]["finish_reason"] == expected
    streamed = run_stream("".join(claude.events(msg)).encode(), target(), {**body, "stream": True}, step=3)
    assert streamed["finish_reason"] == expected
    assert streamed["finishes"] == 1
    assert streamed["roles"] == 1


def test_stream_without_message_stop_is_interrupted() -> None:
    msg = claude.message([claude.text("Hello there")])
    events = claude.events(msg)[:-1]  # everything but message_stop
    with pytest.raises(StreamInterruptedError) as info:
        run_stream("".join(events).encode(), target(), {"model": "c", "messages": [user("Hi")], "stream": True}, step=7)
    assert "message_stop" in info.value.message


def test_stream_error_event_raises_with_mapped_status() -> None:
    translator = anthropic.stream_translator(target(), {"model": "c", "messages": [user("Hi")]})
    decoder = anthropic.stream_decoder()
    events = decoder.feed(claude.error_event("overloaded_error", "Overloaded").encode())
    with pytest.raises(UpstreamStatusError) as info:
        translator.feed(events[0])
    assert info.value.status == 503
    assert info.value.code == "overloaded_error"
    assert info.value.retryable


# -- errors ------------------------------------------------------------------------------------------------------


def error_body(error_type: str, message: str) -> bytes:
    return json.dumps(
        {"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_b"}
    ).encode()


@pytest.mark.parametrize(
    ("status", "error_type", "expected_status", "openai_type", "retryable"),
    [
        (400, "invalid_request_error", 400, "invalid_request_error", False),
        (401, "authentication_error", 401, "authentication_error", False),
        (403, "permission_error", 403, "permission_error", False),
        (404, "not_found_error", 404, "not_found_error", False),
        (413, "request_too_large", 413, "invalid_request_error", False),
        (429, "rate_limit_error", 429, "rate_limit_error", True),
        (500, "api_error", 500, "api_error", True),
        (529, "overloaded_error", 503, "api_error", True),
    ],
)
def test_classify_error(status: int, error_type: str, expected_status: int, openai_type: str, retryable: bool) -> None:
    error = anthropic.classify_error(
        status, {"request-id": "req_h", "retry-after": "7"}, error_body(error_type, "boom"), target()
    )
    assert error.status == expected_status
    assert error.error_type == openai_type
    assert error.code == error_type
    assert error.retryable is retryable
    assert error.request_id == "req_h"
    assert error.retry_after == 7.0
    assert "boom" in error.message
    assert KEY not in repr(error) and KEY not in error.message


def test_classify_error_context_window_and_body_request_id() -> None:
    error = anthropic.classify_error(
        400, {}, error_body("invalid_request_error", "prompt is too long: 200027 tokens > 200000 maximum"), target()
    )
    assert error.code == "context_length_exceeded"
    assert "context_length_exceeded" in error.message
    assert error.request_id == "req_b"


def test_classify_error_unreadable_body() -> None:
    error = anthropic.classify_error(502, {}, b"<html>Bad gateway</html>", target())
    assert error.status == 502
    assert "Bad gateway" in error.message
