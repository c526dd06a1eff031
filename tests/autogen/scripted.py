"""A scripted upstream model for agent tests: it reads the (native) request and decides like a tool-using model.

The decision is format-free (:func:`decide`); each wire format renders it (:func:`openai_handler`, and the
Anthropic handler in ``test_agent``), so one scenario runs through every translation polyroute does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tests.emulators import Reply, Request
from tests.emulators.openai_format import completion
from tests.emulators.server import sse_events

WEATHER = {"city": "Paris", "forecast": "sunny", "celsius": 21}
FINAL_TEXT = "It is sunny in Paris, 21 degrees."


@dataclass(frozen=True)
class Decision:
    """What the scripted model answers: a tool call, or text (JSON text when a schema was asked for)."""

    text: str | None = None
    tool: str | None = None
    arguments: dict[str, Any] | None = None


def decide(*, has_tools: bool, answered_tool: bool, wants_json: bool) -> Decision:
    """Call ``get_weather`` once when tools are offered, then answer (as JSON if a schema was asked for)."""
    if has_tools and not answered_tool:
        return Decision(tool="get_weather", arguments={"city": "Paris"})
    if wants_json:
        return Decision(text=json.dumps(WEATHER))
    return Decision(text=FINAL_TEXT)


def openai_decision(body: dict[str, Any]) -> Decision:
    """Read an OpenAI Chat Completions request."""
    fmt = body.get("response_format") or {}
    return decide(
        has_tools=bool(body.get("tools")),
        answered_tool=any(m.get("role") == "tool" for m in body["messages"]),
        wants_json=fmt.get("type") in ("json_schema", "json_object"),
    )


def openai_handler(request: Request) -> Reply:
    """An OpenAI-format upstream running the scripted model, JSON or SSE."""
    body = request.json()
    decision = openai_decision(body)
    usage = {"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37}
    tool_calls = None
    if decision.tool is not None:
        tool_calls = [
            {
                "id": "call_w1",
                "type": "function",
                "function": {"name": decision.tool, "arguments": json.dumps(decision.arguments)},
            }
        ]
    if not body.get("stream"):
        return Reply(body=completion(decision.text, model=body["model"], tool_calls=tool_calls, usage=usage))

    def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        return {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": body["model"],
                "choices": choices, **extra}  # fmt: skip

    events: list[Any] = [chunk({"role": "assistant", "content": ""})]
    if tool_calls:
        call = tool_calls[0]
        events.append(chunk({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                             "function": {"name": decision.tool, "arguments": ""}}]}))  # fmt: skip
        args = call["function"]["arguments"]
        events += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + 6]}}]})
                   for i in range(0, len(args), 6)]  # fmt: skip
        events.append(chunk({}, "tool_calls"))
    else:
        assert decision.text is not None
        events += [chunk({"content": decision.text[i : i + 8]}) for i in range(0, len(decision.text), 8)]
        events.append(chunk({}, "stop"))
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append(chunk(None, usage=usage))
    events.append("[DONE]")
    return Reply.sse(sse_events(events))
