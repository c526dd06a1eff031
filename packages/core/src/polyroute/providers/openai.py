"""The OpenAI Chat Completions wire format, for OpenAI and every OpenAI-compatible vendor.

Vendors differ in small ways, held as :class:`~polyroute.providers._base.Quirks` rows in the registry: which
max-tokens field they take, whether they know the ``developer`` role, ``stream_options``, ``n``,
``parallel_tool_calls``, ``strict`` tools, the seed field, the tool-call id format (Mistral wants 9 alphanumerics).
A field a vendor cannot honour raises :class:`UnsupportedFeatureError`, so the router tries a deployment that can,
or answers 400 naming the field: nothing is dropped silently.

Responses pass through nearly untouched; ``reasoning`` (Groq, OpenRouter, Ollama) is renamed ``reasoning_content``
(DeepSeek's name, which polyroute uses for every provider), missing tool-call ids are filled in, and streamed
chunks that need no change are forwarded as the upstream's own bytes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, cast

from polyroute._sse import SSEDecoder, SSEEvent
from polyroute.api import RawAnswer
from polyroute.errors import StreamInterruptedError, UnsupportedFeatureError, UpstreamStatusError
from polyroute.providers._base import (
    ChunkBuilder,
    Target,
    UpstreamRequest,
    completion_id,
    drop_params,
    dumps,
    generic_status_error,
    include_usage,
    loads,
    tool_call_id,
    upstream_status_error,
)
from polyroute.providers._base import as_list as _list
from polyroute.providers._base import as_object as _obj
from polyroute.types.openai import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Message, Usage

_POLYROUTE_MESSAGE_FIELDS = ("thinking_blocks", "provider_specific_fields")


def stream_decoder() -> SSEDecoder:
    """OpenAI streams are SSE."""
    return SSEDecoder()


def build_request(body: ChatCompletionRequest, target: Target) -> UpstreamRequest:
    """The OpenAI request for ``target``, with the vendor's quirks applied."""
    body = drop_params(body, target)
    quirks = target.spec.quirks
    out: dict[str, Any] = dict(body)
    out["model"] = target.model
    for name in quirks.unsupported:
        if out.get(name) not in (None, False):
            raise UnsupportedFeatureError(
                f"{target.label} does not support '{name}'; remove it or route to a deployment that does",
                param=name,
            )
    if out.get("n") not in (None, 1) and not quirks.n:
        raise UnsupportedFeatureError(f"{target.label} does not support n > 1", param="n")
    if not quirks.parallel_tool_calls:
        # These vendors take no such field. true is their only behaviour; false (LangChain's with_structured_output
        # sends it) is honoured on the way back: an answer's calls after its first are left out.
        out.pop("parallel_tool_calls", None)
    _move_max_tokens(out, quirks.max_tokens_field)
    if quirks.seed_field != "seed" and "seed" in out:
        out[quirks.seed_field] = out.pop("seed")
    if body.get("stream"):
        if quirks.stream_options:
            # Always ask for usage upstream: the router counts tokens and cost; the caller's chunk is optional.
            out["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        else:
            out.pop("stream_options", None)
    else:
        out.pop("stream_options", None)
    if "tools" in out:
        out["tools"] = [_tool_for(tool, quirks.strict_tools, target) for tool in out["tools"]]
    out["messages"] = _to_vendor_messages(body["messages"], target)
    if target.deployment.params:
        out.update(target.deployment.params)
    url, headers = endpoint(target)
    return UpstreamRequest("POST", url, headers, dumps(out), stream=bool(body.get("stream")))


def endpoint(target: Target, path: str | None = None) -> tuple[str, dict[str, str]]:
    """The URL and headers of a call to ``path`` (default: the provider's chat path); Azure's
    ``{base}/openai/deployments/{deployment}{path}?api-version=…`` unless the base is its ``/openai/v1`` surface.
    """
    headers = {"content-type": "application/json", "accept": "application/json", **target.auth_headers()}
    headers.update(target.deployment.headers)
    base = target.api_base
    quirks = target.spec.quirks
    if quirks.deployment_urls and "/openai/v1" not in base:
        version = target.deployment.api_version or quirks.default_api_version
        return f"{base}/openai/deployments/{target.model}{path or '/chat/completions'}?api-version={version}", headers
    return base + (path or target.spec.path), headers


def _move_max_tokens(out: dict[str, Any], field: str) -> None:
    value = out.pop("max_completion_tokens", None)
    legacy = out.pop("max_tokens", None)
    chosen = value if value is not None else legacy
    if chosen is not None:
        out[field] = chosen


def _tool_for(tool: Mapping[str, Any], strict_ok: bool, target: Target) -> Mapping[str, Any]:
    function = _obj(tool.get("function"))
    if "strict" in function and not strict_ok:
        if function.get("strict"):
            raise UnsupportedFeatureError(
                f"{target.label} does not support strict function schemas ('strict': true on tool "
                f"{function.get('name')!r}); remove 'strict' or route to a deployment that supports it",
                param="tools",
            )
        return {**tool, "function": {k: v for k, v in function.items() if k != "strict"}}
    return tool


def _to_vendor_messages(messages: list[Message], target: Target) -> list[dict[str, Any]]:
    quirks = target.spec.quirks
    keep_reasoning = quirks.reasoning_in_history
    out: list[dict[str, Any]] = []
    attached: list[dict[str, Any]] = []  # images and files of the tool results being gathered (see _split_tool_media)
    for message in messages:
        if attached and message["role"] != "tool":
            out.append({"role": "user", "content": attached})
            attached = []
        m: dict[str, Any] = {k: v for k, v in message.items() if k not in _POLYROUTE_MESSAGE_FIELDS}
        if not keep_reasoning:
            m.pop("reasoning_content", None)
        if m["role"] == "developer" and not quirks.developer_role:
            m["role"] = "system"
        calls = m.get("tool_calls")
        if calls:
            m["tool_calls"] = [
                {
                    "id": _vendor_call_id(c["id"], quirks.tool_call_id_pattern),
                    "type": c.get("type", "function"),
                    "function": c["function"],
                }
                for c in calls
            ]
        if m.get("tool_call_id") is not None:
            m["tool_call_id"] = _vendor_call_id(m["tool_call_id"], quirks.tool_call_id_pattern)
        if m["role"] == "tool" and isinstance(m.get("content"), list) and not quirks.tool_media:
            m["content"], media = _split_tool_media(m["content"], str(m.get("tool_call_id") or ""))
            attached += media
        out.append(m)
    if attached:
        out.append({"role": "user", "content": attached})
    return out


def _split_tool_media(parts: list[dict[str, Any]], call_id: str) -> tuple[Any, list[dict[str, Any]]]:
    """A tool message's parts → its content and the parts a user message must carry instead.

    OpenAI's tool messages take text only ("For tool messages, only type ``text`` is supported", the API reference;
    an image there is a 400, "Image URLs are only allowed for messages with role 'user'"), and so do the vendors
    that copy its API. So the text stays (as a string, the form every vendor takes), with a note where the rest went,
    and the images and files go in one user message after the turn's tool messages (a user message between them
    would break their pairing with the calls), each result's introduced by its call id: the shape OpenAI accepted in
    recorded traffic (pydantic-ai ``test_image_url_tool_response``: "See file …" in the tool message, "This is file
    …:" and the image in the next user message).
    """
    media = [part for part in parts if part.get("type") != "text"]
    text = "".join(str(part.get("text") or "") for part in parts if part.get("type") == "text")
    if not media:
        return parts, []
    note = f"(The {_what(media)} of this result follow{'s' if len(media) == 1 else ''} in the next message.)"
    intro = {"type": "text", "text": f"Attached to the result of tool call {call_id}:"}
    return (f"{text}\n{note}" if text else note), [intro, *media]


def _what(media: list[dict[str, Any]]) -> str:
    kinds = {"image_url": "image", "file": "file"}
    names = {kinds.get(str(part.get("type")), "attachment") for part in media}
    name = names.pop() if len(names) == 1 else "attachment"
    return name if len(media) == 1 else f"{len(media)} {name}s"


def _vendor_call_id(call_id: str, pattern: str) -> str:
    """Ids from another provider, mapped deterministically (so calls and results still pair up) where this API
    would refuse them: Mistral accepts only ``[a-zA-Z0-9]{9}``; OpenAI caps ids at 40 characters, and ids that
    carry a Gemini thought signature are longer.
    """
    if pattern == "alnum9" and not (len(call_id) == 9 and call_id.isalnum()):
        return hashlib.sha256(call_id.encode()).hexdigest()[:9]
    if len(call_id) > 40:
        return "call_" + hashlib.sha256(call_id.encode()).hexdigest()[:32]
    return call_id


def parse_response(content: bytes, target: Target, body: ChatCompletionRequest) -> ChatCompletion:
    """The vendor's completion, normalized: ``reasoning_content``, tool-call ids, ``object``."""
    data = loads(content)
    if not isinstance(data, dict) or "choices" not in data:
        if isinstance(data, dict) and "error" in data:
            raise classify_error(200, {}, content, target)
        raise UpstreamStatusError(
            f"{target.label} returned a body that is not a chat completion",
            provider=target.provider,
            deployment=target.label,
            status=502,
        )
    completion = cast("dict[str, Any]", data)
    changed = not ("id" in completion and "created" in completion and "model" in completion)
    changed = changed or completion.get("object") != "chat.completion"
    if changed:  # (setdefault would make an id on every call)
        if "id" not in completion:
            completion["id"] = completion_id()
        completion["object"] = "chat.completion"
        completion.setdefault("created", 0)
        completion.setdefault("model", target.model)
    for choice in _list(completion["choices"]):
        message = _obj(_obj(choice).get("message"))
        changed = _normalize_reasoning(message) or changed
        for call in map(_obj, _list(message.get("tool_calls"))):
            if not call.get("id"):
                call["id"] = tool_call_id()
                changed = True
            if "type" not in call:
                call["type"] = "function"
                changed = True
        if body.get("parallel_tool_calls") is False and len(_list(message.get("tool_calls"))) > 1:
            message["tool_calls"] = _list(message["tool_calls"])[:1]
            changed = True
    if changed:
        return cast("ChatCompletion", completion)
    return cast("ChatCompletion", RawAnswer(completion, content))  # the vendor's bytes are the answer: no re-encoding


def _normalize_reasoning(message: dict[str, Any]) -> bool:
    """``reasoning`` → ``reasoning_content``; Mistral's list content (text and ``thinking`` chunks) → strings.
    Whether the message changed.
    """
    changed = False
    content = message.get("content")
    if isinstance(content, list):
        text, thinking = _split_content_chunks(cast("list[Any]", content))
        message["content"] = text
        changed = True
        if thinking:
            message["reasoning_content"] = (message.get("reasoning_content") or "") + thinking
    if "reasoning" in message:
        reasoning = message.pop("reasoning")
        changed = True
        if isinstance(reasoning, str) and reasoning and not message.get("reasoning_content"):
            message["reasoning_content"] = reasoning
    return changed


def _split_content_chunks(parts: list[Any]) -> tuple[str, str]:
    """Mistral reasoning models answer ``content`` as chunks: ``{"type": "text"}`` and ``{"type": "thinking",
    "thinking": [{"type": "text", "text": ...}]}`` (https://docs.mistral.ai/capabilities/reasoning/).
    """
    text: list[str] = []
    thinking: list[str] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        part = cast("dict[str, Any]", part)
        if part.get("type") == "thinking":
            for inner in part.get("thinking") or ():
                if isinstance(inner, dict) and isinstance(cast("dict[str, Any]", inner).get("text"), str):
                    thinking.append(cast("dict[str, Any]", inner)["text"])
        elif isinstance(part.get("text"), str):
            text.append(part["text"])
    return "".join(text), "".join(thinking)


def stream_translator(target: Target, body: ChatCompletionRequest) -> OpenAIStreamTranslator:
    """A translator for the vendor's SSE chunks."""
    return OpenAIStreamTranslator(target, include_usage(body), one_call=body.get("parallel_tool_calls") is False)


_LOOK = re.compile(rb'"(?:finish_reason":"|tool_calls"|reasoning"|content":\[|error"|x_groq"|usage":[^n])')
"""What makes a chunk need parsing. Once usage is asked for (polyroute always asks), OpenAI puts ``"usage":null``
on every chunk: only a usage object needs a look (a spaced ``"usage": null`` merely takes the slow path). One
regex pass per chunk: cheaper than one ``in`` test per marker."""


def _needs_look(raw: bytes) -> bool:
    """Whether a chunk must be parsed; plain content chunks are forwarded as the vendor sent them."""
    return b'"choices":[' not in raw or _LOOK.search(raw) is not None


_ENVELOPE = frozenset(
    ("id", "object", "created", "model", "choices", "system_fingerprint", "service_tier", "obfuscation")
)
"""The fields of a chunk that say nothing by themselves."""


class OpenAIStreamTranslator:
    """Forwards OpenAI-format chunks, touching only the ones that need it (usage, reasoning, tool ids, finish).

    Usage leaves in OpenAI's shape whatever the vendor does (Mistral and Groq put it on the finish chunk, Groq
    under ``x_groq``; some vendors repeat it): polyroute always asks upstream for it, keeps the last one seen, and
    when the caller asked gives one chunk with ``"choices": []`` and the usage (where OpenAI sends it, else at the
    end), every other chunk carrying ``"usage": null``; when the caller did not ask, no chunk has a usage field.
    """

    __slots__ = (
        "_done",
        "_finished",
        "_one_call",
        "_tool_ids",
        "_usage_sent",
        "_usage_template",
        "builder",
        "include_usage",
        "target",
    )

    def __init__(self, target: Target, include_usage: bool, one_call: bool = False) -> None:
        self.target = target
        self.include_usage = include_usage
        self._one_call = one_call
        """``parallel_tool_calls: false``: tool-call deltas after a choice's first call are left out."""
        self.builder = ChunkBuilder(model=target.model, include_usage=include_usage)
        self._done = False
        self._finished = False
        self._tool_ids: dict[tuple[int, int], str] = {}
        self._usage_template: dict[str, Any] = {}
        self._usage_sent = False

    def feed(self, event: SSEEvent) -> list[ChatCompletionChunk | bytes]:
        """One upstream event → the chunks (or raw bytes) to forward."""
        data = event.data
        if not data:
            return []
        if data == "[DONE]":
            self._done = True
            return self._usage_out()
        raw = data.encode()
        if not _needs_look(raw):
            return [_raw_usage_field(raw, self.include_usage)]
        chunk = _obj(loads(data))
        if "error" in chunk and "choices" not in chunk:
            raise classify_error(200, {}, raw, self.target)
        usage = chunk.pop("usage", None) or _obj(chunk.pop("x_groq", None)).get("usage")
        chunk.pop("x_groq", None)
        for choice in map(_obj, _list(chunk.get("choices"))):
            delta = _obj(choice.get("delta"))
            _normalize_reasoning(delta)
            if self._one_call and delta.get("tool_calls"):
                first = [c for c in map(_obj, _list(delta["tool_calls"])) if c.get("index", 0) == 0]
                if first:
                    delta["tool_calls"] = first
                else:
                    del delta["tool_calls"]
            for position, call in enumerate(map(_obj, _list(delta.get("tool_calls")))):
                call.setdefault("index", position)
                key = (int(choice.get("index", 0)), int(call["index"]))
                if _obj(call.get("function")).get("name") and not call.get("id"):
                    call["id"] = self._tool_ids.setdefault(key, tool_call_id())
                    call.setdefault("type", "function")
            if choice.get("finish_reason"):
                self._finished = True
                self.builder.finish_reason = choice["finish_reason"]
        if usage:
            self.builder.usage = cast("Usage", usage)
            self._usage_template = {k: v for k, v in chunk.items() if k != "choices"}
            if not chunk.get("choices"):
                return self._usage_out()  # OpenAI's own usage chunk, where OpenAI sends it
        elif not chunk.get("choices") and chunk.keys() <= _ENVELOPE:
            return []  # nothing for the caller; Azure's prompt filters and OpenAI's moderation go through
        if self.include_usage:
            chunk["usage"] = None
        return [cast("ChatCompletionChunk", chunk)]

    def _usage_out(self) -> list[ChatCompletionChunk | bytes]:
        """The one usage chunk, in OpenAI's shape, when the caller asked and the vendor reported usage."""
        if self._usage_sent or not self.include_usage or self.builder.usage is None:
            return []
        self._usage_sent = True
        chunk: dict[str, Any] = {
            "id": self.builder.id,
            "object": "chat.completion.chunk",
            "created": self.builder.created,
            "model": self.builder.model,
            **self._usage_template,
            "choices": [],
            "usage": self.builder.usage,
        }
        return [cast("ChatCompletionChunk", chunk)]

    def finish(self) -> list[ChatCompletionChunk | bytes]:
        """The stream ended: fine after a finish_reason or ``[DONE]``, an error otherwise."""
        if not self._finished and not self._done:
            raise StreamInterruptedError(
                f"{self.target.label} ended the stream without a finish_reason",
                provider=self.target.provider,
                deployment=self.target.label,
                status=502,
            )
        return self._usage_out()


def _raw_usage_field(raw: bytes, include_usage: bool) -> bytes:
    """A chunk forwarded as bytes, with OpenAI's usage field: ``"usage":null`` when the caller asked for usage,
    none otherwise. A quote after a comma cannot be inside a JSON string (it would be escaped), so the byte
    edits are safe.
    """
    if include_usage:
        if b'"usage":null' not in raw and raw.endswith(b"}"):
            return raw[:-1] + b',"usage":null}'
        return raw
    return raw.replace(b',"usage":null', b"") if b'"usage":null' in raw else raw


def classify_error(status: int, headers: Mapping[str, str], content: bytes, target: Target) -> UpstreamStatusError:
    """An OpenAI-format error body (or a vendor's variant) → an :class:`UpstreamStatusError`."""
    try:
        data = _obj(loads(content))
    except ValueError:
        return generic_status_error(status, content, target, headers=headers)
    found: Any = data.get("error")
    if isinstance(found, str):
        found = {"message": found}
    elif not isinstance(found, dict) and isinstance(data.get("message") or data.get("detail"), str):
        found = {"message": data.get("message") or data.get("detail")}
    if not isinstance(found, dict):
        return generic_status_error(status, content, target, headers=headers)
    error = _obj(found)
    message = str(error.get("message") or f"HTTP {status}")
    code = error.get("code", data.get("code"))
    code = str(code) if code is not None else None
    if status == 200:  # an error inside a 200 body or stream
        status = _status_for_code(code, error.get("type"))
    native_type = error.get("type", data.get("type"))
    return upstream_status_error(
        target,
        status,
        message,
        headers=headers,
        code=code,
        error_type=str(native_type) if native_type else None,
        param=error.get("param") if isinstance(error.get("param"), str) else None,
    )


def _status_for_code(code: str | None, error_type: Any) -> int:
    text = f"{code} {error_type}".lower()
    if "rate" in text or "quota" in text:
        return 429
    if "invalid" in text or "context_length" in text:
        return 400
    if "overload" in text:
        return 503
    return 500
