"""The OpenAI-compatible family: vendor quirks on requests, and conformance with recorded traffic.

Every chat-completions interaction in tests/fixtures/openai_compatible (OpenAI, Groq, DeepSeek, Mistral, Ollama /v1,
Together, OpenRouter, Cerebras, Z.ai, Gemini's OpenAI endpoint) goes through the adapter: JSON responses must keep
text, reasoning, tool calls, finish reason and usage; SSE streams, re-split at odd byte boundaries, must add up to
the same message as the native chunks; error bodies must map to the right status.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from polyroute import Router, UnsupportedFeatureError
from polyroute.api import RawAnswer
from polyroute.errors import StreamInterruptedError, UpstreamStatusError
from polyroute.providers import openai as adapter
from polyroute.providers._base import Target, dumps
from tests.corpus import FIXTURES, Interaction, load_cassette

CASSETTES = sorted((FIXTURES / "openai_compatible").glob("*.yaml*"))
BODY = {"model": "route", "messages": [{"role": "developer", "content": "be brief"}, {"role": "user", "content": "hi"}]}


def target(provider: str, **deployment: Any) -> Target:
    deployment.setdefault("api_base", "http://127.0.0.1:1/v1")
    router = Router(
        {
            "models": [
                {
                    "name": "route",
                    "deployments": [{"provider": provider, "model": "up-model", "api_key": "k-123456", **deployment}],
                }
            ]
        }
    )
    return router.route("route").targets[0]


def sent(provider: str, body: dict[str, Any], **deployment: Any) -> dict[str, Any]:
    return json.loads(adapter.build_request(body, target(provider, **deployment)).content)  # type: ignore[arg-type]


# -- quirks ---------------------------------------------------------------------------------------------------------


def test_openai_keeps_developer_and_prefers_max_completion_tokens() -> None:
    out = sent("openai", {**BODY, "max_tokens": 50})
    assert out["messages"][0]["role"] == "developer"
    assert out["max_completion_tokens"] == 50 and "max_tokens" not in out
    assert out["model"] == "up-model"


@pytest.mark.parametrize("provider", ["deepseek", "mistral", "together", "fireworks", "ollama", "groq"])
def test_vendors_without_developer_role_get_system(provider: str) -> None:
    assert sent(provider, BODY)["messages"][0]["role"] == "system"


@pytest.mark.parametrize("provider", ["deepseek", "mistral", "together", "fireworks", "ollama"])
def test_vendors_taking_max_tokens(provider: str) -> None:
    out = sent(provider, {**BODY, "max_completion_tokens": 70})
    assert out["max_tokens"] == 70 and "max_completion_tokens" not in out


def test_mistral_seed_stream_options_and_tool_ids() -> None:
    history = {
        **BODY,
        "seed": 7,
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "toolu_01AbCdEfGhIjKlMn", "type": "function", "function": {"name": "w", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_01AbCdEfGhIjKlMn", "content": "sunny"},
        ],
    }
    out = sent("mistral", history)
    assert out["random_seed"] == 7 and "seed" not in out
    assert "stream_options" not in out
    call_id = out["messages"][1]["tool_calls"][0]["id"]
    assert len(call_id) == 9 and call_id.isalnum()
    assert out["messages"][2]["tool_call_id"] == call_id  # the pairing survives the rewrite
    assert (
        sent("mistral", {**BODY, "messages": [{"role": "tool", "tool_call_id": "abc123XYZ", "content": "x"}]})[
            "messages"
        ][0]["tool_call_id"]
        == "abc123XYZ"
    )


@pytest.mark.parametrize(
    ("provider", "extra", "param"),
    [
        ("deepseek", {"n": 2}, "n"),
        ("groq", {"n": 3}, "n"),
        ("groq", {"logit_bias": {"1": 2}}, "logit_bias"),
        ("mistral", {"user": "u1"}, "user"),
        (
            "mistral",
            {"tools": [{"type": "function", "function": {"name": "f", "strict": True, "parameters": {}}}]},
            "tools",
        ),
    ],
)
def test_unsupported_parameters_are_refused_not_dropped(provider: str, extra: dict[str, Any], param: str) -> None:
    with pytest.raises(UnsupportedFeatureError) as caught:
        sent(provider, {**BODY, **extra})
    assert caught.value.param == param
    assert f"{provider}/up-model" in caught.value.message


def test_parallel_tool_calls_true_is_dropped_only_where_it_is_the_only_behaviour() -> None:
    assert "parallel_tool_calls" not in sent("deepseek", {**BODY, "parallel_tool_calls": True})
    assert "parallel_tool_calls" not in sent("deepseek", {**BODY, "parallel_tool_calls": False})  # honoured on return
    assert sent("openai", {**BODY, "parallel_tool_calls": False})["parallel_tool_calls"] is False


def test_polyroute_fields_are_not_sent_upstream() -> None:
    history = {
        **BODY,
        "messages": [
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": "a",
                "reasoning_content": "thought",
                "thinking_blocks": [{"x": 1}],
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "f", "arguments": "{}"},
                        "provider_specific_fields": {"thought_signature": "sig"},
                    }
                ],
            },
        ],
    }
    out = sent("openai", history)
    assistant = out["messages"][1]
    assert "thinking_blocks" not in assistant and "reasoning_content" not in assistant
    assert "provider_specific_fields" not in assistant["tool_calls"][0]
    assert sent("deepseek", history)["messages"][1]["reasoning_content"] == "thought"


def test_azure_deployment_url_and_api_key_header() -> None:
    t = target("azure", api_base="https://res.openai.azure.com", api_version="2025-01-01")
    request = adapter.build_request(BODY, t)  # type: ignore[arg-type]
    assert (
        request.url
        == "https://res.openai.azure.com/openai/deployments/up-model/chat/completions?api-version=2025-01-01"
    )
    assert request.headers["api-key"] == "k-123456" and "authorization" not in request.headers
    v1 = adapter.build_request(BODY, target("azure", api_base="https://res.openai.azure.com/openai/v1"))  # type: ignore[arg-type]
    assert v1.url == "https://res.openai.azure.com/openai/v1/chat/completions"


def test_deployment_params_and_headers() -> None:
    t = target("openai", params={"service_tier": "flex"}, headers={"x-team": "a"})
    request = adapter.build_request(BODY, t)  # type: ignore[arg-type]
    assert json.loads(request.content)["service_tier"] == "flex"
    assert request.headers["x-team"] == "a"


# -- conformance with recorded traffic ------------------------------------------------------------------------------


def chat_interactions() -> list[tuple[str, Interaction]]:
    found: list[tuple[str, Interaction]] = []
    for path in CASSETTES:
        for i, interaction in enumerate(load_cassette(path)):
            if "chat/completions" in interaction.uri:
                found.append((f"{path.stem}#{i}", interaction))
    return found


INTERACTIONS = chat_interactions()


def _provider_for(name: str) -> str:
    vendor = name.split("__", 1)[0]
    return {"openai-compatible": "openai-compatible", "together-via-hf": "together"}.get(vendor, vendor)


def _aggregate(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    text, reasoning, finish, usage = "", "", None, None
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        usage = chunk.get("usage") or (chunk.get("x_groq") or {}).get("usage") or usage
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            content = delta.get("content") or ""
            if isinstance(content, list):  # Mistral's chunked content: text and thinking parts
                for part in content:
                    if part.get("type") == "thinking":
                        reasoning += "".join(inner.get("text", "") for inner in part.get("thinking") or [])
                    else:
                        text += part.get("text") or ""
            else:
                text += content
            reasoning += delta.get("reasoning_content") or delta.get("reasoning") or ""
            for position, call in enumerate(delta.get("tool_calls") or ()):
                slot = calls.setdefault(call.get("index", position), {"name": "", "arguments": "", "id": ""})
                slot["id"] = slot["id"] or call.get("id") or ""
                slot["name"] += (call.get("function") or {}).get("name") or ""
                slot["arguments"] += (call.get("function") or {}).get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    return {
        "text": text,
        "reasoning": reasoning,
        "finish": finish,
        "usage": usage,
        "calls": [(c["name"], c["arguments"]) for _, c in sorted(calls.items())],
        "ids": [c["id"] for _, c in sorted(calls.items())],
    }


def _native_chunks(body: bytes) -> list[dict[str, Any]]:
    out = []
    for line in body.decode().splitlines():
        if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
            out.append(json.loads(line[5:]))
    return out


def _is_stream(interaction: Interaction) -> bool:
    return interaction.body.lstrip().startswith((b"data:", b":"))


@pytest.mark.parametrize(
    ("name", "interaction"),
    [p for p in INTERACTIONS if p[1].status == 200 and not _is_stream(p[1])],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_recorded_json_responses(name: str, interaction: Interaction) -> None:
    native = interaction.json()
    t = target(_provider_for(name))
    result = adapter.parse_response(interaction.body, t, {"model": "route", "messages": []})
    for ours, theirs in zip(result["choices"], native["choices"], strict=True):
        message, raw = ours["message"], theirs["message"]
        if isinstance(raw.get("content"), list):  # Mistral's chunked content becomes text + reasoning_content
            assert isinstance(message.get("content"), str) and message.get("reasoning_content")
            raw = {**raw, "content": message["content"], "reasoning_content": message["reasoning_content"]}
        assert message.get("content") == raw.get("content")
        assert ours["finish_reason"] == theirs["finish_reason"]
        expected_reasoning = raw.get("reasoning_content") or raw.get("reasoning")
        if isinstance(expected_reasoning, str) and expected_reasoning:
            assert message.get("reasoning_content") == expected_reasoning
        ours_calls = [(c["function"]["name"], c["function"]["arguments"]) for c in message.get("tool_calls") or []]
        raw_calls = [(c["function"]["name"], c["function"]["arguments"]) for c in raw.get("tool_calls") or []]
        assert ours_calls == raw_calls
        assert all(c["id"] for c in message.get("tool_calls") or [])  # filled in where the vendor sent none
    assert result.get("usage") == native.get("usage")


@pytest.mark.parametrize(
    ("name", "interaction"),
    [p for p in INTERACTIONS if p[1].status == 200 and not _is_stream(p[1])],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_recorded_json_answers_go_to_the_caller_as_the_vendors_bytes(name: str, interaction: Interaction) -> None:
    """An answer that needed no normalization (every recorded OpenAI one) goes to the caller as the vendor's own
    bytes with the cost spliced into its usage, nested details and all; any answer's bytes read back as the answer.
    """
    result = adapter.parse_response(interaction.body, target(_provider_for(name)), {"model": "route", "messages": []})
    if name.startswith("openai__"):
        assert isinstance(result, RawAnswer)
    if result.get("usage"):
        result["usage"]["cost"] = 0.000125
    sent = result.to_bytes() if isinstance(result, RawAnswer) else dumps(result)
    assert json.loads(sent) == result
    if isinstance(result, RawAnswer) and result.get("usage"):
        assert sent.replace(b'"cost":0.000125,', b"", 1) == interaction.body


def test_an_answer_with_a_second_usage_object_is_encoded_not_spliced() -> None:
    """Groq's ``x_groq`` may carry a ``usage`` of its own: the cost must land in the top-level one."""
    raw = (
        b'{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":'
        b'{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"x_groq":{"id":"r","usage":{"queue_time":0.1}},'
        b'"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}'
    )
    result = adapter.parse_response(raw, target("groq"), {"model": "route", "messages": []})
    assert isinstance(result, RawAnswer)
    result["usage"]["cost"] = 0.5
    sent = json.loads(result.to_bytes())
    assert sent["usage"]["cost"] == 0.5 and "cost" not in sent["x_groq"]["usage"]


STREAMS = [p for p in INTERACTIONS if p[1].status == 200 and _is_stream(p[1])]


@pytest.mark.parametrize("split", [1, 7, 13, 1 << 20])
@pytest.mark.parametrize(("name", "interaction"), STREAMS, ids=lambda v: v if isinstance(v, str) else "")
def test_recorded_streams(name: str, interaction: Interaction, split: int) -> None:
    native = _native_chunks(interaction.body)
    in_band_error = any("error" in c and "choices" not in c for c in native)
    t = target(_provider_for(name))
    decoder = adapter.stream_decoder()
    translator = adapter.stream_translator(
        t, {"model": "route", "messages": [], "stream": True, "stream_options": {"include_usage": True}}
    )
    out: list[dict[str, Any]] = []

    def run() -> None:
        body = interaction.body
        for i in range(0, len(body), split):
            for event in decoder.feed(body[i : i + split]):
                out.extend(json.loads(c) if isinstance(c, bytes) else c for c in translator.feed(event))
        for event in decoder.flush():
            out.extend(json.loads(c) if isinstance(c, bytes) else c for c in translator.feed(event))
        translator.finish()

    if in_band_error:
        with pytest.raises(UpstreamStatusError):
            run()
        return
    run()
    ours, theirs = _aggregate(out), _aggregate(native)
    assert {k: v for k, v in ours.items() if k != "ids"} == {k: v for k, v in theirs.items() if k != "ids"}
    assert all(ours["ids"])


@pytest.mark.parametrize(
    ("name", "interaction"),
    [p for p in INTERACTIONS if p[1].status >= 400],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_recorded_errors(name: str, interaction: Interaction) -> None:
    t = target(_provider_for(name))
    error = adapter.classify_error(interaction.status, interaction.headers, interaction.body, t)
    assert error.status == (503 if interaction.status == 529 else interaction.status)
    try:
        native_message = interaction.json().get("error", {}).get("message")
    except (ValueError, AttributeError):
        native_message = None
    if isinstance(native_message, str):
        assert native_message[:40] in error.message
    if interaction.status == 429:
        assert error.error_type and error.status == 429


@pytest.mark.parametrize("vendor", ["openai", "groq", "mistral"])
def test_recorded_context_window_errors_are_tagged(vendor: str) -> None:
    """Each vendor words it differently; the router needs one code (and LangChain the phrase) to act on it."""
    path = FIXTURES / "openai_compatible" / f"{vendor}__pydantic-ai__test_context_window_exceeded.yaml.gz"
    (interaction,) = load_cassette(path)
    error = adapter.classify_error(interaction.status, interaction.headers, interaction.body, target(vendor))
    assert error.status == 400
    assert error.code == "context_length_exceeded"
    assert "context_length_exceeded" in error.message


def test_context_window_error_is_tagged() -> None:
    t = target("openai")
    body = json.dumps(
        {
            "error": {
                "message": "This model's maximum context length is 8192 tokens",
                "type": "invalid_request_error",
                "code": "context_length_exceeded",
            }
        }
    ).encode()
    error = adapter.classify_error(400, {}, body, t)
    assert error.code == "context_length_exceeded" and "context_length_exceeded" in error.message


def test_stream_cut_before_finish_raises() -> None:
    t = target("openai")
    translator = adapter.stream_translator(t, {"model": "route", "messages": [], "stream": True})
    decoder = adapter.stream_decoder()
    for event in decoder.feed(b'data: {"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}\n\n'):
        translator.feed(event)
    with pytest.raises(StreamInterruptedError):
        translator.finish()


def test_fixture_files_exist() -> None:
    assert len(CASSETTES) > 40
    assert len(STREAMS) >= 8
    assert Path(FIXTURES / "README.md").is_file()
