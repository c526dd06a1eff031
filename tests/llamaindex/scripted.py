"""A scripted "calculator model" for agent tests, and its OpenAI-format emulator handler.

The task is ``(3 + 4) * 5``: the model calls ``add(3, 4)``, then ``multiply(<add's result>, 5)``, then answers with
``multiply``'s result. It reads the results from the request, so a tool loop that loses or mismatches a result
cannot reach the right answer; and it rejects a tool result whose id no assistant tool call issued (400), as real
providers do.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tests.emulators import Reply, Request
from tests.emulators.openai_format import completion
from tests.emulators.server import sse_events

TASK = "What is (3 + 4) * 5? Use the tools."
ANSWER = "The answer is 35."


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


@dataclass
class Call:
    """A tool call the scripted model makes."""

    id: str
    name: str
    arguments: dict[str, Any]


def next_turn(results: list[str]) -> list[Call] | str:
    """The calculator model's next move, given the tool results it has seen so far (in order)."""
    if not results:
        return [Call("call_add_1", "add", {"a": 3, "b": 4})]
    if len(results) == 1:
        return [Call("call_mul_2", "multiply", {"a": int(results[0]), "b": 5})]
    return f"The answer is {int(results[1])}."


def react_turn(transcript: str) -> str:
    """The same model speaking ReAct text: observations are read from the prompt."""
    observations = re.findall(r"Observation: (\d+)", transcript)
    if not observations:
        return 'Thought: I need to add first.\nAction: add\nAction Input: {"a": 3, "b": 4}'
    if len(observations) == 1:
        return f'Thought: Now multiply.\nAction: multiply\nAction Input: {{"a": {observations[0]}, "b": 5}}'
    return f"Thought: I can answer without using any more tools.\nAnswer: The answer is {observations[1]}."


def error(message: str, status: int = 400) -> Reply:
    """An OpenAI-shaped error reply."""
    return Reply.json({"error": {"message": message, "type": "invalid_request_error"}}, status=status)


def openai_calculator(request: Request) -> Reply:
    """The calculator model behind an OpenAI Chat Completions endpoint, streamed or not."""
    body = request.json()
    issued: set[str] = set()
    results: list[str] = []
    for message in body["messages"]:
        if message["role"] == "assistant":
            issued.update(call["id"] for call in message.get("tool_calls") or [])
        elif message["role"] == "tool":
            if message.get("tool_call_id") not in issued:
                return error(f"tool result {message.get('tool_call_id')!r} answers no tool call")
            results.append(message["content"])
    if body.get("tools"):
        names = {tool["function"]["name"] for tool in body["tools"]}
        if names != {"add", "multiply"}:
            return error(f"expected tools add and multiply, got {sorted(names)}")
        turn = next_turn(results)
    else:  # a ReAct agent: the protocol is in the text
        transcript = "\n".join(str(m.get("content") or "") for m in body["messages"])
        turn = react_turn(transcript)
    return openai_reply(body, turn)


def openai_reply(body: dict[str, Any], turn: list[Call] | str, reasoning: str | None = None) -> Reply:
    """``turn`` as OpenAI answers it: a completion, or SSE chunks (tool arguments split across deltas).

    ``reasoning`` adds DeepSeek's ``reasoning_content`` to the message (streamed in two deltas).
    """
    model = body["model"]
    calls = (
        [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
            for c in turn
        ]
        if isinstance(turn, list)
        else None
    )
    text = turn if isinstance(turn, str) else None
    if not body.get("stream"):
        answer = completion(text, model=model, tool_calls=calls)
        if reasoning:
            answer["choices"][0]["message"]["reasoning_content"] = reasoning
        return Reply.json(answer)

    def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        return {
            "id": "chatcmpl-s",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
            **extra,
            "choices": choices,
        }

    events: list[Any] = [chunk({"role": "assistant", "content": ""})]
    if reasoning:
        half = len(reasoning) // 2
        events += [chunk({"reasoning_content": reasoning[:half]}), chunk({"reasoning_content": reasoning[half:]})]
    if calls:
        for i, call in enumerate(calls):
            arguments = call["function"]["arguments"]
            half = len(arguments) // 2
            start = {**call, "index": i, "function": {"name": call["function"]["name"], "arguments": ""}}
            events.append(chunk({"tool_calls": [start]}))
            events.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": arguments[:half]}}]}))
            events.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": arguments[half:]}}]}))
        events.append(chunk({}, "tool_calls"))
    else:
        assert text is not None
        events += [chunk({"content": text[i : i + 7]}) for i in range(0, len(text), 7)]
        events.append(chunk({}, "stop"))
    events.append(chunk(None, usage={"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}))
    events.append("[DONE]")
    return Reply.sse(sse_events(events))
