"""The mock provider: deterministic in-process deployments for tests and the demo (``provider: mock``).

It answers in the OpenAI wire format from an in-process upstream transport, so a mock call takes the same path
through the router as a real one: routing, failover, stream translation, usage and cost. Behaviour comes from the
deployment's config:

- ``response``: the answer's text (default :data:`DEFAULT_TEXT`); ``tool_calls``: answer with these calls instead
  when the request offers tools, ``tool_choice`` is not ``"none"`` and the last message is not a tool result;
- ``error`` (an HTTP status), ``error_message``, ``fail_times`` (fail only the first N calls; unset: always),
  ``retry_after`` (sent as the ``retry-after`` header);
- ``latency`` (seconds before the answer), ``chunk_delay`` (seconds between streamed chunks), ``chunk_size``
  (characters per streamed chunk; default one word). A wait longer than the request's read timeout ends in a
  read timeout, as a slow provider would;
- ``broken_stream``: the connection drops halfway through the body (mid-stream, after content was sent).

Answers are deterministic: the same request to the same deployment gets the same id, text and usage, with a fixed
``created``. Usage is counted like a provider's, about four characters a token, and is the same streamed or not;
a stream carries it in a last chunk only when the request asks (``stream_options.include_usage``), as OpenAI does.
``max_completion_tokens`` / ``max_tokens`` cut the text and end with ``finish_reason: "length"``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from polyroute import _compat
from polyroute.errors import status_error_type
from polyroute.providers._base import dumps

if TYPE_CHECKING:
    from polyroute.config import Deployment
    from polyroute.providers._base import Target

DEFAULT_TEXT = "Hello from polyroute's mock provider: no network, no keys, same code path as a real provider."
CREATED = 1735689600
"""The fixed ``created`` of every mock answer (2025-01-01T00:00:00Z), so answers compare equal across runs."""

_CODES: Mapping[int, str] = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}


class MockUpstream:
    """State shared by a router's mock deployments (how often each was called); :meth:`bind` gives a transport."""

    def __init__(self) -> None:
        self._calls: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def bind(self, target: Target) -> MockTransport:
        """A transport answering as ``target``'s mock deployment."""
        return MockTransport(self, target)

    def count(self, target: Target) -> int:
        """Count a call to a deployment; returns how many came before it."""
        key = (target.route, target.label)
        with self._lock:
            seen = self._calls.get(key, 0)
            self._calls[key] = seen + 1
            return seen


class MockTransport(_compat.TransportBase):
    """An upstream transport (sync and async) that answers as one mock deployment."""

    def __init__(self, shared: MockUpstream, target: Target) -> None:
        self._shared = shared
        self._target = target

    def handle_request(self, request: Any) -> Any:
        """Answer a sync upstream request."""
        wait, timed_out = _wait(self._target.deployment.latency, request)
        if wait:
            time.sleep(wait)
        if timed_out:
            raise _compat.UPSTREAM.ReadTimeout("mock deployment answered after the read timeout", request=request)
        return self._answer(request)

    async def handle_async_request(self, request: Any) -> Any:
        """Answer an async upstream request."""
        wait, timed_out = _wait(self._target.deployment.latency, request)
        if wait:
            await asyncio.sleep(wait)
        if timed_out:
            raise _compat.UPSTREAM.ReadTimeout("mock deployment answered after the read timeout", request=request)
        return self._answer(request)

    def _answer(self, request: Any) -> Any:
        lib = _compat.UPSTREAM
        target = self._target
        deployment = target.deployment
        body: dict[str, Any] = json.loads(request.content)
        seen = self._shared.count(target)
        if deployment.error is not None and (deployment.fail_times is None or seen < deployment.fail_times):
            return _error(deployment, seen)
        if request.url.path.endswith("/embeddings"):
            status, answer_body = _embeddings(deployment, body)
            return lib.Response(status, headers={"content-type": "application/json"}, content=dumps(answer_body))
        answer = _Answer(deployment, body)
        delay = deployment.chunk_delay or 0.0
        if not body.get("stream"):
            content = dumps(answer.completion())
            parts = [content[: len(content) // 2], content[len(content) // 2 :]]
            stream = _PartStream(parts, 0.0, request, broken_after=1 if deployment.broken_stream else None)
            return lib.Response(200, headers={"content-type": "application/json"}, stream=stream)
        parts = answer.stream_parts(deployment.chunk_size or 0)
        broken_after = max(2, len(parts) // 2) if deployment.broken_stream else None
        return lib.Response(
            200,
            headers={"content-type": "text/event-stream"},
            stream=_PartStream(parts, delay, request, broken_after=broken_after),
        )


def _wait(seconds: float | None, request: Any) -> tuple[float, bool]:
    """How long to sleep, and whether the caller's read timeout ends the wait first."""
    if not seconds:
        return 0.0, False
    timeouts: Mapping[str, Any] = request.extensions.get("timeout") or {}
    timeout = timeouts.get("read")
    if isinstance(timeout, int | float) and 0 < timeout < seconds:
        return float(timeout), True
    return seconds, False


def _error(deployment: Deployment, seen: int) -> Any:
    status = deployment.error
    assert status is not None
    message = deployment.error_message or f"mock deployment {deployment.label} failed with {status}"
    headers = {"content-type": "application/json", "x-request-id": f"req_mock_{seen}"}
    if deployment.retry_after is not None:
        headers["retry-after"] = f"{deployment.retry_after:g}"
    error = {
        "error": {"message": message, "type": status_error_type(status), "param": None, "code": _CODES.get(status)}
    }
    return _compat.UPSTREAM.Response(status, headers=headers, content=dumps(error))


class _PartStream(_compat.ByteStreamBase):
    """An upstream body in parts: waits between them, a read timeout, or a dropped connection."""

    def __init__(self, parts: list[bytes], delay: float, request: Any, *, broken_after: int | None) -> None:
        self._parts = parts
        self._request = request
        self._broken_after = broken_after
        self._delay, self._timed_out = _wait(delay, request)

    def _check(self, index: int) -> None:
        if self._broken_after is not None and index >= self._broken_after:
            raise _compat.UPSTREAM.RemoteProtocolError(
                "peer closed connection without sending complete message body (mock broken_stream)",
                request=self._request,
            )

    def _timeout(self) -> Exception:
        return _compat.UPSTREAM.ReadTimeout(
            "mock deployment paused longer than the read timeout", request=self._request
        )

    def __iter__(self) -> Iterator[bytes]:
        for i, part in enumerate(self._parts):
            self._check(i)
            if i and self._delay:
                time.sleep(self._delay)
                if self._timed_out:
                    raise self._timeout()
            yield part

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i, part in enumerate(self._parts):
            self._check(i)
            if i and self._delay:
                await asyncio.sleep(self._delay)
                if self._timed_out:
                    raise self._timeout()
            yield part


class _Answer:
    """The canned answer to one request, built once and rendered as a completion or as stream chunks."""

    def __init__(self, deployment: Deployment, body: dict[str, Any]) -> None:
        self.model = deployment.model
        digest = hashlib.sha256(deployment.label.encode() + b"\0" + json.dumps(body, sort_keys=True).encode())
        self.id = f"chatcmpl-mock{digest.hexdigest()[:20]}"
        options: Mapping[str, Any] = body.get("stream_options") or {}
        self.include_usage = bool(options.get("include_usage"))
        messages: list[dict[str, Any]] = body.get("messages") or []
        answered = bool(messages) and messages[-1].get("role") == "tool"
        wants_tools = bool(body.get("tools")) and body.get("tool_choice") != "none" and not answered
        self.tool_calls: list[dict[str, Any]] = []
        self.text: str | None = None
        self.finish = "stop"
        if deployment.tool_calls and wants_tools:
            self.tool_calls = [
                {
                    "id": f"call_mock{i}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for i, call in enumerate(deployment.tool_calls)
            ]
            self.finish = "tool_calls"
            completion_tokens = sum(
                _tokens(c["function"]["name"] + c["function"]["arguments"]) for c in self.tool_calls
            )
        else:
            text = deployment.response if deployment.response is not None else DEFAULT_TEXT
            limit = body.get("max_completion_tokens") or body.get("max_tokens")
            if isinstance(limit, int) and limit > 0 and _tokens(text) > limit:
                text = text[: limit * 4]
                self.finish = "length"
            self.text = text
            completion_tokens = _tokens(text)
        prompt_tokens = _prompt_tokens(messages, body.get("tools") or [])
        self.usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }

    def message(self) -> dict[str, Any]:
        """The completion's ``message``."""
        if self.tool_calls:
            return {"role": "assistant", "content": None, "tool_calls": self.tool_calls, "refusal": None}
        return {"role": "assistant", "content": self.text, "refusal": None}

    def completion(self) -> dict[str, Any]:
        """The ``chat.completion`` body."""
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": CREATED,
            "model": self.model,
            "choices": [{"index": 0, "message": self.message(), "finish_reason": self.finish, "logprobs": None}],
            "usage": self.usage,
            "system_fingerprint": None,
        }

    def _chunk(self, delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": self.model,
            "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if usage is not None:
            chunk["usage"] = usage
        return b"data: " + dumps(chunk) + b"\n\n"

    def stream_parts(self, size: int) -> list[bytes]:
        """The SSE body as OpenAI streams it: a role delta, content or tool-call deltas, the finish, the usage."""
        parts: list[bytes] = []
        if self.tool_calls:
            for i, call in enumerate(self.tool_calls):
                start = {"index": i, "id": call["id"], "type": "function"}
                start["function"] = {"name": call["function"]["name"], "arguments": ""}
                delta: dict[str, Any] = {"tool_calls": [start]}
                if i == 0:
                    delta = {"role": "assistant", "content": None, **delta}
                parts.append(self._chunk(delta))
                for piece in _pieces(call["function"]["arguments"], size):
                    parts.append(self._chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
        else:
            parts.append(self._chunk({"role": "assistant", "content": "", "refusal": None}))
            parts.extend(self._chunk({"content": piece}) for piece in _pieces(self.text or "", size))
        parts.append(self._chunk({}, self.finish))
        if self.include_usage:
            parts.append(self._chunk(None, usage=self.usage))
        parts.append(b"data: [DONE]\n\n")
        return parts


MOCK_DIMENSIONS = 256
"""The size of a mock embedding when the request names no ``dimensions``."""


def _embeddings(deployment: Deployment, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    """An OpenAI embeddings answer: one :func:`mock_vector` per input, in the requested encoding; more than 2048
    inputs is a 400, as OpenAI answers.
    """
    raw: Any = body["input"]
    inputs: list[Any] = cast("list[Any]", raw) if isinstance(raw, list) else [raw]
    if len(inputs) > 2048:
        message = f"'$.input' is invalid: at most 2048 inputs per request, got {len(inputs)}"
        return 400, {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    texts = [item if isinstance(item, str) else " ".join(map(str, item)) for item in inputs]
    size = body.get("dimensions") or MOCK_DIMENSIONS
    base64 = body.get("encoding_format") == "base64"
    data: list[dict[str, Any]] = []
    for i, text in enumerate(texts):
        vector = mock_vector(text, size, deployment.model)
        if base64:
            from polyroute.embeddings import encode_base64

            data.append({"object": "embedding", "index": i, "embedding": encode_base64(vector)})
        else:
            data.append({"object": "embedding", "index": i, "embedding": vector})
    tokens = sum(_tokens(text) for text in texts)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return 200, {"object": "list", "data": data, "model": deployment.model, "usage": usage}


def mock_vector(text: str, size: int, model: str = "") -> list[float]:
    """A unit vector from the text's character trigrams, hashed into ``size`` signed buckets (with the model name,
    so two mock models give incomparable vectors): texts that share words get similar vectors, as a real
    embedding model's would, deterministically and with no model weights.
    """
    vector = [0.0] * size
    padded = f"  {' '.join(text.lower().split())}  "
    salt = model.encode()
    for i in range(len(padded) - 2):
        digest = zlib.crc32(padded[i : i + 3].encode(), zlib.crc32(salt))
        vector[digest % size] += 1.0 if digest & 0x80000000 else -1.0
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    return [v / norm for v in vector]


def _tokens(text: str) -> int:
    """About four characters a token, at least one for any text."""
    return (len(text) + 3) // 4 if text else 0


def _prompt_tokens(messages: Sequence[Mapping[str, Any]], tools: Sequence[Any]) -> int:
    """Like OpenAI's count: a few tokens per message for its framing, plus the text; 3 to prime the reply."""
    total = 3
    for message in messages:
        content = message.get("content")
        text = content if isinstance(content, str) else json.dumps(content) if content is not None else ""
        if message.get("tool_calls"):
            text += json.dumps(message["tool_calls"])
        total += 4 + _tokens(text)
    if tools:
        total += _tokens(json.dumps(tools))
    return total


def _pieces(text: str, size: int) -> list[str]:
    """``size`` characters at a time, or word by word (each piece keeps its trailing space)."""
    if not text:
        return []
    if size:
        return [text[i : i + size] for i in range(0, len(text), size)]
    words = text.split(" ")
    pieces = [word + (" " if i < len(words) - 1 else "") for i, word in enumerate(words)]
    return [piece for piece in pieces if piece]


__all__ = ["CREATED", "DEFAULT_TEXT", "MOCK_DIMENSIONS", "MockTransport", "MockUpstream", "mock_vector"]
