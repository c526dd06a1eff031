"""A scripted upstream model for agent tests: it reads the (native) request and decides like a tool-using model.

The decision is format-free (:func:`decide`); each wire format renders it (:func:`openai_handler`, and the
Anthropic handler in ``test_agent``), so one scenario runs through every translation polyroute does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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


def anthropic_decision(body: dict[str, Any]) -> Decision:
    """Read an Anthropic Messages request: the caller's tool, polyroute's forced JSON tool, or native JSON."""
    tools = [t["name"] for t in body.get("tools") or ()]
    choice = body.get("tool_choice") or {}
    answered = any(
        block.get("type") == "tool_result"
        for m in body["messages"]
        if isinstance(m["content"], list)
        for block in m["content"]
    )
    if choice.get("type") == "tool":
        forced = choice["name"]
        return Decision(tool=forced, arguments={"city": "Paris"} if forced == "get_weather" else WEATHER)
    if choice.get("type") != "none":
        if "get_weather" in tools and not answered:
            return Decision(tool="get_weather", arguments={"city": "Paris"})
        json_tool = next((name for name in tools if name != "get_weather"), None)
        if json_tool is not None:
            return Decision(tool=json_tool, arguments=WEATHER)
    wants_json = bool((body.get("output_config") or {}).get("format"))
    return Decision(text=json.dumps(WEATHER) if wants_json else FINAL_TEXT)


def anthropic_handler() -> Callable[[Request], Reply]:
    """An Anthropic-format upstream running the scripted model; requests are checked as Anthropic checks them."""
    from tests.emulators import anthropic_format as claude

    usage = {"input_tokens": 30, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 7}

    def turn(request: Request) -> Reply:
        body = request.json()
        decision = anthropic_decision(body)
        if decision.tool is not None:
            blocks = claude.tool_use(decision.tool, decision.arguments, id="toolu_w1")
        else:
            assert decision.text is not None
            blocks = [claude.text(decision.text)]
        msg = claude.message(blocks, model=body["model"], usage=usage)
        if body.get("stream"):
            return Reply(chunks=claude.events(msg), headers={"content-type": "text/event-stream"})
        return Reply(body=msg)

    return claude.scripted([turn], repeat_last=True)
