"""The APIs the transport serves, each as what the one request loop needs to know of it.

The loop in :mod:`polyroute.transport` is written once; an API (Chat Completions here; Responses and embeddings in
their own modules) says how to read its request, what to route on, which adapter speaks it to a deployment, how its
stream is framed and when that stream commits, and how its answer is priced. Modules load on first use of their
path, so ``import polyroute`` stays light.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
from collections.abc import Mapping
from typing import Any, Protocol, cast

from polyroute._sse import DONE, encode_event
from polyroute.errors import (
    NotFoundPathError,
    PolyrouteError,
    StreamInterruptedError,
    UpstreamError,
)
from polyroute.failover import Profile, profile
from polyroute.providers import adapter_for
from polyroute.providers._base import Target, dumps, loads
from polyroute.types.openai import ChatCompletionChunk, ChatCompletionRequest, Usage
from polyroute.usage.prices import cost as usage_cost
from polyroute.validation import parse_body

logger = logging.getLogger("polyroute")


class StreamFormat(Protocol):
    """How an API's stream goes to the caller: the bytes of each translated item, which items commit the stream,
    its last bytes and an in-band error after the commit.
    """

    def encode(self, item: Any, target: Target) -> bytes:
        """One item from the adapter's translator → the bytes to send (pricing any usage it carries)."""
        ...

    def is_content(self, item: Any) -> bool:
        """Whether the item commits the stream (content, not metadata)."""
        ...

    def done(self) -> bytes:
        """What ends a stream that ended well."""
        ...

    def error(self, exc: UpstreamError) -> bytes:
        """The in-band event for a failure after the commit."""
        ...


class Api(Protocol):
    """One API served through the request loop.

    An API whose errors are not OpenAI's shape (Anthropic's Messages) also defines ``error_body(exc)``, the body of
    its error answers (:func:`error_body`).
    """

    name: str
    stream_format: StreamFormat

    def local(
        self, method: str, path: str, transport: Any, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Any] | None:
        """An answer that needs no upstream (``GET /responses/{id}``, say), else None; raises for a bad method.
        ``path`` carries the query string, if any (``?limit=5``).
        """
        ...

    def parse(self, raw: bytes, transport: Any, headers: Mapping[str, str] | None = None) -> Any:
        """The request body, validated (:class:`~polyroute.errors.InvalidRequestError` says what to fix)."""
        ...

    def routing(self, body: Any) -> Profile:
        """What :class:`~polyroute.failover.Attempts` routes on: the model, whether it streams, its estimated size
        and what it needs of a deployment.
        """
        ...

    def adapter(self, target: Target, body: Any) -> Any:
        """What speaks this API to the target: ``build_request``, ``parse_response``, ``classify_error``,
        ``stream_decoder`` and ``stream_translator``, as a provider adapter module does for chat.
        """
        ...

    def finish(self, answer: Any, target: Target) -> float | None:
        """A non-streamed answer is final: price it (the cost rides in the answer's usage), and return the cost."""
        ...

    def split(self, body: Any, transport: Any) -> list[Any] | None:
        """Requests to run instead of ``body``, each through the loop and concurrently (an embeddings batch larger
        than a provider takes), or None to run ``body`` as it is. Not for streams.
        """
        ...

    def merge(self, answers: list[Any]) -> Any:
        """The answer to a split request, from its parts' answers in order."""
        ...


class RawAnswer(dict[str, Any]):
    """A parsed non-streamed answer that goes to the caller as the upstream's own bytes, with polyroute's cost put
    into its ``usage``: a large body (an embeddings batch is most of a megabyte of base64) is not encoded a second
    time. The adapter returns one only when those bytes already are the answer the caller asked for.
    """

    __slots__ = ("priced", "raw")

    def __init__(self, parsed: Mapping[str, Any], raw: bytes, *, priced: bool = False) -> None:
        super().__init__(parsed)
        self.raw = raw
        self.priced = priced
        """``raw`` already carries the cost (an answer polyroute encoded after pricing it)."""

    def to_bytes(self) -> bytes:
        """The upstream's bytes, with ``"cost"`` added first in the ``usage`` object when the answer was priced (a
        body where ``"usage"`` is not found exactly once is encoded from the parsed answer instead).
        """
        return self.raw if self.priced else with_cost(self, self.raw)


def with_cost(parsed: Mapping[str, Any], raw: bytes) -> bytes:
    """``raw`` (the JSON of ``parsed``) with ``parsed``'s ``usage.cost`` added first in its ``usage`` object, when it
    has one (a body where ``"usage"`` is not found exactly once is encoded from ``parsed`` instead).
    """
    usage: Any = parsed.get("usage")
    cost: Any = cast("dict[str, Any]", usage).get("cost") if isinstance(usage, dict) else None
    if cost is None:
        return raw
    start = raw.find(b'"usage"')
    opening = raw.find(b"{", start + 7) if start >= 0 else -1
    if opening < 0 or raw[start + 7 : opening].strip() != b":" or raw.count(b'"usage"', start + 7):
        return dumps(dict(parsed))
    empty = raw[opening + 1 : opening + 64].lstrip().startswith(b"}")
    return b"".join(
        (raw[: opening + 1], b'"cost":', json.dumps(cost).encode(), b"" if empty else b",", raw[opening + 1 :])
    )


def error_body(api: Api | None, exc: PolyrouteError) -> Any:
    """The body of an error answer on ``api``'s path: the API's own shape when it has one (``error_body``), else
    OpenAI's (a path no API serves, too).
    """
    shape = getattr(api, "error_body", None)
    return shape(exc) if shape is not None else exc.to_body()


# -- Chat Completions ---------------------------------------------------------------------------------------------


def price(target: Target, usage: Usage) -> float | None:
    """Price a call (:func:`polyroute.usage.prices.cost`: the deployment's prices, genai-prices, the catalog); the
    cost rides on ``usage.cost`` and the ``x-polyroute-cost`` header.
    """
    cost = usage_cost(target, usage)
    if cost is not None:
        usage["cost"] = cost
    return cost


def encode_chunk(chunk: ChatCompletionChunk) -> bytes:
    """A parsed chunk → its SSE event; a chunk whose ``choices`` is not a list would break the caller's loop."""
    if type(chunk.get("choices")) is not list:
        raise ValueError(f"'choices' is {type(chunk.get('choices')).__name__}, not a list")
    return encode_event(dumps(chunk))


def is_content_chunk(chunk: ChatCompletionChunk) -> bool:
    """Whether a chunk carries content: text, reasoning, a tool call or a refusal (the commit signal).

    Metadata does not commit: Azure's prompt-filter chunk (``"choices": []``), a role-only or empty delta, a
    usage-only chunk. Until content, a failure may still move to another deployment.
    """
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or delta.get("reasoning_content") or delta.get("refusal"):
            return True
    return False


_RAW_CONTENT = re.compile(rb'"(?:content|reasoning_content|refusal)":"[^"]|"tool_calls":\[\{')
"""Content in a compact chunk: a non-empty string in a content field, or a tool call (escaped quotes inside text
cannot match: they read ``\\"``)."""


def is_raw_content(raw: bytes) -> bool:
    """:func:`is_content_chunk` for a chunk forwarded as raw bytes, without parsing it when it is compact JSON (as
    OpenAI and most vendors write it); spaced JSON is parsed (this runs only until the commit).
    """
    if _RAW_CONTENT.search(raw) is not None:
        return True
    if b'": ' not in raw:
        return False
    return is_content_chunk(loads(raw))


def stream_error_event(exc: UpstreamError) -> bytes:
    """A failure after the commit → one ``data: {"error": …}`` event, which the openai SDK raises as ``APIError``."""
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


class ChatStreamFormat:
    """Chat Completions SSE: ``data: {chunk}`` events, ``data: [DONE]`` at the end.

    Items are parsed chunks (dicts) from translating adapters, or the upstream's own JSON as bytes from
    pass-through (checked only for being an object, and for content by a pattern: no parse per chunk).
    """

    def encode(self, item: Any, target: Target) -> bytes:
        """A chunk → its ``data:`` event, priced when it carries usage."""
        if isinstance(item, bytes):
            if not item.endswith(b"}"):
                raise ValueError("a data line that is not a JSON object")
            return b"data: " + item + b"\n\n"
        if item.get("usage"):
            price(target, item["usage"])
        return encode_chunk(item)

    def is_content(self, item: Any) -> bool:
        """Text, reasoning, a tool call or a refusal."""
        return is_raw_content(item) if isinstance(item, bytes) else is_content_chunk(item)

    def done(self) -> bytes:
        """``data: [DONE]``."""
        return DONE

    def error(self, exc: UpstreamError) -> bytes:
        """One ``data: {"error": …}`` event."""
        return stream_error_event(exc)


class ChatApi:
    """``POST /v1/chat/completions``: the provider adapters speak it natively."""

    name = "chat.completions"
    stream_format: StreamFormat = ChatStreamFormat()

    def local(
        self, method: str, path: str, transport: Any, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Any] | None:
        """Nothing is local; only POST is served (:func:`post_only`)."""
        if method != "POST":
            raise post_only(method, path)
        return None

    def parse(self, raw: bytes, transport: Any, headers: Mapping[str, str] | None = None) -> ChatCompletionRequest:
        """The validated chat request, for a route that serves chat (an embedding route is a 400 that says so)."""
        body = parse_body(raw)
        transport.router.require_mode(body["model"], "chat")
        return body

    def routing(self, body: ChatCompletionRequest) -> Profile:
        """The request's own profile."""
        return profile(body)

    def adapter(self, target: Target, body: ChatCompletionRequest) -> Any:
        """The provider's adapter module."""
        return adapter_for(target.spec)

    def finish(self, answer: Any, target: Target) -> float | None:
        """Price the completion's usage."""
        usage = answer.get("usage")
        return price(target, usage) if usage else None

    def split(self, body: ChatCompletionRequest, transport: Any) -> list[Any] | None:
        """A completion is never split."""
        return None

    def merge(self, answers: list[Any]) -> Any:
        """Never called (nothing is split)."""
        raise NotImplementedError


def post_only(method: str, path: str) -> NotFoundPathError:
    """The error for a method other than POST on a path served for POST only: a 404, as OpenAI answers one
    (``Invalid URL (GET /v1/chat/completions)``), that says what is served there.
    """
    path = path.partition("?")[0]
    return NotFoundPathError(f"Invalid URL ({method} {path}): polyroute serves POST {path}")


CHAT: Api = ChatApi()

_APIS: dict[str, tuple[str, str]] = {
    "/chat/completions": ("polyroute.api", "CHAT"),
    "/embeddings": ("polyroute.embeddings", "EMBEDDINGS"),
    "/responses": ("polyroute.responses.api", "RESPONSES"),
    "/messages": ("polyroute.messages_api", "MESSAGES"),
    "/messages/count_tokens": ("polyroute.messages_api", "COUNT_TOKENS"),
}
"""Path (after ``/v1``) → (module, attribute) of its :class:`Api`; a module is imported on the first request."""

_PREFIXES: list[str] = ["/responses"]
"""Paths served under a prefix (``/responses/{id}``), matched when no exact path does."""


def register(path: str, module: str, attribute: str, *, prefix: bool = False) -> None:
    """Serve ``path`` with the :class:`Api` at ``module.attribute`` (``prefix``: also paths under it)."""
    _APIS[path] = (module, attribute)
    if prefix and path not in _PREFIXES:
        _PREFIXES.append(path)
    _BY_PATH.clear()


_LOADED: dict[str, Api] = {}


def api_for(path: str) -> Api | None:
    """The API serving a request path (``/v1/chat/completions``, ``/openai/v1/responses/resp_1``…), or None."""
    found = _BY_PATH.get(path, _UNSEEN)
    if found is not _UNSEEN:
        return found
    api = _find(path)
    if len(_BY_PATH) >= 256:  # ids in paths (GET /responses/{id}) make many: keep the few that repeat
        _BY_PATH.clear()
    _BY_PATH[path] = api
    return api


def _find(path: str) -> Api | None:
    for suffix, (module, attribute) in _APIS.items():
        if path.endswith(suffix):
            return _load(suffix, module, attribute)
    for prefix in _PREFIXES:
        if prefix + "/" in path:
            module, attribute = _APIS[prefix]
            return _load(prefix, module, attribute)
    return None


_UNSEEN: Any = object()
_BY_PATH: dict[str, Api | None] = {}
"""Request path → the API serving it, as :func:`_find` found it (cleared when an API is registered)."""


def _load(key: str, module: str, attribute: str) -> Api:
    api = _LOADED.get(key)
    if api is None:
        api = _LOADED[key] = getattr(importlib.import_module(module), attribute)
    return api


def served() -> str:
    """The paths served, for the 404 of any other."""
    return ", ".join(f"/v1{path}" for path in _APIS)
