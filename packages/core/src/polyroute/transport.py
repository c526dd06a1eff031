"""The in-process transport: the openai SDK (or any httpx / httpx2 client) sends its request here as if to an
OpenAI server, and gets an OpenAI answer back, with routing, translation and failover in between.

This is the only module that does I/O. The request loop is written twice (sync and async) and differs only in
``await``; everything it decides comes from :mod:`polyroute.failover`, :mod:`polyroute.router` and the adapters.

A stream is committed once its first content chunk is ready: until then a failure moves to the next deployment;
after it, an upstream failure becomes one in-band ``data: {"error": …}`` event, which the SDK raises.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
import weakref
from collections.abc import AsyncIterator, Generator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeAlias

from polyroute import _compat
from polyroute._sse import DONE, encode_event
from polyroute.errors import (
    InvalidRequestError,
    NotFoundPathError,
    PolyrouteError,
    StreamInterruptedError,
    UnsupportedFeatureError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeout,
    error_body,
    redact,
)
from polyroute.failover import Attempts
from polyroute.providers import adapter_for
from polyroute.providers._base import StreamDecoder, StreamTranslator, Target, dumps
from polyroute.router import Router
from polyroute.types.openai import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Usage
from polyroute.validation import parse_body

logger = logging.getLogger("polyroute")

Outcome: TypeAlias = "ChatCompletion | StreamCall"
"""A finished completion, or a primed stream."""

_PASSTHROUGH = ("CannotOverwriteExistingCassetteException",)
"""Exceptions that are not upstream failures and must reach the test that caused them (vcrpy's no-match)."""


class RouterTransport(_compat.TransportBase):
    """An httpx / httpx2 transport (sync and async) that serves OpenAI's API from a :class:`Router`."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self._sync_inner: Any = None
        self._async_inner: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._mock: Any = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._urls: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"RouterTransport({self.router!r})"

    # -- entry points -------------------------------------------------------------------------------------------

    def handle_request(self, request: Any) -> Any:
        """Serve one request from a sync client."""
        lib = _compat.library_of(request)
        attempts: Attempts | None = None
        try:
            early = self._early_answer(request)
            if early is not None:
                return _json_response(lib, *early)
            body = parse_body(request.read())
            attempts = Attempts(self.router, body, _caller_timeout(request))
            if attempts.hedge_after is None:
                target, outcome = self._serve(body, attempts)
            else:
                target, outcome = self._serve_hedged(body, attempts)
            return self._respond(lib, outcome, target, attempts)
        except PolyrouteError as exc:
            return _error_response(lib, exc, attempts)
        except Exception as exc:
            if type(exc).__name__ in _PASSTHROUGH:
                raise
            logger.exception("polyroute internal error")
            return _internal_error(lib, exc)

    async def handle_async_request(self, request: Any) -> Any:
        """Serve one request from an async client."""
        lib = _compat.library_of(request)
        attempts: Attempts | None = None
        try:
            early = self._early_answer(request)
            if early is not None:
                return _json_response(lib, *early)
            body = parse_body(await request.aread())
            attempts = Attempts(self.router, body, _caller_timeout(request))
            if attempts.hedge_after is None:
                target, outcome = await self._aserve(body, attempts)
            else:
                target, outcome = await self._aserve_hedged(body, attempts)
            return self._respond(lib, outcome, target, attempts)
        except PolyrouteError as exc:
            return _error_response(lib, exc, attempts)
        except Exception as exc:
            if type(exc).__name__ in _PASSTHROUGH:
                raise
            logger.exception("polyroute internal error")
            return _internal_error(lib, exc)

    # -- the request loops (the only part written twice) ---------------------------------------------------------

    def _serve(self, body: ChatCompletionRequest, attempts: Attempts) -> tuple[Target, Outcome]:
        while True:
            step = attempts.next()
            if step is None:
                raise attempts.final_error()
            if not isinstance(step, Target):
                time.sleep(step)
                continue
            try:
                outcome = self._call(step, body, attempts)
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

    async def _aserve(self, body: ChatCompletionRequest, attempts: Attempts) -> tuple[Target, Outcome]:
        while True:
            step = attempts.next()
            if step is None:
                raise attempts.final_error()
            if not isinstance(step, Target):
                await asyncio.sleep(step)
                continue
            try:
                outcome = await self._acall(step, body, attempts)
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

    def _serve_hedged(self, body: ChatCompletionRequest, attempts: Attempts) -> tuple[Target, Outcome]:
        """:meth:`_serve` with hedging: calls run in worker threads; when the one in flight has not answered (for
        a stream: no first token) within ``hedge_after_ms``, the next deployment starts too. The first answer
        wins; a loser still running is closed as soon as its call returns.
        """
        pool = self._hedge_pool()
        running: dict[concurrent.futures.Future[Outcome], Target] = {}
        hedged = False
        try:
            while True:
                if not running:
                    hedged = False
                    step = attempts.next()
                    if step is None:
                        raise attempts.final_error()
                    if not isinstance(step, Target):
                        time.sleep(step)
                        continue
                    running[pool.submit(self._call, step, body, attempts)] = step
                timeout = attempts.hedge_after if not hedged else None
                done, _ = concurrent.futures.wait(running, timeout, concurrent.futures.FIRST_COMPLETED)
                if not done:
                    hedged = True
                    step = attempts.next(wait=False)
                    if isinstance(step, Target):
                        running[pool.submit(self._call, step, body, attempts)] = step
                    continue
                for future in done:
                    target = running.pop(future)
                    exc = future.exception()
                    if exc is None:
                        outcome = future.result()
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
        finally:
            for future, target in running.items():
                future.cancel()
                future.add_done_callback(_close_outcome)
                attempts.abandoned(target)

    async def _aserve_hedged(self, body: ChatCompletionRequest, attempts: Attempts) -> tuple[Target, Outcome]:
        """Async :meth:`_serve_hedged`: calls run as tasks; losers are cancelled, awaited and closed."""
        running: dict[asyncio.Future[Outcome], Target] = {}
        hedged = False
        try:
            while True:
                if not running:
                    hedged = False
                    step = attempts.next()
                    if step is None:
                        raise attempts.final_error()
                    if not isinstance(step, Target):
                        await asyncio.sleep(step)
                        continue
                    running[asyncio.ensure_future(self._acall(step, body, attempts))] = step
                timeout = attempts.hedge_after if not hedged else None
                done, _ = await asyncio.wait(running, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    hedged = True
                    step = attempts.next(wait=False)
                    if isinstance(step, Target):
                        running[asyncio.ensure_future(self._acall(step, body, attempts))] = step
                    continue
                for task in done:
                    target = running.pop(task)
                    exc = task.exception()
                    if exc is None:
                        outcome = task.result()
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
        finally:
            if running:
                for task in running:
                    task.cancel()
                results = await asyncio.gather(*running, return_exceptions=True)
                for result, target in zip(results, running.values(), strict=True):
                    if isinstance(result, StreamCall):
                        await result.response.aclose()
                    attempts.abandoned(target)

    def _hedge_pool(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="polyroute-hedge")
        return self._pool

    def close(self) -> None:
        """Close the sync upstream pool (async pools close with :meth:`aclose`)."""
        if self._sync_inner is not None:
            self._sync_inner.close()
            self._sync_inner = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def aclose(self) -> None:
        """Close the upstream pool of the running event loop."""
        loop = asyncio.get_running_loop()
        inner = self._async_inner.pop(loop, None)
        if inner is not None:
            await inner.aclose()

    # -- routing-independent answers -------------------------------------------------------------------------

    def _early_answer(self, request: Any) -> tuple[int, Any] | None:
        """Answers that need no upstream: ``/models``, unknown paths. None for a chat completion."""
        path: str = request.url.path
        if path.endswith("/chat/completions"):
            if request.method != "POST":
                raise InvalidRequestError(f"{request.method} {path} is not allowed; use POST")
            return None
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
            f"polyroute serves POST /v1/chat/completions and GET /v1/models; {request.method} {path} is not served "
            "(use the Chat Completions API)"
        )

    # -- one upstream call ----------------------------------------------------------------------------------

    def _prepare(self, target: Target, body: ChatCompletionRequest, timeout: float) -> tuple[Any, Any, bool]:
        if target.spec.key_required and not target.api_key:
            envs = " or ".join(target.spec.key_envs) or "api_key"
            raise UpstreamStatusError(
                f"no API key for {target.label}: set {envs}, or api_key / api_key_env in its deployment",
                provider=target.provider,
                deployment=target.label,
                status=401,
                error_type="authentication_error",
                code="missing_api_key",
            )
        adapter = adapter_for(target.spec)
        upstream = adapter.build_request(body, target)
        url = self._urls.get(upstream.url)
        if url is None:  # parsing a URL costs more than the rest of the request build: parse each once
            if len(self._urls) >= 1024:
                self._urls.clear()
            url = self._urls[upstream.url] = _compat.UPSTREAM.URL(upstream.url)
        req = _compat.UPSTREAM.Request(
            upstream.method,
            url,
            headers=upstream.headers,
            content=upstream.content,
            extensions={"timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}},
        )
        return adapter, req, upstream.stream

    def _call(self, target: Target, body: ChatCompletionRequest, attempts: Attempts) -> Outcome:
        """One upstream call; a stream is returned primed (its first content chunk read)."""
        inner = self._inner_sync(target)  # a new pool loads certificates: not part of the time to first token
        timeout, ttft = attempts.timeouts(target)
        started = time.monotonic()
        adapter, req, stream = self._prepare(target, body, ttft or timeout)
        with _map_transport_errors(target, ttft or timeout):
            response = inner.handle_request(req)
            self.router.observe(target, response.headers)
            if response.status_code >= 400:
                content = response.read()
                response.close()
                raise adapter.classify_error(response.status_code, response.headers, content, target)
            if not stream:
                content = response.read()
                response.close()
                return _parse(adapter, content, target, body)
        if ttft is not None:
            # The body's reads take the timeout set when the body starts: after the first token, the long one.
            req.extensions["timeout"] = _timeouts(timeout)
        call = StreamCall(adapter, target, body, response, self.router, attempts.profile.tokens)
        call.prime(started + ttft if ttft is not None else None)
        return call

    async def _acall(self, target: Target, body: ChatCompletionRequest, attempts: Attempts) -> Outcome:
        """Async :meth:`_call`; the time to first token is enforced as a whole (headers + first chunk)."""
        inner = self._inner_async(target)  # a new pool loads certificates: not part of the time to first token
        timeout, ttft = attempts.timeouts(target)
        if ttft is None:
            return await self._acall_inner(inner, target, body, attempts, timeout, None)
        try:
            return await asyncio.wait_for(self._acall_inner(inner, target, body, attempts, timeout, ttft), ttft)
        except asyncio.TimeoutError:
            raise _ttft_error(target, ttft) from None

    async def _acall_inner(
        self,
        inner: Any,
        target: Target,
        body: ChatCompletionRequest,
        attempts: Attempts,
        timeout: float,
        ttft: float | None,
    ) -> Outcome:
        adapter, req, stream = self._prepare(target, body, ttft or timeout)
        with _map_transport_errors(target, ttft or timeout):
            response = await inner.handle_async_request(req)
            self.router.observe(target, response.headers)
            if response.status_code >= 400:
                content = await response.aread()
                await response.aclose()
                raise adapter.classify_error(response.status_code, response.headers, content, target)
            if not stream:
                content = await response.aread()
                await response.aclose()
                return _parse(adapter, content, target, body)
        if ttft is not None:
            req.extensions["timeout"] = _timeouts(timeout)
        call = StreamCall(adapter, target, body, response, self.router, attempts.profile.tokens)
        await call.aprime()
        return call

    def _inner_sync(self, target: Target) -> Any:
        if target.spec.adapter == "mock":
            return self._mock_upstream().bind(target)
        if self._sync_inner is None:
            self._sync_inner = _compat.UPSTREAM.HTTPTransport(limits=_pool_limits())
        return self._sync_inner

    def _inner_async(self, target: Target) -> Any:
        if target.spec.adapter == "mock":
            return self._mock_upstream().bind(target)
        loop = asyncio.get_running_loop()
        inner = self._async_inner.get(loop)
        if inner is None:
            inner = self._async_inner[loop] = _compat.UPSTREAM.AsyncHTTPTransport(limits=_pool_limits())
        return inner

    def _mock_upstream(self) -> Any:
        if self._mock is None:
            from polyroute.providers.mock import MockUpstream

            self._mock = MockUpstream()
        return self._mock

    # -- answers --------------------------------------------------------------------------------------------

    def _respond(self, lib: Any, outcome: Outcome, target: Target, attempts: Attempts) -> Any:
        headers = {"x-polyroute-deployment": target.label, "x-polyroute-attempts": str(attempts.count)}
        if isinstance(outcome, StreamCall):
            headers["content-type"] = "text/event-stream"
            headers["cache-control"] = "no-cache"
            return lib.Response(200, headers=headers, stream=RouterStream(outcome))
        usage = outcome.get("usage")
        if usage:
            cost = _price(target, usage)
            if cost is not None:
                headers["x-polyroute-cost"] = f"{cost:.10f}".rstrip("0").rstrip(".")
        headers["content-type"] = "application/json"
        return lib.Response(200, headers=headers, content=dumps(outcome))


def _parse(adapter: Any, content: bytes, target: Target, body: ChatCompletionRequest) -> ChatCompletion:
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


def _price(target: Target, usage: Usage) -> float | None:
    """Price the call from the catalog; the cost rides on ``usage.cost`` and the ``x-polyroute-cost`` header."""
    details = usage.get("prompt_tokens_details") or {}
    cost = target.info.cost(
        usage.get("prompt_tokens", 0),
        usage.get("completion_tokens", 0),
        details.get("cached_tokens", 0) or 0,
        details.get("cache_creation_tokens", 0) or 0,
    )
    if cost is not None:
        usage["cost"] = cost
    return cost


class StreamCall:
    """One committed-or-priming upstream stream: decoder + translator over the upstream response.

    :meth:`prime` reads until the first content chunk (failures before it may fail over); the
    :class:`RouterStream` then forwards the rest, and :meth:`close` closes upstream and frees the deployment.
    """

    __slots__ = (
        "_buffer",
        "_closed",
        "body",
        "decoder",
        "estimate",
        "iter",
        "response",
        "router",
        "target",
        "translator",
    )

    def __init__(
        self,
        adapter: Any,
        target: Target,
        body: ChatCompletionRequest,
        response: Any,
        router: Router | None = None,
        estimate: int = 0,
    ) -> None:
        self.target = target
        self.body = body
        self.response = response
        self.router = router
        self.estimate = estimate
        self.decoder: StreamDecoder = adapter.stream_decoder()
        self.translator: StreamTranslator = adapter.stream_translator(target, body)
        self._buffer: list[bytes] = []
        self._closed = False
        self.iter: Any = None
        """The upstream byte iterator once primed; None when the whole stream was read while priming."""

    def forward(self, raw: bytes) -> bytes:
        """Upstream bytes → the SSE bytes to send, once committed (no need to look for content any more)."""
        out: list[bytes] = []
        for event in self.decoder.feed(raw):
            for chunk in self.translator.feed(event):
                if isinstance(chunk, bytes):
                    out.append(b"data: " + chunk + b"\n\n")
                else:
                    if chunk.get("usage"):
                        _price(self.target, chunk["usage"])  # type: ignore[arg-type]
                    out.append(encode_event(dumps(chunk)))
        return b"".join(out)

    def feed(self, raw: bytes) -> tuple[bytes, bool]:
        """Upstream bytes → the SSE bytes to send, and whether any of it is content (the commit signal)."""
        out: list[bytes] = []
        substantive = False
        for event in self.decoder.feed(raw):
            for chunk in self.translator.feed(event):
                if isinstance(chunk, bytes):
                    out.append(b"data: " + chunk + b"\n\n")
                    substantive = substantive or _raw_is_content(chunk)
                else:
                    if chunk.get("usage"):
                        _price(self.target, chunk["usage"])  # type: ignore[arg-type]
                    out.append(encode_event(dumps(chunk)))
                    substantive = substantive or _is_content(chunk)
        return b"".join(out), substantive

    def end(self) -> bytes:
        """The upstream body ended: the last chunks, then ``[DONE]``; raises if the stream was cut short."""
        out: list[bytes] = []
        for event in self.decoder.flush():
            for chunk in self.translator.feed(event):
                out.append(b"data: " + chunk + b"\n\n" if isinstance(chunk, bytes) else encode_event(dumps(chunk)))
        for chunk in self.translator.finish():
            if not isinstance(chunk, bytes) and chunk.get("usage"):
                _price(self.target, chunk["usage"])  # type: ignore[arg-type]
            out.append(b"data: " + chunk + b"\n\n" if isinstance(chunk, bytes) else encode_event(dumps(chunk)))
        out.append(DONE)
        return b"".join(out)

    def prime(self, ttft_deadline: float | None = None) -> None:
        """Read until the first content chunk; an error here closes upstream and may fail over.

        ``ttft_deadline`` (monotonic): no content by then is a timeout. Sync reads cannot be interrupted, so
        this is checked as bytes arrive; a silent upstream is bounded by the read timeout.
        """
        try:
            with _map_transport_errors(self.target, None):
                self.iter = iter(_body_bytes(self.response))
                for raw in self.iter:
                    data, committed = self.feed(raw)
                    if data:
                        self._buffer.append(data)
                    if committed:
                        return
                    if ttft_deadline is not None and time.monotonic() > ttft_deadline:
                        raise _ttft_error(self.target, None)
                self._buffer.append(self.end())
                self.iter = None
        except BaseException:
            self.response.close()
            raise

    async def aprime(self) -> None:
        """Async :meth:`prime` (the transport bounds the time to first token with a timer)."""
        try:
            with _map_transport_errors(self.target, None):
                self.iter = _abody_bytes(self.response).__aiter__()
                async for raw in self.iter:
                    data, committed = self.feed(raw)
                    if data:
                        self._buffer.append(data)
                    if committed:
                        return
                self._buffer.append(self.end())
                self.iter = None
        except BaseException:
            await self.response.aclose()
            raise

    def take_buffer(self) -> bytes:
        """The bytes read while priming."""
        data = b"".join(self._buffer)
        self._buffer.clear()
        return data

    def _release(self) -> None:
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
    """The SSE body handed to the caller. Closing it early closes the upstream response."""

    def __init__(self, call: StreamCall) -> None:
        self._call = call

    def __iter__(self) -> Iterator[bytes]:
        call = self._call
        head = call.take_buffer()
        if head:
            yield head
        if call.iter is None:  # the whole stream was read while priming
            return self.close()
        try:
            with _map_transport_errors(call.target, None):
                for raw in call.iter:
                    data = call.forward(raw)
                    if data:
                        yield data
                tail = call.end()
            yield tail
        except UpstreamError as exc:
            yield _stream_error(exc)
        finally:
            self.close()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        call = self._call
        head = call.take_buffer()
        if head:
            yield head
        if call.iter is None:
            await self.aclose()
            return
        try:
            with _map_transport_errors(call.target, None):
                async for raw in call.iter:
                    data = call.forward(raw)
                    if data:
                        yield data
                tail = call.end()
            yield tail
        except UpstreamError as exc:
            yield _stream_error(exc)
        finally:
            await self.aclose()

    def close(self) -> None:
        """Close upstream (the SDK calls this when the caller leaves the stream early)."""
        self._call.close()

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        await self._call.aclose()


def _body_bytes(response: Any) -> Any:
    """The upstream body as it arrives: the transport's own byte stream when nothing needs decoding (one layer
    less per chunk), else ``iter_bytes`` (gzip from a replayed cassette, say).
    """
    if response.headers.get("content-encoding", "identity") == "identity":
        return response.stream
    return response.iter_bytes()


def _abody_bytes(response: Any) -> Any:
    """Async :func:`_body_bytes`."""
    if response.headers.get("content-encoding", "identity") == "identity":
        return response.stream
    return response.aiter_bytes()


def _pool_limits() -> Any:
    """The openai SDK's own pool limits: httpx's default keeps 20 idle connections, fewer than agents in flight."""
    return _compat.UPSTREAM.Limits(max_connections=1000, max_keepalive_connections=100)


def _stream_error(exc: UpstreamError) -> bytes:
    logger.warning("polyroute stream failed after commit: deployment=%s: %s", exc.deployment, exc.message)
    if not isinstance(exc, StreamInterruptedError):
        exc = StreamInterruptedError(
            exc.message,
            provider=exc.provider,
            deployment=exc.deployment,
            status=exc.status,
            error_type=exc.error_type,
            code=exc.code,
        )
    return encode_event(dumps(exc.to_body()))


def _is_content(chunk: ChatCompletionChunk) -> bool:
    if not chunk.get("choices"):
        return chunk.get("usage") is not None
    for choice in chunk["choices"]:
        if choice.get("finish_reason"):
            return True
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or delta.get("reasoning_content") or delta.get("refusal"):
            return True
    return False


def _raw_is_content(raw: bytes) -> bool:
    """:func:`_is_content` for a chunk forwarded as raw bytes: an empty ``content`` with a reasoning or refusal
    delta (DeepSeek's reasoning stream) is content too, else reasoning would be held back until the answer.
    """
    if b'"content":""' in raw or b'"content":null' in raw:
        return (
            b'"tool_calls"' in raw
            or b'"finish_reason":"' in raw
            or (b'"reasoning_content":"' in raw and b'"reasoning_content":""' not in raw)
            or (b'"refusal":"' in raw and b'"refusal":""' not in raw)
        )
    return True


@contextmanager
def _map_transport_errors(target: Target, timeout: float | None) -> Generator[None]:
    """Connection and timeout errors of either HTTP library → :class:`UpstreamError` (fails over)."""
    try:
        yield
    except _compat.timeout_exceptions() as exc:
        after = f" after {timeout:g}s" if timeout is not None else ""
        raise UpstreamTimeout(
            f"{target.label} timed out ({type(exc).__name__}){after}",
            provider=target.provider,
            deployment=target.label,
        ) from exc
    except _compat.transport_exceptions() as exc:
        raise UpstreamConnectionError(
            f"{target.label} could not be reached: {type(exc).__name__}: {redact(str(exc))}",
            provider=target.provider,
            deployment=target.label,
        ) from exc


def _ttft_error(target: Target, ttft: float | None) -> UpstreamTimeout:
    limit = ttft if ttft is not None else target.deployment.ttft_timeout
    return UpstreamTimeout(
        f"{target.label} sent no first token within ttft_timeout={limit:g}s",
        provider=target.provider,
        deployment=target.label,
        code="ttft_timeout",
    )


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


def _succeeded(attempts: Attempts, target: Target, outcome: Outcome) -> None:
    if isinstance(outcome, StreamCall):
        attempts.succeeded(target, streaming=True)
        return
    usage = outcome.get("usage")
    attempts.succeeded(target, used_tokens=usage.get("total_tokens", 0) if usage else 0)


def _close_outcome(future: concurrent.futures.Future[Outcome]) -> None:
    """A hedged call that lost: close its stream when its thread returns."""
    if future.cancelled() or future.exception() is not None:
        return
    result = future.result()
    if isinstance(result, StreamCall):
        result.response.close()


def _json_response(lib: Any, status: int, body: Any, headers: Mapping[str, str] | None = None) -> Any:
    return lib.Response(status, headers={"content-type": "application/json", **(headers or {})}, content=dumps(body))


def _error_response(lib: Any, exc: PolyrouteError, attempts: Attempts | None) -> Any:
    headers = {"x-should-retry": "false", **exc.headers()}
    if attempts is not None:
        headers["x-polyroute-attempts"] = str(attempts.count)
        if attempts.records:
            headers["x-polyroute-deployment"] = attempts.records[-1].deployment
    request_id = getattr(exc, "request_id", None)
    if request_id:
        headers["x-request-id"] = request_id
    return _json_response(lib, exc.status, exc.to_body(), headers)


def _internal_error(lib: Any, exc: Exception) -> Any:
    body = error_body(
        f"polyroute internal error: {type(exc).__name__}: {exc}. This is a bug in polyroute; please report it.",
        "server_error",
        "internal_error",
    )
    return _json_response(lib, 500, body, {"x-should-retry": "false"})
