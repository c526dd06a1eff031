"""Anthropic's Messages API served by the router (``POST /v1/messages``, ``POST /v1/messages/count_tokens``).

An :class:`~polyroute.api.Api` like Chat Completions, so routing, failover, the stream-commit rule and deadlines
are the request loop's own. Per deployment:

- an Anthropic deployment gets the request **natively**: the client's body with the deployment's model and key,
  its answer and stream events passed back unchanged (thinking signatures, server tools, citations intact) but
  for ``model``, which names what the client asked for: Claude Code drops the thinking blocks of an answer from
  another model than the one it asked (signatures are bound to a model), and Anthropic then refuses the next
  tool-loop turn of a thinking request;
- any other deployment gets the request translated to Chat Completions by :mod:`polyroute.anthropic_inbound`,
  through that provider's own adapter, and the answer (or stream) translated back to Messages.

Either way an answer is priced as Chat Completions prices the same tokens (the cost on ``usage.cost``; a stream's
on its ``message_delta``), and errors come in Anthropic's shape (``{"type": "error", "error": {"type", "message"}}``,
in a stream an ``error`` event), so Anthropic's SDKs raise their own classes.

``count_tokens`` goes only to Anthropic deployments (no other provider counts Messages tokens): for a route
without one the loop answers 400, and ``polyroute serve`` answers the router's own estimate instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from polyroute import anthropic_inbound as inbound
from polyroute._sse import SSEDecoder, SSEEvent
from polyroute.api import StreamFormat, post_only
from polyroute.errors import (
    InvalidRequestError,
    PolyrouteError,
    StreamInterruptedError,
    UpstreamError,
    UpstreamStatusError,
    redact,
)
from polyroute.failover import Profile, profile
from polyroute.providers import adapter_for
from polyroute.providers._base import Target, UpstreamRequest, dumps, loads
from polyroute.types.openai import ChatCompletionRequest, Usage
from polyroute.usage.prices import cost as usage_cost
from polyroute.validation import json_object

_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


ERROR_TYPES = frozenset({*_ERROR_TYPES.values(), "api_error"})
"""Anthropic's error types: an upstream Claude error keeps its own (``overloaded_error`` though its status is 503)."""


def error_type_for(status: int, code: str | None = None) -> str:
    """Anthropic's error ``type`` for an error's status, or its code when that already is one (api/errors)."""
    if code in ERROR_TYPES:
        return code
    return _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def anthropic_error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    """An error in Anthropic's shape: ``{"type": "error", "error": {"type", "message"}}``."""
    return {"type": "error", "error": {"type": error_type_for(status, code), "message": redact(message)}}


def chat_usage(usage: Mapping[str, Any]) -> Usage:
    """Messages usage → the OpenAI shape that prices and usage records read: ``prompt_tokens`` includes the cache
    reads and writes, which Anthropic counts apart from ``input_tokens``.
    """
    cached = int(usage.get("cache_read_input_tokens") or 0)
    written = int(usage.get("cache_creation_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cached + written
    completion = int(usage.get("output_tokens") or 0)
    out: Usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    if cached or written:
        out["prompt_tokens_details"] = {"cached_tokens": cached, "cache_creation_tokens": written}
    return out


def price(target: Target, usage: dict[str, Any]) -> Usage:
    """Price Messages usage as chat usage is priced (:func:`polyroute.api.price`: the deployment's prices,
    genai-prices, the catalog), so a call costs the same through either API, streamed or not. The cost rides on
    ``usage.cost``; returns the chat-shaped usage, with the cost when there is one.
    """
    counted = chat_usage(usage)
    found = usage_cost(target, counted)
    if found is not None:
        usage["cost"] = counted["cost"] = found
    return counted


@dataclass(slots=True)
class MessagesCall:
    """A parsed Messages request: the native body, and its lenient chat translation to route on."""

    native: dict[str, Any]
    routing: ChatCompletionRequest
    count_tokens: bool = False
    chat: dict[tuple[bool, int | None], ChatCompletionRequest] = field(
        default_factory=dict[tuple[bool, int | None], ChatCompletionRequest]
    )
    """The strict translations, by whether the deployment reasons and its output limit, made on first use."""

    def chat_request(self, target: Target) -> ChatCompletionRequest:
        """The request ``target`` (not an Anthropic deployment) gets; raises what it cannot carry.

        ``max_tokens`` is a cap in Messages, and clients set it to what Claude can write (Claude Code: 32000): it is
        lowered to the deployment's known output limit, which OpenAI-format providers enforce with a 400.
        """
        key = (bool(target.info.reasoning), target.info.max_output_tokens)
        found = self.chat.get(key)
        if found is None:
            found = inbound.to_chat_request(self.native, can_reason=key[0])
            limit, wanted = key[1], found.get("max_completion_tokens")
            if limit is not None and isinstance(wanted, int) and wanted > limit:
                found["max_completion_tokens"] = limit
            self.chat[key] = found
        return found


def is_anthropic(target: Target) -> bool:
    """Whether a deployment speaks Messages natively."""
    return target.spec.adapter == "anthropic"


# -- native (Anthropic deployments) ------------------------------------------------------------------------------


class _Usage:
    """What the usage recorder and the transport read of a translator's bookkeeping: ``builder.usage``, in the
    chat shape (tokens used, priced), as a chat translator's ``ChunkBuilder`` keeps it.
    """

    __slots__ = ("usage",)

    def __init__(self) -> None:
        self.usage: Usage | None = None


class NativeStreamTranslator:
    """Anthropic's own events, passed on as they are but for the cost of the call, added to the usage of
    ``message_delta`` as the non-streamed answer carries it; ``error`` events raise (so the loop fails over before
    the commit), and a stream that ends without ``message_stop`` was cut short.
    """

    __slots__ = ("_model", "_stopped", "_tokens", "builder", "target")

    def __init__(self, target: Target, model: str) -> None:
        self.target = target
        self._model = model
        self.builder = _Usage()
        self._tokens: dict[str, Any] = {}
        self._stopped = False

    def feed(self, event: SSEEvent) -> list[Any]:
        """One upstream event → itself, as ``(name, data)``."""
        if not event.data:
            return []
        name = event.event
        if name == "error" or (not name and '"type":"error"' in event.data):
            raise adapter_for(self.target.spec).classify_error(200, {}, event.data.encode(), self.target)
        if name == "message_start":
            data: dict[str, Any] = loads(event.data)
            message: dict[str, Any] = data.get("message") or {}
            self._count(message.get("usage"))
            if message.get("model") not in (None, self._model):
                message["model"] = self._model
                return [(name, dumps(data).decode())]
        elif name == "message_delta":
            # its counts are cumulative and may leave out those of message_start (input, cache): both make the call
            data = loads(event.data)
            usage = data.get("usage")
            self._count(usage)
            if isinstance(usage, dict):
                priced = price(self.target, dict(self._tokens))
                self.builder.usage = priced
                if "cost" in priced:
                    cast("dict[str, Any]", usage)["cost"] = priced["cost"]
                    return [(name, dumps(data).decode())]
        elif name == "message_stop":
            self._stopped = True
        return [(name or "message", event.data)]

    def _count(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        for key, value in cast("dict[str, Any]", usage).items():
            if isinstance(value, int) and key.endswith("tokens"):
                self._tokens[key] = value
        self.builder.usage = chat_usage(self._tokens)

    def finish(self) -> list[Any]:
        """Nothing more; raises when ``message_stop`` never came."""
        if not self._stopped:
            raise StreamInterruptedError(
                f"{self.target.label}: the stream ended before message_stop",
                provider=self.target.provider,
                deployment=self.target.label,
            )
        return []


class NativeAdapter:
    """The client's Messages body to an Anthropic deployment, unchanged but for the model and the key."""

    def __init__(self, count_tokens: bool) -> None:
        self.count_tokens = count_tokens

    def build_request(self, call: MessagesCall, target: Target) -> UpstreamRequest:
        """``POST {base}/v1/messages`` (or ``…/count_tokens``) with the deployment's key and version."""
        native = {**call.native, "model": target.model}
        if target.deployment.params and not self.count_tokens:
            native.update(target.deployment.params)
        stream = bool(native.get("stream")) and not self.count_tokens
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if stream else "application/json",
            "anthropic-version": target.deployment.api_version or "2023-06-01",
            **target.auth_headers(),
        }
        headers.update(target.deployment.headers)
        base = target.api_base.rstrip("/")
        url = base + ("/messages" if base.endswith("/v1") else "/v1/messages")
        if self.count_tokens:
            url += "/count_tokens"
        return UpstreamRequest("POST", url, headers, dumps(native), stream=stream)

    def parse_response(self, content: bytes, target: Target, call: MessagesCall) -> Any:
        """The native answer, as it came but for ``model`` (the name the client asked for)."""
        answer = loads(content)
        if not isinstance(answer, dict):
            raise TypeError("the answer is not a JSON object")
        answer = cast("dict[str, Any]", answer)
        if "model" in answer:
            answer["model"] = call.native["model"]
        return answer

    def classify_error(self, status: int, headers: Any, content: bytes, target: Target) -> UpstreamStatusError:
        """Anthropic's own error classification."""
        return adapter_for(target.spec).classify_error(status, headers, content, target)

    def stream_decoder(self) -> SSEDecoder:
        """SSE with ``event:`` lines."""
        return SSEDecoder()

    def stream_translator(self, target: Target, call: MessagesCall) -> NativeStreamTranslator:
        """Events pass through."""
        return NativeStreamTranslator(target, str(call.native["model"]))


# -- translated (every other deployment) -------------------------------------------------------------------------


class _TranslatedUsage:
    """A translated stream's bookkeeping: the chat translator's finish reason, and the usage the Messages answer
    reports (priced), as the non-streamed answer's is counted; the chat usage until ``message_delta`` was sent.
    """

    __slots__ = ("chat", "reported")

    def __init__(self, chat: Any) -> None:
        self.chat = chat
        self.reported: Usage | None = None

    @property
    def finish_reason(self) -> Any:
        """Whether the upstream said why it stopped (None: the stream was left or cut before the end)."""
        return self.chat.finish_reason

    @property
    def usage(self) -> Usage | None:
        """The tokens used, in the chat shape."""
        return self.reported if self.reported is not None else self.chat.usage


class TranslatedStreamTranslator:
    """The provider's chat translator, then chat chunks → Messages events; ``message_delta`` carries the cost."""

    __slots__ = ("_encoder", "_inner", "builder", "target")

    def __init__(self, inner: Any, model: str, target: Target) -> None:
        self._inner = inner
        self.target = target
        self.builder = _TranslatedUsage(inner.builder)
        self._encoder = inbound.MessagesEventEncoder(model)

    def feed(self, event: SSEEvent) -> list[Any]:
        """One upstream event → Messages events."""
        return [e for chunk in self._inner.feed(event) for e in self._encoder.feed(_chunk(chunk))]

    def finish(self) -> list[Any]:
        """The inner translator's last chunks (it raises on a cut stream), then the closing events, priced."""
        out = [e for chunk in self._inner.finish() for e in self._encoder.feed(_chunk(chunk))]
        out.extend(self._encoder.finish())
        for event in out:
            if event.get("type") == "message_delta":
                self.builder.reported = price(self.target, event["usage"])
        return out


def _chunk(item: Any) -> Any:
    """A chat chunk from a translator: a dict, or an OpenAI-compatible upstream's own JSON passed on as bytes."""
    return loads(item) if isinstance(item, bytes) else item


class TranslatedAdapter:
    """Messages → Chat Completions → the provider's adapter, and its answers back to Messages."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def build_request(self, call: MessagesCall, target: Target) -> UpstreamRequest:
        """The provider's native request for the translated chat request."""
        return self.inner.build_request(call.chat_request(target), target)

    def parse_response(self, content: bytes, target: Target, call: MessagesCall) -> Any:
        """The provider's answer → a chat completion → a Messages response."""
        completion = self.inner.parse_response(content, target, call.chat_request(target))
        return inbound.from_chat_completion(completion, str(call.native["model"]))

    def classify_error(self, status: int, headers: Any, content: bytes, target: Target) -> UpstreamStatusError:
        """The provider's own classification."""
        return self.inner.classify_error(status, headers, content, target)

    def stream_decoder(self) -> Any:
        """The provider's decoder."""
        return self.inner.stream_decoder()

    def stream_translator(self, target: Target, call: MessagesCall) -> TranslatedStreamTranslator:
        """The provider's translator, then chunks → Messages events."""
        inner = self.inner.stream_translator(target, call.chat_request(target))
        return TranslatedStreamTranslator(inner, str(call.native["model"]), target)


# -- the API ------------------------------------------------------------------------------------------------------


_CONTENT_EVENTS = frozenset({"content_block_delta"})


class MessagesStreamFormat:
    """Messages SSE: ``event: <type>`` + ``data: {json}``; a content delta (text, thinking, tool input) or a
    ``tool_use`` block start commits; the translator sends ``message_stop`` itself; a failure after the commit is
    one ``error`` event, as Anthropic sends (``overloaded_error``, ``api_error``…).
    """

    def encode(self, item: Any, target: Target) -> bytes:
        """A passed-through ``(name, data)`` or a translated event dict → its SSE bytes."""
        if isinstance(item, tuple):
            name, data = cast("tuple[str, str]", item)
            return b"event: " + name.encode() + b"\ndata: " + data.encode() + b"\n\n"
        event = cast("dict[str, Any]", item)
        return b"event: " + str(event["type"]).encode() + b"\ndata: " + dumps(event) + b"\n\n"

    def is_content(self, item: Any) -> bool:
        """A content delta, or the start of a tool call."""
        if isinstance(item, tuple):
            name, data = cast("tuple[str, str]", item)
            return name in _CONTENT_EVENTS or (name == "content_block_start" and '"tool_use"' in data)
        event = cast("dict[str, Any]", item)
        kind = event.get("type")
        block: dict[str, Any] = event.get("content_block") or {}
        return kind in _CONTENT_EVENTS or (kind == "content_block_start" and block.get("type") == "tool_use")

    def done(self) -> bytes:
        """Nothing: ``message_stop`` already ended the stream."""
        return b""

    def error(self, exc: UpstreamError) -> bytes:
        """One ``event: error``, typed as Claude typed the failure (``overloaded_error``), else by its status."""
        body = anthropic_error_body(exc.status or 500, exc.message, exc.code)
        return b"event: error\ndata: " + dumps(body) + b"\n\n"


class MessagesApi:
    """``POST /v1/messages`` (and, with ``count_tokens``, ``POST /v1/messages/count_tokens``)."""

    stream_format: StreamFormat = MessagesStreamFormat()

    def __init__(self, count_tokens: bool = False) -> None:
        self.count_tokens = count_tokens
        self.name = "messages.count_tokens" if count_tokens else "messages"

    def local(
        self, method: str, path: str, transport: Any, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Any] | None:
        """Only POST (:func:`~polyroute.api.post_only`: a 404, Anthropic-shaped, ``not_found_error``)."""
        if method != "POST":
            raise post_only(method, path)
        return None

    def parse(self, raw: bytes, transport: Any, headers: Mapping[str, str] | None = None) -> MessagesCall:
        """The Messages body (a JSON object with ``model`` and ``messages``) and its chat translation to route on."""
        native = json_object(raw, "'model', 'max_tokens' and 'messages'")
        routing = inbound.to_chat_request(native, strict=False)
        if self.count_tokens:
            routing.pop("stream", None)
            routing.pop("stream_options", None)
        elif not isinstance(native.get("max_tokens"), int):
            raise InvalidRequestError("max_tokens: an integer is required", param="max_tokens")
        return MessagesCall(native, routing, self.count_tokens)

    def routing(self, body: MessagesCall) -> Profile:
        """The lenient chat translation's profile."""
        return profile(body.routing)

    def adapter(self, target: Target, body: MessagesCall) -> Any:
        """Native for Anthropic deployments; translated through the provider's chat adapter otherwise."""
        if is_anthropic(target):
            return NativeAdapter(self.count_tokens)
        if self.count_tokens:
            return _EstimateAdapter()
        return TranslatedAdapter(adapter_for(target.spec))

    def finish(self, answer: Any, target: Target) -> float | None:
        """Price the answer's Messages usage (the cost rides on ``usage.cost``, as in chat)."""
        usage: Any = cast("dict[str, Any]", answer).get("usage") if isinstance(answer, dict) else None
        if not isinstance(usage, dict):
            return None
        return price(target, cast("dict[str, Any]", usage)).get("cost")

    def error_body(self, exc: PolyrouteError) -> dict[str, Any]:
        """Anthropic's error shape, so Anthropic clients read ``error.type`` and raise their own classes."""
        return anthropic_error_body(exc.status, exc.message, exc.code)

    def split(self, body: MessagesCall, transport: Any) -> list[Any] | None:
        """Never split."""
        return None

    def merge(self, answers: list[Any]) -> Any:
        """Never called."""
        raise NotImplementedError


class _EstimateAdapter:
    """``count_tokens`` for a deployment that cannot count Messages tokens: it raises at build time, so the loop
    tries the route's next deployment.
    """

    def build_request(self, call: MessagesCall, target: Target) -> UpstreamRequest:
        from polyroute.errors import UnsupportedFeatureError

        raise UnsupportedFeatureError(
            f"{target.label} cannot count Messages tokens (only Anthropic deployments can)", code="count_tokens"
        )


MESSAGES = MessagesApi()
COUNT_TOKENS = MessagesApi(count_tokens=True)
