"""A scripted "calculator model" for agent tests, behind OpenAI-format and Anthropic-format emulator handlers.

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
from tests.emulators import anthropic_format as claude
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


class AnthropicCalculator:
    """The calculator model behind the Anthropic Messages API, thinking before each tool call.

    Requests are checked as Anthropic checks them (``anthropic_format.check_request``: SDK types, ``tool_use`` /
    ``tool_result`` adjacency, signatures); and, as with extended thinking in a tool loop, each assistant turn that
    thought must come back with its signed thinking block first.
    """

    def __init__(self) -> None:
        self.signatures: dict[str, str] = {}  # tool_use id -> the signature of the thinking that preceded it
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: Request) -> Reply:
        body = request.json()
        self.bodies.append(body)
        problem = claude.check_request(body, set(self.signatures.values()))
        if problem:
            return claude.error(400, "invalid_request_error", problem)
        results: list[str] = []
        for message in body["messages"]:
            blocks = message["content"] if isinstance(message["content"], list) else []
            uses = [b["id"] for b in blocks if b["type"] == "tool_use"]
            if uses and (blocks[0]["type"] != "thinking" or blocks[0]["signature"] != self.signatures.get(uses[0])):
                return claude.error(400, "invalid_request_error", "Expected `thinking` first, with its signature")
            results += [_result_text(b) for b in blocks if b["type"] == "tool_result"]
        if body.get("tools"):
            names = {tool["name"] for tool in body["tools"]}
            if names != {"add", "multiply"}:
                return claude.error(400, "invalid_request_error", f"expected tools add, multiply: {sorted(names)}")
            turn = next_turn(results)
        else:
            turn = react_turn("\n".join(_text_of(m["content"]) for m in body["messages"]))
        if isinstance(turn, str):
            blocks = [claude.text(turn)]
        else:
            signature = f"sig-{len(self.signatures)}"
            blocks = [{"type": "thinking", "thinking": f"Next: {turn[0].name}.", "signature": signature}]
            for call in turn:
                self.signatures[call.id] = signature
                blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments})
        msg = claude.message(blocks, model=body["model"])
        if body.get("stream"):
            return Reply(chunks=claude.events(msg), headers={"content-type": "text/event-stream"})
        return Reply.json(msg)


def _result_text(block: dict[str, Any]) -> str:
    return _text_of(block.get("content") or "")


def _text_of(content: str | list[dict[str, Any]]) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if b.get("type") == "text")
