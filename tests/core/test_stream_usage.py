"""Streamed usage leaves in OpenAI's shape from every provider.

OpenAI, asked with ``stream_options.include_usage``, puts ``"usage": null`` on every chunk and sends one last chunk
with ``"choices": []`` and the usage; unasked, no chunk has a usage field. Mistral and Groq put usage on the finish
chunk (Groq also under ``x_groq``), and the Anthropic and Gemini translators build their own chunks: whatever the
upstream does, the caller sees OpenAI's shape. Checked on every recorded stream, through the raw fast path and the
parsed path, and end to end through the openai SDK.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from polyroute import Router
from polyroute.providers import anthropic, gemini
from polyroute.providers import openai as adapter
from tests.core.providers.test_anthropic_conformance import STREAMS as ANTHROPIC_STREAMS
from tests.core.providers.test_anthropic_conformance import request_body, target_for
from tests.core.providers.test_gemini_conformance import BODY as GEMINI_BODY
from tests.core.providers.test_gemini_conformance import OK as GEMINI_OK
from tests.core.providers.test_gemini_conformance import sse_body
from tests.core.providers.test_gemini_conformance import target as gemini_target
from tests.core.test_openai_compatible import STREAMS, _native_chunks, _provider_for, target
from tests.emulators.server import Reply, Request

ASK = {"stream_options": {"include_usage": True}}


def _translate(module: Any, t: Any, body: dict[str, Any], raw: bytes) -> list[dict[str, Any]]:
    decoder = module.stream_decoder()
    translator = module.stream_translator(t, body)
    out: list[Any] = []
    for event in [*decoder.feed(raw), *decoder.flush()]:
        out += translator.feed(event)
    out += translator.finish()
    return [json.loads(c) if isinstance(c, bytes) else c for c in out]


def assert_openai_usage_shape(chunks: list[dict[str, Any]], asked: bool, usage: dict[str, Any] | None) -> None:
    """OpenAI's contract for ``include_usage``; ``usage`` is what the upstream reported (None: nothing)."""
    assert chunks
    if not asked:
        assert [c for c in chunks if "usage" in c] == []
        return
    if usage is None:
        assert all("usage" in c and c["usage"] is None for c in chunks)
        return
    (at,) = [i for i, c in enumerate(chunks) if c.get("usage")]
    last = chunks[at]
    assert last["choices"] == [] and last["usage"] == usage
    assert last["object"] == "chat.completion.chunk" and last["id"] and last["model"]
    rest = chunks[:at] + chunks[at + 1 :]
    assert [c for c in rest if "usage" not in c or c["usage"] is not None] == []
    assert not any(c["choices"] for c in chunks[at:])  # after it, only what OpenAI sends there (moderation)


def _native_usage(native: list[dict[str, Any]]) -> dict[str, Any] | None:
    found = None
    for chunk in native:
        found = chunk.get("usage") or (chunk.get("x_groq") or {}).get("usage") or found
    return found


OK_STREAMS = [p for p in STREAMS if not any("error" in c and "choices" not in c for c in _native_chunks(p[1].body))]


@pytest.mark.parametrize("asked", [True, False])
@pytest.mark.parametrize(("name", "interaction"), OK_STREAMS, ids=lambda v: v if isinstance(v, str) else "")
def test_openai_compatible_recorded_streams(name: str, interaction: Any, asked: bool) -> None:
    body = {"model": "route", "messages": [], "stream": True, **(ASK if asked else {})}
    chunks = _translate(adapter, target(_provider_for(name)), body, interaction.body)
    assert_openai_usage_shape(chunks, asked, _native_usage(_native_chunks(interaction.body)))


def test_recorded_family_covers_usage_on_the_finish_chunk() -> None:
    """The fixtures hold what this is about: usage on a chunk that also has choices (Mistral, Groq)."""
    vendors = set()
    for name, interaction in OK_STREAMS:
        for chunk in _native_chunks(interaction.body):
            if chunk.get("choices") and (chunk.get("usage") or (chunk.get("x_groq") or {}).get("usage")):
                vendors.add(name.split("__")[0])
    assert {"mistral"} <= vendors


GROQ_FINISH = (
    b'data: {"id":"chatcmpl-b6","object":"chat.completion.chunk","created":1770770843,"model":"llama-3.3-70b-versatile",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":null},"logprobs":null,"finish_reason":null}],'
    b'"x_groq":{"id":"req_01"}}\n\n'
    b'data: {"id":"chatcmpl-b6","object":"chat.completion.chunk","created":1770770843,"model":"llama-3.3-70b-versatile",'
    b'"choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-b6","object":"chat.completion.chunk","created":1770770843,"model":"llama-3.3-70b-versatile",'
    b'"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"x_groq":{"id":"req_01","usage":'
    b'{"prompt_tokens":210,"completion_tokens":15,"total_tokens":225}},"usage":{"prompt_tokens":210,'
    b'"completion_tokens":15,"total_tokens":225}}\n\n'
    b"data: [DONE]\n\n"
)
"""Groq's layout (tests/fixtures/openai_compatible has no streamed Groq answer without an error): the shape of the
corpus's ``groq/vercel-ai__groq-tool-call.chunks.txt``, usage on the finish chunk and under ``x_groq``."""


@pytest.mark.parametrize("asked", [True, False])
def test_groq_usage_on_the_finish_chunk(asked: bool) -> None:
    body = {"model": "route", "messages": [], "stream": True, **(ASK if asked else {})}
    chunks = _translate(adapter, target("groq"), body, GROQ_FINISH)
    assert_openai_usage_shape(chunks, asked, {"prompt_tokens": 210, "completion_tokens": 15, "total_tokens": 225})
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert all("x_groq" not in c for c in chunks)


def test_fast_path_chunks_follow_the_caller_not_the_upstream() -> None:
    """Plain content chunks are forwarded as bytes: ``"usage":null`` is added or removed without parsing."""
    t = target("openai")
    asked = adapter.stream_translator(t, {"model": "route", "messages": [], "stream": True, **ASK})  # type: ignore[typeddict-item]
    unasked = adapter.stream_translator(t, {"model": "route", "messages": [], "stream": True})
    with_null = b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}],"usage":null,"obfuscation":"x"}\n\n'
    without = b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}\n\n'
    for raw in (with_null, without):
        (event,) = adapter.stream_decoder().feed(raw)
        (out_asked,) = asked.feed(event)
        (out_unasked,) = unasked.feed(event)
        assert isinstance(out_asked, bytes) and isinstance(out_unasked, bytes)  # still the fast path
        assert json.loads(out_asked)["usage"] is None
        assert "usage" not in json.loads(out_unasked)
        assert json.loads(out_unasked)["choices"][0]["delta"] == {"content": "a"}


@pytest.mark.parametrize("asked", [True, False])
@pytest.mark.parametrize("interaction", ANTHROPIC_STREAMS, ids=lambda i: getattr(i, "name", ""))
def test_anthropic_streams(interaction: Any, asked: bool) -> None:
    body = {**request_body(interaction, True), **(ASK if asked else {})}
    chunks = _translate(anthropic, target_for(interaction), body, interaction.sse.encode())
    usage = chunks[-1].get("usage") if asked else None
    assert_openai_usage_shape(chunks, asked, usage if asked else None)
    if asked:
        assert usage and usage["total_tokens"] > 0


@pytest.mark.parametrize("asked", [True, False])
@pytest.mark.parametrize("capture", GEMINI_OK, ids=lambda c: c.name)
def test_gemini_streams(capture: Any, asked: bool) -> None:
    data = capture.raw_sse if capture.raw_sse is not None else sse_body(capture.events)
    body = {**GEMINI_BODY, "stream": True, **(ASK if asked else {})}
    chunks = _translate(gemini, gemini_target(), body, data)
    reported = any(e.get("usageMetadata") for e in capture.events)
    usage = chunks[-1].get("usage") if asked and reported else None
    assert_openai_usage_shape(chunks, asked, usage)
    if asked and reported:
        assert usage and usage["total_tokens"] > 0


MISTRAL_BODY = (
    b'data: {"id":"8363","object":"chat.completion.chunk","created":1709762658,"model":"mistral-tiny","choices":'
    b'[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null,"logprobs":null}],"usage":null}\n\n'
    b'data: {"id":"8363","object":"chat.completion.chunk","created":1709762658,"model":"mistral-tiny","choices":'
    b'[{"index":0,"delta":{"role":null,"content":"Cro"},"finish_reason":null,"logprobs":null}],"usage":null}\n\n'
    b'data: {"id":"8363","object":"chat.completion.chunk","created":1709762658,"model":"mistral-tiny","choices":'
    b'[{"index":0,"delta":{"role":null,"content":"tt"},"finish_reason":"length","logprobs":null}],'
    b'"usage":{"prompt_tokens":15,"total_tokens":143,"completion_tokens":128}}\n\n'
    b"data: [DONE]\n\n"
)
"""The layout of the corpus's ``mistral/semantic-kernel__chat_completions_streaming_response.txt`` (cut short)."""


@pytest.mark.parametrize("asked", [True, False])
def test_through_the_sdk(emulator: Any, asked: bool) -> None:
    """End to end: the openai SDK sees one usage chunk with empty choices, last, priced by polyroute."""

    def handle(request: Request) -> Reply:
        assert request.json().get("stream") is True
        return Reply.sse([MISTRAL_BODY[i : i + 40] for i in range(0, len(MISTRAL_BODY), 40)])

    emu = emulator(handle)
    router = Router(
        {
            "models": [
                {
                    "name": "m",
                    "deployments": [
                        {"provider": "mistral", "model": "mistral-tiny", "api_key": "m-key-1234", "api_base": emu.url}
                    ],
                }
            ]
        }
    )
    client = router.openai_client()
    stream = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        **({"stream_options": {"include_usage": True}} if asked else {}),  # type: ignore[arg-type]
    )
    chunks = [chunk.model_dump(exclude_unset=True) for chunk in stream]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Crott"
    if asked:
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 143
        assert all(c["usage"] is None for c in chunks[:-1])
    else:
        assert all(c.get("usage") is None for c in chunks)
