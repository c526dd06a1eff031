"""A scripted OpenAI Chat Completions upstream that follows the prompt, for LangChain's standard suites.

It answers as a cooperative model would: with tools offered and a user turn last, it calls the forced tool, the tool
the prompt names, or the first one, filling arguments from the prompt (numbers for integers, quoted text for
strings); after a tool result it answers in text; with a JSON response format it answers JSON shaped by the schema
(or by the keys the prompt quotes); it honours ``stop``. Usage always carries cached and reasoning token details;
``reasoning_effort`` adds ``reasoning_content``. Options add the round-trip fields polyroute carries
(``thinking_blocks``, tool-call ``provider_specific_fields``).
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from tests.emulators.server import Emulator, Reply, Request, sse_events

_ids = itertools.count(1)


def text_of(message: dict[str, Any]) -> str:
    """The text of a request message (string or parts)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content or () if isinstance(p, dict))


def fill(schema: dict[str, Any], prompt: str) -> dict[str, Any]:
    """Arguments for a JSON Schema object, taken from the prompt: integers in order, quoted strings in order."""
    numbers = iter(int(n) for n in re.findall(r"-?\d+", prompt))
    quoted = iter(re.findall(r"'([^']+)'", prompt))
    out: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        kind = prop.get("type")
        if kind is None:
            kinds = [p.get("type") for p in prop.get("anyOf") or () if p.get("type") != "null"]
            kind = kinds[0] if kinds else "string"
        if kind in ("integer", "number"):
            out[name] = next(numbers, 1)
        elif kind == "boolean":
            out[name] = True
        elif kind == "array":
            out[name] = []
        elif kind == "object":
            out[name] = {}
        else:
            out[name] = next(quoted, None) or f"{name} for: {prompt}"
    return out


def answer(body: dict[str, Any], *, thinking: bool = False, signatures: bool = False) -> dict[str, Any]:
    """The assistant message for a request body."""
    messages = body["messages"]
    last = messages[-1]
    prompt = text_of(last)
    tools = [t["function"] for t in body.get("tools") or ()]
    choice = body.get("tool_choice")
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if tools and choice != "none" and last["role"] == "user":
        if isinstance(choice, dict):
            tool = next(t for t in tools if t["name"] == choice["function"]["name"])
        else:
            tool = next((t for t in tools if t["name"] in prompt), tools[0])
        call: dict[str, Any] = {
            "id": f"call_{next(_ids)}",
            "type": "function",
            "function": {
                "name": tool["name"],
                "arguments": json.dumps(fill(tool.get("parameters") or {}, prompt), ensure_ascii=False),
            },
        }
        if signatures:
            call["provider_specific_fields"] = {"thought_signature": f"sig-{call['id']}"}
        message["tool_calls"] = [call]
    else:
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            text = json.dumps(fill(fmt["json_schema"].get("schema") or {}, prompt))
        elif fmt.get("type") == "json_object":
            keys = re.findall(r"'(\w+)'", prompt) or ["answer"]
            text = json.dumps({key: f"{key} for: {prompt}" for key in keys})
        elif last["role"] == "tool":
            text = f"The tool said: {text_of(last)}"
        else:
            text = f"Hello! You said: {prompt}. How can I help you today?"
        for stop in [body["stop"]] if isinstance(body.get("stop"), str) else body.get("stop") or ():
            text = text.split(stop)[0] or text
        message["content"] = text
    if body.get("reasoning_effort"):
        message["reasoning_content"] = f"Let me think about '{prompt}'."
    if thinking:
        message["thinking_blocks"] = [{"type": "thinking", "thinking": "Hmm.", "signature": f"sig-{next(_ids)}"}]
    return message


def usage(body: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    """Token counts with cache-read and reasoning details."""
    prompt = sum(len(text_of(m).split()) + 3 for m in body["messages"])
    completion = len(json.dumps(message).split())
    reasoning = len((message.get("reasoning_content") or "").split())
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion + reasoning,
        "total_tokens": prompt + completion + reasoning,
        "prompt_tokens_details": {"cached_tokens": prompt // 2},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def completion(body: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    """A chat.completion body."""
    return {
        "id": f"chatcmpl-{next(_ids)}",
        "object": "chat.completion",
        "created": 1700000000,
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
            }
        ],
        "usage": usage(body, message),
    }


def chunks(body: dict[str, Any], message: dict[str, Any]) -> list[str]:
    """SSE events streaming ``message`` as OpenAI does (tool arguments in two pieces)."""
    cid = f"chatcmpl-{next(_ids)}"

    def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": body["model"],
            "choices": choices,
            **extra,
        }

    events: list[Any] = [chunk({"role": "assistant", "content": ""})]
    if message.get("reasoning_content"):
        events += [chunk({"reasoning_content": w}) for w in re.findall(r"\S+\s*", message["reasoning_content"])]
    if message.get("thinking_blocks"):
        events.append(chunk({"thinking_blocks": message["thinking_blocks"]}))
    for i, call in enumerate(message.get("tool_calls") or ()):
        args = call["function"]["arguments"]
        head = {"index": i, "id": call["id"], "type": "function", "function": {"name": call["function"]["name"]}}
        head["function"]["arguments"] = ""
        if call.get("provider_specific_fields"):
            head["provider_specific_fields"] = call["provider_specific_fields"]
        events.append(chunk({"tool_calls": [head]}))
        half = len(args) // 2
        for piece in (args[:half], args[half:]):
            events.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
    if message.get("content"):
        events += [chunk({"content": w}) for w in re.findall(r"\S+\s*", message["content"])]
    events.append(chunk({}, "tool_calls" if message.get("tool_calls") else "stop"))
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append(chunk(None, usage=usage(body, message)))
    events.append("[DONE]")
    return sse_events(events)


def handler(*, thinking: bool = False, signatures: bool = False):
    """An emulator handler answering every chat request by :func:`answer`."""

    def handle(request: Request) -> Reply:
        body = request.json()
        message = answer(body, thinking=thinking, signatures=signatures)
        if body.get("stream"):
            return Reply.sse(chunks(body, message))
        return Reply.json(completion(body, message))

    return handle


_shared: Emulator | None = None


def shared_url() -> str:
    """The base URL of one scripted upstream shared by a test session (the standard suites build models from
    properties, which cannot take fixtures); ``stop_shared`` ends it.
    """
    global _shared
    if _shared is None:
        _shared = Emulator(handler()).start()
    return _shared.url


def stop_shared() -> None:
    """Stop the shared upstream, if started."""
    global _shared
    if _shared is not None:
        _shared.stop()
        _shared = None
