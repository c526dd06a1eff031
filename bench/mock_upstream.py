"""A fast local mock upstream for the benchmark: OpenAI Chat Completions and Anthropic Messages, JSON and SSE.

It runs in its own process (``python bench/mock_upstream.py``) so the client under test does not share a GIL
with it, and it prints ``PORT <n>`` on stdout once it listens on 127.0.0.1. Two implementations:

- ``--impl raw`` (the default): an ``asyncio.Protocol`` HTTP/1.1 server with keep-alive. Answers are built once
  per (endpoint, model, stream, usage) and cached as complete byte strings, so a request costs a header scan, a
  small ``json.loads`` and one ``transport.write``.
- ``--impl starlette``: the same answers from a Starlette app under uvicorn, to compare (``run.py --compare-mock``).

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/responses`` and ``POST /v1/messages`` (also without ``/v1``),
``GET /v1/models``, and ``POST /v1/embeddings`` (one 1536-float vector per input, base64 or float as asked, cached per
input count). Responses streams are typed events (``event:`` lines, ``sequence_number``), as OpenAI sends them.
A request with ``"stream": true`` gets ``--chunks`` content events (200 by default), each event its own HTTP
chunk (``transfer-encoding: chunked``) as real servers send them, so the client parses the stream chunk by chunk.
OpenAI streams carry ``"usage": null`` on every chunk and a final usage chunk when ``stream_options.include_usage``
is set, as OpenAI's API does. The server stops by itself after ``--max-seconds`` (default 900).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import Any

CREATED = 1_700_000_000
TEXT = "Hello from the polyroute bench mock: a short, fixed answer of about twenty tokens for every call."


def token(i: int) -> str:
    """The i-th streamed token: distinct, as LiteLLM aborts a stream that repeats one chunk many times."""
    return f"t{i:03d} "


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


# -- answers (pure, cached) -----------------------------------------------------------------------------------


def openai_json(model: str) -> bytes:
    return _dumps(
        {
            "id": "chatcmpl-bench0000000000000000",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": TEXT, "refusal": None, "annotations": []},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 12,
                "completion_tokens": 20,
                "total_tokens": 32,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
            },
            "service_tier": "default",
            "system_fingerprint": "fp_bench",
        }
    )


def openai_events(model: str, chunks: int, include_usage: bool) -> list[bytes]:
    head = {"id": "chatcmpl-bench0000000000000000", "object": "chat.completion.chunk", "created": CREATED}
    head["model"] = model
    head["service_tier"] = "default"
    head["system_fingerprint"] = "fp_bench"
    extra = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        body = {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
        return b"data: " + _dumps(body) + b"\n\n"

    events = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
    events += [chunk({"content": token(i)}, None) for i in range(chunks)]
    events.append(chunk({}, "stop"))
    if include_usage:
        usage = {"prompt_tokens": 12, "completion_tokens": chunks, "total_tokens": 12 + chunks}
        events.append(b"data: " + _dumps({**head, "choices": [], "usage": usage}) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def embeddings_json(model: str, count: int, encoding: str, size: int = 1536) -> bytes:
    """An OpenAI embeddings answer: ``count`` vectors of ``size`` floats (base64: little-endian float32)."""
    import base64
    import struct

    data: list[dict[str, Any]] = []
    for i in range(count):
        values = [((i * 31 + j * 17) % 1000) / 1000.0 - 0.5 for j in range(size)]
        packed = struct.pack(f"<{size}f", *values)
        floats = list(struct.unpack(f"<{size}f", packed))
        vector: Any = base64.b64encode(packed).decode() if encoding == "base64" else floats
        data.append({"object": "embedding", "index": i, "embedding": vector})
    usage = {"prompt_tokens": 8 * count, "total_tokens": 8 * count}
    return _dumps({"object": "list", "data": data, "model": model, "usage": usage})


RESPONSE_USAGE = {
    "input_tokens": 12,
    "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
    "output_tokens": 20,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 32,
}


def _response(model: str, status: str, output: list[Any], usage: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": "resp_bench0000000000000000",
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": 64,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def _message(text: str, status: str = "completed") -> dict[str, Any]:
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
    return {"id": "msg_bench0000", "type": "message", "status": status, "content": [part], "role": "assistant"}


def responses_json(model: str) -> bytes:
    return _dumps(_response(model, "completed", [_message(TEXT)], RESPONSE_USAGE))


def responses_events(model: str, chunks: int) -> list[bytes]:
    events: list[bytes] = []

    def event(kind: str, **fields: Any) -> None:
        body = {"type": kind, "sequence_number": len(events), **fields}
        events.append(f"event: {kind}\ndata: ".encode() + _dumps(body) + b"\n\n")

    text = "".join(token(i) for i in range(chunks))
    ref = {"item_id": "msg_bench0000", "output_index": 0}
    event("response.created", response=_response(model, "in_progress", [], None))
    event("response.in_progress", response=_response(model, "in_progress", [], None))
    event("response.output_item.added", output_index=0, item={**_message(""), "status": "in_progress", "content": []})
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    event("response.content_part.added", **ref, content_index=0, part=part)
    for i in range(chunks):
        event("response.output_text.delta", **ref, content_index=0, delta=token(i), logprobs=[])
    event("response.output_text.done", **ref, content_index=0, text=text, logprobs=[])
    event("response.content_part.done", **ref, content_index=0, part={**part, "text": text})
    event("response.output_item.done", output_index=0, item=_message(text))
    usage = {**RESPONSE_USAGE, "output_tokens": chunks, "total_tokens": 12 + chunks}
    event("response.completed", response=_response(model, "completed", [_message(text)], usage))
    return events


def anthropic_json(model: str) -> bytes:
    return _dumps(
        {
            "id": "msg_bench00000000000000000",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": TEXT}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 12,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 20,
                "service_tier": "standard",
            },
        }
    )


def anthropic_events(model: str, chunks: int) -> list[bytes]:
    def event(name: str, data: dict[str, Any]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + _dumps(data) + b"\n\n"

    message = {
        "id": "msg_bench00000000000000000",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 12,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 1,
        },
    }
    deltas = [
        event(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": token(i)}},
        )
        for i in range(chunks)
    ]
    return [
        event("message_start", {"type": "message_start", "message": message}),
        event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        event("ping", {"type": "ping"}),
        *deltas,
        event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": chunks},
            },
        ),
        event("message_stop", {"type": "message_stop"}),
    ]


def _json_response(status: int, body: bytes, keep_alive: bool = True) -> bytes:
    reason = {200: b"OK", 400: b"Bad Request", 404: b"Not Found"}.get(status, b"Error")
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, reason),
            b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body),
            b"x-request-id: req_bench\r\nrequest-id: req_bench\r\n",
            b"" if keep_alive else b"connection: close\r\n",
            b"\r\n",
            body,
        )
    )


def _sse_response(events: list[bytes]) -> bytes:
    parts = [b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"]
    parts.append(b"x-request-id: req_bench\r\ntransfer-encoding: chunked\r\n\r\n")
    parts += [b"%x\r\n%s\r\n" % (len(e), e) for e in events]
    parts.append(b"0\r\n\r\n")
    return b"".join(parts)


class Answers:
    """Builds and caches every answer; ``lookup`` is the only per-request work."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self._cache: dict[tuple[str, str, Any, bool], tuple[int, str, bytes | list[bytes]]] = {}

    def lookup(self, path: str, body: bytes) -> tuple[int, str, bytes | list[bytes]]:
        """(status, "json" | "sse", body bytes or SSE events) for a POST."""
        if path.startswith("/v1/"):
            path = path[3:]
        if path == "/embeddings":
            return self._embeddings(body)
        kinds = {"/chat/completions": "openai", "/responses": "responses", "/messages": "anthropic"}
        kind = kinds.get(path)
        if kind is None:
            return 404, "json", _dumps({"error": {"message": f"no route {path}", "type": "invalid_request_error"}})
        try:
            request = json.loads(body)
            model = str(request.get("model") or "bench-model")
            stream = bool(request.get("stream"))
            usage = bool((request.get("stream_options") or {}).get("include_usage"))
        except (ValueError, AttributeError):
            return 400, "json", _dumps({"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
        key = (kind, model, stream, usage)
        found = self._cache.get(key)
        if found is None:
            if kind == "openai":
                found = (
                    (200, "sse", openai_events(model, self.chunks, usage))
                    if stream
                    else (200, "json", openai_json(model))
                )
            elif kind == "responses":
                found = (
                    (200, "sse", responses_events(model, self.chunks))
                    if stream
                    else (200, "json", responses_json(model))
                )
            else:
                found = (
                    (200, "sse", anthropic_events(model, self.chunks))
                    if stream
                    else (200, "json", anthropic_json(model))
                )
            self._cache[key] = found
        return found

    def _embeddings(self, body: bytes) -> tuple[int, str, bytes | list[bytes]]:
        request = json.loads(body)
        inputs = request["input"]
        count = len(inputs) if isinstance(inputs, list) else 1
        key = ("embeddings", str(request.get("model")), count, request.get("encoding_format") == "base64")
        found = self._cache.get(key)
        if found is None:
            encoding = request.get("encoding_format") or "float"
            found = self._cache[key] = (200, "json", embeddings_json(str(request.get("model")), count, encoding))
        return found


MODELS = _dumps(
    {"object": "list", "data": [{"id": "bench-model", "object": "model", "created": CREATED, "owned_by": "bench"}]}
)


# -- the raw asyncio server -----------------------------------------------------------------------------------


class _Protocol(asyncio.Protocol):
    __slots__ = ("_answers", "_buffer", "_cache", "_transport")

    def __init__(self, answers: Answers, cache: dict[int, bytes]) -> None:
        self._answers = answers
        self._cache = cache
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self._buffer[:end].decode("latin-1")
            lines = head.split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = 0
            chunked = False
            close = False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "transfer-encoding" and "chunked" in value.lower():
                    chunked = True
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
            start = end + 4
            if chunked:
                parsed = _dechunk(self._buffer, start)
                if parsed is None:
                    return
                body, consumed = parsed
            else:
                if len(self._buffer) - start < length:
                    return
                body, consumed = self._buffer[start : start + length], start + length
            self._buffer = self._buffer[consumed:]
            assert self._transport is not None
            self._transport.write(self._respond(method, path.split("?", 1)[0], body, close))
            if close:
                self._transport.close()
                return

    def _respond(self, method: str, path: str, body: bytes, close: bool) -> bytes:
        if method == "GET" and path.endswith("/models"):
            return _json_response(200, MODELS, not close)
        if method != "POST":
            return _json_response(404, _dumps({"error": {"message": "not found"}}), not close)
        status, kind, payload = self._answers.lookup(path, body)
        if status != 200 or close:
            assert isinstance(payload, bytes)
            return _json_response(status, payload, not close)
        wire = self._cache.get(id(payload))  # cached answers live as long as the server: ids are stable
        if wire is None:
            wire = _sse_response(payload) if kind == "sse" else _json_response(200, payload)  # type: ignore[arg-type]
            self._cache[id(payload)] = wire
        return wire


def _dechunk(buffer: bytes, start: int) -> tuple[bytes, int] | None:
    parts: list[bytes] = []
    pos = start
    while True:
        eol = buffer.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(buffer[pos:eol].split(b";", 1)[0], 16)
        if len(buffer) < eol + 2 + size + 2:
            return None
        parts.append(buffer[eol + 2 : eol + 2 + size])
        pos = eol + 2 + size + 2
        if size == 0:
            return b"".join(parts), pos


async def serve_raw(port: int, chunks: int, max_seconds: float) -> None:
    loop = asyncio.get_running_loop()
    answers = Answers(chunks)
    cache: dict[int, bytes] = {}
    server = await loop.create_server(lambda: _Protocol(answers, cache), "127.0.0.1", port, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), max_seconds)
    except asyncio.TimeoutError:
        print("mock upstream: --max-seconds reached, stopping", file=sys.stderr)
    server.close()


# -- the Starlette alternative ----------------------------------------------------------------------------------


def serve_starlette(port: int, chunks: int, max_seconds: float) -> None:
    import socket
    import threading

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    answers = Answers(chunks)

    async def post(request: Request) -> Response:
        status, kind, payload = answers.lookup(request.url.path, await request.body())
        if kind == "sse":
            assert isinstance(payload, list)

            async def events() -> Any:
                for event in payload:
                    yield event

            return StreamingResponse(events(), media_type="text/event-stream")
        return Response(payload, status_code=status, media_type="application/json")

    async def models(request: Request) -> Response:
        return Response(MODELS, media_type="application/json")

    routes = [
        Route(p, post, methods=["POST"])
        for p in (
            "/v1/chat/completions",
            "/v1/responses",
            "/v1/messages",
            "/chat/completions",
            "/responses",
            "/messages",
        )
    ]
    app = Starlette(routes=[*routes, Route("/v1/models", models)])
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    threading.Timer(max_seconds, lambda: setattr(server, "should_exit", True)).start()
    server.run(sockets=[sock])
    os._exit(0)  # the timer thread must not keep the process alive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed as 'PORT n')")
    parser.add_argument("--chunks", type=int, default=200, help="content events per stream")
    parser.add_argument("--impl", choices=("raw", "starlette"), default="raw")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="stop by itself after this long")
    args = parser.parse_args()
    if args.impl == "raw":
        asyncio.run(serve_raw(args.port, args.chunks, args.max_seconds))
    else:
        serve_starlette(args.port, args.chunks, args.max_seconds)


if __name__ == "__main__":
    main()
