"""The mock provider: deterministic in-process deployments for tests and the demo (``provider: mock``).

It speaks the OpenAI wire format from an in-process upstream transport, so mock calls take the same path through
the router as real ones: routing, failover, stream translation, usage and cost. Behaviour comes from the
deployment's config: ``response`` (text), ``tool_calls``, ``error`` with ``fail_times``, ``latency``,
``chunk_delay``, ``chunk_size``, ``broken_stream``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from polyroute import _compat
from polyroute.providers._base import completion_id, dumps

if TYPE_CHECKING:
    from polyroute.providers._base import Target

DEFAULT_TEXT = "Hello from polyroute's mock provider: no network, no keys, same code path as a real provider."


class MockUpstream:
    """Shared state of every mock deployment (failure counters); :meth:`bind` gives a transport for one."""

    def __init__(self) -> None:
        self._calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def bind(self, target: Target) -> _BoundMock:
        """A transport answering as ``target``'s mock deployment."""
        return _BoundMock(self, target)

    def count(self, label: str) -> int:
        """Count a call to a deployment; returns how many came before it."""
        with self._lock:
            seen = self._calls.get(label, 0)
            self._calls[label] = seen + 1
            return seen


class _ReplayStream(_compat.UPSTREAM.SyncByteStream, _compat.UPSTREAM.AsyncByteStream):  # type: ignore[misc, name-defined]
    def __init__(self, parts: list[bytes], delay: float) -> None:
        self._parts = parts
        self._delay = delay

    def __iter__(self) -> Iterator[bytes]:
        for i, part in enumerate(self._parts):
            if i and self._delay:
                time.sleep(self._delay)
            yield part

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i, part in enumerate(self._parts):
            if i and self._delay:
                await asyncio.sleep(self._delay)
            yield part


class _BoundMock(_compat.UPSTREAM.BaseTransport, _compat.UPSTREAM.AsyncBaseTransport):  # type: ignore[misc, name-defined]
    def __init__(self, shared: MockUpstream, target: Target) -> None:
        self._shared = shared
        self._target = target

    def handle_request(self, request: Any) -> Any:
        deployment = self._target.deployment
        if deployment.latency:
            time.sleep(deployment.latency)
        return self._answer(request)

    async def handle_async_request(self, request: Any) -> Any:
        deployment = self._target.deployment
        if deployment.latency:
            await asyncio.sleep(deployment.latency)
        return self._answer(request)

    def _answer(self, request: Any) -> Any:
        lib = _compat.UPSTREAM
        deployment = self._target.deployment
        body = json.loads(request.content)
        seen = self._shared.count(deployment.label)
        if deployment.error is not None and (deployment.fail_times is None or seen < deployment.fail_times):
            message = deployment.error_message or f"mock deployment {deployment.label} failed with {deployment.error}"
            headers = {"content-type": "application/json", "x-request-id": f"req_mock_{seen}"}
            if deployment.error == 429:
                headers["retry-after"] = "1"
            error = {"error": {"message": message, "type": "mock_error", "code": str(deployment.error), "param": None}}
            return lib.Response(deployment.error, headers=headers, content=dumps(error))
        message = self._message(body)
        usage = _usage(body, message)
        if not body.get("stream"):
            finish = "tool_calls" if message.get("tool_calls") else "stop"
            completion = {
                "id": completion_id(),
                "object": "chat.completion",
                "created": int(time.time()),
                "model": deployment.model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                "usage": usage,
            }
            return lib.Response(200, headers={"content-type": "application/json"}, content=dumps(completion))
        parts = _stream_parts(message, usage, deployment.model, deployment.chunk_size or 0, deployment.broken_stream)
        return lib.Response(
            200,
            headers={"content-type": "text/event-stream"},
            stream=_ReplayStream(parts, deployment.chunk_delay or 0.0),
        )

    def _message(self, body: dict[str, Any]) -> dict[str, Any]:
        deployment = self._target.deployment
        messages = body.get("messages") or []
        answered_tools = bool(messages) and messages[-1].get("role") == "tool"
        if deployment.tool_calls and not answered_tools and body.get("tool_choice") != "none":
            calls = [
                {
                    "id": f"call_mock{i}",
                    "type": "function",
                    "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                }
                for i, c in enumerate(deployment.tool_calls)
            ]
            return {"role": "assistant", "content": None, "tool_calls": calls}
        return {"role": "assistant", "content": deployment.response or DEFAULT_TEXT}


def _tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


def _usage(body: dict[str, Any], message: dict[str, Any]) -> dict[str, int]:
    prompt = sum(_tokens(json.dumps(m.get("content"))) for m in body.get("messages") or [])
    completion = _tokens(json.dumps(message.get("content") or message.get("tool_calls")))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _stream_parts(message: dict[str, Any], usage: dict[str, int], model: str, size: int, broken: bool) -> list[bytes]:
    cid = completion_id()
    created = int(time.time())

    def event(delta: dict[str, Any], finish: str | None = None, usage_: Any = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if delta is not None else [],
        }
        if usage_ is not None:
            chunk["usage"] = usage_
        return b"data: " + dumps(chunk) + b"\n\n"

    parts = [event({"role": "assistant", "content": ""})]
    if message.get("tool_calls"):
        for i, call in enumerate(message["tool_calls"]):
            parts.append(
                event(
                    {
                        "tool_calls": [
                            {
                                "index": i,
                                "id": call["id"],
                                "type": "function",
                                "function": {"name": call["function"]["name"], "arguments": ""},
                            }
                        ]
                    }
                )
            )
            parts.append(
                event({"tool_calls": [{"index": i, "function": {"arguments": call["function"]["arguments"]}}]})
            )
        finish = "tool_calls"
    else:
        text: str = message["content"]
        pieces = [text[i : i + size] for i in range(0, len(text), size)] if size else _words(text)
        parts.extend(event({"content": piece}) for piece in pieces)
        finish = "stop"
    if broken:
        return parts[: max(2, len(parts) // 2)]
    parts.append(event({}, finish))
    parts.append(event(None, usage_=usage))  # type: ignore[arg-type]
    parts.append(b"data: [DONE]\n\n")
    return parts


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
