"""The client matrix's shared scenarios: scripted Claude and Gemini upstreams, and checks on what they received.

Every client test runs one of two scenarios against a route to the Anthropic or the Gemini emulator, with or
without ``reasoning_effort``:

- **tool loop**: the model calls ``get_weather`` for Paris, then for Rome, then answers :data:`FINAL_TEXT`; the test
  asserts on that text and that the upstream got each tool result, and (thinking on) that every later call still
  had thinking enabled and replayed the thinking block or thought signature the emulator issued.
- **structured**: the model answers :data:`ANSWER` as :class:`Forecast`, a pydantic model with ordinary constraints
  (``ge``/``le``, ``max_length``, list lengths). The upstream answers cooperatively with whatever channel the
  request offers (native structured output, else the one tool it may or must call), so the test checks polyroute's
  choice of channel only through the provider's rules: a strict schema Anthropic accepts, no forced tool while
  thinking, and the answer validating in the client.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel, Field

from polyroute import Router
from tests.emulators import Emulator, Reply, Request
from tests.emulators import anthropic_format as claude
from tests.emulators import gemini_format as gemini

MATRIX_ENV = "POLYROUTE_CLIENT_MATRIX"
"""Set to 1 where ``scripts/test.py`` runs the matrix: a missing client library then fails instead of skipping."""

KEY = "sk-clients-fake-0123456789"
PROVIDERS = ("anthropic", "gemini")
MODELS = {"anthropic": "claude-sonnet-4-5", "gemini": "gemini-3-flash-preview"}
EFFORT = "low"
"""The ``reasoning_effort`` clients send in the thinking cases."""

PROMPT = "What is the weather in Paris, and then in Rome? Look up each city with get_weather."
CITIES = ("Paris", "Rome")
WEATHER = {"Paris": "sunny, 21 C", "Rome": "rainy, 17 C"}
FINAL_TEXT = "Paris is sunny at 21 C and Rome is rainy at 17 C."

STRUCTURED_PROMPT = "Give me the forecast for Paris as structured data."


class Forecast(BaseModel):
    """A weather forecast; ordinary pydantic constraints that become JSON Schema keywords Claude refuses."""

    city: str = Field(min_length=1, max_length=40, description="The city name")
    temperature_c: int = Field(ge=-90, le=60, description="Temperature in Celsius")
    conditions: list[str] = Field(min_length=1, max_length=3, description="Short descriptions")
    confidence: float = Field(ge=0, le=1)


ANSWER: dict[str, Any] = {
    "city": "Paris",
    "temperature_c": 21,
    "conditions": ["sunny", "light wind"],
    "confidence": 0.9,
}


def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    return WEATHER.get(city, "unknown")


WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city"}},
            "required": ["city"],
        },
    },
}


def client_library(name: str) -> ModuleType:
    """Import a client library, or skip the module when it is absent (the workspace has none of them).

    In the matrix's own environment (``POLYROUTE_CLIENT_MATRIX=1``) an absent library is an error, not a skip.
    """
    if os.environ.get(MATRIX_ENV) == "1":
        import importlib

        return importlib.import_module(name)
    return pytest.importorskip(name, reason=f"{name} is installed only in the client-matrix environments")


# -- upstreams ---------------------------------------------------------------------------------------------------


@dataclass
class Upstream:
    """One scripted provider emulator behind a one-route router (route name = :attr:`route`)."""

    provider: str
    thinking: bool
    emulator: Emulator
    handler: claude.Scripted | gemini.GeminiEmulator
    router: Router
    route: str = "smart"
    signatures: list[str] = field(default_factory=list)
    """Gemini: the thought signatures issued on function calls, in order."""

    @property
    def effort(self) -> str | None:
        """The ``reasoning_effort`` the client sends (None: none)."""
        return EFFORT if self.thinking else None

    @property
    def bodies(self) -> list[dict[str, Any]]:
        """The native request bodies the emulator received."""
        return self.handler.bodies


def make_router(provider: str, url: str) -> Router:
    """A router with one route, ``smart``, to the emulator at ``url``."""
    deployment = {"provider": provider, "model": MODELS[provider], "api_base": url, "api_key": KEY, "id": provider}
    return Router({"models": [{"name": "smart", "deployments": [deployment]}], "retry": {"backoff": 0}})


StartEmulator = Callable[[Callable[[Request], Reply]], Emulator]


def tool_loop_upstream(start: StartEmulator, provider: str, thinking: bool) -> Upstream:
    """The model calls get_weather(Paris), then get_weather(Rome), then answers :data:`FINAL_TEXT`."""
    if provider == "anthropic":
        think = (lambda s: s) if thinking else (lambda s: None)
        handler: Any = claude.scripted(
            [
                claude.tool_use("get_weather", {"city": "Paris"}, thinking=think("Paris first.")),
                claude.tool_use("get_weather", {"city": "Rome"}, thinking=think("Now Rome.")),
                claude.thinking("Both known.", FINAL_TEXT) if thinking else FINAL_TEXT,
            ]
        )
        emu = start(handler)
        return Upstream(provider, thinking, emu, handler, make_router(provider, emu.url))
    sigs = [_b64(f"gemini-sig-{city}") for city in CITIES]
    thought = (lambda s: s) if thinking else (lambda s: None)
    handler = gemini.GeminiEmulator(
        *[
            gemini.response(
                None,
                thought=thought(f"Look up {city}."),
                calls=[{"name": "get_weather", "args": {"city": city}, "thoughtSignature": sig}],
            )
            for city, sig in zip(CITIES, sigs, strict=True)
        ],
        gemini.response(FINAL_TEXT, thought=thought("Both known."), text_signature=_b64("gemini-sig-final")),
    )
    emu = start(handler)
    return Upstream(provider, thinking, emu, handler, make_router(provider, emu.url), signatures=sigs)


def structured_upstream(start: StartEmulator, provider: str, thinking: bool) -> Upstream:
    """The model answers :data:`ANSWER` through whatever channel each request offers (see the module docstring)."""
    if provider == "anthropic":
        handler: Any = claude.scripted([], repeat_last=True)
        handler.turns.append(_claude_structured_turn(handler))
        emu = start(handler)
        return Upstream(provider, thinking, emu, handler, make_router(provider, emu.url))
    handler = gemini.GeminiEmulator(_gemini_structured_turn)
    emu = start(handler)
    return Upstream(provider, thinking, emu, handler, make_router(provider, emu.url))


_signed = itertools.count()


def _claude_structured_turn(script: claude.Scripted) -> Callable[[Request], Reply]:
    def turn(request: Request) -> Reply:
        body = request.json()
        tools = body.get("tools") or []
        choice = body.get("tool_choice") or {}
        blocks: list[dict[str, Any]] = []
        if (body.get("thinking") or {}).get("type") == "enabled":
            signature = _b64(f"emu-structured-{next(_signed)}")
            script.signatures.add(signature)
            blocks.append({"type": "thinking", "thinking": "The forecast is clear.", "signature": signature})
        if (body.get("output_config") or {}).get("format") or not tools:
            blocks.append(claude.text(json.dumps(ANSWER)))
        else:
            name = choice.get("name") if choice.get("type") == "tool" else tools[-1]["name"]
            blocks.append(
                {"type": "tool_use", "id": f"toolu_structured_{next(_signed)}", "name": name, "input": ANSWER}
            )
        msg = claude.message(blocks, model=body["model"])
        if body.get("stream"):
            return Reply(chunks=claude.events(msg), headers={"content-type": "text/event-stream"})
        return Reply.json(msg)

    return turn


def _gemini_structured_turn(request: Request) -> Reply:
    body = request.json()
    config = body.get("generationConfig") or {}
    declarations = [d for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]
    thought = "The forecast is clear." if config.get("thinkingConfig") else None
    if config.get("responseMimeType") == "application/json" or not declarations:
        answer = gemini.response(json.dumps(ANSWER), thought=thought, text_signature=_b64("gemini-sig-json"))
    else:
        allowed = (body.get("toolConfig") or {}).get("functionCallingConfig", {}).get("allowedFunctionNames") or []
        name = allowed[0] if allowed else declarations[-1]["name"]
        call = {"name": name, "args": ANSWER, "thoughtSignature": _b64("gemini-sig-structured")}
        answer = gemini.response(None, thought=thought, calls=[call])
    if request.path.endswith(":streamGenerateContent"):
        data = gemini.sse_body(gemini.stream_events(answer))
        return Reply(chunks=gemini.split(data, 64), headers={"content-type": "text/event-stream"})
    return Reply.json(answer)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# -- checks on what the upstream received ---------------------------------------------------------------------------


def check_tool_loop(up: Upstream) -> None:
    """Three upstream calls: each tool result reached the model, and thinking survived every turn of the loop."""
    assert len(up.bodies) == 3, f"expected 3 upstream calls (2 tool calls, then text), got {len(up.bodies)}"
    if up.provider == "anthropic":
        _check_claude_loop(up)
    else:
        _check_gemini_loop(up)


def _check_claude_loop(up: Upstream) -> None:
    script = up.handler
    assert isinstance(script, claude.Scripted)
    for i, body in enumerate(up.bodies):
        thinking = (body.get("thinking") or {}).get("type") == "enabled"
        assert thinking == up.thinking, f"call {i}: thinking {'off' if up.thinking else 'on'} ({body.get('thinking')})"
        results = [
            b for m in body["messages"] if m["role"] == "user" and isinstance(m["content"], list) for b in m["content"]
        ]
        results = [b for b in results if b["type"] == "tool_result"]
        assert [_result_text(b) for b in results] == [WEATHER[c] for c in CITIES[:i]], f"call {i}: tool results"
        for j, msg in enumerate(body["messages"]):
            if msg["role"] == "assistant" and isinstance(msg["content"], list):
                assert all(b["type"] != "text" or b["text"].strip() for b in msg["content"]), (
                    f"call {i}: blank text block in messages.{j}"
                )
        if up.thinking and i:
            # Anthropic: the last assistant turn of a tool loop must start with the thinking block it came with.
            last = [m for m in body["messages"] if m["role"] == "assistant"][-1]
            content = last["content"] if isinstance(last["content"], list) else []
            assert content and content[0]["type"] == "thinking", f"call {i}: thinking block not replayed: {content}"
            assert content[0]["signature"] in script.signatures


def _result_text(block: Mapping[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content)
    return str(content)


def _check_gemini_loop(up: Upstream) -> None:
    for i, body in enumerate(up.bodies):
        config = body.get("generationConfig") or {}
        if up.thinking:
            assert config.get("thinkingConfig"), f"call {i}: no thinkingConfig"
        calls = [p for c in body["contents"] if c["role"] == "model" for p in c["parts"] if "functionCall" in p]
        assert [p["functionCall"]["args"] for p in calls] == [{"city": c} for c in CITIES[:i]], f"call {i}"
        # The real signatures, not the skip_thought_signature_validator placeholder.
        assert [p.get("thoughtSignature") for p in calls] == up.signatures[:i], f"call {i}: thought signatures"
        results = [p["functionResponse"] for c in body["contents"] for p in c["parts"] if "functionResponse" in p]
        assert [WEATHER[c] in json.dumps(r) for r, c in zip(results, CITIES, strict=False)] == [True] * i


CLAUDE_UNSUPPORTED = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "maxItems",
    "pattern",
)
"""JSON Schema keywords Anthropic's structured outputs and strict tools reject (structured-outputs, "JSON Schema
limitations"); ``minItems`` is allowed at 0 or 1 only. (``pattern`` is allowed with simple regexes; none here.)"""


def claude_schema_problems(schema: Any, path: str = "$") -> list[str]:
    """Where ``schema`` uses keywords Anthropic rejects in a strict schema."""
    problems: list[str] = []
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key in CLAUDE_UNSUPPORTED and key != "pattern":
                problems.append(f"{path}.{key}")
            elif key == "minItems" and value not in (0, 1):
                problems.append(f"{path}.minItems={value}")
            elif key == "additionalProperties" and value is not False and schema.get("type") == "object":
                problems.append(f"{path}.additionalProperties={value}")
            elif key not in ("enum", "const", "default", "examples", "description", "title"):
                problems += claude_schema_problems(value, f"{path}.{key}")
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and schema.get("additionalProperties") is not False
        ):
            problems.append(f"{path}: object without additionalProperties: false")
    elif isinstance(schema, list):
        for i, item in enumerate(schema):
            problems += claude_schema_problems(item, f"{path}[{i}]")
    return problems


def check_structured(up: Upstream, *, calls: int | None = 1) -> None:
    """Every call kept thinking as asked and obeyed the provider's rules for strict schemas and forced tools."""
    assert up.bodies, "the upstream got no request"
    if calls is not None:
        assert len(up.bodies) == calls, f"expected {calls} upstream call(s), got {len(up.bodies)}"
    for i, body in enumerate(up.bodies):
        if up.provider == "anthropic":
            thinking = (body.get("thinking") or {}).get("type") == "enabled"
            assert thinking == up.thinking, f"call {i}: thinking {'dropped' if up.thinking else 'added'}"
            if thinking:
                assert (body.get("tool_choice") or {}).get("type") not in ("any", "tool"), "forced tool + thinking"
            strict = [t["input_schema"] for t in body.get("tools") or [] if t.get("strict") and "input_schema" in t]
            fmt = (body.get("output_config") or {}).get("format")
            schemas = strict + ([fmt["schema"]] if fmt else [])
            for schema in schemas:
                assert not claude_schema_problems(schema), f"call {i}: {claude_schema_problems(schema)}"
            offered = [t.get("input_schema") for t in body.get("tools") or []] + ([fmt["schema"]] if fmt else [])
            assert any("temperature_c" in json.dumps(s) for s in offered), f"call {i}: the Forecast schema not sent"
        else:
            config = body.get("generationConfig") or {}
            if up.thinking:
                assert config.get("thinkingConfig"), f"call {i}: no thinkingConfig"
            declared = [d for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]
            offered = [config.get("responseJsonSchema")] + [d.get("parametersJsonSchema") for d in declared]
            assert any("temperature_c" in json.dumps(s) for s in offered if s), (
                f"call {i}: the Forecast schema not sent"
            )


def check_forecast(value: Any) -> Forecast:
    """``value`` is the scripted :data:`ANSWER` as a validated :class:`Forecast`."""
    forecast = value if isinstance(value, Forecast) else Forecast.model_validate(value)
    assert forecast.model_dump() == ANSWER
    return forecast
