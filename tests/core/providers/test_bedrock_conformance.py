"""Every Bedrock recording in tests/fixtures/bedrock/ (copied from the shared corpus), replayed.

- answers: text, reasoning (signatures kept as ``thinking_blocks``), tool calls, finish reason and usage equal what
  the ConverseResponse says; recorded ConverseStream bodies (binary event streams) decode to the same whether fed
  whole or re-split every 1, 7 and 13 bytes;
- errors: each recorded error maps to its OpenAI status and retryability;
- the emulator: accepts every request Bedrock accepted, and words its refusals as Bedrock's recorded errors do.

Expectations are computed here from the native bodies (streams through a frame parser of this file), not by the
adapter.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from polyroute import Router
from polyroute._sse import SSEEvent
from polyroute.providers import bedrock
from polyroute.providers._base import Target
from tests.core.providers.test_anthropic_convert import accumulate
from tests.emulators import bedrock_format as br

INTERACTIONS = [i for name in br.fixture_names() for i in br.load(name)]
ANSWERS = [i for i in INTERACTIONS if i.status == 200 and isinstance(i.body, dict) and "output" in i.body]
STREAMS = [i for i in INTERACTIONS if i.status == 200 and i.raw is not None]
EVENT_STREAMS = [i for i in INTERACTIONS if i.events is not None]
ERRORS = [i for i in INTERACTIONS if i.status >= 400]
ACCEPTED = [i for i in INTERACTIONS if i.status == 200 and i.request is not None]

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


def ids(items: list[br.Interaction]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for item in items:
        seen[item.name] = seen.get(item.name, 0) + 1
        out.append(f"{item.name}#{seen[item.name]}")
    return out


def target(model: str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0") -> Target:
    config = {"provider": "bedrock", "model": model or "us.amazon.nova-micro-v1:0", "api_key": br.API_KEY}
    return Router({"models": [{"name": "b", "deployments": [config]}]}).route("b").targets[0]


def expected(content: list[dict[str, Any]], stop: str, usage: dict[str, Any]) -> dict[str, Any]:
    """What the completion must say, read off the native blocks."""
    calls = [b["toolUse"] for b in content if "toolUse" in b]
    reasoning = [b["reasoningContent"] for b in content if "reasoningContent" in b]
    return {
        "content": "".join(b["text"] for b in content if "text" in b),
        "reasoning": "".join(r["reasoningText"]["text"] for r in reasoning if "reasoningText" in r),
        "signatures": [r["reasoningText"].get("signature", "") for r in reasoning if "reasoningText" in r],
        "redacted": [r["redactedContent"] for r in reasoning if "redactedContent" in r],
        "calls": [(c["name"], c["input"]) for c in calls],
        "finish": _FINISH.get(stop, "tool_calls" if calls else "stop"),
        "prompt": usage.get("inputTokens", 0)
        + usage.get("cacheReadInputTokens", 0)
        + usage.get("cacheWriteInputTokens", 0),
        "completion": usage.get("outputTokens", 0),
        "cached": usage.get("cacheReadInputTokens", 0),
    }


@pytest.mark.parametrize("item", ANSWERS, ids=ids(ANSWERS))
def test_recorded_answer(item: br.Interaction) -> None:
    body = item.body
    want = expected(body["output"]["message"]["content"], body["stopReason"], body.get("usage") or {})
    completion = bedrock.parse_response(json.dumps(body).encode(), target(item.model), {"model": "b", "messages": []})
    message = completion["choices"][0]["message"]
    assert (message.get("content") or "") == want["content"]
    assert (message.get("reasoning_content") or "") == want["reasoning"]
    blocks = message.get("thinking_blocks") or []
    assert [b["signature"] for b in blocks if b["type"] == "thinking"] == want["signatures"]
    assert [b["data"] for b in blocks if b["type"] == "redacted_thinking"] == want["redacted"]
    calls = [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message.get("tool_calls") or []]
    assert calls == want["calls"]
    assert completion["choices"][0]["finish_reason"] == want["finish"]
    usage = completion["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (want["prompt"], want["completion"])
    assert (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0) == want["cached"]


def parse_frames(raw: bytes) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """An independent event-stream reader: prelude lengths, string headers, JSON payload (CRCs not checked)."""
    out = []
    position = 0
    while position < len(raw):
        total, header_length = struct.unpack(">II", raw[position : position + 8])
        headers_raw = raw[position + 12 : position + 12 + header_length]
        headers: dict[str, str] = {}
        i = 0
        while i < len(headers_raw):
            name_length = headers_raw[i]
            name = headers_raw[i + 1 : i + 1 + name_length].decode()
            i += 1 + name_length + 1  # the value type byte (7, string)
            (value_length,) = struct.unpack(">H", headers_raw[i : i + 2])
            headers[name] = headers_raw[i + 2 : i + 2 + value_length].decode()
            i += 2 + value_length
        payload = raw[position + 12 + header_length : position + total - 4]
        out.append((headers, json.loads(payload)))
        position += total
    return out


def expected_from_events(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    blocks: dict[int, dict[str, Any]] = {}
    stop, usage = "end_turn", {}
    for name, data in events:
        if name == "contentBlockStart" and "toolUse" in data["start"]:
            start = data["start"]["toolUse"]
            blocks[data["contentBlockIndex"]] = {"toolUse": {"name": start["name"], "input": ""}}
        elif name == "contentBlockDelta":
            delta, block = data["delta"], blocks.setdefault(data["contentBlockIndex"], {})
            if "text" in delta:
                block["text"] = block.get("text", "") + delta["text"]
            elif "toolUse" in delta:
                block["toolUse"]["input"] += delta["toolUse"]["input"]
            elif "redactedContent" in delta.get("reasoningContent", {}):
                block["reasoningContent"] = {"redactedContent": delta["reasoningContent"]["redactedContent"]}
            else:
                text = block.setdefault("reasoningContent", {"reasoningText": {"text": "", "signature": ""}})
                text["reasoningText"]["text"] += delta["reasoningContent"].get("text", "")
                text["reasoningText"]["signature"] += delta["reasoningContent"].get("signature", "")
        elif name == "messageStop":
            stop = data["stopReason"]
        elif name == "metadata":
            usage = data["usage"]
    content = [blocks[i] for i in sorted(blocks)]
    for block in content:
        if "toolUse" in block:
            block["toolUse"]["input"] = json.loads(block["toolUse"]["input"] or "{}")
    return expected(content, stop, usage)


def run_stream(raw: bytes, t: Target, step: int) -> dict[str, Any]:
    decoder = bedrock.stream_decoder()
    translator = bedrock.stream_translator(t, {"model": "b", "messages": [], "stream_options": {"include_usage": True}})
    chunks: list[Any] = []
    for i in range(0, len(raw), step):
        for event in decoder.feed(raw[i : i + step]):
            chunks += translator.feed(event)
    chunks += translator.finish()
    return accumulate(chunks)


def check_stream(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["content"] == want["content"]
    assert got["reasoning"] == want["reasoning"]
    assert [b["signature"] for b in got["thinking_blocks"] if b["type"] == "thinking"] == want["signatures"]
    assert [b["data"] for b in got["thinking_blocks"] if b["type"] == "redacted_thinking"] == want["redacted"]
    calls = [(c["name"], json.loads(c["arguments"] or "{}")) for c in got["tool_calls"].values()]
    assert calls == want["calls"]
    assert got["finish_reason"] == want["finish"] and got["finishes"] == 1 and got["roles"] == 1
    if want["prompt"] or want["completion"]:
        assert (got["usage"]["prompt_tokens"], got["usage"]["completion_tokens"]) == (
            want["prompt"],
            want["completion"],
        )


@pytest.mark.parametrize("item", STREAMS, ids=ids(STREAMS))
def test_recorded_event_stream_at_any_split(item: br.Interaction) -> None:
    assert item.raw is not None
    frames = parse_frames(item.raw)
    assert all(h[":message-type"] == "event" for h, _ in frames)
    want = expected_from_events([(h[":event-type"], p) for h, p in frames])
    t = target(item.model)
    whole = run_stream(item.raw, t, len(item.raw))
    check_stream(whole, want)
    for step in (1, 7, 13):
        assert run_stream(item.raw, t, step) == whole


@pytest.mark.parametrize("item", EVENT_STREAMS, ids=ids(EVENT_STREAMS))
def test_recorded_decoded_events(item: br.Interaction) -> None:
    assert item.events is not None
    pairs = [next(iter(e.items())) for e in item.events]
    want = expected_from_events(pairs)
    translator = bedrock.stream_translator(
        target(), {"model": "b", "messages": [], "stream_options": {"include_usage": True}}
    )
    chunks: list[Any] = []
    for name, data in pairs:
        chunks += translator.feed(SSEEvent(name, json.dumps(data)))
    chunks += translator.finish()
    check_stream(accumulate(chunks), want)


@pytest.mark.parametrize("item", ERRORS, ids=ids(ERRORS))
def test_recorded_error(item: br.Interaction) -> None:
    content = json.dumps(item.body).encode()
    error = bedrock.classify_error(item.status, item.headers, content, target(item.model))
    assert error.status == item.status
    assert error.retryable == (item.status >= 500 or item.status == 429)
    assert item.body["message"] in error.message


@pytest.mark.parametrize("item", ACCEPTED, ids=ids(ACCEPTED))
def test_emulator_accepts_what_bedrock_accepted(item: br.Interaction) -> None:
    assert item.request is not None
    assert br.check_request(item.request, item.model) is None


def _recorded(name: str) -> str:
    return br.load(name)[0].body["message"]


def _user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def _assistant(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


TOOLS = {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}]}


@pytest.mark.parametrize(
    ("name", "body", "model"),
    [
        (
            "vercel-ai__amazon-bedrock-empty-message-validation-error.json",
            {"messages": [_user({"text": "hi"}), _assistant()]},
            "us.amazon.nova-2-lite-v1:0",
        ),
        (
            "vercel-ai__issue-7830-empty-assistant-content-error.json",
            {"messages": [_user({"text": "hi"}), _assistant(), _user({"text": "again"})]},
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        ),
        (
            "vercel-ai__issue-7034-error.json",
            {"messages": [_user({"reasoningContent": {"reasoningText": {"text": "x", "signature": "s"}}})]},
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        ),
        (
            "vercel-ai__bedrock-invalid-tool-name-validation-error.json",
            {
                "messages": [
                    _user({"text": "hi"}),
                    _assistant({"toolUse": {"toolUseId": "t1", "name": "bad.name", "input": {}}}),
                    _user({"toolResult": {"toolUseId": "t1", "content": [{"text": "done"}]}}),
                ],
                "toolConfig": TOOLS,
            },
            "us.amazon.nova-2-lite-v1:0",
        ),
        (
            "vercel-ai__amazon-bedrock-issue-11227-opus-4-5-error.json",
            {
                "messages": [_user({"text": "hi"})],
                "toolConfig": {**TOOLS, "toolChoice": {"any": {}}},
                "inferenceConfig": {"maxTokens": 4000},
                "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}},
            },
            "us.anthropic.claude-opus-4-5-20251101-v1:0",
        ),
    ],
)
def test_emulator_refuses_as_bedrock_did(name: str, body: dict[str, Any], model: str) -> None:
    assert br.check_request(body, model) == _recorded(name)


def test_emulator_refuses_unknown_members_and_bad_blobs() -> None:
    assert "extraneous key [stream]" in (
        br.check_request({"messages": [_user({"text": "x"})], "stream": True}, "m") or ""
    )
    image = {"image": {"format": "png", "source": {"bytes": "not base64!"}}}
    assert "base64" in (br.check_request({"messages": [_user(image)]}, "m") or "")
