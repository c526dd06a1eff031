"""What every provider adapter provides, and the pieces they share.

An adapter is a module with four verbs, all pure (no I/O):

- ``build_request(body, target) -> UpstreamRequest``: OpenAI request → the provider's native HTTP request;
- ``parse_response(content, target, body) -> ChatCompletion``: native response bytes → an OpenAI completion;
- ``stream_translator(target, body) -> StreamTranslator``: native stream events → OpenAI chunks, incrementally;
- ``classify_error(status, headers, content, target) -> UpstreamStatusError``: a native error → OpenAI status,
  type, message, ``retry_after``;

plus ``stream_decoder() -> StreamDecoder`` (SSE for every provider today). Endpoint and auth are data on the
:class:`Target`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

import pydantic_core

from polyroute._sse import SSEEvent
from polyroute.errors import UpstreamStatusError, is_secret_header, redact, status_error_type
from polyroute.types.openai import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    Delta,
    FinishReason,
    ToolCallDelta,
    Usage,
)

if TYPE_CHECKING:
    from polyroute._thinking import ThinkingStore
    from polyroute.catalog import ModelInfo
    from polyroute.config import Deployment

AuthStyle = Literal["bearer", "x-api-key", "api-key", "x-goog-api-key", "none"]


@dataclass(frozen=True, slots=True)
class Quirks:
    """How an OpenAI-compatible API departs from OpenAI's (defaults are OpenAI's own behaviour)."""

    max_tokens_field: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens"
    developer_role: bool = True
    stream_options: bool = True
    parallel_tool_calls: bool = True
    strict_tools: bool = True
    n: bool = True
    tool_call_id_pattern: Literal["any", "alnum9"] = "any"
    seed_field: str = "seed"
    unsupported: frozenset[str] = frozenset()
    """Request fields this API rejects: a request using one gets a 400 naming it and the deployment."""
    reasoning_in_history: bool = False
    """Assistant messages keep ``reasoning_content`` when sent back (DeepSeek wants it within a tool loop)."""
    deployment_urls: bool = False
    """Azure's ``{base}/openai/deployments/{model}/chat/completions?api-version=…`` (unless the base is already
    the ``/openai/v1`` surface), with ``api_version`` or :attr:`default_api_version`."""
    default_api_version: str | None = None
    tool_media: bool = False
    """Tool messages take image and file parts as they are (Mistral: its ``ToolMessage.content`` is a string or
    ``ContentChunk`` s); otherwise those move to a user message after the tool results (``_split_tool_media``)."""


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """A provider as data: which adapter speaks its wire format, where it lives, how it authenticates."""

    key: str
    adapter: Literal["openai", "anthropic", "gemini", "mock", "bedrock", "vertex", "cohere"]
    default_base: str | None
    key_envs: tuple[str, ...]
    auth: AuthStyle
    catalog_id: str | None = None
    quirks: Quirks = field(default_factory=Quirks)
    key_required: bool = True
    path: str = "/chat/completions"
    header_prefixes: tuple[str, ...] = ()
    """Caller headers with these prefixes are meant for this provider (``anthropic-``, ``x-goog-``, ``openai-``) and
    forwarded to it; other providers' prefixed headers are not (:func:`forwarded_headers`)."""


@dataclass(frozen=True, slots=True, eq=False)
class Target:
    """One deployment, resolved: the config, the provider spec, the base URL and the model's catalog row.

    The key is not held: :attr:`api_key` reads it on each call (inline ``api_key``, else the environment), so a
    variable set after the router was built is used, and no ``repr`` can show it.
    """

    route: str
    deployment: Deployment
    spec: ProviderSpec
    api_base: str
    timeout: float
    info: ModelInfo
    thinking_store: ThinkingStore | None = field(default=None, repr=False)
    """The router's store of thinking blocks / thought signatures by tool-call id (see ``polyroute._thinking``);
    None for a target built outside a router: then nothing is remembered."""
    label: str = field(init=False, repr=False, compare=False)
    """How logs, headers and errors name this deployment (its ``label``; read several times per call)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", self.deployment.label)

    @property
    def api_key(self) -> str | None:
        """The key for this call: inline ``api_key``, else the first of :attr:`key_envs` that is set."""
        return self.deployment.resolve_api_key(self.spec.key_envs)

    @property
    def key_envs(self) -> tuple[str, ...]:
        """The environment variables this deployment reads its key from: ``api_key_env``, else the provider's."""
        env = self.deployment.api_key_env
        return (env,) if env else self.spec.key_envs

    @property
    def key_required(self) -> bool:
        """Whether a call needs a key: the provider wants one, or the deployment named one."""
        d = self.deployment
        return self.spec.key_required or d.api_key_env is not None or d.api_key is not None

    def missing_key_error(self) -> UpstreamStatusError | None:
        """The 401 to answer when this call needs a key and none is set, naming the variable to set; else None."""
        if not self.key_required or self.api_key:
            return None
        d = self.deployment
        if d.api_key is not None:
            fix = "its inline api_key is empty"
        elif d.api_key_env:
            fix = f"set {d.api_key_env} (its api_key_env)"
        else:
            envs = " or ".join(self.spec.key_envs) or "a key"
            fix = f"set {envs}, or api_key / api_key_env in its deployment"
        return _unauthorized(self, f"no API key for {self.label}: {fix}", "missing_api_key")

    @property
    def provider(self) -> str:
        """The provider registry key."""
        return self.spec.key

    @property
    def model(self) -> str:
        """The upstream model id."""
        return self.deployment.model

    def auth_headers(self) -> dict[str, str]:
        """The provider's auth header for this key (empty when the provider needs none)."""
        key = self.api_key
        if not key:
            return {}
        match self.spec.auth:
            case "bearer":
                return {"authorization": f"Bearer {key}"}
            case "x-api-key":
                return {"x-api-key": key}
            case "api-key":
                return {"api-key": key}
            case "x-goog-api-key":
                return {"x-goog-api-key": key}
            case "none":
                return {}


_NOT_FORWARDED = frozenset(
    {
        # the SDK's and HTTP's own: they describe the caller's hop to polyroute, not the call upstream
        "accept",
        "connection",
        "content-length",
        "content-type",
        "expect",
        "host",
        "idempotency-key",
        "keep-alive",
        "origin",
        "proxy-connection",
        "referer",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "via",
        "forwarded",
        # the adapter translates the body for its own version (set one with the deployment's api_version)
        "anthropic-version",
    }
)
_NOT_FORWARDED_PREFIXES = ("x-stainless-", "x-polyroute-", "accept-", "content-", "sec-", "x-forwarded-", "proxy-")
PROVIDER_HEADER_PREFIXES = ("anthropic-", "x-goog-", "openai-")
"""Headers meant for one provider: forwarded only to a provider whose :attr:`ProviderSpec.header_prefixes` has it."""


def forwarded_headers(incoming: Mapping[str, str], target: Target) -> dict[str, str]:
    """The caller's request headers meant for ``target``'s provider, lower-cased.

    What the caller added (``extra_headers``, ``default_headers``) goes through; the SDK's and HTTP's own headers
    (``user-agent``, ``accept*``, ``content-*``, ``x-stainless-*``, ``idempotency-key``, ``host``…) and
    polyroute's (``x-polyroute-*``) do not. Provider-prefixed headers (``anthropic-beta``, ``x-goog-*``,
    ``openai-organization``…) reach only their own provider. Credentials never do (``authorization``,
    ``x-api-key``, ``cookie``, anything named like a key, token or secret): the deployment's key is the one sent.

    This runs on every call: an httpx / httpx2 ``Headers`` is read through its raw bytes, and the verdict on each
    header name is cached, so the SDK's usual dozen headers cost a dict lookup each and nothing is decoded.
    """
    own = target.spec.header_prefixes
    raw: Any = getattr(incoming, "raw", None)
    pairs: Any = raw if raw is not None else incoming.items()
    verdicts = _FORWARDED_NAMES.get(own)
    if verdicts is None:
        verdicts = _FORWARDED_NAMES.setdefault(own, {})
    out: dict[str, str] = {}
    for key, value in pairs:
        name = verdicts.get(key, _UNSEEN)
        if name is _UNSEEN:
            name = _forwarded_name(key, own, verdicts)
        if name is not None:
            out[name] = value.decode("latin-1") if isinstance(value, bytes) else value
    return out


def with_forwarded(native: dict[str, str], forwarded: dict[str, str]) -> dict[str, str]:
    """The adapter's headers (auth, content type, deployment ``headers:``) over the caller's forwarded ones; beta
    flags from both are joined, as Anthropic takes a comma-separated list.
    """
    if not forwarded:
        return native
    merged = {**forwarded, **native}
    beta = forwarded.get("anthropic-beta")
    if beta and native.get("anthropic-beta") and beta != native["anthropic-beta"]:
        merged["anthropic-beta"] = f"{native['anthropic-beta']},{beta}"
    return merged


_UNSEEN = ""
_FORWARDED_NAMES: dict[tuple[str, ...], dict[str | bytes, str | None]] = {}
"""Per provider's header prefixes: header name as sent → the lower-cased name to forward, or None (at most 4096
names each; a dict per provider, so a lookup builds no key)."""


def _forwarded_name(key: str | bytes, own: tuple[str, ...], verdicts: dict[str | bytes, str | None]) -> str | None:
    name = (key.decode("latin-1") if isinstance(key, bytes) else key).lower()
    keep = not (
        name in _NOT_FORWARDED
        or name.startswith(_NOT_FORWARDED_PREFIXES)
        or is_secret_header(name)
        or (name.startswith(PROVIDER_HEADER_PREFIXES) and not name.startswith(own))
    )
    verdict = name if keep else None
    if len(verdicts) < 4096:  # callers choose header names: remember a bounded number
        verdicts[key] = verdict
    return verdict


def own_headers(headers: Any) -> Mapping[str, str]:
    """The caller's ``x-polyroute-*`` headers (all that parsing, local answers and usage read of a request),
    lower-cased, a repeated one joined as ``Headers.get`` joins it. Read as :func:`forwarded_headers` reads: one pass
    over the raw names, the verdict on each cached (a ``Headers`` lookup decodes and scans every header; most calls
    send none).
    """
    raw: Any = getattr(headers, "raw", None)
    if raw is None:  # a plain mapping
        return {k.lower(): v for k, v in headers.items() if k.lower().startswith(_OWN_PREFIX)}
    own: dict[str, str] | None = None
    for key, value in raw:
        name = _OWN_NAMES.get(key, _UNSEEN)
        if name is _UNSEEN:
            name = _own_name(key)
        if name is not None:
            if own is None:
                own = {}
            value = value.decode("latin-1")
            own[name] = f"{own[name]}, {value}" if name in own else value
    return own if own is not None else _NO_HEADERS


def _own_name(key: bytes) -> str | None:
    name = key.decode("latin-1").lower()
    verdict = name if name.startswith(_OWN_PREFIX) else None
    if len(_OWN_NAMES) < 4096:  # callers choose header names: remember a bounded number
        _OWN_NAMES[key] = verdict
    return verdict


_OWN_PREFIX = "x-polyroute-"
_OWN_NAMES: dict[bytes, str | None] = {}
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


@dataclass(slots=True)
class UpstreamRequest:
    """A native HTTP request, as the adapter built it (auth headers included)."""

    method: str
    url: str
    headers: dict[str, str]
    content: bytes
    stream: bool = False


class StreamDecoder(Protocol):
    """Turns upstream body bytes into events (SSE for every provider today)."""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Add bytes; return the events they complete."""
        ...

    def flush(self) -> list[SSEEvent]:
        """The body ended: return any last event."""
        ...


class StreamTranslator(Protocol):
    """Native stream events → OpenAI chunks. ``finish`` raises if the stream ended without its finish signal."""

    builder: ChunkBuilder

    def feed(self, event: SSEEvent) -> list[ChatCompletionChunk]:
        """Translate one native event; raises ``UpstreamError`` on an in-band error event."""
        ...

    def finish(self) -> list[ChatCompletionChunk]:
        """The upstream body ended: the last chunks (usage), or ``StreamInterruptedError`` if it was cut."""
        ...


OPENAI_REQUEST_FIELDS = frozenset(
    {
        "model", "messages", "stream", "stream_options", "temperature", "top_p", "n", "max_tokens",
        "max_completion_tokens", "stop", "presence_penalty", "frequency_penalty", "seed", "user", "safety_identifier",
        "tools", "tool_choice", "parallel_tool_calls", "response_format", "reasoning_effort", "logprobs",
        "top_logprobs", "logit_bias", "modalities", "audio", "metadata", "store", "service_tier", "prediction",
        "web_search_options", "prompt_cache_key", "prompt_cache_retention", "verbosity", "functions", "function_call",
    }
)  # fmt: skip
"""Chat Completions request fields: native adapters translate, ignore or refuse each; any other body field (sent
with the SDK's ``extra_body``) is the provider's own and goes into the native body."""


def drop_params(body: ChatCompletionRequest, target: Target) -> ChatCompletionRequest:
    """``body`` without the parameters the deployment opted to drop (``drop_params: [seed, ...]``).

    Without that opt-in, a parameter an adapter cannot honour raises :class:`UnsupportedFeatureError`, so the
    request goes to a deployment that can or comes back as a 400 naming it: never silently lost.
    """
    names = target.deployment.drop_params
    if not names or not any(name in body for name in names):
        return body
    return cast("ChatCompletionRequest", {k: v for k, v in body.items() if k not in names})


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
"""One encoder for every call: ``json.dumps`` with options builds a new ``JSONEncoder`` each time."""


def as_object(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one: JSON from callers and upstreams is untyped, and a field of
    the wrong type reads as absent.
    """
    return cast("dict[str, Any]", value) if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """``value`` if it is a JSON array, else an empty one."""
    return cast("list[Any]", value) if isinstance(value, list) else []


def credentials_error(target: Target, message: str, code: str = "missing_api_key") -> UpstreamStatusError:
    """The 401 for a deployment whose cloud credentials (AWS, Google) are missing or unusable: another deployment
    may still serve the call, the same one will not until they are fixed.
    """
    return _unauthorized(target, f"{target.label}: {message}", code)


def _unauthorized(target: Target, message: str, code: str) -> UpstreamStatusError:
    """A deployment's 401 before any call: not retried on it (another deployment may still serve)."""
    return UpstreamStatusError(
        message,
        provider=target.provider,
        deployment=target.label,
        status=401,
        error_type="authentication_error",
        code=code,
        retryable=False,
    )


def dumps(value: Any) -> bytes:
    """Compact JSON bytes, as sent upstream and to the caller.

    pydantic-core's encoder (a dependency already, through pydantic) is 3-6 times faster than ``json``'s, which
    writes what it refuses (a lone surrogate: the same ``UnicodeEncodeError`` as before).
    """
    try:
        return pydantic_core.to_json(value)
    except pydantic_core.PydanticSerializationError:
        return _ENCODER.encode(value).encode()


def loads(data: bytes | str) -> Any:
    """JSON from an upstream or a caller: pydantic-core's parser (2-4 times faster than ``json``'s), and ``json``'s
    for what it refuses, so a malformed body raises ``json.JSONDecodeError`` with its usual message (and a lone
    surrogate escape, which ``json`` takes, still parses).
    """
    try:
        return pydantic_core.from_json(data)
    except ValueError:
        return json.loads(data)


def completion_id() -> str:
    """A fresh OpenAI-style completion id."""
    return f"chatcmpl-{os.urandom(12).hex()}"  # 24 hex digits, a third of uuid4's cost


def tool_call_id() -> str:
    """A fresh OpenAI-style tool-call id, for providers that do not give one."""
    return f"call_{os.urandom(12).hex()}"


EMPTY: Mapping[str, Any] = MappingProxyType({})


class ChunkBuilder:
    """Stream bookkeeping every translator shares: ids, the first delta's role, tool-call indexes, the finish
    reason, the usage chunk. Translators say what happened; this builds the OpenAI chunk dicts.

    Usage takes OpenAI's shape: when the caller asked (``stream_options.include_usage``) every chunk carries
    ``"usage": null`` and one last chunk has ``"choices": []`` and the usage; otherwise no chunk has a usage field.
    """

    __slots__ = (
        "_role_sent",
        "_tool_index",
        "created",
        "finish_reason",
        "id",
        "include_usage",
        "model",
        "usage",
    )

    def __init__(self, *, model: str, include_usage: bool, id: str | None = None, created: int | None = None) -> None:
        self.id = id or completion_id()
        self.model = model
        self.created = created if created is not None else int(time.time())
        self.include_usage = include_usage
        self.finish_reason: FinishReason | None = None
        self.usage: Usage | None = None
        self._role_sent = False
        self._tool_index: dict[Any, int] = {}

    def chunk(self, delta: Delta, finish_reason: FinishReason | None = None, index: int = 0) -> ChatCompletionChunk:
        """A chunk with one choice; the very first carries ``role: assistant``."""
        if not self._role_sent:
            delta = {"role": "assistant", **delta}
            self._role_sent = True
        chunk: ChatCompletionChunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def text(self, text: str, index: int = 0) -> ChatCompletionChunk:
        """A content delta."""
        return self.chunk({"content": text}, index=index)

    def reasoning(self, text: str, index: int = 0) -> ChatCompletionChunk:
        """A ``reasoning_content`` delta."""
        return self.chunk({"reasoning_content": text}, index=index)

    def tool_call_start(
        self, key: Any, call_id: str, name: str, arguments: str = "", extra: Mapping[str, Any] = EMPTY, index: int = 0
    ) -> ChatCompletionChunk:
        """The first delta of a tool call: its stable OpenAI index (in order of appearance), id and name."""
        slot = (index, key)
        if slot not in self._tool_index:  # OpenAI numbers tool calls per choice, in order of appearance
            self._tool_index[slot] = sum(1 for choice, _ in self._tool_index if choice == index)
        position = self._tool_index[slot]
        call: ToolCallDelta = {
            "index": position,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        if extra:
            call["provider_specific_fields"] = dict(extra)
        return self.chunk({"tool_calls": [call]}, index=index)

    def tool_call_arguments(self, key: Any, fragment: str, index: int = 0) -> ChatCompletionChunk:
        """A fragment of a started tool call's JSON arguments."""
        call: ToolCallDelta = {"index": self._tool_index[(index, key)], "function": {"arguments": fragment}}
        return self.chunk({"tool_calls": [call]}, index=index)

    def finish(self, reason: FinishReason, index: int = 0) -> ChatCompletionChunk:
        """The chunk that carries ``finish_reason``, once."""
        self.finish_reason = reason
        return self.chunk({}, finish_reason=reason, index=index)

    def usage_chunk(self, usage: Usage) -> ChatCompletionChunk | None:
        """Record usage; the usage-only chunk (empty ``choices``) when the caller asked for it."""
        self.usage = usage
        if not self.include_usage:
            return None
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage,
        }


def include_usage(body: ChatCompletionRequest) -> bool:
    """Whether the caller asked for the usage chunk."""
    options = body.get("stream_options") or {}
    return bool(options.get("include_usage"))


def make_usage(prompt: int, completion: int, *, cached: int = 0, cache_write: int = 0, reasoning: int = 0) -> Usage:
    """OpenAI usage from counts already in OpenAI's convention (``prompt`` includes cached tokens)."""
    usage: Usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    if cached or cache_write:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
        if cache_write:
            usage["prompt_tokens_details"]["cache_creation_tokens"] = cache_write
    if reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return usage


_CONTEXT_OVERFLOW = (
    "context_length",  # OpenAI's code, in messages too
    "context length",  # OpenAI, Mistral: "maximum context length"
    "context window",
    "prompt is too long",  # Anthropic
    "input is too long",  # Bedrock
    "too many tokens",
    "exceeds the maximum number of tokens",  # Gemini
    "reduce the length of the messages",  # Groq
)


def is_context_overflow(message: str) -> bool:
    """Whether a provider's error message says the prompt does not fit the model's context window."""
    lowered = message.lower()
    return any(phrase in lowered for phrase in _CONTEXT_OVERFLOW)


def upstream_status_error(
    target: Target,
    status: int,
    message: str,
    *,
    headers: Mapping[str, str] = EMPTY,
    code: str | None = None,
    error_type: str | None = None,
    param: str | None = None,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> UpstreamStatusError:
    """A provider's error answer, as the router reports it: 529 (overloaded) → 503; OpenAI's ``type`` for the
    status unless given; a context-window overflow tagged ``context_length_exceeded`` in ``code`` *and* message
    (LangChain and others match the phrase); the request id and ``retry-after`` read from the headers if not given.
    """
    mapped = 503 if status == 529 else status
    message = redact(message)  # a provider may echo the key it refused, in any shape
    if is_context_overflow(message) or code == "context_length_exceeded":
        code = "context_length_exceeded"
        if "context_length_exceeded" not in message:
            message = f"{message} (context_length_exceeded)"
    return UpstreamStatusError(
        f"{target.label}: {message}",
        provider=target.provider,
        deployment=target.label,
        status=mapped,
        error_type=error_type or status_error_type(mapped),
        code=code,
        param=param,
        request_id=request_id or headers.get("x-request-id") or headers.get("request-id"),
        retry_after=retry_after if retry_after is not None else parse_retry_after(headers),
        retryable=mapped in (408, 409, 429) or mapped >= 500,
    )


def generic_status_error(
    status: int, content: bytes, target: Target, *, headers: Mapping[str, str] = EMPTY
) -> UpstreamStatusError:
    """An error for a status whose body we could not read as the provider's error format."""
    text = content[:500].decode("utf-8", errors="replace").strip() or f"HTTP {status}"
    return upstream_status_error(target, status, f"answered {status}: {text}", headers=headers)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms``, ``retry-after`` (seconds or HTTP date) or ``x-ratelimit-reset-*``."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(float(value) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError:
            from email.utils import parsedate_to_datetime

            try:
                return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
            except (TypeError, ValueError):
                pass
    for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens", "x-ratelimit-reset"):
        value = headers.get(name)
        if value:
            seconds = parse_duration(value)
            if seconds is not None:
                return seconds
    return None


def parse_duration(value: str) -> float | None:
    """``"1.5s"``, ``"6m0s"``, ``"20ms"``, ``"2"`` → seconds (OpenAI's and Groq's reset headers)."""
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    total = 0.0
    number = ""
    i = 0
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    matched = False
    while i < len(value):
        ch = value[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if value.startswith("ms", i) else ch
        if unit not in units or not number:
            return None
        total += float(number) * units[unit]
        number = ""
        matched = True
        i += len(unit)
    return total if matched and not number else None
