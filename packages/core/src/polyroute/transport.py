"""The in-process transport: the openai SDK (or any httpx / httpx2 client) sends its request here as if to an
OpenAI server, and gets an OpenAI answer back, with routing, translation and failover in between.

This is the only module that does I/O, and it does it in one place. The request loop is written once, as a
generator (:meth:`RouterTransport._drive`) that decides every step of a call: which deployment next (from
:class:`~polyroute.failover.Attempts`), the upstream request, what a status or a body means, when a stream commits,
retries, failover, hedging. It performs no I/O: it *yields* what it needs done (:class:`_Send`, :class:`_Read`,
:class:`_Exchange`, :class:`_ReadAll`, :class:`_Close`, :class:`_Sleep`; for hedging :class:`_Launch`, :class:`_Wait`)
and is sent the
result back. Two short runners, :meth:`RouterTransport._run` (sync) and :meth:`RouterTransport._arun` (async),
perform those steps with their deadlines and nothing else, as httpcore keeps h11's state machine apart from its
sockets: sync and async cannot drift, because there is only one loop.

A stream is committed once its first content chunk (text, reasoning, a tool call, a refusal) is ready: until then
a failure moves to the next deployment; after it, an upstream failure becomes one in-band
``data: {"error": …}`` event, which the SDK raises as ``openai.APIError``.

Deadlines: a deployment's ``timeout`` bounds a non-streamed call and a stream up to its commit (``ttft_timeout``
when set), whatever the upstream trickles; after the commit, ``stream_idle_timeout`` bounds each silence between
chunks; all within the caller's own SDK timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import inspect
import logging
import os
import socket
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Generator, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, TypeAlias

from polyroute import _compat
from polyroute.api import Api, RawAnswer, StreamFormat, api_for, error_body, served
from polyroute.errors import (
    AllTargetsFailedError,
    NotFoundPathError,
    PolyrouteError,
    StreamInterruptedError,
    UnsupportedFeatureError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeout,
    redact,
)
from polyroute.failover import Attempts
from polyroute.providers._base import (
    StreamDecoder,
    StreamTranslator,
    Target,
    dumps,
    forwarded_headers,
    own_headers,
    with_forwarded,
)
from polyroute.router import Router
from polyroute.types.openai import ChatCompletion
from polyroute.usage import recorder as usage

logger = logging.getLogger("polyroute")

Outcome: TypeAlias = "ChatCompletion | StreamCall"
"""A finished completion, or a primed stream."""

_PASSTHROUGH = ("CannotOverwriteExistingCassetteException",)
"""Exceptions that are not upstream failures and must reach the test that caused them (vcrpy's no-match)."""


# -- the driver's I/O steps --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Send:
    """Send ``request`` to ``target``'s upstream; the result is the response (headers read). ``deadline`` is
    monotonic.
    """

    target: Target
    request: Any
    deadline: float


@dataclass(slots=True)
class _Read:
    """The next piece of a streamed body (None at its end), before ``deadline``."""

    call: StreamCall
    deadline: float


@dataclass(slots=True)
class _Exchange:
    """Send ``request`` to ``target``'s upstream and read its whole body before ``deadline``; the result is
    ``(response, body, head)``, the response closed. A non-streamed call's one step: one deadline scope, not two.
    """

    target: Target
    request: Any
    deadline: float


@dataclass(slots=True)
class _ReadAll:
    """The whole body of ``response`` (to ``request``) before ``deadline``; the response is closed afterwards,
    whatever happens.
    """

    response: Any
    request: Any
    deadline: float


@dataclass(slots=True)
class _Close:
    """Close ``response`` (a failed attempt's)."""

    response: Any


@dataclass(slots=True)
class _Sleep:
    seconds: float


@dataclass(slots=True)
class _Launch:
    """Hedging: run one attempt's driver concurrently (a worker thread, a task)."""

    target: Target
    attempt: Generator[Any, Any, Outcome]


@dataclass(slots=True)
class _Wait:
    """Hedging: the next launched attempt to finish, as ``(target, outcome, error)``; None after ``timeout``."""

    timeout: float | None


class _Expired(Exception):
    """A runner's deadline passed (thrown into the driver, which names the limit)."""


class _Outgoing:
    """One upstream request, built as the runner needs it: as httpcore's own for a non-streamed exchange on a
    stock transport (no second request object, no header normalization per call), else as the HTTP library's
    (once). Both share ``extensions``, where the loop sets the timeouts left.
    """

    __slots__ = ("_built", "content", "extensions", "headers", "method", "url")

    def __init__(
        self,
        method: str,
        url: Any,
        headers: tuple[Any, list[tuple[bytes, bytes]]],
        content: bytes,
        extensions: dict[str, Any],
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        """The normalized ``Headers`` and their raw pairs, both shared by every request with the same set."""
        self.content = content
        self.extensions = extensions
        self._built: Any = None

    def built(self) -> Any:
        """The request as the HTTP library's ``Request`` (what a patched transport, vcrpy's, records)."""
        req = self._built
        if req is None:
            lib = _compat.UPSTREAM
            content = self.content
            req = self._built = lib.Request(
                self.method,
                self.url,
                headers=self.headers[0],
                stream=lib.ByteStream(content),
                extensions=self.extensions,
            )
            length = self.length()
            if length is not None:
                req.headers["content-length"] = str(length)
            req.read()  # the body as ``request.content`` too, as ``Request(content=...)`` has it (vcrpy reads it)
        return req

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers as httpcore takes them: the shared raw pairs, then ``content-length``."""
        length = self.length()
        return self.headers[1] if length is None else [*self.headers[1], (b"content-length", b"%d" % length)]

    def length(self) -> int | None:
        """The ``content-length`` to send: the body's, 0 for an empty POST, PUT or PATCH (as ``Request(content=...)``
        sends), none for a GET.
        """
        content = self.content
        return len(content) if content or self.method in _WITH_BODY else None


_IO: TypeAlias = "_Send | _Exchange | _Read | _ReadAll | _Close | _Sleep | _Launch | _Wait"
Driver: TypeAlias = "Generator[_IO, Any, Any]"


class RouterTransport(_compat.TransportBase):
    """An httpx / httpx2 transport (sync and async) that serves OpenAI's API from a :class:`Router`.

    Its upstream pools belong to the router, which may serve many clients at once, so :meth:`close` and
    :meth:`aclose` (what an httpx client calls when *it* closes) close nothing: closing one client must not cut
    another client's stream in flight. :meth:`Router.close` / :meth:`Router.aclose` close the pools.
    """

    def __init__(self, router: Router) -> None:
        self.router = router
        self._lock = threading.Lock()
        self._sync_inner: Any = None
        self._async_inner: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._mock: Any = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._urls: dict[str, Any] = {}
        self._headers: dict[tuple[Any, ...], Any] = {}
        self._clients = 0
        _TRANSPORTS.add(self)

    def __repr__(self) -> str:
        return f"RouterTransport({self.router!r})"

    def _forked(self) -> None:
        """In a forked child: forget the parent's pools and hedging threads. Its pooled sockets are the parent's
        connections too: a child that reused one would read the parent's answers (and the parent the child's).
        Dropping them closes only the child's copies of their descriptors; the threads did not survive the fork.
        """
        self._lock = threading.Lock()
        self._sync_inner = None
        self._async_inner = weakref.WeakKeyDictionary()
        self._pool = None

    # -- entry points -------------------------------------------------------------------------------------------

    def handle_request(self, request: Any) -> Any:
        """Serve one request from a sync client."""
        lib = _compat.library_of(request)
        attempts: Attempts | None = None
        try:
            own = own_headers(request.headers)
            api = self._dispatch(request, own)
            if isinstance(api, tuple):
                return _json_response(lib, *api)
            body = api.parse(request.read(), self, own)
            parts = api.split(body, self)
            if parts is not None:
                return self._run_parts(lib, api, parts, request, own)
            routing, call = usage.begin(self.router, api, body, own)
            attempts = Attempts(self.router, routing, _caller_timeout(request), call)
            target, outcome = self._run(self._drive(api, body, attempts, request.headers), attempts)
            return self._respond(lib, api, outcome, target, attempts)
        except PolyrouteError as exc:
            return _error_response(lib, request, exc, attempts)
        except Exception as exc:
            if type(exc).__name__ in _PASSTHROUGH:
                raise
            logger.exception("polyroute internal error")
            return _internal_error(lib, request, exc, attempts)

    async def handle_async_request(self, request: Any) -> Any:
        """Serve one request from an async client."""
        lib = _compat.library_of(request)
        attempts: Attempts | None = None
        if asyncio._get_running_loop() is None:  # pyright: ignore[reportPrivateUsage]
            return _error_response(lib, request, _not_asyncio(), None)
        try:
            own = own_headers(request.headers)
            api = self._dispatch(request, own)
            if isinstance(api, tuple):
                return _json_response(lib, *api)
            body = api.parse(await request.aread(), self, own)
            parts = api.split(body, self)
            if parts is not None:
                return await self._arun_parts(lib, api, parts, request, own)
            routing, call = usage.begin(self.router, api, body, own)
            attempts = Attempts(self.router, routing, _caller_timeout(request), call)
            target, outcome = await self._arun(self._drive(api, body, attempts, request.headers), attempts)
            return self._respond(lib, api, outcome, target, attempts)
        except PolyrouteError as exc:
            return _error_response(lib, request, exc, attempts)
        except asyncio.CancelledError:
            if attempts is not None and attempts.call is not None:
                attempts.call.failed(_cancelled(), attempts)  # its usage record; a budget reservation is settled
            raise
        except Exception as exc:
            if type(exc).__name__ in _PASSTHROUGH:
                raise
            logger.exception("polyroute internal error")
            return _internal_error(lib, request, exc, attempts)

    def _run_parts(self, lib: Any, api: Api, parts: list[Any], request: Any, own: Mapping[str, str]) -> Any:
        """A request the API splits (an embeddings batch larger than a provider takes): each part is a request of
        its own through the loop (and a usage record of its own), run concurrently on the hedging threads; the
        answer merges them in order.
        """
        timeout = _caller_timeout(request)

        def one(part: Any) -> tuple[Target, Any, Attempts]:
            routing, call = usage.begin(self.router, api, part, own)
            attempts = Attempts(self.router, routing, timeout, call)
            try:
                target, outcome = self._run(self._drive(api, part, attempts, request.headers), attempts)
            except PolyrouteError as exc:
                if call is not None:
                    call.failed(exc, attempts)
                raise
            return target, outcome, attempts

        done = [one(parts[0])] if len(parts) == 1 else list(self._hedge_pool().map(one, parts))
        return self._respond_merged(lib, api, done)

    async def _arun_parts(self, lib: Any, api: Api, parts: list[Any], request: Any, own: Mapping[str, str]) -> Any:
        """Async :meth:`_run_parts`: the parts run as tasks of this event loop."""
        timeout = _caller_timeout(request)

        async def one(part: Any) -> tuple[Target, Any, Attempts]:
            routing, call = usage.begin(self.router, api, part, own)
            attempts = Attempts(self.router, routing, timeout, call)
            try:
                target, outcome = await self._arun(self._drive(api, part, attempts, request.headers), attempts)
            except PolyrouteError as exc:
                if call is not None:
                    call.failed(exc, attempts)
                raise
            return target, outcome, attempts

        done = list(await asyncio.gather(*(one(part) for part in parts)))
        return self._respond_merged(lib, api, done)

    # -- the driver: every decision of one request, no I/O -----------------------------------------------------

    def _drive(self, api: Api, body: Any, attempts: Attempts, headers: Mapping[str, str]) -> Driver:
        """The request loop: deployments from ``attempts`` until one answers (a stream: its first content chunk).

        Every claimed deployment is reported (:meth:`Attempts.succeeded`, ``failed``, ``unsupported``) or
        released, whatever ends the attempt: an ``UnsupportedFeatureError``, a bug, a cancelled caller.
        """
        while True:
            step = attempts.next()
            if step is None:
                raise attempts.final_error()
            if not isinstance(step, Target):
                yield _Sleep(step)
                continue
            if attempts.hedge_after is not None:
                return (yield from self._race(api, step, body, attempts, headers))
            try:
                outcome = yield from self._attempt(api, step, body, attempts, headers)
            except UnsupportedFeatureError as exc:
                attempts.unsupported(step, exc)
                continue
            except UpstreamError as exc:
                if attempts.failed(step, exc):
                    continue
                raise attempts.final_error() from None
            except BaseException:
                self.router.release(step)
                raise
            _succeeded(attempts, step, outcome)
            return step, outcome

    def _race(self, api: Api, first: Target, body: Any, attempts: Attempts, headers: Mapping[str, str]) -> Driver:
        """:meth:`_drive` with hedging: when the attempt in flight has not answered (a stream: no first token)
        within ``hedge_after_ms``, the next deployment starts too. The first answer wins; the runner cancels the
        others and releases each deployment once its call has really stopped.
        """
        yield _Launch(first, self._attempt(api, first, body, attempts, headers))
        running = 1
        hedged = False
        while True:
            if not running:
                hedged = False
                step = attempts.next()
                if step is None:
                    raise attempts.final_error()
                if not isinstance(step, Target):
                    yield _Sleep(step)
                    continue
                yield _Launch(step, self._attempt(api, step, body, attempts, headers))
                running += 1
            done: tuple[Target, Any, BaseException | None] | None = yield _Wait(
                None if hedged else attempts.hedge_after
            )
            if done is None:
                hedged = True
                step = attempts.next(wait=False)
                if isinstance(step, Target):
                    yield _Launch(step, self._attempt(api, step, body, attempts, headers))
                    running += 1
                continue
            running -= 1
            target, outcome, exc = done
            if exc is None:
                _succeeded(attempts, target, outcome)
                return target, outcome
            if isinstance(exc, UnsupportedFeatureError):
                attempts.unsupported(target, exc)
            elif isinstance(exc, UpstreamError):
                if not attempts.failed(target, exc):
                    raise attempts.final_error() from None
            else:
                self.router.release(target)
                raise exc

    def _attempt(
        self, api: Api, target: Target, body: Any, attempts: Attempts, headers: Mapping[str, str]
    ) -> Generator[_IO, Any, Outcome]:
        """One upstream call; a stream is returned primed: read until its first content chunk (the commit).

        ``timeout`` (or ``ttft_timeout`` for a stream) is a deadline for all of it, however the upstream trickles;
        after the commit each read waits at most ``stream_idle_timeout``.
        """
        timeout, ttft = attempts.timeouts(target)
        limit = ttft or timeout
        started = time.monotonic()
        deadline = started + limit
        adapter, req, stream = self._prepare(api, target, body, limit, headers)
        with _map_transport_errors(target, ttft, timeout):
            if not stream:
                response, content, head = yield _Exchange(target, req, deadline)
                if head.limits is not None:
                    self.router.observe(target, head.limits)
                if response.status_code >= 400:
                    raise adapter.classify_error(response.status_code, response.headers, content, target)
                return _parse(adapter, content, target, body)
            response = yield _Send(target, req, deadline)
            try:
                head = _head(response.headers)
                if head.limits is not None:
                    self.router.observe(target, head.limits)
                if response.status_code >= 400:
                    content = yield _ReadAll(response, req, deadline)
                    raise adapter.classify_error(response.status_code, response.headers, content, target)
                # httpcore fixes a body's read timeout when the body starts, for every read: make it a backstop no
                # shorter than the time to the commit; the runner's deadline and the idle alarm are the limits.
                idle = self._idle_timeout(attempts)
                req.extensions["timeout"] = _timeouts(max(idle, deadline - time.monotonic()))
                call = StreamCall(
                    adapter, target, body, response, self.router, attempts.profile.tokens, api.stream_format
                )
                call.idle = idle
                call.encoded = head.encoded
                while True:
                    raw = yield _Read(call, deadline)
                    if raw is None:
                        call.ended = True
                        call.hold(_read_event(call, call.end))
                        return call
                    if _read_event(call, call.prime, raw):
                        return call
                    if time.monotonic() >= deadline:  # a trickle (or keep-alive whitespace) is not an answer
                        raise _Expired
            except BaseException as exc:
                if not isinstance(exc, GeneratorExit):
                    yield _Close(response)
                raise

    def _idle_timeout(self, attempts: Attempts) -> float:
        idle = self.router.config.stream_idle_timeout
        left = attempts.caller_timeout
        return min(idle, left) if left is not None else idle

    # -- the runners: the driver's I/O, sync and async ---------------------------------------------------------

    def _run(self, driver: Driver, attempts: Attempts | None = None, cancel: _Cancel | None = None) -> Any:
        """Perform the driver's steps in this thread; returns what the driver returns."""
        result: Any = None
        error: BaseException | None = None
        hedges: _ThreadHedges | None = None
        try:
            while True:
                try:
                    step = driver.send(result) if error is None else driver.throw(error)
                except StopIteration as stop:
                    return stop.value
                result = error = None
                try:
                    if cancel is not None and cancel.cancelled:
                        raise _Cancelled
                    match step:
                        case _Read():
                            result = _read(step)
                        case _Send():
                            result = self._send(step.target, step.request.built(), cancel)
                        case _Exchange():
                            pool = _stock_pool(self._inner_sync(step.target), True) if cancel is None else None
                            if pool is not None:
                                result = _core_exchange(pool, step.request, step.deadline)
                            else:
                                request = step.request.built()
                                response = self._send(step.target, request, cancel)
                                if cancel is not None and cancel.cancelled:
                                    response.close()
                                    raise _Cancelled
                                head = _head(response.headers)
                                result = response, _read_all(response, request.extensions, step.deadline, head), head
                        case _ReadAll():
                            response = step.response
                            head = _head(response.headers)
                            result = _read_all(response, step.request.extensions, step.deadline, head)
                        case _Close():
                            step.response.close()
                        case _Sleep():
                            time.sleep(step.seconds)
                        case _Launch():
                            hedges = hedges or _ThreadHedges(self._hedge_pool())
                            hedges.launch(self, step)
                        case _Wait():
                            assert hedges is not None
                            result = hedges.wait(step.timeout)
                except BaseException as exc:
                    error = exc
        finally:
            if hedges is not None and attempts is not None:
                hedges.abandon(attempts)

    def _send(self, target: Target, request: Any, cancel: _Cancel | None) -> Any:
        """Send ``request`` upstream (sync); a hedged attempt's connection is reachable by its canceller."""
        if cancel is None:
            return self._inner_sync(target).handle_request(request)
        request.extensions["trace"] = cancel.trace
        response = self._inner_sync(target).handle_request(request)
        cancel.watch(response)
        return response

    async def _arun(self, driver: Driver, attempts: Attempts | None = None) -> Any:
        """Perform the driver's steps in this task; returns what the driver returns."""
        result: Any = None
        error: BaseException | None = None
        hedges: _TaskHedges | None = None
        try:
            while True:
                try:
                    step = driver.send(result) if error is None else driver.throw(error)
                except StopIteration as stop:
                    return stop.value
                result = error = None
                try:
                    match step:
                        case _Read():
                            result = await _aread(step)
                        case _Send():
                            inner = self._inner_async(step.target)
                            result = await _within(inner.handle_async_request(step.request.built()), step.deadline)
                        case _Exchange():
                            inner = self._inner_async(step.target)
                            result = await _within(_aexchange(inner, step.request), step.deadline)
                        case _ReadAll():
                            result = await _aread_all(step)
                        case _Close():
                            await step.response.aclose()
                        case _Sleep():
                            await asyncio.sleep(step.seconds)
                        case _Launch():
                            hedges = hedges or _TaskHedges()
                            hedges.launch(self, step)
                        case _Wait():
                            assert hedges is not None
                            result = await hedges.wait(step.timeout)
                except BaseException as exc:
                    error = exc
        finally:
            if hedges is not None and attempts is not None:
                await hedges.abandon(attempts)

    # -- pools ----------------------------------------------------------------------------------------------

    def _hedge_pool(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = concurrent.futures.ThreadPoolExecutor(
                        max_workers=64, thread_name_prefix="polyroute-hedge"
                    )
        return self._pool

    def _inner_sync(self, target: Target) -> Any:
        if target.spec.adapter == "mock":
            return self._mock_upstream().bind(target)
        inner = self._sync_inner
        if inner is None:
            with self._lock:
                inner = self._sync_inner
                if inner is None:
                    inner = self._sync_inner = _compat.UPSTREAM.HTTPTransport(limits=_pool_limits())
        return inner

    def _inner_async(self, target: Target) -> Any:
        if target.spec.adapter == "mock":
            return self._mock_upstream().bind(target)
        loop = asyncio.get_running_loop()
        inner = self._async_inner.get(loop)
        if inner is None:
            with self._lock:
                inner = self._async_inner.get(loop)
                if inner is None:
                    # A pool holds its loop (its connections do), so a closed loop's entry never goes by itself
                    # (an ``asyncio.run`` per task would keep every pool it made, and its sockets): drop them here.
                    for closed in [other for other in list(self._async_inner) if other.is_closed()]:
                        del self._async_inner[closed]
                    inner = self._async_inner[loop] = _compat.UPSTREAM.AsyncHTTPTransport(limits=_pool_limits())
        return inner

    def _mock_upstream(self) -> Any:
        if self._mock is None:
            with self._lock:
                if self._mock is None:
                    from polyroute.mock import MockUpstream

                    self._mock = MockUpstream()
        return self._mock

    def close(self) -> None:
        """Nothing: an httpx client calls this when it closes, and the pools are the router's (:meth:`Router.close`)."""

    async def aclose(self) -> None:
        """Nothing, as :meth:`close` (the pools are the router's: :meth:`Router.aclose`)."""

    def client_view(self) -> ClientTransport:
        """A transport for one client (:meth:`Router.http_client`): its ``close()`` closes the pools only when no
        other client on the router is open.
        """
        with self._lock:
            self._clients += 1
        return ClientTransport(self)

    def _client_closed(self) -> bool:
        """A client view closed; True when it was the last one open (the pools may close)."""
        with self._lock:
            self._clients -= 1
            return self._clients == 0

    def close_pools(self) -> None:
        """Close the sync upstream pool and the hedging threads; forget async pools (:meth:`aclose_pools`)."""
        with self._lock:
            inner, self._sync_inner = self._sync_inner, None
            pool, self._pool = self._pool, None
            self._async_inner.clear()
        if inner is not None:
            inner.close()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    async def aclose_pools(self) -> None:
        """:meth:`close_pools`, and close the running event loop's async pool."""
        loop = asyncio.get_running_loop()
        with self._lock:
            inner = self._async_inner.pop(loop, None)
        self.close_pools()
        if inner is not None:
            await inner.aclose()

    # -- routing-independent answers -------------------------------------------------------------------------

    def _dispatch(self, request: Any, own: Mapping[str, str]) -> Api | tuple[int, Any]:
        """The API serving the request, or an answer that needs no upstream: ``/models``, an API's local answers
        (``GET /responses/{id}``), a 404 for a path polyroute does not serve. ``own``: the request's
        ``x-polyroute-*`` headers.
        """
        path: str = request.url.path
        api = api_for(path)
        if api is not None:
            query = request.url.query  # GET /responses/{id}/input_items pages by its query
            local = api.local(request.method, f"{path}?{query.decode()}" if query else path, self, own)
            return api if local is None else local
        if path.endswith("/models") and request.method == "GET":
            data = [
                {"id": name, "object": "model", "created": 0, "owned_by": "polyroute"}
                for name in self.router.model_names
            ]
            return 200, {"object": "list", "data": data}
        if "/models/" in path and request.method == "GET":
            name = path.split("/models/", 1)[1]
            self.router.route(name)
            return 200, {"id": name, "object": "model", "created": 0, "owned_by": "polyroute"}
        raise NotFoundPathError(
            f"polyroute serves {served()} (POST) and GET /v1/models; {request.method} {path} is not served"
        )

    # -- one upstream call ----------------------------------------------------------------------------------

    def _prepare(
        self, api: Api, target: Target, body: Any, timeout: float, incoming: Mapping[str, str]
    ) -> tuple[Any, Any, bool]:
        """The adapter, the upstream request and whether it streams. ``incoming``: the caller's request headers
        (what a provider may be forwarded is decided here, from them and the target).
        """
        # A deployment with no key for this call is skipped before it is claimed (Router.try_acquire), with a 401
        # that names the variable to set: no second check here.
        adapter = api.adapter(target, body)
        upstream = adapter.build_request(body, target)
        lib = _compat.UPSTREAM
        place = self._urls.get(upstream.url)
        if place is None:  # parsing a URL costs more than the rest of the request build: parse each once
            if len(self._urls) >= 1024:
                self._urls.clear()
            url = lib.URL(upstream.url)
            place = self._urls[upstream.url] = (url, url.netloc)
        headers = with_forwarded(upstream.headers, forwarded_headers(incoming, target))
        # Headers are normalized once per set seen (a deployment's usually never change), not per call.
        key = (place[1], *headers.items())
        prepared = self._headers.get(key)
        if prepared is None:
            if len(self._headers) >= 1024:
                self._headers.clear()
            normal = lib.Headers([("host", place[1].decode("ascii")), *headers.items()])
            prepared = self._headers[key] = (normal, normal.raw)
        content = upstream.content
        req = _Outgoing(
            upstream.method,
            place[0],
            prepared,
            content,
            {"timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}},
        )
        return adapter, req, upstream.stream

    # -- answers --------------------------------------------------------------------------------------------

    def _respond_merged(self, lib: Any, api: Api, done: list[tuple[Target, Any, Attempts]]) -> Any:
        """The answer to a split request: the API merges the parts' answers (in the request's order)."""
        cost: float | None = None
        for target, outcome, attempts in done:
            part_cost = api.finish(outcome, target)
            if attempts.call is not None:
                attempts.call.finished(target, outcome, attempts, part_cost)
            if part_cost is not None:
                cost = (cost or 0.0) + part_cost
        labels = list(dict.fromkeys(target.label for target, _, _ in done))
        headers = {
            "x-polyroute-deployment": ",".join(labels),
            "x-polyroute-attempts": str(sum(attempts.count for _, _, attempts in done)),
            "content-type": "application/json",
        }
        if cost is not None:
            headers["x-polyroute-cost"] = f"{cost:.10f}".rstrip("0").rstrip(".")
        return lib.Response(200, headers=headers, content=dumps(api.merge([outcome for _, outcome, _ in done])))

    def _respond(self, lib: Any, api: Api, outcome: Outcome, target: Target, attempts: Attempts) -> Any:
        headers = [
            (b"x-polyroute-deployment", target.label.encode()),
            (b"x-polyroute-attempts", str(attempts.count).encode()),
        ]
        if isinstance(outcome, StreamCall):
            headers.append((b"content-type", b"text/event-stream"))
            headers.append((b"cache-control", b"no-cache"))
            if attempts.call is not None:
                attempts.call.committed(outcome, target, attempts)
            return lib.Response(200, headers=headers, stream=RouterStream(outcome))
        cost = api.finish(outcome, target)
        if attempts.call is not None:
            attempts.call.finished(target, outcome, attempts, cost)
        if cost is not None:
            headers.append((b"x-polyroute-cost", f"{cost:.10f}".rstrip("0").rstrip(".").encode()))
        headers.append((b"content-type", b"application/json"))
        content = outcome.to_bytes() if isinstance(outcome, RawAnswer) else dumps(outcome)
        return _bytes_response(lib, 200, headers, content)


class ClientTransport(_compat.TransportBase):
    """One client's view of the router's :class:`RouterTransport`.

    Why a view: an httpx client closes its transport when it closes, but the upstream pools are the router's,
    shared by every client built on it. Two clients, one closed: the other's stream in flight must go on, so a
    view's ``close()`` closes the pools only when it is the last client open (they reopen if used again), and a
    client left open keeps them until :meth:`Router.close`. Requests go straight to the shared transport's bound
    methods: no cost per call.
    """

    def __init__(self, shared: RouterTransport) -> None:
        self.shared = shared
        self.handle_request = shared.handle_request  # type: ignore[method-assign]
        self.handle_async_request = shared.handle_async_request  # type: ignore[method-assign]
        self._closed = False

    def __repr__(self) -> str:
        return f"ClientTransport({self.shared.router!r})"

    def close(self) -> None:
        """This client is done: close the pools if no other client is open."""
        if not self._closed:
            self._closed = True
            if self.shared._client_closed():  # pyright: ignore[reportPrivateUsage]
                self.shared.close_pools()

    async def aclose(self) -> None:
        """Async :meth:`close` (also closes the running event loop's pool)."""
        if not self._closed:
            self._closed = True
            if self.shared._client_closed():  # pyright: ignore[reportPrivateUsage]
                await self.shared.aclose_pools()


def _parse(adapter: Any, content: bytes, target: Target, body: Any) -> ChatCompletion:
    try:
        return adapter.parse_response(content, target, body)
    except (PolyrouteError, AssertionError):
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise UpstreamStatusError(
            f"{target.label} returned a response polyroute could not read: {type(exc).__name__}: {exc}",
            provider=target.provider,
            deployment=target.label,
            status=502,
        ) from exc


class StreamCall:
    r"""One committed-or-priming upstream stream: decoder + translator over the upstream response.

    The driver :meth:`prime`\ s it until the first content chunk (failures before it may fail over); the
    :class:`RouterStream` then forwards the rest, and :meth:`close` closes upstream and frees the deployment.
    """

    __slots__ = (
        "_buffer",
        "_closed",
        "body",
        "decoder",
        "encoded",
        "ended",
        "estimate",
        "failure",
        "format",
        "idle",
        "iter",
        "response",
        "router",
        "target",
        "translator",
        "usage",
    )

    def __init__(
        self,
        adapter: Any,
        target: Target,
        body: Any,
        response: Any,
        router: Router | None = None,
        estimate: int = 0,
        format: StreamFormat | None = None,
    ) -> None:
        self.target = target
        self.body = body
        self.response = response
        self.router = router
        self.estimate = estimate
        self.format: StreamFormat = format or _chat_format()
        self.decoder: StreamDecoder = adapter.stream_decoder()
        self.translator: StreamTranslator = adapter.stream_translator(target, body)
        self._buffer: list[bytes] = []
        self._closed = False
        self.iter: Any = None
        """The upstream byte iterator (sync or async), made by the runner at the first read."""
        self.ended = False
        """The whole upstream stream was read while priming."""
        self.idle = 0.0
        """Seconds of upstream silence allowed between chunks once committed."""
        self.encoded = False
        """The body needs decoding (the answer's head named a ``content-encoding``)."""
        self.usage: Any = None
        """The call's usage (:class:`polyroute.usage.recorder.Call`), recorded when the stream closes."""
        self.failure: UpstreamError | None = None
        """What ended the stream after the commit (sent in-band), for its usage record."""

    def forward(self, raw: bytes) -> bytes:
        """Upstream bytes → the bytes to send, once committed (no need to look for content any more)."""
        encode, target, translate = self.format.encode, self.target, self.translator.feed
        out: list[bytes] = []
        for event in self.decoder.feed(raw):
            for item in translate(event):
                out.append(encode(item, target))
        return out[0] if len(out) == 1 else b"".join(out)  # most reads bring one event: its bytes as they are

    def feed(self, raw: bytes) -> tuple[bytes, bool]:
        """Upstream bytes → the bytes to send, and whether any of it is content (the commit signal)."""
        out: list[bytes] = []
        substantive = False
        fmt, target = self.format, self.target
        for event in self.decoder.feed(raw):
            for item in self.translator.feed(event):
                out.append(fmt.encode(item, target))
                substantive = substantive or fmt.is_content(item)
        return b"".join(out), substantive

    def end(self) -> bytes:
        """The upstream body ended: the last items, then the API's end (``[DONE]``); raises if it was cut short."""
        fmt, target = self.format, self.target
        out = [fmt.encode(item, target) for event in self.decoder.flush() for item in self.translator.feed(event)]
        out.extend(fmt.encode(item, target) for item in self.translator.finish())
        out.append(fmt.done())
        return b"".join(out)

    def prime(self, raw: bytes) -> bool:
        """Before the commit: take upstream bytes into the buffer; True once they hold content (commit now)."""
        data, committed = self.feed(raw)
        if data:
            self._buffer.append(data)
        return committed

    def hold(self, data: bytes) -> None:
        """Keep bytes to send once the stream is handed to the caller."""
        self._buffer.append(data)

    def take_buffer(self) -> bytes:
        """The bytes read while priming."""
        data = b"".join(self._buffer)
        self._buffer.clear()
        return data

    def _release(self) -> None:
        if self.usage is not None:
            self.usage.closed(self)
        if self.router is not None:
            usage = self.translator.builder.usage
            used = usage.get("total_tokens", 0) if usage else 0
            self.router.release(self.target, used - self.estimate if used else 0)

    def close(self) -> None:
        """Close upstream and free the deployment (once)."""
        if not self._closed:
            self._closed = True
            try:
                self.response.close()
            finally:
                self._release()

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        if not self._closed:
            self._closed = True
            try:
                await self.response.aclose()
            finally:
                self._release()


class RouterStream(_compat.ByteStreamBase):
    """The SSE body handed to the caller. Closing it early closes the upstream response.

    After the commit nothing fails over: an upstream failure, a silence longer than ``stream_idle_timeout`` or an
    event polyroute cannot read ends the stream with one in-band ``data: {"error": …}`` event.
    """

    def __init__(self, call: StreamCall) -> None:
        self._call = call

    def __iter__(self) -> Iterator[bytes]:
        call = self._call
        head = call.take_buffer()
        if head:
            yield head
        if call.ended:
            return self.close()
        alarm = _idle_alarm(call)
        try:
            with _map_transport_errors(call.target, None, None, committed=True):
                for raw in call.iter:
                    data = call.forward(raw)
                    if data:
                        if alarm is not None:
                            alarm.paused = True  # the caller's time with a chunk is not upstream silence
                        yield data
                    if alarm is not None:  # anything read (a ping too) is not silence
                        alarm.at = time.monotonic() + call.idle
                        alarm.paused = False
                tail = call.end()
            yield tail
        except UpstreamError as exc:
            call.failure = _idle_error(call) if alarm is not None and alarm.fired else exc
            yield call.format.error(call.failure)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            call.failure = _malformed(call.target, exc)
            yield call.format.error(call.failure)
        finally:
            if alarm is not None:
                alarm.done = True
            self.close()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        call = self._call
        head = call.take_buffer()
        if head:
            yield head
        if call.ended:
            await self.aclose()
            return
        alarm = _idle_alarm(call)
        try:
            with _map_transport_errors(call.target, None, None, committed=True):
                async for raw in call.iter:
                    data = call.forward(raw)
                    if data:
                        if alarm is not None:
                            alarm.paused = True
                        yield data
                    if alarm is not None:
                        alarm.at = time.monotonic() + call.idle
                        alarm.paused = False
                tail = call.end()
            yield tail
        except UpstreamError as exc:
            call.failure = _idle_error(call) if alarm is not None and alarm.fired else exc
            yield call.format.error(call.failure)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            call.failure = _malformed(call.target, exc)
            yield call.format.error(call.failure)
        finally:
            if alarm is not None:
                alarm.done = True
            await self.aclose()

    def close(self) -> None:
        """Close upstream (the SDK calls this when the caller leaves the stream early)."""
        self._call.close()

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        await self._call.aclose()


def _body_bytes(response: Any, encoded: bool) -> Any:
    """The upstream body as it arrives: the transport's own byte stream when nothing needs decoding (one layer
    less per chunk), else ``iter_bytes`` (gzip from a replayed cassette, say: the answer's head was ``encoded``).
    """
    return response.iter_bytes() if encoded else response.stream


def _abody_bytes(response: Any, encoded: bool) -> Any:
    """Async :func:`_body_bytes`."""
    return response.aiter_bytes() if encoded else response.stream


def _pool_limits() -> Any:
    """The openai SDK's own pool limits: httpx's default keeps 20 idle connections, fewer than agents in flight."""
    return _compat.UPSTREAM.Limits(max_connections=1000, max_keepalive_connections=100)


def _chat_format() -> StreamFormat:
    from polyroute.api import CHAT

    return CHAT.stream_format


def _detail(exc: BaseException) -> str:
    """What an HTTP library's error says, redacted; when it says nothing (a reset under uvloop reads
    ``ReadError('')``), what the error under it says ("[Errno 104] Connection reset by peer").
    """
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            break
        text = str(seen).strip()
        if text:
            return redact(text)
        seen = seen.__cause__ or seen.__context__
    return "(no detail)"


class _map_transport_errors:
    """Connection and timeout errors of either HTTP library, and a runner's deadline → :class:`UpstreamError`.

    A class rather than a ``@contextmanager``: it wraps every upstream call, and a generator-based one costs a
    generator and four calls more each time.
    """

    __slots__ = ("committed", "target", "timeout", "ttft")

    def __init__(self, target: Target, ttft: float | None, timeout: float | None, committed: bool = False) -> None:
        self.target = target
        self.ttft = ttft
        self.timeout = timeout
        self.committed = committed
        """Reading a stream already handed to the caller: a broken connection cut it (it was reached)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            return
        target, ttft, timeout = self.target, self.ttft, self.timeout
        if isinstance(exc, _Expired):
            if ttft is not None:
                raise _ttft_error(target, ttft) from None
            raise UpstreamTimeout(
                f"{target.label} timed out: no complete answer within timeout={timeout:g}s",
                provider=target.provider,
                deployment=target.label,
            ) from None
        if isinstance(exc, _compat.timeout_exceptions()):
            limit = ttft or timeout
            after = f" after {limit:g}s" if limit is not None else " (stream_idle_timeout)"
            raise UpstreamTimeout(
                f"{target.label} timed out ({type(exc).__name__}){after}",
                provider=target.provider,
                deployment=target.label,
                code="ttft_timeout" if ttft is not None else None,
            ) from exc
        if isinstance(exc, _compat.transport_exceptions()):
            if self.committed:
                raise StreamInterruptedError(
                    f"{target.label} cut the stream mid-answer: {type(exc).__name__}: {_detail(exc)}",
                    provider=target.provider,
                    deployment=target.label,
                    code="stream_interrupted",
                ) from exc
            raise UpstreamConnectionError(
                f"{target.label} could not be reached: {type(exc).__name__}: {_detail(exc)}",
                provider=target.provider,
                deployment=target.label,
            ) from exc
        if isinstance(exc, _compat.decoding_exceptions()):  # says gzip, is not (a gateway's HTML page, a cut body)
            message = f"{target.label} answered a body its content-encoding does not decode: {_detail(exc)}"
            if self.committed:
                raise StreamInterruptedError(
                    message, provider=target.provider, deployment=target.label, code="stream_interrupted"
                ) from exc
            raise UpstreamStatusError(message, provider=target.provider, deployment=target.label, status=502) from exc


def _ttft_error(target: Target, ttft: float) -> UpstreamTimeout:
    return UpstreamTimeout(
        f"{target.label} sent no first token within ttft_timeout={ttft:g}s",
        provider=target.provider,
        deployment=target.label,
        code="ttft_timeout",
    )


def _malformed(target: Target, exc: BaseException) -> UpstreamStatusError:
    """An upstream event polyroute cannot read: before the commit it fails over, after it ends the stream."""
    return UpstreamStatusError(
        f"{target.label} sent a stream event polyroute could not read: {type(exc).__name__}: {redact(str(exc))[:200]}",
        provider=target.provider,
        deployment=target.label,
        status=502,
    )


def _read_event(call: StreamCall, step: Any, *args: Any) -> Any:
    """``step(*args)`` on a priming stream; an unreadable upstream event is an upstream failure (fails over)."""
    try:
        return step(*args)
    except (PolyrouteError, AssertionError):
        raise
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise _malformed(call.target, exc) from exc


# -- the runners' I/O helpers ------------------------------------------------------------------------------------


class _Cancelled(Exception):
    """A hedged attempt that lost: its thread stops at its next step."""


class _Cancel:
    """The winner's handle on a hedged attempt running in a worker thread.

    Cancelling shuts the attempt's socket down, so a read blocked on it returns at once: the response's socket
    once headers came, or before that the socket of a connection opened for it (httpcore's ``trace`` extension
    reports it). A request waiting for headers on a reused pooled connection cannot be reached and ends at its
    deadline.
    """

    __slots__ = ("cancelled", "response", "stream")

    def __init__(self) -> None:
        self.cancelled = False
        self.response: Any = None
        self.stream: Any = None

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        """Httpcore's trace hook: remember the network stream of a new connection."""
        if event.endswith((".connect_tcp.complete", ".start_tls.complete")):
            self.stream = info.get("return_value")
            if self.cancelled:
                self.cancel()

    def watch(self, response: Any) -> None:
        self.response = response
        if self.cancelled:
            _shutdown(response)

    def cancel(self) -> None:
        """Stop the attempt (see the class docstring)."""
        self.cancelled = True
        if self.response is not None:
            _shutdown(self.response)
        elif self.stream is not None:
            with suppress(Exception):
                sock = self.stream.get_extra_info("socket")
                if sock is not None:
                    _shutdown_socket(sock)


class _ThreadHedges:
    """Hedged attempts in worker threads (sync)."""

    def __init__(self, pool: concurrent.futures.ThreadPoolExecutor) -> None:
        self.pool = pool
        self.running: dict[concurrent.futures.Future[Outcome], tuple[Target, _Cancel]] = {}

    def launch(self, transport: RouterTransport, step: _Launch) -> None:
        cancel = _Cancel()
        future = self.pool.submit(transport._run, step.attempt, None, cancel)  # pyright: ignore[reportPrivateUsage]
        self.running[future] = (step.target, cancel)

    def wait(self, timeout: float | None) -> tuple[Target, Any, BaseException | None] | None:
        done, _ = concurrent.futures.wait(self.running, timeout, concurrent.futures.FIRST_COMPLETED)
        if not done:
            return None
        future = next(iter(done))
        target, _ = self.running.pop(future)
        exc = future.exception()
        return (target, None, exc) if exc is not None else (target, future.result(), None)

    def abandon(self, attempts: Attempts) -> None:
        """Cancel the losers; each deployment is released when its thread has really stopped."""
        for future, (target, cancel) in self.running.items():
            cancel.cancel()
            attempts.abandoned(target, release=False)
            future.add_done_callback(lambda f, t=target: _stopped(attempts.router, t, f))
        self.running.clear()


def _stopped(router: Router, target: Target, future: concurrent.futures.Future[Outcome]) -> None:
    """A cancelled hedge's thread has returned: close what it got, free its deployment."""
    try:
        if not future.cancelled() and future.exception() is None:
            result = future.result()
            if isinstance(result, StreamCall):
                result.response.close()
    finally:
        router.release(target)


class _TaskHedges:
    """Hedged attempts as tasks (async)."""

    def __init__(self) -> None:
        self.running: dict[asyncio.Future[Outcome], Target] = {}

    def launch(self, transport: RouterTransport, step: _Launch) -> None:
        task = asyncio.ensure_future(transport._arun(step.attempt))  # pyright: ignore[reportPrivateUsage]
        self.running[task] = step.target

    async def wait(self, timeout: float | None) -> tuple[Target, Any, BaseException | None] | None:
        done, _ = await asyncio.wait(self.running, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            return None
        task = next(iter(done))
        target = self.running.pop(task)
        exc = task.exception()
        return (target, None, exc) if exc is not None else (target, task.result(), None)

    async def abandon(self, attempts: Attempts) -> None:
        """Cancel the losers, wait for them to stop (each closes its response), release their deployments."""
        if not self.running:
            return
        for task in self.running:
            task.cancel()
        results = await asyncio.gather(*self.running, return_exceptions=True)
        for result, target in zip(results, self.running.values(), strict=True):
            if isinstance(result, StreamCall):
                await result.response.aclose()
            attempts.abandoned(target)
        self.running.clear()


def _read(step: _Read) -> bytes | None:
    """The next piece of a priming stream (sync), within the step's deadline."""
    call = step.call
    if call.iter is None:
        call.iter = iter(_body_bytes(call.response, call.encoded))
    with _watched(call.response, step.deadline):
        return next(call.iter, None)


def _read_all(response: Any, extensions: dict[str, Any], deadline: float, head: _Head) -> bytes:
    """A whole body (sync), within ``deadline``; the response is closed.

    The first read is bounded by httpcore's read timeout, set here to what is left of the deadline (httpcore reads
    it when the body starts). Most bodies are whole after it (they come with the headers); only one that needs
    more reads arms the watchdog, which bounds a body trickling in within each read's timeout.
    """
    try:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Expired
        extensions["timeout"] = _timeouts(left)
        if head.encoded:  # a server's own gzip, a replayed cassette's
            with _watched(response, deadline):
                return response.read()
        chunks = iter(response.stream)  # not encoded (polyroute asks for no compression): no decoder layers
        first = next(chunks, b"")
        if head.length is not None and len(first) == head.length:
            return first + b"".join(chunks)  # the end of the message is buffered: no more reads
        with _watched(response, deadline):
            return first + b"".join(chunks)
    finally:
        response.close()


def _is_transport_error(exc: BaseException) -> bool:
    """A connection, protocol or timeout error of either HTTP library, or of httpcore under them."""
    return isinstance(exc, _compat.transport_exceptions()) or type(exc).__module__.startswith("httpcore")


class _watched:
    """A blocking read of ``response`` that the watchdog ends at ``deadline``: the transport error it causes is
    :class:`_Expired`. (A class, not a ``@contextmanager``: it wraps every upstream read.)
    """

    __slots__ = ("alarm",)

    def __init__(self, response: Any, deadline: float) -> None:
        self.alarm = _alarm(response, deadline)

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        alarm = self.alarm
        if alarm is not None:
            alarm.done = True
            if exc is not None and alarm.fired and _is_transport_error(exc):
                raise _Expired from None


async def _aread(step: _Read) -> bytes | None:
    """Async :func:`_read`."""
    call = step.call
    if call.iter is None:
        call.iter = _abody_bytes(call.response, call.encoded).__aiter__()
    return await _within(anext(call.iter, None), step.deadline)


async def _aread_all(step: _ReadAll) -> bytes:
    """Async :func:`_read_all`."""
    response = step.response
    try:
        return await _within(_abody(response, _head(response.headers).encoded), step.deadline)
    finally:
        await response.aclose()


async def _aexchange(inner: Any, outgoing: _Outgoing) -> tuple[Any, bytes, _Head]:
    """Async :class:`_Exchange`: the response and its whole body. The runner bounds all of it by the deadline, the
    wait for headers too (a server may trickle its header lines, each within httpcore's per-read timeout).
    """
    pool = _stock_pool(inner, False)
    if pool is not None:
        return await _acore_exchange(pool, outgoing)
    response = await inner.handle_async_request(outgoing.built())
    try:
        head = _head(response.headers)
        return response, await _abody(response, head.encoded), head
    finally:
        await response.aclose()


async def _abody(response: Any, encoded: bool) -> bytes:
    """A whole body (async): decoded when the server ``encoded`` it, else its bytes without the decoder layers."""
    if encoded:
        return await response.aread()
    return b"".join([chunk async for chunk in response.stream])


if sys.version_info >= (3, 11):

    async def _within(awaitable: Awaitable[Any], at: float) -> Any:
        """``await awaitable`` until ``at`` (monotonic: the event loop's clock), else :class:`_Expired`.

        The watchdog cancels the task at ``at``, as ``asyncio.timeout_at`` would, for a third of its cost per call
        (no timer handle on the event loop, no scope object); a cancel of the caller's own stays the caller's.
        """
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always inside a task in practice
            return await asyncio.wait_for(awaitable, max(at - time.monotonic(), 0.0))
        if at <= time.monotonic():
            if inspect.iscoroutine(awaitable):
                awaitable.close()  # never awaited: no "never awaited" warning
            raise _Expired
        cancelling = task.cancelling()
        alarm = _WATCHDOG.arm(None, at, task=task)
        try:
            return await awaitable
        except asyncio.CancelledError:
            if alarm.fired and task.uncancel() <= cancelling:  # the deadline's cancel, not the caller's
                raise _Expired from None
            raise
        finally:
            alarm.done = True

else:  # pragma: no cover - Python 3.10

    async def _within(awaitable: Awaitable[Any], at: float) -> Any:
        """``await awaitable`` until ``at`` (monotonic), else :class:`_Expired`."""
        try:
            return await asyncio.wait_for(awaitable, max(at - time.monotonic(), 0.0))
        except asyncio.TimeoutError:
            raise _Expired from None


class _Alarm:
    """One deadline of the :class:`_Watchdog`. ``at`` may only move later; ``paused`` holds it off (a stream's
    caller is busy with a chunk: that time is not upstream silence).
    """

    __slots__ = ("at", "done", "fired", "paused", "period", "sock", "task")

    def __init__(self, sock: Any, at: float, period: float, task: asyncio.Task[Any] | None = None) -> None:
        self.sock = sock
        self.at = at
        self.period = period
        self.task = task
        """A task to cancel at the deadline (on its own loop) instead of a socket to shut down."""
        self.done = False
        self.fired = False
        self.paused = False


class _Watchdog:
    """Deadlines for reads that httpcore cannot bound: one thread, one heap.

    httpcore (and httpcore2) fix a body's read timeout when the body starts and apply it to each read, so a body
    that trickles never times out, and the limit cannot change at the commit. At an alarm's deadline this thread
    shuts the socket down: the blocked read returns at once (sync or async) and the reader sees its alarm fired.
    An async wait bounded as a whole (:func:`_within`) has a task alarm instead: the task is cancelled on its loop.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """No alarms and no thread yet (also in a forked child, where the parent's thread is gone, its lock may be
        held, and its alarms would shut down the parent's sockets).
        """
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Alarm]] = []
        self._seq = 0
        self._compact_at = 1024
        self._thread: threading.Thread | None = None

    def arm(self, sock: Any, at: float, period: float = 0.0, task: asyncio.Task[Any] | None = None) -> _Alarm:
        alarm = _Alarm(sock, at, period, task)
        with self._cond:
            heap = self._heap
            if len(heap) >= self._compact_at:  # ended alarms far in the future: drop them now and then
                heap[:] = [entry for entry in heap if not entry[2].done]
                heapq.heapify(heap)
                self._compact_at = max(1024, 2 * len(heap))
            self._seq += 1
            heapq.heappush(heap, (at, self._seq, alarm))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="polyroute-deadlines", daemon=True)
                self._thread.start()
            elif heap[0][2] is alarm:
                self._cond.notify()
        return alarm

    def _loop(self) -> None:
        heap = self._heap
        with self._cond:
            while True:
                now = time.monotonic()
                while heap and heap[0][0] <= now:
                    _, seq, alarm = heapq.heappop(heap)
                    if alarm.done:
                        continue
                    if alarm.at > now:  # moved on: due at its new time
                        heapq.heappush(heap, (alarm.at, seq, alarm))
                    elif alarm.paused:  # its reader is busy with the caller: look again a period later
                        heapq.heappush(heap, (now + max(alarm.period, 0.01), seq, alarm))
                    elif alarm.task is not None:
                        with suppress(RuntimeError):  # its loop closed meanwhile: nothing left to stop
                            alarm.task.get_loop().call_soon_threadsafe(_cancel_task, alarm)
                    else:
                        alarm.fired = True
                        _shutdown_socket(alarm.sock)
                self._cond.wait(heap[0][0] - now if heap else None)


_WATCHDOG = _Watchdog()


def _cancelled() -> PolyrouteError:
    """What a call the caller cancelled records (nginx's 499: the client went away)."""
    error = PolyrouteError("the caller cancelled the call before it was answered", code="client_cancelled")
    error.status = 499
    return error


def _not_asyncio() -> PolyrouteError:
    return PolyrouteError(
        "polyroute's async transport runs on asyncio, and this call came from another event loop (trio, or anyio "
        "on trio): run the async client under asyncio, or call the sync client from a worker thread "
        "(trio.to_thread.run_sync)",
        code="unsupported_event_loop",
    )


_TRANSPORTS: weakref.WeakSet[RouterTransport] = weakref.WeakSet()
"""Every live transport, for :func:`_after_fork_in_child`."""


def _after_fork_in_child() -> None:
    """A forked child (``os.fork``, multiprocessing's default on Linux) starts with no pools of its parent's and a
    watchdog of its own: the parent's deadline thread did not survive the fork, and its lock may have been held.
    """
    _WATCHDOG.reset()
    for transport in list(_TRANSPORTS):
        transport._forked()  # pyright: ignore[reportPrivateUsage]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _cancel_task(alarm: _Alarm) -> None:
    """On the task's loop: cancel it, unless what the alarm guarded ended meanwhile (the loop runs this between the
    task's steps, so ``done`` is settled).
    """
    if not alarm.done and alarm.task is not None:
        alarm.fired = True
        alarm.task.cancel()


def _idle_alarm(call: StreamCall) -> _Alarm | None:
    """The watchdog's alarm for silence between a committed stream's chunks (None without a socket)."""
    sock = _socket_of(call.response)
    if sock is None:
        return None
    return _WATCHDOG.arm(sock, time.monotonic() + call.idle, call.idle)


def _idle_error(call: StreamCall) -> UpstreamTimeout:
    return UpstreamTimeout(
        f"{call.target.label} timed out: sent nothing for stream_idle_timeout={call.idle:g}s mid-stream",
        provider=call.target.provider,
        deployment=call.target.label,
    )


def _socket_of(response: Any) -> Any:
    """The socket under an upstream response (sync: a ``socket.socket``; async: asyncio's ``TransportSocket`` or
    anyio's raw socket), for the watchdog to shut down; None for the in-process mock.
    """
    stream = response.extensions.get("network_stream")
    if stream is None:
        return None
    try:
        sock = stream.get_extra_info("socket")
    except Exception:  # pragma: no cover - a backend without it
        return None
    return sock if hasattr(sock, "shutdown") else None


def _alarm(response: Any, at: float) -> _Alarm | None:
    """Arm the watchdog for a read of ``response`` (None when there is no socket: the in-process mock)."""
    if at <= time.monotonic():
        raise _Expired
    sock = _socket_of(response)
    return _WATCHDOG.arm(sock, at) if sock is not None else None


def _shutdown(response: Any) -> None:
    sock = _socket_of(response)
    if sock is not None:
        _shutdown_socket(sock)


def _shutdown_socket(sock: Any) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _timeouts(seconds: float) -> dict[str, float]:
    return {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}


def _caller_timeout(request: Any) -> float | None:
    """The caller's own timeout (the SDK's ``timeout``), which bounds all attempts together."""
    caller: Mapping[str, Any] | None = request.extensions.get("timeout")
    if not caller:
        return None
    read = caller.get("read")
    if isinstance(read, int | float) and read > 0:
        return float(read)
    return None


class _Head:
    """What the request loop reads of an upstream response's headers, found in one pass over their raw names (the
    verdict on each name cached): an httpx ``Headers`` lookup decodes and scans every header, and OpenAI answers with
    two dozen (four lookups cost ~12 µs a call; this ~3).
    """

    __slots__ = ("encoded", "length", "limits")

    def __init__(self, encoded: bool, length: int | None, limits: dict[str, str] | None) -> None:
        self.encoded = encoded
        """A ``content-encoding`` is set (a server's own gzip, a replayed cassette's): the body needs decoding."""
        self.length = length
        """``content-length``, when given once and valid."""
        self.limits = limits
        """The ``x-ratelimit-*`` headers (lower-cased names), for :meth:`Router.observe`; None without any."""


# -- a non-streamed exchange straight on httpcore ----------------------------------------------------------------
#
# Why: httpx's transport wraps every exchange in a second request object, a response object with its own header
# normalization, and a generator-based exception mapper per call and per body read: ~5 µs a call, on a path whose
# whole budget is tens of µs. polyroute owns its upstream transports (it builds them), so a non-streamed exchange
# goes to the transport's httpcore pool directly, unless something patched the transport's method (vcrpy records
# there, a test may mock there): then the transport is called as usual.

_STOCK_FILE: str | None = getattr(sys.modules.get(f"{_compat.UPSTREAM.__name__}._transports.default"), "__file__", None)
"""Where the HTTP library defines its transports: a method whose code is from elsewhere was patched."""
_STOCK: dict[Any, bool] = {}
"""Each transport method seen: whether it is the library's own (not keyed by name: a patch is a new function)."""


def _is_stock(method: Any) -> bool:
    verdict = _STOCK.get(method)
    if verdict is None:
        code = getattr(method, "__code__", None)
        verdict = code is not None and code.co_filename == _STOCK_FILE and not hasattr(method, "__wrapped__")
        if len(_STOCK) >= 64:  # vcrpy makes a new patch per cassette
            _STOCK.clear()
        _STOCK[method] = verdict
    return verdict


def _stock_pool(inner: Any, sync: bool) -> Any:
    """``inner``'s httpcore pool when ``inner`` is the HTTP library's own transport and its method is unpatched
    (vcrpy replaces the method on the class while a cassette is in use); else None.
    """
    kind: Any = inner.__class__
    if sync:
        if kind is not _compat.UPSTREAM.HTTPTransport or not _is_stock(kind.handle_request):
            return None
    elif kind is not _compat.UPSTREAM.AsyncHTTPTransport or not _is_stock(kind.handle_async_request):
        return None
    return getattr(inner, "_pool", None)


class _CoreAnswer:
    """An answer read straight from httpcore: its status, and its headers as the HTTP library's ``Headers`` only
    when asked (an error's classifier reads them; a success never does).
    """

    __slots__ = ("_headers", "raw", "status_code")

    def __init__(self, status: int, raw: list[tuple[bytes, bytes]]) -> None:
        self.status_code = status
        self.raw = raw
        self._headers: Any = None

    @property
    def headers(self) -> Any:
        if self._headers is None:
            self._headers = _compat.UPSTREAM.Headers(self.raw)
        return self._headers


_CORE = "httpcore2" if _compat.UPSTREAM.__name__ == "httpx2" else "httpcore"
"""The httpcore under the HTTP library polyroute calls providers with."""
_CORE_URLS: dict[int, tuple[Any, Any]] = {}
"""httpcore's URL per upstream URL object (by id; the entry holds the object, so the id stays its own)."""


def _core_request(pool: Any, request: _Outgoing) -> Any:
    core = sys.modules[_CORE]  # imported by the transport that made the pool
    url = request.url
    entry = _CORE_URLS.get(id(url))
    if entry is None or entry[0] is not url:
        if len(_CORE_URLS) >= 1024:
            _CORE_URLS.clear()
        entry = _CORE_URLS[id(url)] = (
            url,
            core.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
        )
    return core.Request(
        request.method, entry[1], headers=request.raw_headers(), content=request.content, extensions=request.extensions
    )


def _as_library_error(exc: Exception) -> BaseException:
    """An exception of httpcore's as the HTTP library's own (what the failover classifies), as its transport maps
    it.
    """
    from importlib import import_module

    mapper = import_module(f"{_compat.UPSTREAM.__name__}._transports.default").map_httpcore_exceptions
    try:
        with mapper():
            raise exc
    except BaseException as mapped:
        return mapped
    return exc  # pragma: no cover - the mapper always re-raises


def _core_body(status: int, raw: list[tuple[bytes, bytes]], body: bytes, head: _Head) -> bytes:
    """The body as the caller reads it: a server's own compression undone by the HTTP library's decoders."""
    if not head.encoded:
        return body
    return bytes(_compat.UPSTREAM.Response(status, headers=raw, content=body).read())


def _core_exchange(pool: Any, request: _Outgoing, deadline: float) -> tuple[_CoreAnswer, bytes, _Head]:
    """:class:`_Exchange` (sync) on httpcore's pool: the answer, its whole body and its head."""
    core = _core_request(pool, request)
    try:
        response = pool.handle_request(core)
    except Exception as exc:
        raise _as_library_error(exc) from None
    raw = response.headers
    head = _head_of(raw)
    try:
        body = _read_all(response, request.extensions, deadline, head)
    except Exception as exc:
        raise _as_library_error(exc) from None
    return _CoreAnswer(response.status, raw), _core_body(response.status, raw, body, head), head


async def _acore_exchange(pool: Any, request: _Outgoing) -> tuple[_CoreAnswer, bytes, _Head]:
    """:class:`_Exchange` (async) on httpcore's pool (the runner bounds it by the deadline)."""
    core = _core_request(pool, request)
    try:
        response = await pool.handle_async_request(core)
        try:
            body = b"".join([chunk async for chunk in response.stream])
        finally:
            await response.aclose()
    except Exception as exc:
        raise _as_library_error(exc) from None
    raw = response.headers
    head = _head_of(raw)
    return _CoreAnswer(response.status, raw), _core_body(response.status, raw, body, head), head


def _head(headers: Any) -> _Head:
    raw: Any = getattr(headers, "raw", None)
    return _head_of(
        raw if raw is not None else [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    )


def _head_of(pairs: list[tuple[bytes, bytes]]) -> _Head:
    """:func:`_head` of raw header pairs (httpcore's)."""
    encoded = False
    length: bytes | None = None
    lengths = 0
    limits: dict[str, str] | None = None
    for key, value in pairs:
        kind = _HEAD_NAMES.get(key)
        if kind is None:
            kind = _head_kind(key)
        if kind == _OTHER:
            continue
        if kind == _ENCODING:
            encoded = encoded or value.strip().lower() not in (b"", b"identity")
        elif kind == _LENGTH:
            length, lengths = value, lengths + 1
        else:
            if limits is None:
                limits = {}
            limits[key.decode("latin-1").lower()] = value.decode("latin-1")
    size = int(length) if lengths == 1 and length is not None and length.strip().isdigit() else None
    return _Head(encoded, size, limits)


_OTHER, _ENCODING, _LENGTH, _LIMIT = range(4)
_HEAD_NAMES: dict[bytes, int] = {}


def _head_kind(key: bytes) -> int:
    name = key.lower()
    if name == b"content-encoding":
        kind = _ENCODING
    elif name == b"content-length":
        kind = _LENGTH
    elif name.startswith(b"x-ratelimit-"):
        kind = _LIMIT
    else:
        kind = _OTHER
    if len(_HEAD_NAMES) < 4096:  # upstreams choose header names: remember a bounded number
        _HEAD_NAMES[key] = kind
    return kind


def _succeeded(attempts: Attempts, target: Target, outcome: Outcome) -> None:
    if isinstance(outcome, StreamCall):
        attempts.succeeded(target, streaming=True)
        return
    usage: Any = outcome.get("usage")
    attempts.succeeded(target, used_tokens=_total_tokens(usage) if usage else 0)


def _total_tokens(usage: Mapping[str, Any]) -> int:
    """A call's tokens for the tpm bucket: ``total_tokens`` (Chat, Responses, embeddings), else input plus output
    (Anthropic's Messages usage has no total).
    """
    total = usage.get("total_tokens")
    if isinstance(total, int):
        return total
    return int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)


_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
"""Methods whose requests say ``content-length: 0`` when empty (as ``Request(content=...)`` does)."""


def _json_response(lib: Any, status: int, body: Any, headers: Mapping[str, str] | None = None) -> Any:
    named = {"content-type": "application/json", **(headers or {})}
    return _bytes_response(lib, status, [(k.encode(), v.encode()) for k, v in named.items()], dumps(body))


def _bytes_response(lib: Any, status: int, headers: list[tuple[bytes, bytes]], content: bytes) -> Any:
    """A response whose body is ``content``, left for the client to read: ``Response(content=...)`` reads it into
    the response at once and again through the client's stream, a few µs more per call. Headers as bytes: an httpx
    ``Headers`` built from str encodes each name and value, and checks both types.
    """
    headers.append((b"content-length", str(len(content)).encode()))
    return lib.Response(status, headers=headers, stream=lib.ByteStream(content))


def _unreachable(exc: PolyrouteError) -> str | None:
    """The name of the caller library's ``ReadTimeout`` / ``ConnectError`` when every attempt timed out or could not
    connect (the SDK then raises ``APITimeoutError`` / ``APIConnectionError``, as for a direct call), else None. Not
    when a deployment refused the request itself: what it said is the answer, not a retryable connection error.
    """
    if not isinstance(exc, AllTargetsFailedError) or not exc.errors or exc.refused:
        return None
    if all(isinstance(e, UpstreamTimeout) for e in exc.errors):
        return "ReadTimeout"
    if all(isinstance(e, UpstreamTimeout | UpstreamConnectionError) for e in exc.errors):
        return "ConnectError"
    return None


def _error_response(lib: Any, request: Any, exc: PolyrouteError, attempts: Attempts | None) -> Any:
    if attempts is not None and attempts.call is not None:
        attempts.call.failed(exc, attempts)
    unreachable = _unreachable(exc)
    if unreachable is not None:
        # from None: the attempts are in the message; their chained tracebacks would bury it under hundreds of lines
        raise getattr(lib, unreachable)(f"polyroute: {exc.message}", request=request) from None
    headers = {"x-should-retry": "false", **exc.headers()}
    if attempts is not None:
        headers["x-polyroute-attempts"] = str(attempts.count)
        if attempts.records:
            headers["x-polyroute-deployment"] = attempts.records[-1].deployment
    request_id = getattr(exc, "request_id", None)
    if request_id:
        headers["x-request-id"] = request_id
    return _json_response(lib, exc.status, error_body(api_for(request.url.path), exc), headers)


def _internal_error(lib: Any, request: Any, exc: Exception, attempts: Attempts | None = None) -> Any:
    error = PolyrouteError(
        f"polyroute internal error: {type(exc).__name__}: {exc}. This is a bug in polyroute; please report it.",
        code="internal_error",
    )
    error.error_type = "server_error"
    if attempts is not None and attempts.call is not None:
        attempts.call.failed(error, attempts)  # a usage record all the same (and a budget reservation settled)
    body = error_body(api_for(request.url.path), error)
    return _json_response(lib, 500, body, {"x-should-retry": "false"})
