"""The ASGI app of ``polyroute serve``: HTTP in, the router's transport, HTTP out.

Nothing here routes, translates or fails over: each request becomes an httpx request handed to
:meth:`RouterTransport.handle_async_request`, exactly as an in-process client's would, so every API the transport
serves (``/v1/chat/completions``, ``/v1/messages``, ``/v1/models``, and each API registered in
:mod:`polyroute.api` later) is served here too, with the same stream-commit rule, errors and headers. What the app
adds is what only a server needs: virtual keys (:mod:`polyroute.serve.keys`), ``GET /health``, the usage report
at ``GET /usage`` for admin keys, gzip / deflate request bodies decoded (:mod:`polyroute.serve.encoding`), its own
errors in the shape of the path's API (the transport's already are), and streaming to the socket: each chunk is
sent as it arrives (no buffering), and a client that goes away closes the upstream stream at once, even while the
upstream is silent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, cast

from polyroute import _compat
from polyroute.errors import error_body, status_error_type
from polyroute.router import Router
from polyroute.serve.encoding import ACCEPTED, BodyEncodingError, codings, decode
from polyroute.serve.keys import KeyRing, KeyState
from polyroute.serve.startup import responses_store

KEY_HEADER = b"x-polyroute-key"
"""The name of the virtual key that made a request, on the request the transport gets (for usage records; never
sent upstream: the transport forwards no ``x-polyroute-*`` header)."""
TAGS_HEADER = b"x-polyroute-tags"
"""That key's tags, comma-separated."""

logger = logging.getLogger("polyroute.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY = 64 * 1024 * 1024
"""Largest request body accepted (images and PDFs ride in JSON)."""

_DROPPED = frozenset(
    {b"authorization", b"x-api-key", b"host", b"content-length", b"transfer-encoding", b"connection"}
    | {b"content-encoding", KEY_HEADER, TAGS_HEADER}
)
"""Request headers not handed to the transport: the client's credential (a virtual key, never for a provider),
hop-by-hop ones (the transport sets its own), ``content-encoding`` (the body is decoded here), and the key identity
headers (set by the server, never by clients)."""

_HOP = frozenset({b"content-length", b"transfer-encoding", b"connection"})

_JSON = [(b"content-type", b"application/json")]


class ServeApp:
    """An ASGI app serving ``router`` over HTTP, behind ``keys`` (the config's ``keys:`` by default).

    Without keys it refuses to start unless ``open_access`` is set: a server with provider keys behind it must not
    answer anyone who finds its port.
    """

    def __init__(self, router: Router, *, open_access: bool = False, workers: int = 1) -> None:
        self.router = router
        self.workers = workers
        self._split_responses = workers > 1 and responses_store(router.config) == "memory"
        self.transport = router.transport()
        self.keys = KeyRing(router.config.keys)
        self.open_access = open_access
        if not self.keys and not open_access:
            from polyroute.errors import ConfigError

            raise ConfigError(
                "polyroute serve needs client keys: add `keys:` to the config (`polyroute key` makes one) or pass "
                "--no-auth to serve without keys (loopback testing only)"
            )
        self._lib: Any = _compat.UPSTREAM

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point (HTTP and lifespan)."""
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.transport.aclose_pools()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- one request --------------------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        anthropic = path.endswith(("/messages", "/messages/count_tokens"))  # with or without /v1, as the transport
        if path == "/health":
            await _send_json(send, 200, {"status": "ok"})
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        key: KeyState | None = None
        if self.keys:
            presented = _presented_key(headers)
            key = self.keys.find(presented) if presented else None
            if key is None:
                message = (
                    "no API key: send a polyroute key as `Authorization: Bearer <key>` or `x-api-key: <key>`"
                    if not presented
                    else "invalid API key: this polyroute server does not know it (provider keys are not accepted)"
                )
                await self._error(send, anthropic, 401, message, "invalid_api_key")
                return
        if path == "/usage" or path.startswith("/usage/"):
            if key is not None and not key.key.admin:
                await self._error(send, anthropic, 403, "/usage needs an admin key (keys[].admin: true)", None)
                return
            await self._usage_page(scope, send, anthropic)
            return
        body = await _read_body(receive)
        if body is None:
            await self._error(send, anthropic, 413, f"the request body is larger than {MAX_BODY} bytes", None)
            return
        applied = codings(value for name, value in headers if name == b"content-encoding")
        if applied and body:
            try:  # in a thread: inflating up to MAX_BODY takes a while, and other requests are being served
                body = await asyncio.to_thread(decode, body, applied, MAX_BODY)
            except BodyEncodingError as exc:
                extra = {"accept-encoding": ACCEPTED} if exc.status == 415 else None
                await self._error(send, anthropic, exc.status, exc.message, exc.code, extra)
                return
        if key is not None:
            refused = _refusal(key, body)
            if refused is not None:
                status, message, extra = refused
                await self._error(send, anthropic, status, message, None, extra)
                return
        if path.endswith("/messages/count_tokens") and method == "POST":
            estimate = self._estimate_tokens(body)
            if estimate is not None:
                await _send_json(send, 200, {"input_tokens": estimate})
                return
        if key is not None and key.key.routes is not None and path.startswith("/v1/models/") and method == "GET":
            name = path.removeprefix("/v1/models/")
            if not key.allows(name):
                await self._error(send, anthropic, 403, f"the key {key.key.name!r} may not call model {name!r}", None)
                return
        await self._forward(scope, receive, send, headers, body, anthropic, key)

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        anthropic: bool,
        key: KeyState | None,
    ) -> None:
        lib = self._lib
        query: bytes = scope.get("query_string") or b""
        url = "http://polyroute" + scope["path"] + ("?" + query.decode("latin-1") if query else "")
        forwarded = [(name, value) for name, value in headers if name not in _DROPPED]
        if key is not None:
            forwarded.append((KEY_HEADER, key.key.name.encode()))
            # the key's tags and ``key:<name>``: usage records and budgets (scope: tag) see which key called
            tags = [*key.key.tags, f"key:{key.key.name}"]
            forwarded.append((TAGS_HEADER, ",".join(tags).encode()))
        request = lib.Request(scope["method"], url, headers=forwarded, content=body)
        watch = _ClientWatch(receive)
        stream: Any = None
        try:
            try:
                response = await self.transport.handle_async_request(request)
            except lib.TimeoutException as exc:
                watch.stop()
                await self._error(send, anthropic, 504, str(exc), "timeout")
                return
            except lib.TransportError as exc:
                watch.stop()
                await self._error(send, anthropic, 502, str(exc), "upstream_unreachable")
                return
            status: int = response.status_code
            out = [(name, value) for name, value in response.headers.raw if name.lower() not in _HOP]
            stream = response.stream
            if isinstance(stream, lib.ByteStream):  # a whole answer (errors too, in their API's shape): one write
                content = b"".join([chunk async for chunk in stream])
                if status == 200 and key is not None and key.key.routes is not None and scope["path"] == "/v1/models":
                    content = _only_allowed(content, key)
                if status == 401:
                    status, content = _server_side_key_error(content)
                elif status in (400, 404) and self._split_responses and "/responses" in scope["path"]:
                    content = _maybe_on_another_worker(content, self.workers)
                watch.stop()
                await _send(send, status, out, content)
                return
            await send({"type": "http.response.start", "status": status, "headers": out})
            async for chunk in stream:
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            watch.stop()
            await send({"type": "http.response.body", "body": b""})
        except asyncio.CancelledError:
            if not watch.gone:
                raise
            watch.uncancel()
            logger.info("polyroute serve: the client disconnected; the upstream call was closed")
        finally:
            watch.stop()
            if stream is not None:
                await stream.aclose()

    def _estimate_tokens(self, body: bytes) -> int | None:
        """``count_tokens`` for a route with no Anthropic deployment: the router's own estimate (characters / 4);
        None to let the transport ask an Anthropic deployment (or answer the error).
        """
        from polyroute.anthropic_inbound import to_chat_request
        from polyroute.errors import PolyrouteError
        from polyroute.failover import profile
        from polyroute.messages_api import is_anthropic

        try:
            native = json.loads(body)
            chat = to_chat_request(native, strict=False)
            targets = self.router.route(chat["model"]).targets
        except (ValueError, TypeError, PolyrouteError):
            return None
        if any(is_anthropic(target) for target in targets):
            return None
        return profile(chat).tokens

    async def _usage_page(self, scope: Scope, send: Send, anthropic: bool) -> None:
        """``GET /usage``: the usage report of the config's ledger (``usage.ledger``) as one HTML page, or JSON with
        ``?format=json``; ``?since=7d`` and ``?by=route,user`` as for ``polyroute usage``.
        """
        from urllib.parse import parse_qs

        ledger = self.router.config.usage.ledger
        if ledger is None:
            message = "no usage ledger: set usage.ledger (a SQLite file) in the config to see usage at /usage"
            await self._error(send, anthropic, 404, message, None)
            return
        query = parse_qs((scope.get("query_string") or b"").decode("latin-1"))
        since, by = query.get("since", [None])[0], query.get("by", ["route,deployment,tag,user"])[0]
        as_json = query.get("format", ["html"])[0] == "json"
        try:
            page = await asyncio.to_thread(_usage_report, self.router, ledger, since, by, as_json)
        except (ValueError, OSError, sqlite3.DatabaseError) as exc:
            await self._error(send, anthropic, 400, f"/usage: {exc}", None)
            return
        kind = b"application/json" if as_json else b"text/html; charset=utf-8"
        await _send(send, 200, [(b"content-type", kind), (b"cache-control", b"no-store")], page)

    async def _error(
        self,
        send: Send,
        anthropic: bool,
        status: int,
        message: str,
        code: str | None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if anthropic:
            from polyroute.messages_api import anthropic_error_body

            payload: Any = anthropic_error_body(status, message)
        else:
            payload = error_body(message, status_error_type(status), code)
        extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
        await _send(send, status, [*_JSON, *extra], json.dumps(payload, separators=(",", ":")).encode())


def _presented_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and value.strip():
            return value.decode("latin-1").strip()
    return None


def _refusal(key: KeyState, body: bytes) -> tuple[int, str, dict[str, str] | None] | None:
    """Why ``key`` may not make this request (a route it may not call, its rpm), or None."""
    if key.key.routes is not None and body:
        try:
            model = json.loads(body).get("model")
        except (ValueError, AttributeError):
            model = None  # the transport answers the malformed body
        if isinstance(model, str) and not key.allows(model):
            allowed = ", ".join(key.key.routes) or "none"
            return 403, f"the key {key.key.name!r} may not call model {model!r} (allowed: {allowed})", None
    wait = key.admit()
    if wait is not None:
        return (
            429,
            f"the key {key.key.name!r} is over its limit of {key.key.rpm} requests per minute",
            {"retry-after": str(max(1, round(wait)))},
        )
    return None


def _only_allowed(content: bytes, key: KeyState) -> bytes:
    """The model list with only the models ``key`` may call."""
    listing = json.loads(content)
    listing["data"] = [model for model in listing.get("data", []) if key.allows(str(model.get("id")))]
    return json.dumps(listing, separators=(",", ":")).encode()


async def _read_body(receive: Receive) -> bytes | None:
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        parts.append(chunk)
        if not message.get("more_body"):
            break
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _usage_report(router: Router, ledger: str, since: str | None, by: str, as_json: bool) -> bytes:
    """The report's page (or JSON) from the ledger, once the records queued so far are written."""
    from polyroute.usage.report import DIMENSIONS, parse_since, render_html, summarise

    dimensions = [d.strip() for d in by.split(",") if d.strip()]
    unknown = [d for d in dimensions if d not in DIMENSIONS]
    if unknown or not dimensions:
        raise ValueError(f"by={by!r}: choose from {', '.join(DIMENSIONS)}")
    if router.recorder is not None:
        router.recorder.flush()
    if not Path(ledger).is_file():
        raise ValueError(f"the ledger {ledger} has no records yet")
    try:
        start = parse_since(since) if since else None
    except ValueError:  # parse_since speaks of the command's --since; here it is a query parameter
        raise ValueError(f"since={since!r}: use a duration (24h, 7d, 30m) or a date (2026-11-30)") from None
    summary = summarise(ledger, start)
    if as_json:
        return json.dumps(summary.to_dict(dimensions), separators=(",", ":")).encode()
    return render_html(summary, dimensions, ledger).encode()


_PROVIDER_KEY_CODES = ("missing_api_key", "invalid_api_key")


def _server_side_key_error(content: bytes) -> tuple[int, bytes]:
    """A 401 from the router is about *its* provider key (missing or refused), which the client cannot fix: to the
    client it is a 503 (clients such as Claude Code take a 401 as their own key being bad, and stop). The body keeps
    its shape (OpenAI's or Anthropic's) and says whose key it is.
    """
    try:
        body = json.loads(content)
        error = body["error"]
    except (ValueError, KeyError, TypeError):
        return 401, content
    if not isinstance(error, dict):
        return 401, content
    fields = cast("dict[str, Any]", error)
    message = str(fields.get("message", ""))
    if fields.get("code") not in _PROVIDER_KEY_CODES and "API key" not in message:
        return 401, content
    fields["message"] = f"the polyroute server's provider key is the problem, not yours: {message}"
    if fields.get("type") == "authentication_error":
        fields["type"] = "api_error"
    return 503, json.dumps(body, separators=(",", ":")).encode()


def _maybe_on_another_worker(content: bytes, workers: int) -> bytes:
    """A stored response not found, on a server whose workers each keep their own Responses store in memory: the
    message says it may be in another worker's, and how to share the store (the startup warning is easily missed).
    """
    try:
        body = json.loads(content)
        error = cast("dict[str, Any]", body["error"])
        param, message = error.get("param"), str(error["message"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return content
    # continuing from one (a 400 naming previous_response_id), or reading one (OpenAI's 404: no param, no code)
    asked = param == "previous_response_id" or (param is None and message.startswith("Response with id "))
    if not asked or "not found" not in message:
        return content
    error["message"] = (
        f"{message} This polyroute server runs {workers} worker processes, each with its own in-memory Responses "
        "store, so the response may be in another worker's: set responses.store_path (SQLite) or responses.store: "
        "redis in its config."
    )
    return json.dumps(body, separators=(",", ":")).encode()


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], content: bytes) -> None:
    headers = [*headers, (b"content-length", str(len(content)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


async def _send_json(send: Send, status: int, payload: Any) -> None:
    await _send(send, status, _JSON, json.dumps(payload, separators=(",", ":")).encode())


class _ClientWatch:
    """Cancels the request's task when the client disconnects, so an upstream call in flight (waiting for an answer
    or between stream chunks) is closed at once.

    The ASGI server reports a disconnect only to ``receive()`` (uvicorn's ``send`` to a closed socket silently does
    nothing), so a watcher task waits on it for as long as the upstream call runs.
    """

    __slots__ = ("_task", "_watcher", "gone")

    def __init__(self, receive: Receive) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self.gone = False
        self._watcher: asyncio.Future[Message] | None = asyncio.ensure_future(receive())
        self._watcher.add_done_callback(self._done)

    def _done(self, watcher: asyncio.Future[Message]) -> None:
        if not watcher.cancelled() and watcher.exception() is None and watcher.result()["type"] == "http.disconnect":
            self.gone = True
            self._task.cancel()

    def stop(self) -> None:
        """The answer is complete (or failed): stop watching."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.remove_done_callback(self._done)
            watcher.cancel()

    def uncancel(self) -> None:
        """The cancellation was ours: the task goes on to end normally."""
        if sys.version_info >= (3, 11):
            self._task.uncancel()
