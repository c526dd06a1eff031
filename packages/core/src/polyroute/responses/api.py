"""``/v1/responses`` as an :class:`~polyroute.api.Api`: the request loop's view of the Responses API.

Per deployment the adapter is one of two:

- :class:`PassThroughAdapter` for OpenAI and Azure, which serve Responses themselves: the body goes as it is to
  ``{base}/responses`` (the deployment's model name in it; a ``previous_response_id`` that only polyroute knows is
  expanded into the input it stands for), and the answer and events come back as they are.
- :class:`TranslatedAdapter` for every other deployment: the request goes as Chat Completions through the
  deployment's own chat adapter, unchanged, and the answer (or the chat chunk stream) is turned into a Response
  (or its typed events) by :mod:`polyroute.responses.translate`.

Either way failover, the commit rule (first text, reasoning or function-call delta), errors and cost work as for
chat. Streams are framed ``event: <type>`` / ``data: <json>`` as OpenAI frames them, with no ``[DONE]``; a failure
after the commit is an ``error`` event (which the openai SDK raises as ``APIError``) and a ``response.failed``.
``GET`` / ``DELETE /v1/responses/{id}`` and ``GET /v1/responses/{id}/input_items`` are answered from the store
(a ``DELETE`` forgets polyroute's copy; an OpenAI deployment keeps its own until deleted there).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qs, unquote

from polyroute._sse import SSEEvent, SSEFrame, SSEFrameDecoder
from polyroute.api import RawAnswer, StreamFormat, with_cost
from polyroute.api import price as chat_price
from polyroute.errors import (
    InvalidRequestError,
    NotFoundPathError,
    PolyrouteError,
    ResourceNotFoundError,
    StreamInterruptedError,
    UnsupportedFeatureError,
    UpstreamError,
    UpstreamStatusError,
)
from polyroute.failover import FILE_CHARS, MESSAGE_OVERHEAD, TOOL_CHARS, Capability, Profile, fit_to_window
from polyroute.providers import adapter_for
from polyroute.providers import openai as openai_format
from polyroute.providers._base import Target, UpstreamRequest, as_list, dumps, loads
from polyroute.providers._base import as_object as _obj
from polyroute.responses import translate
from polyroute.responses.store import Record, ResponseStore, response_of, store_for, stored_reasoning, visible
from polyroute.types.openai import ChatCompletionRequest, Usage
from polyroute.validation import json_object

PASS_THROUGH = frozenset({"openai", "azure"})
"""Providers whose deployments serve the Responses API themselves."""

AZURE_API_VERSION = "2025-04-01-preview"
"""The Azure OpenAI api-version for ``/openai/responses`` when the deployment names none (its chat default is too
old for Responses)."""


@dataclass(slots=True)
class ResponsesCall:
    """One ``POST /v1/responses``: the request, its input expanded, and the store it reads and writes."""

    body: dict[str, Any]
    items: list[dict[str, Any]]
    """The request's own input items."""
    history: list[dict[str, Any]]
    """What ``previous_response_id`` stands for (its input and output), empty without one."""
    previous: Record | None
    store: ResponseStore
    raw: bytes = b""
    """The request as the caller sent it: what a pass-through deployment gets when nothing in it needs changing."""
    owner: str | None = None
    """The ``polyroute serve`` key that made the request (``x-polyroute-key``, set by the server): its responses are
    that key's alone to read, continue and delete."""
    chat: ChatCompletionRequest | None = None
    """The request as chat, once routing translated it (a translated deployment sends the same)."""

    @property
    def full_input(self) -> list[dict[str, Any]]:
        """Everything the model sees: the history, then this request's items."""
        return self.history + self.items

    def keep(self, response: dict[str, Any], target: Target, raw: bytes | None = None) -> None:
        """Store the answer unless the caller said ``store: false``; an OpenAI deployment's own answers are marked
        with it (it keeps them too, so a chain may go on there by id).
        """
        if self.body.get("store") is False or not isinstance(response.get("id"), str):
            return
        origin = target.label if target.spec.key in PASS_THROUGH else "polyroute"
        # the input's ids are given when first listed (GET …/input_items), not on every call
        record: Record = {"response": response} if raw is None else {"raw": raw}  # raw: its bytes, as answered
        record["input"] = self.full_input
        record["origin"] = origin
        if self.owner is not None:
            record["owner"] = self.owner
        if not self.history and self.raw:
            record["request"] = self.raw  # the input is this request's: a store may keep its bytes instead
        self.store.put(response["id"], record)


_LISTING = threading.Lock()
"""Held while a response's input items are first given ids (``GET …/input_items``)."""


def _with_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input items as ``input_items`` lists them: each with an id; message content as parts."""
    out: list[dict[str, Any]] = []
    for item in items:
        item = dict(item)
        kind = item.get("type", "message")
        if kind == "message":
            content = item.get("content")
            if isinstance(content, str):
                part = "output_text" if item.get("role") == "assistant" else "input_text"
                item["content"] = [{"type": part, "text": content}]
            item.setdefault("status", "completed")
        item.setdefault("id", translate.new_id({"message": "msg", "reasoning": "rs"}.get(str(kind), "item")))
        out.append(item)
    return out


def _output_as_input(output: list[Any]) -> list[dict[str, Any]]:
    return [dict(_obj(item)) for item in output]


def price(target: Target, usage: dict[str, Any] | None) -> float | None:
    """Price Responses usage as chat usage is priced (:func:`polyroute.api.price`: the deployment's prices,
    genai-prices, the catalog); the cost rides on ``usage.cost``.
    """
    return chat_price(target, cast("Usage", usage)) if usage else None


def _chat_usage(usage: Any) -> Usage | None:
    """Responses usage → the chat shape the router counts (``total_tokens``)."""
    usage = _obj(usage)
    if not usage:
        return None
    prompt, completion = int(usage.get("input_tokens", 0) or 0), int(usage.get("output_tokens", 0) or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


# -- pass-through ---------------------------------------------------------------------------------------------------


class _UsageHolder:
    """What the loop reads of a stream translator when the stream ends: ``builder.usage``."""

    __slots__ = ("usage",)

    def __init__(self) -> None:
        self.usage: Usage | None = None


@dataclass(slots=True)
class RawEvent:
    """A Responses event already framed: an upstream's event forwarded as its own bytes, or a text delta encoded
    straight to bytes. ``frame`` is what goes to the caller; ``data`` its JSON.
    """

    kind: str
    data: bytes
    frame: bytes
    content: bool


_TEXT_DELTA = "response.output_text.delta"

_TYPE = re.compile(rb'"type":\s*"([^"]+)"')
_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


class PassThroughAdapter:
    """An OpenAI or Azure deployment's own Responses API."""

    classify_error = staticmethod(openai_format.classify_error)

    def __init__(self, call: ResponsesCall) -> None:
        self.call = call

    def build_request(self, body: Any, target: Target) -> UpstreamRequest:
        """The caller's body, the deployment's model in it; a chain only polyroute knows, expanded. A body that
        needs none of that goes as the caller's own bytes (no second encoding).
        """
        call = self.call
        source = call.body
        content = call.raw
        params = target.deployment.params
        changed = not content or source["model"] != target.model or bool(params)
        out: dict[str, Any] | None = None
        if call.previous is not None and call.previous.get("origin") != target.label:
            # This deployment never saw that response: send the conversation it stands for instead.
            out = {k: v for k, v in source.items() if k != "previous_response_id"}
            out["input"] = _for_openai(call.full_input, foreign=True)
        elif isinstance(source.get("input"), list) and _has_polyroute_items(call.items):
            out = dict(source)
            out["input"] = _for_openai(call.items, foreign=False)
        if out is not None or changed:
            out = dict(source) if out is None else out
            out["model"] = target.model
            if params:
                out.update(params)
            content = dumps(out)
        headers = {"content-type": "application/json", "accept": "application/json", **target.auth_headers()}
        headers.update(target.deployment.headers)
        return UpstreamRequest("POST", _url(target), headers, content, stream=bool(source.get("stream")))

    def parse_response(self, content: bytes, target: Target, body: Any) -> RawAnswer:
        """The upstream's Response, kept in the store; it goes to the caller as the upstream's bytes."""
        data = _obj(loads(content))
        if data.get("object") != "response":
            if "error" in data:
                raise openai_format.classify_error(200, {}, content, target)
            raise UpstreamStatusError(
                f"{target.label} returned a body that is not a Response",
                provider=target.provider,
                deployment=target.label,
                status=502,
            )
        price(target, _obj(data.get("usage")))  # priced before it is kept: GET answers what the caller got
        answer = RawAnswer(data, with_cost(data, content), priced=True)
        self.call.keep(data, target, answer.raw)
        return answer

    def stream_decoder(self) -> SSEFrameDecoder:
        """OpenAI streams are SSE; their events are forwarded as they came, so they are split, not decoded."""
        return SSEFrameDecoder()

    def stream_translator(self, target: Target, body: Any) -> PassThroughEvents:
        """Forwards the upstream's events."""
        return PassThroughEvents(self.call, target)


def _has_polyroute_items(items: list[dict[str, Any]]) -> bool:
    """Whether :func:`_for_openai` would change ``items`` (not ``foreign``): one carries polyroute's id or state,
    or a call id longer than OpenAI takes.
    """
    for item in items:
        if ("id" in item or "encrypted_content" in item) and _is_polyroute_item(item):
            return True
        call_id = item.get("call_id")
        if isinstance(call_id, str) and len(call_id) > MAX_CALL_ID:
            return True
    return False


MAX_CALL_ID = 64
"""OpenAI's Responses API refuses a longer ``call_id``; a Gemini call's id carries its thought signature (800+)."""


def _openai_call_id(call_id: str) -> str:
    """A call id OpenAI takes, the same for a call and its output (so they still pair up)."""
    return "call_" + hashlib.sha256(call_id.encode()).hexdigest()[:32]


def _is_polyroute_item(item: dict[str, Any]) -> bool:
    """Whether an input item carries polyroute's own id or reasoning state (which OpenAI does not know)."""
    return translate.is_polyroute_id(item.get("id")) or translate.is_polyroute_token(item.get("encrypted_content"))


def _for_openai(items: list[dict[str, Any]], *, foreign: bool) -> list[dict[str, Any]]:
    """Input items an OpenAI deployment can take: none of polyroute's reasoning items (another provider's state,
    which OpenAI cannot read) nor polyroute's item ids (which it does not know), and call ids no longer than it takes;
    with ``foreign`` (a chain stored from another deployment) no stored ids or reasoning at all.
    """
    out: list[dict[str, Any]] = []
    for item in items:
        mine = _is_polyroute_item(item)
        if item.get("type") == "reasoning" and (mine or foreign):
            continue
        if "id" in item and (mine or foreign):
            item = {k: v for k, v in item.items() if k != "id"}
        call_id = item.get("call_id")
        if isinstance(call_id, str) and len(call_id) > MAX_CALL_ID:
            item = {**item, "call_id": _openai_call_id(call_id)}
        out.append(item)
    return out


def _url(target: Target) -> str:
    base = target.api_base
    if target.spec.quirks.deployment_urls and "/openai/v1" not in base:
        version = target.deployment.api_version or AZURE_API_VERSION
        return f"{base}/openai/responses?api-version={version}"
    return base + "/responses"


def _framed(kind: str, data: bytes) -> RawEvent:
    """An event of type ``kind`` framed ``event:`` + ``data:`` (one the upstream framed otherwise, or re-encoded)."""
    frame = b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"
    return RawEvent(kind, data, frame, kind in translate.CONTENT_EVENTS)


class PassThroughEvents:
    """Upstream Responses events → the same bytes; only the response's own lifecycle events are parsed (to keep
    the response, count its usage, see a failure).
    """

    def __init__(self, call: ResponsesCall, target: Target) -> None:
        self.call = call
        self.target = target
        self.builder = _UsageHolder()
        self._ended = False

    def feed(self, event: SSEFrame) -> list[RawEvent]:
        """One upstream event → the event to forward (an upstream ``error`` or ``response.failed`` raises)."""
        data = event.data
        if not data or data == b"[DONE]":
            return []
        kind = event.event
        if not kind:
            found = _TYPE.search(data)
            kind = found.group(1).decode() if found else ""
        if kind == "error" or kind in _TERMINAL:
            parsed = _obj(loads(data))
            if kind == "error":
                raise self._failure(parsed.get("error") or parsed)
            response = _obj(parsed.get("response"))
            if kind == "response.failed":
                raise self._failure(response.get("error"))
            self._ended = True
            self.builder.usage = _chat_usage(response.get("usage"))
            priced = price(self.target, _obj(response.get("usage"))) is not None
            self.call.keep(response, self.target)  # priced first: GET answers what the caller got
            if priced:
                return [_framed(kind, dumps(parsed))]
        elif not event.event:  # a data-only event: framed as OpenAI frames it, with its type
            return [_framed(kind, data)]
        return [RawEvent(kind, data, event.frame, kind in translate.CONTENT_EVENTS)]

    def _failure(self, error: Any) -> UpstreamStatusError:
        return openai_format.classify_error(
            200, {}, dumps({"error": _obj(error) or {"message": "failed"}}), self.target
        )

    def finish(self) -> list[RawEvent]:
        """The upstream ended: fine after the response's last event, an error otherwise."""
        if not self._ended:
            raise StreamInterruptedError(
                f"{self.target.label} ended the stream before response.completed",
                provider=self.target.provider,
                deployment=self.target.label,
                status=502,
            )
        return []


# -- translated -----------------------------------------------------------------------------------------------------


class TranslatedAdapter:
    """Any other deployment: the request as chat through the deployment's own chat adapter."""

    def __init__(self, call: ResponsesCall, target: Target) -> None:
        self.call = call
        self.memory = target.thinking_store
        self.inner = adapter_for(target.spec)
        if call.body.get("previous_response_id") and call.previous is None:
            raise UnsupportedFeatureError(
                f"Previous response with id '{call.body['previous_response_id']}' not found (polyroute keeps "
                "responses it answered while they are in its store; send the conversation as input instead)",
                code="previous_response_not_found",
                param="previous_response_id",
            )
        chat = call.chat
        if chat is None:
            chat = translate.to_chat(call.body, call.full_input, target.label, self._stored_reasoning)
            if chat["messages"]:
                call.chat = chat  # a failover to another translated deployment sends the same
        window = target.info.context_window
        if window is not None and call.body.get("truncation") == "auto":
            chat = fit_to_window(chat, window)  # OpenAI would drop the oldest items: so does this deployment
        self.chat: ChatCompletionRequest = chat
        self.classify_error = self.inner.classify_error

    def _stored_reasoning(self, item_id: str, call_ids: Sequence[str]) -> dict[str, Any]:
        return stored_reasoning(self.call.store, self.memory, item_id, call_ids, self.call.owner)

    def build_request(self, body: Any, target: Target) -> UpstreamRequest:
        """The chat request, built by the deployment's adapter (whose refusal of chat's ``logprobs`` names
        ``top_logprobs`` when that alone asked for them).
        """
        try:
            return self.inner.build_request(self.chat, target)
        except UnsupportedFeatureError as exc:
            if exc.param in ("logprobs", "top_logprobs") and translate.asks_top_logprobs_alone(self.call.body):
                raise UnsupportedFeatureError(
                    f"'top_logprobs' is not translated for {target.label}: that deployment returns no log "
                    "probabilities. Remove 'top_logprobs', route to a deployment that returns them, or list 'logprobs' "
                    "and 'top_logprobs' in this deployment's drop_params",
                    param="top_logprobs",
                ) from None
            raise

    def parse_response(self, content: bytes, target: Target, body: Any) -> dict[str, Any]:
        """The chat completion as a Response, kept in the store."""
        completion = self.inner.parse_response(content, target, self.chat)
        response = translate.from_chat(completion, self.call.body, translate.new_id("resp"))
        price(target, _obj(response.get("usage")))  # priced before it is kept: GET answers what the caller got
        raw = dumps(response)
        self.call.keep(response, target, raw)
        answer = translate.public(response, translate.wants_encrypted(self.call.body))
        return RawAnswer(answer, raw, priced=True) if answer is response else answer  # encoded once, for both

    def stream_decoder(self) -> Any:
        """The provider's own decoder."""
        return self.inner.stream_decoder()

    def stream_translator(self, target: Target, body: Any) -> TranslatedEvents:
        """Provider events → chat chunks (the provider's translator) → Responses events."""
        inner = self.inner.stream_translator(target, self.chat)
        return TranslatedEvents(self.call, target, inner)


class TranslatedEvents:
    """A chat adapter's stream translator, its chunks turned into Responses events."""

    def __init__(self, call: ResponsesCall, target: Target, inner: Any) -> None:
        self.call = call
        self.target = target
        self.inner = inner
        self.events = translate.ChatToResponseEvents(call.body, translate.new_id("resp"), target.model)
        self._plain: Callable[[SSEEvent], str | None] | None = getattr(inner, "plain_text", None)

    @property
    def builder(self) -> Any:
        """The chat translator's bookkeeping (its usage frees the deployment's token budget)."""
        return self.inner.builder

    def usage_so_far(self) -> Usage | None:
        """The chat translator's usage so far, if it can tell it (a stream cut short)."""
        so_far = getattr(self.inner, "usage_so_far", None)
        return so_far() if so_far is not None else None

    def _convert(self, chunks: list[Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for chunk in chunks:
            out += self.events.feed(loads(chunk) if isinstance(chunk, bytes) else chunk)
        return out

    def feed(self, event: SSEEvent) -> list[Any]:
        """One provider event → Responses events; plain text (most of a stream) straight to its encoded event when
        the provider's translator can tell it apart (``plain_text``).
        """
        if self._plain is not None:
            text = self._plain(event)
            if text is not None:
                data = self.events.more_text(text)
                if data is not None:
                    return [_framed(_TEXT_DELTA, data)]
        return self._convert(self.inner.feed(event))

    def finish(self) -> list[dict[str, Any]]:
        """The provider's stream ended: the last events, ``response.completed``; the response is kept."""
        out = self._convert(self.inner.finish())
        out += self.events.end()
        response = self.events.response
        price(self.target, response.get("usage"))
        self.call.keep(response, self.target)
        return out


# -- the stream's framing ---------------------------------------------------------------------------------------------


_SEQUENCE = re.compile(rb'"sequence_number":\s*(\d+)')


class ResponsesStreamFormat:
    """``event: <type>`` + ``data: <json>`` per event, no ``[DONE]``; one per stream (it remembers the last
    sequence number and the response, for the failure events after a commit).
    """

    __slots__ = ("_last", "_response")

    def __init__(self) -> None:
        self._last: Any = None
        self._response: dict[str, Any] | None = None

    def encode(self, item: Any, target: Target) -> bytes:
        """One event → its bytes."""
        self._last = item
        if isinstance(item, RawEvent):
            if self._response is None and item.kind == "response.created":
                self._response = _obj(_obj(loads(item.data)).get("response"))
            return item.frame
        event = cast("dict[str, Any]", item)
        if event["type"] == "response.created":
            self._response = dict(event["response"])
        return b"event: " + event["type"].encode() + b"\ndata: " + dumps(event) + b"\n\n"

    def is_content(self, item: Any) -> bool:
        """Text, reasoning or a function call."""
        return item.content if isinstance(item, RawEvent) else translate.is_content(item)

    def done(self) -> bytes:
        """Nothing: a Responses stream ends with its ``response.completed``."""
        return b""

    def error(self, exc: UpstreamError) -> bytes:
        """An ``error`` event (the SDK raises it), then ``response.failed``."""
        sequence = self._next_sequence()
        body = exc.to_body()["error"]
        out = b"event: error\ndata: " + dumps({"type": "error", "sequence_number": sequence, "error": body}) + b"\n\n"
        if self._response is not None:
            failed = {**self._response, "status": "failed", "error": {"code": body["code"], "message": body["message"]}}
            event = {"type": "response.failed", "sequence_number": sequence + 1, "response": failed}
            out += b"event: response.failed\ndata: " + dumps(event) + b"\n\n"
        return out

    def _next_sequence(self) -> int:
        last = self._last
        if isinstance(last, RawEvent):
            found = _SEQUENCE.search(last.data)
            return int(found.group(1)) + 1 if found else 0
        if isinstance(last, dict):
            return int(cast("dict[str, Any]", last).get("sequence_number", -1)) + 1
        return 0


# -- the Api ----------------------------------------------------------------------------------------------------------


class ResponsesApi:
    """``/v1/responses`` and the paths under it."""

    name = "responses"

    @property
    def stream_format(self) -> StreamFormat:
        """A new framing per stream (each remembers its own sequence numbers)."""
        return ResponsesStreamFormat()

    @stream_format.setter
    def stream_format(self, value: StreamFormat) -> None:
        raise AttributeError("the Responses stream format is made per stream")

    def local(
        self, method: str, path: str, transport: Any, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Any] | None:
        """``POST /responses`` goes upstream; the paths under it are answered from the store. Any other method or
        path is a 404, as OpenAI answers one (``Invalid URL (GET /v1/responses)``), that says what is served.
        """
        path, _, query = path.partition("?")
        tail = path.rsplit("/responses", 1)[1].strip("/")
        if not tail:
            if method != "POST":
                raise NotFoundPathError(_not_served(method, path))
            return None
        parts = tail.split("/")
        if (method, parts[1:]) not in (("GET", []), ("DELETE", []), ("GET", ["input_items"])):
            # said before the id is looked up: a wrong method or path is the caller's to fix whatever the id
            raise NotFoundPathError(_not_served(method, path))
        store = store_for(transport.router)
        record = _live(store.get(parts[0]), headers)  # another key's, or deleted: as if it were not there
        if record is None:
            raise ResourceNotFoundError(f"Response with id '{parts[0]}' not found.")  # OpenAI's words and shape
        if method == "DELETE":
            if record.get("origin", "polyroute") == "polyroute":
                store.delete(parts[0])
            else:  # an OpenAI deployment's: it keeps its own copy, so the id must not be continued there after this
                store.put(parts[0], _deleted(parts[0], record))
            return 200, {"id": parts[0], "object": "response.deleted", "deleted": True}
        if not parts[1:] and query:
            asked = parse_qs(query)
            if asked.get("stream", ["false"])[0].lower() not in ("false", "0", ""):
                # OpenAI replays a background response's events; polyroute keeps only the finished response
                raise InvalidRequestError(
                    "GET /v1/responses/{id}?stream=true is not served: polyroute keeps the finished response, not its "
                    "events; retrieve it without stream",
                    param="stream",
                )
        if parts[1:]:
            listed = _with_ids(record["input"])
            if listed != record["input"]:  # ids given now are kept, so the next page names the same items
                with _LISTING:  # one caller gives them: two at once would each page by ids the other replaced
                    again = store.get(parts[0]) or record
                    listed = _with_ids(again["input"])
                    if listed != again["input"]:
                        store.put(parts[0], {**again, "input": listed})
            return 200, _page(listed, parse_qs(query), parts[0])
        return 200, translate.public(response_of(record), translate.ENCRYPTED_REASONING in unquote(query))

    def parse(self, raw: bytes, transport: Any, headers: Mapping[str, str] | None = None) -> ResponsesCall:
        """The validated request, its ``previous_response_id`` looked up (among the caller's own, under a key)."""
        body = translate.validate(json_object(raw, "'model' and 'input'"))
        transport.router.require_mode(body["model"], "chat")
        store = store_for(transport.router)
        previous_id = body.get("previous_response_id")
        kept = store.get(previous_id) if isinstance(previous_id, str) else None
        previous = _live(kept, headers)  # another key's response, or a deleted one: not the caller's to go on from
        owner = _owner(headers)
        if (
            previous is None
            and isinstance(previous_id, str)
            # an id polyroute keeps for another key, or deleted, is never sent to OpenAI (which would go on from it)
            and (kept is not None or not _reaches_openai(transport.router.reachable_targets(body["model"])))
        ):
            # Only an OpenAI deployment (which keeps its own answers) could know it: say so as OpenAI does.
            raise InvalidRequestError(
                f"Previous response with id '{previous_id}' not found. polyroute keeps the responses it answered "
                "while they are in its store (responses.store_path or store: redis keep them across restarts); "
                "send the conversation as input instead.",
                code="previous_response_not_found",
                param="previous_response_id",
            )
        history: list[dict[str, Any]] = []
        if previous is not None:
            history = list(previous["input"]) + _output_as_input(response_of(previous).get("output") or [])
        items = translate.input_items(body)
        # the whole conversation is known unless OpenAI holds part of it (its own previous response, a conversation)
        whole = previous is not None or not (previous_id or body.get("conversation"))
        _check_items(history, items, whole)
        return ResponsesCall(body, items, history, previous, store, raw, owner=owner)

    def routing(self, call: ResponsesCall) -> Profile:
        """The request's needs (tools, images, reasoning, size), read from its items: a pass-through deployment
        never needs the chat translation, so routing does not build it.
        """
        return routing_profile(call)

    def adapter(self, target: Target, call: ResponsesCall) -> Any:
        """Pass-through for OpenAI and Azure, else the deployment's chat adapter behind a translation."""
        if target.spec.key in PASS_THROUGH:
            return PassThroughAdapter(call)
        return TranslatedAdapter(call, target)

    def error_body(self, exc: PolyrouteError) -> dict[str, Any]:
        """OpenAI's error shape, its ``param`` named as the Responses API names it (a deployment reached through chat
        names the chat field: ``reasoning_effort`` is ``reasoning.effort`` here).
        """
        body = exc.to_body()
        error = body["error"]
        param = error.get("param")
        if param in translate.RESPONSES_NAMES and not isinstance(exc, InvalidRequestError):  # names the caller's
            error["param"] = translate.RESPONSES_NAMES[param]
            error["message"] = _as_sent(error["message"])  # "remove reasoning_effort": as this caller sent it
        return body

    def finish(self, answer: Any, target: Target) -> float | None:
        """The response's cost, which the adapter priced when it parsed it (before the response was kept)."""
        cost = _obj(_obj(answer).get("usage")).get("cost")
        return cost if isinstance(cost, float | int) else None

    def split(self, body: Any, transport: Any) -> list[Any] | None:
        """Never split."""
        return None

    def merge(self, answers: list[Any]) -> Any:
        """Never called."""
        raise NotImplementedError


def _as_sent(message: str) -> str:
    """A translated deployment's refusal in the Responses API's words: the chat fields it names (``reasoning_effort``,
    ``max_tokens``…) as this caller sent them, but not where it says what to list in the deployment's
    ``drop_params`` (a config of chat names).
    """
    message = message.replace("remove 'logprobs'", "remove 'message.output_text.logprobs' from 'include'")
    return _CHAT_WORDS.sub(lambda found: translate.RESPONSES_NAMES[found[1]], message)


_CHAT_WORDS = re.compile(
    r"(?<!list ')\b(reasoning_effort|max_completion_tokens|max_tokens|response_format|verbosity)\b"
)


def routing_profile(call: ResponsesCall) -> Profile:
    """What routing needs to know of a Responses request, estimated as :func:`polyroute.failover.profile` estimates
    a chat request (characters / 4, a fixed size per image or file, per tool and per item).
    """
    body = call.body
    chars = 0
    count = len(call.history) + len(call.items)
    vision = pdf = audio = False
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        chars += len(instructions)
        count += 1
    for items in (call.history, call.items) if call.history else (call.items,):
        for item in items:
            content = item.get("content")
            if type(content) is str:  # most items: a message's text
                chars += len(content)
                continue
            if content is None and isinstance(item.get("output"), list):
                content = item["output"]  # a tool's output as parts (a screenshot, say): counted as a message's
            if isinstance(content, str):
                chars += len(content)
            elif isinstance(content, list):
                for part in cast("list[Any]", content):
                    part = _obj(part)
                    kind = part.get("type")
                    if kind == "input_image":
                        vision = True
                        chars += FILE_CHARS
                    elif kind == "input_file":
                        pdf = True
                        chars += FILE_CHARS
                    elif kind == "input_audio":
                        audio = True
                        chars += FILE_CHARS
                    else:
                        text = part.get("text")
                        chars += len(text) if isinstance(text, str) else 0
            else:
                # a function call's arguments, its output, a reasoning item's summary: about their size
                extra = item.get("arguments") or item.get("output") or item.get("summary")
                if extra:
                    chars += len(extra) if isinstance(extra, str) else len(dumps(extra))
    needs: list[Capability] = []
    tools = body.get("tools")
    if tools:
        functions = sum(1 for tool in as_list(tools) if _obj(tool).get("type") == "function")
        if functions:
            needs.append("tools")
            chars += TOOL_CHARS * functions
    if vision:
        needs.append("vision")
    if pdf:
        needs.append("pdf")
    if audio:
        needs.append("audio")
    text = body.get("text")
    if (
        text
        and isinstance(text, dict)
        and _obj(cast("dict[str, Any]", text).get("format")).get("type") == "json_schema"
    ):
        needs.append("json_schema")
    reasoning = body.get("reasoning")
    if reasoning and isinstance(reasoning, dict) and cast("dict[str, Any]", reasoning).get("effort") is not None:
        needs.append("reasoning")
    max_tokens = body.get("max_output_tokens")
    tokens = chars // 4 + MESSAGE_OVERHEAD * max(count, 1)
    return Profile(
        body["model"],
        tokens,
        max_tokens if isinstance(max_tokens, int) else 0,
        tuple(needs),
        bool(body.get("stream")),
        body.get("truncation") == "auto",
    )


def _not_served(method: str, path: str) -> str:
    return (
        f"Invalid URL ({method} {path}): polyroute serves POST /v1/responses, GET and DELETE /v1/responses/{{id}} and "
        "GET /v1/responses/{id}/input_items"
    )


OWNER_HEADER = "x-polyroute-key"
"""The serve key that made a request (the server sets it and drops any a client sends)."""


def _owner(headers: Mapping[str, str] | None) -> str | None:
    return headers.get(OWNER_HEADER) if headers is not None and OWNER_HEADER in headers else None


def _live(record: Record | None, headers: Mapping[str, str] | None) -> Record | None:
    """:func:`~polyroute.responses.store.visible` to the caller whose request has these headers."""
    return visible(record, _owner(headers))


def _deleted(response_id: str, record: Record) -> Record:
    """What stays of a deleted response an OpenAI deployment made: OpenAI keeps its own copy (a DELETE is not
    forwarded), so polyroute keeps this mark in its place, and never sends the id upstream to be continued from.
    """
    mark: Record = {"response": {"id": response_id, "object": "response", "output": []}, "input": []}
    mark["origin"] = record.get("origin", "polyroute")
    mark["deleted"] = True
    if "owner" in record:
        mark["owner"] = record["owner"]
    return mark


def _check_items(history: list[dict[str, Any]], items: list[dict[str, Any]], whole: bool) -> None:
    """What OpenAI refuses in a conversation, refused as it answers it (a 400), whatever the route:

    - two input items with one id (the previous output sent again along with its ``previous_response_id``, say):
      listed, they would page forever;
    - with the ``whole`` conversation known, a tool's output whose call is nowhere in it, or a call with no output:
      a client's bug that a translated deployment would otherwise take as text, or answer with a made-up result.
    """
    seen: set[str] = set()
    calls: dict[Any, int] = {}
    outputs: list[tuple[int, Any]] = []
    for i, item in enumerate((*history, *items)):
        item_id = item.get("id")
        if isinstance(item_id, str):
            if item_id in seen:
                raise InvalidRequestError(
                    f"Duplicate item found with id {item_id}: each input item is sent once (with "
                    "previous_response_id, send only the new items)",
                    param="input",
                )
            seen.add(item_id)
        kind = item.get("type")
        if kind == "function_call" or kind == "custom_tool_call":
            calls[item.get("call_id")] = i - len(history)
        elif kind == "function_call_output" or kind == "custom_tool_call_output":
            outputs.append((i - len(history), item.get("call_id")))
        elif kind == "item_reference":
            whole = False  # it may stand for a call
    if whole and (calls or outputs):
        answered = {call_id for _, call_id in outputs}
        for i, call_id in outputs:
            if call_id not in calls:
                raise InvalidRequestError(
                    f"No tool call found for function call output with call_id {call_id}: send the function_call "
                    "item it answers before it (or continue with previous_response_id)",
                    param=f"input[{i}]" if i >= 0 else "previous_response_id",
                )
        for call_id, i in calls.items():
            if call_id not in answered:
                raise InvalidRequestError(
                    f"No tool output found for function call {call_id}: send a function_call_output item with its "
                    "call_id (the tool's result, or an error as text) after it",
                    param=f"input[{i}]" if i >= 0 else "previous_response_id",
                )


def _reaches_openai(targets: list[Target]) -> bool:
    """Whether a deployment among ``targets`` serves Responses itself (and so may know a response by its id)."""
    return any(target.spec.key in PASS_THROUGH for target in targets)


def _page(items: list[dict[str, Any]], query: dict[str, list[str]], response_id: str) -> dict[str, Any]:
    """One page of ``input_items`` (``limit``, ``order``, ``after``, as OpenAI pages it: newest first by default);
    an ``after`` that names no item of the response is a 404 naming it, as an unknown item id is on OpenAI (an empty
    page would read as the end of the list).
    """
    order = (query.get("order") or ["desc"])[0]
    if order not in ("asc", "desc"):
        raise InvalidRequestError(f"'order' must be 'asc' or 'desc', got {order!r}", param="order")
    try:
        limit = int((query.get("limit") or ["20"])[0])
    except ValueError:
        raise InvalidRequestError("'limit' must be an integer from 1 to 100", param="limit") from None
    if not 1 <= limit <= 100:
        raise InvalidRequestError("'limit' must be an integer from 1 to 100", param="limit")
    ordered = items if order == "asc" else items[::-1]
    after = (query.get("after") or [None])[0]
    if after is not None:
        ids = [item.get("id") for item in ordered]
        if after not in ids:
            raise ResourceNotFoundError(
                f"Item with id '{after}' not found in the input items of response '{response_id}': 'after' takes "
                "the id of an item listed (a page's last_id); leave it out for the first page",
                param="after",
            )
        ordered = ordered[ids.index(after) + 1 :]
    page = ordered[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(ordered) > limit,
    }


RESPONSES = ResponsesApi()
