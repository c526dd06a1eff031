"""A Cohere v2 chat emulator (``POST /v2/chat``) and the recorded Cohere traffic in ``tests/fixtures/cohere/``.

It checks what the v2 API documents (https://docs.cohere.com/reference/chat): the request's top-level fields, roles,
``tool_choice`` values (``REQUIRED`` / ``NONE``), tool results answering a call of an earlier assistant turn, an
assistant turn carrying content or tool calls, a bearer key; it accepts every request Cohere accepted in the corpus
(a test checks). Streams are its SSE events: ``message-start``, ``content-*``, ``tool-plan-delta``, ``tool-call-*``,
``citation-*``, ``message-end`` with the finish reason and usage.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.emulators.server import Reply, Request

FIXTURES = Path(__file__).parent.parent / "fixtures" / "cohere"
KEY = "co-test-key-0123456789abcdef"

FIELDS = frozenset(
    {
        "model", "messages", "tools", "strict_tools", "documents", "citation_options", "response_format",
        "safety_mode", "max_tokens", "stop_sequences", "temperature", "seed", "frequency_penalty",
        "presence_penalty", "k", "p", "return_prompt", "logprobs", "tool_choice", "thinking", "priority", "stream",
    }
)  # fmt: skip
"""The v2 chat request's fields (docs.cohere.com/reference/chat)."""


def error(status: int, message: str) -> Reply:
    """A Cohere error answer."""
    return Reply.json({"id": "emu-error", "message": message}, status=status)


def check_request(body: Mapping[str, Any]) -> str | None:
    """What the v2 chat API would refuse in ``body`` (None if nothing)."""
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        return f"invalid request: unknown field(s) {', '.join(unknown)}"
    if body.get("tool_choice") not in (None, "REQUIRED", "NONE"):
        return "invalid request: tool_choice must be one of REQUIRED, NONE"
    if body.get("tool_choice") and not body.get("tools"):
        return "invalid request: tool_choice requires tools"
    calls: set[str] = set()
    for i, message in enumerate(body.get("messages") or ()):
        role = message.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            return f"invalid request: messages[{i}].role must be system, user, assistant or tool"
        if role == "assistant":
            if not message.get("content") and not message.get("tool_calls"):
                return f"invalid request: messages[{i}]: an assistant message needs content or tool_calls"
            if message.get("tool_calls") and message.get("content"):
                return (
                    f"invalid request: messages[{i}]: an assistant message with tool_calls takes tool_plan, not content"
                )
            calls.update(c["id"] for c in message.get("tool_calls") or ())
        if role == "tool" and message.get("tool_call_id") not in calls:
            return f"invalid request: messages[{i}].tool_call_id does not match a previous tool call"
    if not body.get("messages"):
        return "invalid request: messages must not be empty"
    return None


def response(
    text: str = "",
    *,
    calls: Sequence[tuple[str, Mapping[str, Any]]] = (),
    plan: str = "",
    thinking: str = "",
    citations: Sequence[Mapping[str, Any]] = (),
    finish: str | None = None,
) -> dict[str, Any]:
    """A v2 chat response."""
    message: dict[str, Any] = {"role": "assistant"}
    content = ([{"type": "thinking", "thinking": thinking}] if thinking else []) + (
        [{"type": "text", "text": text}] if text else []
    )
    if content:
        message["content"] = content
    if calls:
        message["tool_calls"] = [
            {"id": f"{name}_emu{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
            for i, (name, args) in enumerate(calls)
        ]
        message["tool_plan"] = plan
    if citations:
        message["citations"] = list(citations)
    return {
        "id": "emu-0001",
        "message": message,
        "finish_reason": finish or ("TOOL_CALL" if calls else "COMPLETE"),
        "usage": {
            "billed_units": {"input_tokens": 9, "output_tokens": 5},
            "tokens": {"input_tokens": 90, "output_tokens": 6},
            "cached_tokens": 40,
        },
    }


def stream_events(answer: Mapping[str, Any]) -> str:
    """A response as the SSE events Cohere streams for it."""
    message = answer["message"]
    events: list[dict[str, Any]] = [
        {
            "id": answer["id"],
            "type": "message-start",
            "delta": {
                "message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}
            },
        }
    ]
    for index, block in enumerate(message.get("content") or ()):
        kind = block["type"]
        events.append(
            {"type": "content-start", "index": index, "delta": {"message": {"content": {"type": kind, kind: ""}}}}
        )
        for piece in _pieces(block[kind]):
            events.append({"type": "content-delta", "index": index, "delta": {"message": {"content": {kind: piece}}}})
        events.append({"type": "content-end", "index": index})
    for piece in _pieces(message.get("tool_plan") or ""):
        events.append({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": piece}}})
    for index, call in enumerate(message.get("tool_calls") or ()):
        start = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
        events.append({"type": "tool-call-start", "index": index, "delta": {"message": {"tool_calls": start}}})
        for piece in _pieces(call["function"]["arguments"]):
            delta = {"tool_calls": {"function": {"arguments": piece}}}
            events.append({"type": "tool-call-delta", "index": index, "delta": {"message": delta}})
        events.append({"type": "tool-call-end", "index": index})
    for index, citation in enumerate(message.get("citations") or ()):
        events.append({"type": "citation-start", "index": index, "delta": {"message": {"citations": citation}}})
        events.append({"type": "citation-end", "index": index})
    end = {"finish_reason": answer["finish_reason"], "usage": answer["usage"]}
    events.append({"type": "message-end", "delta": end})
    sse = "".join(f"event: {e['type']}\ndata: {json.dumps(e, separators=(',', ':'))}\n\n" for e in events)
    return sse + "data: [DONE]\n\n"  # as recorded: an OpenAI-style sentinel after message-end


def _pieces(value: str, size: int = 4) -> list[str]:
    return [value[i : i + size] for i in range(0, len(value), size)]


@dataclass
class Scripted:
    """Answers successive chat calls with scripted responses (dicts from :func:`response`, or a :class:`Reply`)."""

    turns: list[Any]
    bodies: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])

    def __call__(self, request: Request) -> Reply:
        if request.method != "POST" or request.path != "/v2/chat":
            return error(404, f"{request.method} {request.path} not found")
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return error(401, "invalid api token")
        body = request.json()
        self.bodies.append(body)
        problem = check_request(body)
        if problem is not None:
            return error(400, problem)
        turn = self.turns[min(len(self.bodies), len(self.turns)) - 1]
        if isinstance(turn, Reply):
            return turn
        if body.get("stream"):
            return Reply(chunks=[stream_events(turn).encode()], headers={"content-type": "text/event-stream"})
        return Reply.json(turn)


# -- recorded fixtures --------------------------------------------------------------------------------------------


@dataclass
class Interaction:
    """One recorded v2 chat exchange."""

    name: str
    request: dict[str, Any]
    status: int
    body: Any = None
    sse: str | None = None


def load(name: str) -> list[Interaction]:
    """The v2 chat interactions of a cassette."""
    import yaml

    out: list[Interaction] = []
    for item in yaml.safe_load((FIXTURES / name).read_text())["interactions"]:
        req, resp = item["request"], item["response"]
        if not req["uri"].endswith("/v2/chat"):
            continue  # an OpenAI call recorded in the same cassette
        request = req.get("parsed_body") or json.loads(req["body"])
        status = int(resp["status"]["code"])
        if "parsed_body" in resp:
            out.append(Interaction(name, request, status, body=resp["parsed_body"]))
            continue
        content = resp["body"]["string"]
        if isinstance(content, bytes):
            content = (gzip.decompress(content) if content[:2] == b"\x1f\x8b" else content).decode()
        if content.lstrip().startswith("{"):
            out.append(Interaction(name, request, status, body=json.loads(content)))
        else:
            out.append(Interaction(name, request, status, sse=content))
    return out


def fixture_names() -> list[str]:
    """Every cassette file name."""
    return sorted(p.name for p in FIXTURES.iterdir() if p.suffix == ".yaml")
