"""Gemini conformance: every Gemini capture in tests/fixtures/gemini (copies of ../shared/corpus/gemini) replayed.

Each recorded ``generateContent`` / ``streamGenerateContent`` response is translated streamed (its SSE bytes re-split
at odd boundaries, down to one byte) and not (the stream merged into one response), directly through the adapter and
through the real transport against a loopback emulator; text, reasoning, tool calls, finish reason and usage must
match what the native response says. Recorded error bodies must map to the right status.

The simonw/llm-gemini cassettes were recorded without ``alt=sse`` (a JSON array of responses); polyroute always asks
for SSE, so these tests read the array as the sequence of events it is and serve it as SSE.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from polyroute import Router
from polyroute.errors import UpstreamStatusError
from polyroute.providers import gemini
from polyroute.providers._base import Target
from tests.corpus import FIXTURES, load_cassette
from tests.emulators.gemini_format import merged, replay, split, sse_body

DIR = FIXTURES / "gemini"

# What each finishReason must become (the table); STOP becomes tool_calls when the answer has calls.
FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter", "RECITATION": "content_filter"}

# Vertex AI streams these arguments in partialArgs pieces; the whole calls, as the recording spells them out.
PARTIAL_ARGS_CALLS = [("getWeather", {"location": "Boston"}), ("getWeather", {"location": "San Francisco"})]


@dataclass
class Capture:
    """One recorded Gemini answer."""

    name: str
    status: int
    events: list[dict[str, Any]]
    raw_sse: bytes | None = None
    error: bytes | None = None


def _sse_events(raw: bytes) -> list[dict[str, Any]]:
    return [
        json.loads(line[6:]) for line in raw.decode().replace("\r\n", "\n").split("\n") if line.startswith("data: ")
    ]


def captures() -> list[Capture]:
    out: list[Capture] = []
    for path in sorted(DIR.iterdir()):
        if path.suffix == ".yaml":
            for i, item in enumerate(load_cassette(path)):
                if "Content" not in item.uri.rsplit(":", 1)[-1]:  # not generateContent (file uploads, downloads)
                    continue
                name = f"{path.stem}#{i}"
                if item.status >= 400:
                    out.append(Capture(name, item.status, [], error=item.body))
                elif item.body.lstrip().startswith(b"data:"):
                    out.append(Capture(name, 200, _sse_events(item.body), raw_sse=item.body))
                else:
                    data = item.json()
                    out.append(Capture(name, 200, data if isinstance(data, list) else [data]))
        elif path.name.endswith(".chunks.txt"):
            lines = path.read_text(encoding="utf-8").splitlines()
            out.append(Capture(path.name, 200, [json.loads(line) for line in lines if line.strip()]))
        elif path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if "error" in data:
                out.append(Capture(path.name, int(data["error"]["code"]), [], error=path.read_bytes()))
            else:
                out.append(Capture(path.name, 200, [data]))
    return out


CAPTURES = captures()
OK = [c for c in CAPTURES if c.status == 200]
ERRORS = [c for c in CAPTURES if c.status != 200]


def test_every_fixture_is_used() -> None:
    names = {c.name.split("#")[0] for c in CAPTURES}
    files = {p.stem if p.suffix == ".yaml" else p.name for p in DIR.iterdir()}
    assert files == names
    assert len(OK) >= 30 and len(ERRORS) >= 6


# -- what the native response says ------------------------------------------------------------------------------


def native_expectation(capture: Capture) -> dict[str, Any]:
    text, reasoning, calls, finish, usage, signatures = "", "", [], None, None, []
    for event in capture.events:
        meta = event.get("usageMetadata") or {}
        if "promptTokenCount" in meta or "candidatesTokenCount" in meta:
            usage = meta
        for candidate in event.get("candidates") or ():
            assert candidate.get("index", 0) == 0  # the corpus has single-candidate answers only
            for part in (candidate.get("content") or {}).get("parts") or ():
                if "text" in part:
                    if part.get("thought"):
                        reasoning += part["text"]
                    else:
                        text += part["text"]
                fc = part.get("functionCall")
                if fc and "args" in fc:
                    calls.append((fc["name"], fc["args"]))
                    signatures.append(part.get("thoughtSignature"))
            finish = candidate.get("finishReason") or finish
    if "stream-tool-call-arguments" in capture.name:
        calls = PARTIAL_ARGS_CALLS
        signatures = [capture.events[0]["candidates"][0]["content"]["parts"][0]["thoughtSignature"], None]
    expected_finish = FINISH[finish] if finish else None
    if expected_finish == "stop" and calls:
        expected_finish = "tool_calls"
    expected_usage = None
    if usage is not None:
        prompt = usage.get("promptTokenCount", 0) + usage.get("toolUsePromptTokenCount", 0)
        completion = usage.get("candidatesTokenCount", 0) + usage.get("thoughtsTokenCount", 0)
        expected_usage = (
            prompt,
            completion,
            usage.get("thoughtsTokenCount", 0),
            usage.get("cachedContentTokenCount", 0),
        )
    return {
        "text": text,
        "reasoning": reasoning,
        "calls": calls,
        "signatures": signatures,
        "finish": expected_finish,
        "usage": expected_usage,
    }


def usage_tuple(usage: dict[str, Any] | None) -> tuple[int, int, int, int] | None:
    if usage is None:
        return None
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    return (
        usage["prompt_tokens"],
        usage["completion_tokens"],
        (usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0),
        (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0),
    )


def check(capture: Capture, got: dict[str, Any]) -> None:
    want = native_expectation(capture)
    assert got["text"] == want["text"]
    assert got["reasoning"] == want["reasoning"]
    assert [(c["name"], json.loads(c["arguments"])) for c in got["calls"]] == want["calls"]
    for call, signature in zip(got["calls"], want["signatures"], strict=True):
        assert call["signature"] == signature
        assert gemini.split_tool_call_id(call["id"])[1] == signature
    assert got["finish"] == want["finish"]
    assert got["usage"] == want["usage"]


# -- through the adapter ----------------------------------------------------------------------------------------


def target(model: str = "gemini-3-flash-preview") -> Target:
    router = Router(
        {
            "models": [
                {
                    "name": "g",
                    "deployments": [
                        {
                            "provider": "gemini",
                            "model": model,
                            "api_key": "g-key-1234",
                            "api_base": "http://127.0.0.1:1",
                        }
                    ],
                }
            ]
        }
    )
    return router.route("g").targets[0]


BODY: dict[str, Any] = {"model": "g", "messages": [{"role": "user", "content": "hi"}]}


def from_completion(completion: dict[str, Any]) -> dict[str, Any]:
    choice = completion["choices"][0]
    message = choice["message"]
    calls = [
        {
            "id": c["id"],
            "name": c["function"]["name"],
            "arguments": c["function"]["arguments"],
            "signature": (c.get("provider_specific_fields") or {}).get("thought_signature"),
        }
        for c in message.get("tool_calls") or ()
    ]
    return {
        "text": message.get("content") or "",
        "reasoning": message.get("reasoning_content") or "",
        "calls": calls,
        "finish": choice["finish_reason"],
        "usage": usage_tuple(completion.get("usage")),
    }


def from_chunks(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    text, reasoning, finish, usage = "", "", None, None
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text += delta.get("content") or ""
            reasoning += delta.get("reasoning_content") or ""
            for tc in delta.get("tool_calls") or ():
                call = calls.setdefault(tc["index"], {"id": None, "name": "", "arguments": "", "signature": None})
                call["id"] = tc.get("id") or call["id"]
                function = tc.get("function") or {}
                call["name"] += function.get("name") or ""
                call["arguments"] += function.get("arguments") or ""
                call["signature"] = (tc.get("provider_specific_fields") or {}).get("thought_signature") or call[
                    "signature"
                ]
            if choice.get("finish_reason"):
                assert finish is None, "finish_reason sent twice"
                finish = choice["finish_reason"]
    return {
        "text": text,
        "reasoning": reasoning,
        "calls": [calls[i] for i in sorted(calls)],
        "finish": finish,
        "usage": usage_tuple(usage),
    }


def translate_stream(data: bytes, size: int) -> list[dict[str, Any]]:
    decoder = gemini.stream_decoder()
    translator = gemini.stream_translator(target(), {**BODY, "stream": True, "stream_options": {"include_usage": True}})
    out: list[dict[str, Any]] = []
    for piece in split(data, size):
        for event in decoder.feed(piece):
            out.extend(translator.feed(event))  # type: ignore[arg-type]
    for event in decoder.flush():
        out.extend(translator.feed(event))  # type: ignore[arg-type]
    out.extend(translator.finish())  # type: ignore[arg-type]
    return out


@pytest.mark.parametrize("capture", OK, ids=lambda c: c.name)
def test_non_stream_matches_native(capture: Capture) -> None:
    body = json.dumps(merged(capture.events)).encode()
    completion = gemini.parse_response(body, target(), BODY)  # type: ignore[arg-type]
    check(capture, from_completion(completion))  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [1, 3, 7, 64, 100_000])
@pytest.mark.parametrize("capture", OK, ids=lambda c: c.name)
def test_stream_matches_native_at_any_split(capture: Capture, size: int) -> None:
    data = capture.raw_sse if capture.raw_sse is not None else sse_body(capture.events)
    chunks = translate_stream(data, size)
    check(capture, from_chunks(chunks))


@pytest.mark.parametrize("capture", OK, ids=lambda c: c.name)
def test_stream_and_non_stream_give_the_same_tool_call_ids(capture: Capture) -> None:
    data = capture.raw_sse if capture.raw_sse is not None else sse_body(capture.events)
    streamed = from_chunks(translate_stream(data, 5))
    whole = from_completion(gemini.parse_response(json.dumps(merged(capture.events)).encode(), target(), BODY))  # type: ignore[arg-type]
    assert [c["id"] for c in streamed["calls"]] == [c["id"] for c in whole["calls"]]


def test_a_recorded_stream_cut_before_its_finish_reason_is_an_error() -> None:
    capture = next(c for c in OK if c.name.startswith("pydantic-ai__test_google_model_stream"))
    assert capture.raw_sse is not None
    cut = capture.raw_sse[: capture.raw_sse.rindex(b"data: ")]
    from polyroute.errors import StreamInterruptedError

    with pytest.raises(StreamInterruptedError, match="without a finishReason"):
        translate_stream(cut, 11)


# -- errors -----------------------------------------------------------------------------------------------------

ERROR_STATUS = {
    "vercel-ai__google-429-retry-info.json": (429, 34.4),
    "pydantic-ai__test_google_model_file_search_tool#3": (503, None),
    "pydantic-ai__test_google_recursive_schema_native_output_gemini_2_5#0": (500, None),
    "pydantic-ai__test_google_model_video_url_detail#0": (400, None),
    "pydantic-ai__test_image_as_binary_content_tool_response#0": (401, None),  # 400 API_KEY_INVALID: the key
    "pydantic-ai__test_model_name_suggestion[google]#0": (404, None),
}


@pytest.mark.parametrize("capture", ERRORS, ids=lambda c: c.name)
def test_recorded_errors_map_to_openai_statuses(capture: Capture) -> None:
    assert capture.error is not None
    error = gemini.classify_error(capture.status, {}, capture.error, target())
    status, retry_after = ERROR_STATUS[capture.name]
    assert isinstance(error, UpstreamStatusError)
    assert error.status == status
    assert error.retry_after == retry_after
    assert error.retryable == (status >= 500 or status == 429)
    native = json.loads(capture.error)["error"]["message"]
    assert native in error.message and error.deployment in error.message


# -- through the transport --------------------------------------------------------------------------------------


def _router(url: str, model: str = "gemini-3-flash-preview") -> Router:
    return Router(
        {
            "models": [
                {
                    "name": "g",
                    "deployments": [{"provider": "gemini", "model": model, "api_key": "g-key-1234", "api_base": url}],
                }
            ]
        }
    )


def _sdk_message(message: Any) -> dict[str, Any]:
    extra = message.model_extra or {}
    calls = []
    for call in message.tool_calls or ():
        fields = (call.model_extra or {}).get("provider_specific_fields") or {}
        calls.append(
            {
                "id": call.id,
                "name": call.function.name,
                "arguments": call.function.arguments,
                "signature": fields.get("thought_signature"),
            }
        )
    return {"text": message.content or "", "reasoning": extra.get("reasoning_content") or "", "calls": calls}


@pytest.mark.parametrize("capture", OK, ids=lambda c: c.name)
def test_replayed_through_the_transport(capture: Capture, emulator: Any) -> None:
    emu = emulator(replay(capture.events, raw_sse=capture.raw_sse, chunk_size=7))
    client = _router(emu.url).openai_client()
    completion = client.chat.completions.create(model="g", messages=[{"role": "user", "content": "hi"}])
    got = _sdk_message(completion.choices[0].message)
    got["finish"] = completion.choices[0].finish_reason
    got["usage"] = usage_tuple(completion.usage.model_dump(exclude_none=True)) if completion.usage else None
    check(capture, got)

    stream = client.chat.completions.create(
        model="g", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk.model_dump(exclude_none=True) for chunk in stream]
    check(capture, from_chunks(chunks))
    assert all(r.headers["x-goog-api-key"] == "g-key-1234" and "key" not in r.query for r in emu.requests)


def test_fixture_dir_is_attributed() -> None:
    readme = (Path(FIXTURES) / "README.md").read_text(encoding="utf-8")
    assert "## gemini/" in readme
