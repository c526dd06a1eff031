"""Cohere v2 chat: every recorded answer and stream in tests/fixtures/cohere/, the emulator calibrated on the recorded
requests, and end to end through the openai SDK (tools, documents and citations, thinking, errors).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest

from polyroute import Router
from polyroute.providers import cohere
from polyroute.providers._base import Target
from tests.core.providers.test_anthropic_convert import accumulate
from tests.emulators import Emulator, Reply
from tests.emulators import cohere_format as co
from tests.emulators.server import Handler

Start = Callable[[Handler], Emulator]
INTERACTIONS = [i for name in co.fixture_names() for i in co.load(name)]
ANSWERS = [i for i in INTERACTIONS if i.status == 200 and i.body is not None]
STREAMS = [i for i in INTERACTIONS if i.sse is not None]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
_FINISH = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length", "TOOL_CALL": "tool_calls"}


def ids(items: list[co.Interaction]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for item in items:
        seen[item.name] = seen.get(item.name, 0) + 1
        out.append(f"{item.name}#{seen[item.name]}")
    return out


def target(model: str = "command-a-03-2025") -> Target:
    config = {"provider": "cohere", "model": model, "api_key": co.KEY}
    return Router({"models": [{"name": "c", "deployments": [config]}]}).route("c").targets[0]


def expected(message: dict[str, Any], finish: str, usage: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content") or []
    text = "".join(b["text"] for b in content if b["type"] == "text") or message.get("tool_plan") or ""
    return {
        "content": text,
        "reasoning": "".join(b["thinking"] for b in content if b["type"] == "thinking"),
        "calls": [
            (c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message.get("tool_calls") or []
        ],
        "finish": _FINISH[finish],
        "usage": (usage["tokens"]["input_tokens"], usage["tokens"]["output_tokens"]),
        "citations": [(c["start"], c["end"]) for c in message.get("citations") or []],
    }


@pytest.mark.parametrize("item", ANSWERS, ids=ids(ANSWERS))
def test_recorded_answer(item: co.Interaction) -> None:
    want = expected(item.body["message"], item.body["finish_reason"], item.body["usage"])
    completion = cohere.parse_response(json.dumps(item.body).encode(), target(), {"model": "c", "messages": []})
    message: Any = completion["choices"][0]["message"]
    assert (message.get("content") or "") == want["content"]
    assert (message.get("reasoning_content") or "") == want["reasoning"]
    calls = [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message.get("tool_calls") or []]
    assert calls == want["calls"]
    assert completion["choices"][0]["finish_reason"] == want["finish"]
    usage = completion["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == want["usage"]
    spans = [
        (a["url_citation"]["start_index"], a["url_citation"]["end_index"]) for a in message.get("annotations") or []
    ]
    assert spans == want["citations"]


def _expected_from_sse(sse: str) -> dict[str, Any]:
    """Read the recorded events independently: the text, plan, calls, finish and usage they add up to."""
    message: dict[str, Any] = {"content": [{"type": "text", "text": ""}], "tool_plan": "", "tool_calls": []}
    finish, usage = "COMPLETE", {}
    for line in sse.splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        event = json.loads(line[6:])
        delta = (event.get("delta") or {}).get("message") or {}
        match event["type"]:
            case "content-delta":
                message["content"][0]["text"] += delta["content"].get("text", "")
            case "tool-plan-delta":
                message["tool_plan"] += delta["tool_plan"]
            case "tool-call-start":
                message["tool_calls"].append(json.loads(json.dumps(delta["tool_calls"])))
            case "tool-call-delta":
                message["tool_calls"][-1]["function"]["arguments"] += delta["tool_calls"]["function"]["arguments"]
            case "message-end":
                finish, usage = event["delta"]["finish_reason"], event["delta"]["usage"]
            case _:
                pass
    if not message["content"][0]["text"]:
        message["content"] = []
    return expected(message, finish, usage)


def run_stream(raw: bytes, step: int) -> dict[str, Any]:
    decoder = cohere.stream_decoder()
    body: Any = {"model": "c", "messages": [], "stream_options": {"include_usage": True}}
    translator = cohere.stream_translator(target(), body)
    chunks: list[Any] = []
    for i in range(0, len(raw), step):
        for event in decoder.feed(raw[i : i + step]):
            chunks += translator.feed(event)
    for event in decoder.flush():
        chunks += translator.feed(event)
    chunks += translator.finish()
    return accumulate(chunks)


@pytest.mark.parametrize("item", STREAMS, ids=ids(STREAMS))
def test_recorded_stream_at_any_split(item: co.Interaction) -> None:
    assert item.sse is not None
    want = _expected_from_sse(item.sse)
    raw = item.sse.encode()
    whole = run_stream(raw, len(raw))
    assert whole["content"] == want["content"]
    calls = [(c["name"], json.loads(c["arguments"])) for c in whole["tool_calls"].values()]
    assert calls == want["calls"]
    assert whole["finish_reason"] == want["finish"] and whole["finishes"] == 1
    assert (whole["usage"]["prompt_tokens"], whole["usage"]["completion_tokens"]) == want["usage"]
    for step in (1, 7, 13):
        assert run_stream(raw, step) == whole


@pytest.mark.parametrize(
    "item", [i for i in INTERACTIONS if i.status == 200], ids=ids([i for i in INTERACTIONS if i.status == 200])
)
def test_emulator_accepts_what_cohere_accepted(item: co.Interaction) -> None:
    assert co.check_request(item.request) is None


# -- end to end ---------------------------------------------------------------------------------------------------


def router(emu: Emulator, **extra: Any) -> Router:
    d = {"provider": "cohere", "model": "command-a-03-2025", "api_base": emu.url, "api_key": co.KEY, **extra}
    return Router({"models": [{"name": "c", "deployments": [d]}], "retry": {"backoff": 0}})


def test_tool_loop_with_plan_and_citations(emulator: Start) -> None:
    citation = {
        "start": 24,
        "end": 29,
        "text": "sunny",
        "type": "TEXT_CONTENT",
        "sources": [{"type": "tool", "id": "get_weather_emu0:0", "tool_output": {"content": "Sunny"}}],
    }
    script = co.Scripted(
        [
            co.response(calls=[("get_weather", {"city": "Paris"})], plan="I will look it up."),
            co.response("The weather in Paris is sunny.", citations=[citation]),
        ]
    )
    emu = emulator(script)
    client = router(emu).openai_client()
    messages: list[Any] = [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Weather?"}]
    first = client.chat.completions.create(model="c", messages=messages, tools=[WEATHER], tool_choice="required")
    message = first.choices[0].message
    assert message.content == "I will look it up." and first.choices[0].finish_reason == "tool_calls"
    assert script.bodies[0]["tool_choice"] == "REQUIRED" and script.bodies[0]["messages"][0]["role"] == "system"
    messages += [
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "Sunny"},
    ]  # type: ignore[index]
    second = client.chat.completions.create(model="c", messages=messages, tools=[WEATHER])
    assert second.choices[0].message.content == "The weather in Paris is sunny."
    annotations: Any = second.choices[0].message.annotations
    assert annotations[0].url_citation.start_index == 24 and annotations[0].url_citation.title == "get_weather_emu0:0"
    sent = script.bodies[1]["messages"][2]
    assert sent == {
        "role": "assistant",
        "tool_calls": [json.loads(json.dumps(message.tool_calls[0].model_dump()))],  # type: ignore[index]
        "tool_plan": "I will look it up.",
    }


async def test_async_stream_with_thinking_and_usage(emulator: Start) -> None:
    emu = emulator(co.Scripted([co.response("Forty-two.", thinking="Let me think.")]))
    client = router(emu, model="command-a-reasoning-08-2025").async_openai_client()
    stream = await client.chat.completions.create(
        model="c",
        messages=[{"role": "user", "content": "Answer?"}],
        reasoning_effort="low",
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices)
    assert (text, reasoning) == ("Forty-two.", "Let me think.")
    usage = chunks[-1].usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (90, 6)
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 40


def test_knobs_documents_and_refusals(emulator: Start) -> None:
    script = co.Scripted([co.response("ok")])
    emu = emulator(script)
    client = router(emu).openai_client(max_retries=0)
    documents = [{"id": "doc1", "data": {"title": "Paris", "text": "Paris is sunny."}}]
    client.chat.completions.create(
        model="c",
        messages=[{"role": "user", "content": "hi"}],
        max_completion_tokens=20,
        top_p=0.5,
        stop="END",
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        extra_body={"documents": documents},
    )
    body = script.bodies[0]
    assert (body["max_tokens"], body["p"], body["stop_sequences"]) == (20, 0.5, ["END"])
    assert body["response_format"] == {"type": "json_object", "json_schema": {"type": "object"}}
    assert body["documents"] == documents and body["stream"] is False
    with pytest.raises(openai.BadRequestError, match="logit_bias"):
        client.chat.completions.create(model="c", messages=[{"role": "user", "content": "hi"}], logit_bias={"1": 1})


def test_rate_limit_and_bad_key(emulator: Start) -> None:
    emu = emulator(
        co.Scripted([co.error(429, "You are using a Trial key, which is limited to 10 API calls / minute.")])
    )
    with pytest.raises(openai.RateLimitError, match="Trial key"):
        router(emu).openai_client(max_retries=0).chat.completions.create(
            model="c", messages=[{"role": "user", "content": "hi"}]
        )
    emu2 = emulator(co.Scripted([co.response("never")]))
    with pytest.raises(openai.AuthenticationError, match="invalid api token"):
        router(emu2, api_key="co-wrong-key-0123456789").openai_client(max_retries=0).chat.completions.create(
            model="c", messages=[{"role": "user", "content": "hi"}]
        )


def test_cut_stream_is_an_error(emulator: Start) -> None:
    sse = co.stream_events(co.response("a long answer that is cut"))
    cut = sse[: sse.index("event: message-end")]
    emu = emulator(co.Scripted([Reply(chunks=[cut.encode()], headers={"content-type": "text/event-stream"})]))
    stream = (
        router(emu)
        .openai_client(max_retries=0)
        .chat.completions.create(model="c", messages=[{"role": "user", "content": "hi"}], stream=True)
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
