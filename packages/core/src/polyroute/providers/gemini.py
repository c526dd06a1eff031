"""Google Gemini through its native API: ``generateContent`` and ``streamGenerateContent?alt=sse``.

Not the OpenAI-compatibility beta, which loses thought signatures and reports tool-call finishes as ``stop``.
References: the Gemini API v1beta protobuf definitions (``google/ai/generativelanguage/v1beta/content.proto``,
``generative_service.proto``) and the docs at https://ai.google.dev/gemini-api/docs (cited per helper below).

Requests (OpenAI → Gemini):

- ``system`` / ``developer`` messages → ``systemInstruction`` (all of them, in order: Gemini has one system
  instruction, so a system message in mid-conversation loses its position); user / assistant → ``contents`` with
  roles ``user`` / ``model``; ``tool`` messages → ``functionResponse`` parts (``{"output": <text>}``) named after the
  assistant tool call with the same id; adjacent contents of one role are merged, so parallel results form the one
  ``user`` turn Gemini expects. A tool result's images and files go inside its ``functionResponse`` (``parts``) on
  Gemini 3, else as parts of that turn after the responses (:func:`_to_native_function_response`).
- Content parts: text; ``image_url`` data URLs → ``inlineData``; ``image_url`` http(s) URLs → ``fileData`` (passed by
  reference: Gemini fetches Files API URIs, YouTube and public/signed HTTP URLs itself, per
  https://ai.google.dev/gemini-api/docs/file-input-methods; polyroute never downloads, adapters do no I/O); the
  ``mimeType`` is guessed from the URL's extension and omitted when unknown (it is optional on ``FileData``);
  ``file`` parts (PDFs and other documents) → ``inlineData`` from ``file_data``, or ``fileData`` when ``file_id`` is a
  Gemini Files API name or URI; ``input_audio`` → ``inlineData``. Anything else raises
  :class:`UnsupportedFeatureError` (400, naming the part).
- ``tools`` → ``functionDeclarations`` with ``parametersJsonSchema`` (JSON Schema, cut to what Gemini honours by
  :func:`_to_gemini_json_schema`: unsupported constraints move into descriptions). Gemini 1.x models
  predate that field and get ``parameters`` (the OpenAPI subset, :func:`_to_native_schema`): there ``$ref`` is
  inlined, ``const`` becomes a one-value ``enum``, ``oneOf`` becomes ``anyOf``, a ``["T", "null"]`` type becomes
  ``nullable``; ``additionalProperties``, ``$schema`` and ``examples`` are dropped, other keywords the message
  cannot hold (``exclusiveMinimum``, ``multipleOf``, ``not``…) move into descriptions, and a recursive schema
  raises. ``tool_choice`` → ``toolConfig.functionCallingConfig``: ``auto`` → AUTO, ``none`` → NONE,
  ``required`` → ANY, a named function → ANY + ``allowedFunctionNames``, ``allowed_tools`` → the listed
  declarations only, with AUTO or ANY.
- ``generationConfig``: ``temperature``, ``top_p`` → ``topP``, ``max_completion_tokens`` / ``max_tokens`` →
  ``maxOutputTokens``, ``stop`` → ``stopSequences``, ``n`` → ``candidateCount``, ``seed``, ``presence_penalty``,
  ``frequency_penalty``; ``response_format`` ``json_schema`` → ``responseMimeType: application/json`` +
  ``responseJsonSchema`` (cut like ``parametersJsonSchema``), ``json_object`` → ``responseMimeType`` only;
  ``reasoning_effort`` → ``thinkingConfig`` (:func:`_to_thinking_config`).
- ``parallel_tool_calls: false`` cannot be sent (Gemini decides how many functions to call), so it is honoured on the
  way back: a candidate's function calls after its first are left out of the answer, streamed or not (LangChain's
  ``with_structured_output`` and others send it with one forced tool).
- Dropped (Gemini has no equivalent, and nothing the caller reads changes): ``parallel_tool_calls: true``,
  ``stream_options`` (Gemini always reports usage), ``user``, ``safety_identifier``,
  ``metadata``, ``store``, ``service_tier``, ``prompt_cache_key``, ``prompt_cache_retention``. Rejected with a 400
  (the answer would silently differ): ``logprobs`` / ``top_logprobs``, ``logit_bias``, audio output (``audio``,
  ``modalities`` other than text), ``prediction``, ``web_search_options``, ``verbosity``, legacy ``functions`` /
  ``function_call``.
- Body fields that are not Chat Completions fields (the SDK's ``extra_body``: ``safetySettings``, ``cachedContent``,
  ``generationConfig``…) go into the native body as they are, ``top_k`` as ``generationConfig.topK``; then
  ``deployment.params`` are merged in last, dicts merged key by key (so ``{"generationConfig": {"topK": 40}}`` or
  ``{"safetySettings": [...]}`` work). A refused field can be dropped instead by listing it in the deployment's
  ``drop_params``.

Thought signatures (https://ai.google.dev/gemini-api/docs/thought-signatures): Gemini 3 rejects a tool loop whose
``functionCall`` parts come back without the ``thoughtSignature`` they were returned with. polyroute carries each one
in four ways, so any client can complete the loop:

1. ``provider_specific_fields: {"thought_signature": ...}`` on the OpenAI tool call (also read:
   ``extra_content.google.thought_signature``, the convention of Google's own OpenAI-compatible endpoint);
2. encoded into the tool-call id itself (``call_<hash>__gts_<signature, URL-safe base64>``): ids are the one field
   every client and framework sends back verbatim (LangChain keeps only name, args and id). The price is long ids
   (a signature is up to a few KB); Gemini never sees them (the suffix is stripped before sending), but a history
   replayed to OpenAI, which caps tool-call ids at 40 characters, needs that adapter to shorten them;
3. the router's store (``polyroute._thinking``): every signature returned, by plain tool-call id, for a client
   that sent the call back under a rewritten or shortened id;
4. when none of these has it (a new process, a stored conversation), the documented placeholder signature
   ``skip_thought_signature_validator`` on the first call of each current-turn step, with a warning in the
   ``polyroute`` log, so the request is accepted rather than failing with a 400. Gemini 2.5 does not check.

A signature on a text part (Gemini 3 puts one on the last part of a plain answer) rides on the message as
``provider_specific_fields: {"thought_signature": ...}`` (a delta of its own when streaming) and returns on that
message's last text part. Reasoning text (``reasoning_content``) is not sent back: thoughts are not inputs.

Responses: text parts → ``content``; ``thought: true`` parts → ``reasoning_content``; ``functionCall`` parts →
``tool_calls`` with ids stable for a given response (Gemini's own ``id`` if it sends one, else derived from
``responseId``, candidate and position); each candidate (``n``) → a choice. Usage: prompt = ``promptTokenCount`` +
``toolUsePromptTokenCount``; completion = ``candidatesTokenCount`` + ``thoughtsTokenCount`` (the latter also as
``reasoning_tokens``); ``cachedContentTokenCount`` → ``cached_tokens``. Streams use the same helpers, take usage
from the last event that has it, and Vertex AI's streamed function-call arguments (``partialArgs``) are assembled.
The JSON-array stream of ``streamGenerateContent`` without ``alt=sse`` is never requested, so it is not decoded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import mimetypes
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast
from urllib.parse import quote, urlsplit

from polyroute._sse import SSEDecoder, SSEEvent
from polyroute.errors import StreamInterruptedError, UnsupportedFeatureError, UpstreamStatusError
from polyroute.providers._base import (
    OPENAI_REQUEST_FIELDS,
    ChunkBuilder,
    Target,
    UpstreamRequest,
    completion_id,
    drop_params,
    dumps,
    generic_status_error,
    include_usage,
    loads,
    parse_duration,
    tool_call_id,
    upstream_status_error,
)
from polyroute.types.openai import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ContentPart,
    Delta,
    FinishReason,
    Message,
    ResponseMessage,
    ToolCall,
    Usage,
)

SIGNATURE_MARK = "__gts_"
"""Separates a tool-call id from the thought signature encoded after it."""

logger = logging.getLogger("polyroute")

SKIP_SIGNATURE = "skip_thought_signature_validator"
"""Gemini's documented placeholder for a function call whose real signature is unknown (thought-signatures FAQ)."""

_REJECTED_FIELDS = {
    "logit_bias": "Gemini has no logit bias",
    "prediction": "Gemini has no predicted outputs",
    "web_search_options": "use a googleSearch tool through the deployment's params instead",
    "audio": "polyroute does not translate Gemini audio output",
    "verbosity": "Gemini has no verbosity setting",
    "functions": "send 'tools' instead of the legacy 'functions'",
    "function_call": "send 'tool_choice' instead of the legacy 'function_call'",
}

# generative_service.proto, Candidate.FinishReason. Absent from the map (OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL,
# UNEXPECTED_TOOL_CALL, TOO_MANY_TOOL_CALLS, NO_IMAGE, IMAGE_OTHER, FINISH_REASON_UNSPECIFIED) → "stop".
_FINISH_REASONS: Mapping[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}

# google.rpc.Code names → HTTP status (https://ai.google.dev/gemini-api/docs/troubleshooting#error-codes and
# google/rpc/code.proto's HTTP mapping).
_RPC_STATUS: Mapping[str, int] = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INTERNAL": 500,
    "DATA_LOSS": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}

_TOOL_CALL_FIELDS = ("provider_specific_fields", "extra_content")


# -- verbs ------------------------------------------------------------------------------------------------------


def stream_decoder() -> SSEDecoder:
    """``streamGenerateContent?alt=sse`` answers with server-sent events, one partial response per ``data:``."""
    return SSEDecoder()


def build_request(body: ChatCompletionRequest, target: Target) -> UpstreamRequest:
    """The ``generateContent`` (or ``streamGenerateContent``) request for ``target``."""
    body = drop_params(body, target)
    _reject_unsupported(body, target)
    native: dict[str, Any] = {}
    system, contents = _to_native_contents(body["messages"], target)
    if not contents:  # Gemini refuses it ("contents is not specified"): said before a call is spent on it
        raise UnsupportedFeatureError(
            f"{target.label} (Gemini) needs at least one user message with content besides the system "
            "instruction, and this request has none (only system messages or instructions, or empty or "
            "whitespace-only text); send some text as input",
            param="messages",
        )
    if system:
        native["systemInstruction"] = {"parts": system}
    native["contents"] = contents
    tools = body.get("tools")
    tool_choice = body.get("tool_choice")
    if tools:
        declarations = [_to_function_declaration(tool, target) for tool in tools]
        declarations, config = _to_tool_config(tool_choice, declarations, target)
        native["tools"] = [{"functionDeclarations": declarations}]
        if config:
            native["toolConfig"] = {"functionCallingConfig": config}
    generation = _to_generation_config(body, target)
    if generation:
        native["generationConfig"] = generation
    extra = _native_fields(body)
    if extra:
        native = _merged(native, extra)
    if target.deployment.params:
        native = _merged(native, target.deployment.params)
    stream = bool(body.get("stream"))
    url, headers = _endpoint(target, stream)
    return UpstreamRequest("POST", url, headers, dumps(native), stream=stream)


def parse_response(content: bytes, target: Target, body: ChatCompletionRequest) -> ChatCompletion:
    """A ``GenerateContentResponse`` → an OpenAI completion, one choice per candidate."""
    data = loads(content)
    if not isinstance(data, dict):
        raise _unreadable(target, "a body that is not a GenerateContentResponse")
    response = cast("dict[str, Any]", data)
    if "error" in response:
        raise classify_error(200, {}, content, target)
    response_id = str(response.get("responseId") or "")
    choices: list[Choice] = []
    candidates = _candidates(response)
    if not candidates:
        blocked = _prompt_block_message(response, target)
        if blocked is None:
            raise _unreadable(target, "a response with neither candidates nor a promptFeedback block")
        choices.append(
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "refusal": blocked},
                "finish_reason": "content_filter",
            }
        )
    for candidate in candidates:
        index = _candidate_index(candidate)
        parts = _parts(candidate)
        text, reasoning, calls, text_signature = _from_native_parts(parts, response_id, index)
        if body.get("parallel_tool_calls") is False:
            calls = calls[:1]  # the caller allows one call a turn; Gemini cannot be told so (see the docstring)
        finish = _from_native_finish(candidate.get("finishReason"), bool(calls))
        message: ResponseMessage = {"role": "assistant", "content": text if (text or not calls) else None}
        if finish == "content_filter" and not text and not calls:
            message["refusal"] = _filter_message(candidate.get("finishReason"), target)
        if reasoning:
            message["reasoning_content"] = reasoning
        if calls:
            message["tool_calls"] = calls
            _remember_signatures(calls, target)
        if text_signature:
            cast("dict[str, Any]", message)["provider_specific_fields"] = {"thought_signature": text_signature}
        choices.append({"index": index, "message": message, "finish_reason": finish})
    choices.sort(key=lambda choice: choice["index"])
    completion: ChatCompletion = {
        "id": _completion_id(response_id),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(response.get("modelVersion") or target.model),
        "choices": choices,
    }
    usage = _from_native_usage(response.get("usageMetadata"))
    if usage is not None:
        completion["usage"] = usage
    return completion


def _remember_signatures(calls: Sequence[ToolCall], target: Target) -> None:
    """Record each call's signature by its plain id, for a client that sends the call back under that id."""
    store = target.thinking_store
    if store is None:
        return
    for call in calls:
        base_id, signature = split_tool_call_id(call["id"])
        if signature:
            store.remember_signature(base_id, signature)


def stream_translator(target: Target, body: ChatCompletionRequest) -> GeminiStreamTranslator:
    """A translator for ``streamGenerateContent?alt=sse`` events."""
    return GeminiStreamTranslator(target, include_usage(body), one_call=body.get("parallel_tool_calls") is False)


def classify_error(status: int, headers: Mapping[str, str], content: bytes, target: Target) -> UpstreamStatusError:
    """A ``google.rpc.Status`` error body → an :class:`UpstreamStatusError` with the OpenAI-side status.

    ``RESOURCE_EXHAUSTED`` honours ``RetryInfo.retryDelay`` as ``retry_after``; an invalid API key (Gemini answers
    ``400 INVALID_ARGUMENT`` with ``ErrorInfo.reason = API_KEY_INVALID``) becomes a 401 so the router tries the next
    deployment; an input over the context window gets ``code: context_length_exceeded``.
    """
    try:
        data = loads(content)
    except ValueError:
        return generic_status_error(status, content, target, headers=headers)
    if isinstance(data, list) and data:  # the JSON-array stream wraps errors in a one-element list
        data = cast("list[Any]", data)[0]
    error: Any = cast("dict[str, Any]", data).get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return generic_status_error(status, content, target, headers=headers)
    error = cast("dict[str, Any]", error)
    rpc_status = str(error.get("status") or "")
    message = str(error.get("message") or rpc_status or f"HTTP {status}")
    details = [cast("dict[str, Any]", d) for d in cast("list[Any]", error.get("details") or []) if isinstance(d, dict)]
    reason = next((str(d["reason"]) for d in details if d.get("reason")), None)
    mapped = _RPC_STATUS.get(rpc_status)
    if mapped is None:
        code = error.get("code")
        mapped = code if isinstance(code, int) and 400 <= code <= 599 else (status if status >= 400 else 500)
    if reason in ("API_KEY_INVALID", "API_KEY_EXPIRED"):
        mapped = 401
    return upstream_status_error(
        target,
        mapped,
        message,
        headers=headers,
        code=reason or rpc_status or None,
        retry_after=_retry_delay(details),
    )


# -- requests ---------------------------------------------------------------------------------------------------


def _reject_unsupported(body: ChatCompletionRequest, target: Target) -> None:
    raw = cast("Mapping[str, Any]", body)
    for name, why in _REJECTED_FIELDS.items():
        if raw.get(name) not in (None, False, {}):
            raise UnsupportedFeatureError(
                f"{target.label} (Gemini) does not support '{name}': {why}; remove it, route to a deployment that "
                f"supports it, or list '{name}' in this deployment's drop_params",
                param=name,
            )
    if body.get("logprobs") or body.get("top_logprobs"):
        raise UnsupportedFeatureError(
            f"{target.label} (Gemini): polyroute does not translate Gemini logprobs; remove 'logprobs' / "
            "'top_logprobs' or route to a deployment that supports them",
            param="logprobs",
        )
    modalities = body.get("modalities") or []
    if any(m != "text" for m in modalities):
        raise UnsupportedFeatureError(
            f"{target.label} (Gemini): only text output is translated; remove 'modalities' {modalities!r}",
            param="modalities",
        )


def _native_fields(body: ChatCompletionRequest) -> dict[str, Any]:
    """Body fields that are not Chat Completions fields (the SDK's ``extra_body``): Gemini's own, sent as they are
    (``safetySettings``, ``cachedContent``, ``generationConfig: {topK}``…), merged like ``deployment.params``.
    ``top_k``, the one sampling knob other providers take at the top level, goes to ``generationConfig.topK``.
    """
    extra = {k: v for k, v in body.items() if k not in OPENAI_REQUEST_FIELDS}
    if "top_k" in extra:
        extra = _merged(extra, {"generationConfig": {"topK": extra.pop("top_k")}})
    return extra


def _endpoint(target: Target, stream: bool) -> tuple[str, dict[str, str]]:
    """``POST {base}/v1beta/models/{model}:generateContent`` (generative_service.proto HTTP bindings).

    The key goes in the ``x-goog-api-key`` header only, never as ``?key=`` (URLs end up in logs).
    """
    base = target.api_base.rstrip("/")
    if not re.search(r"/v1(alpha|beta)?\d*$", base):
        base += "/v1beta"
    model = target.model
    if not model.startswith(("models/", "tunedModels/")):
        model = f"models/{model}"
    path = quote(model, safe="/-._~")
    url = f"{base}/{path}:streamGenerateContent?alt=sse" if stream else f"{base}/{path}:generateContent"
    headers = {
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
        **target.auth_headers(),
    }
    headers.update(target.deployment.headers)
    return url, headers


def _to_native_contents(messages: Sequence[Message], target: Target) -> tuple[list[dict[str, Any]], list[Any]]:
    """OpenAI messages → (``systemInstruction`` parts, ``contents``)."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool-call id (as sent, and without the signature) → function name
    attached: list[dict[str, Any]] = []  # media of the tool results being gathered, sent after their responses
    turn = 0  # the content after the last user message: where the current turn starts (thought-signature rules)

    def append(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for position, message in enumerate(messages):
        role = message["role"]
        if attached and role not in ("tool", "function"):
            append("user", attached)  # after every functionResponse of the turn, as Gemini pairs them with calls
            attached = []
        match role:
            case "system" | "developer":
                system.extend(_to_native_text_parts(message.get("content"), target, position, role))
            case "user":
                parts = _to_native_user_parts(message.get("content"), target, position)
                append("user", parts)
                turn = len(contents) if parts else turn
            case "assistant":
                append("model", _to_native_model_parts(message, names, target, position))
            case "tool" | "function":
                response, media = _to_native_function_response(message, names, target, position)
                append("user", [response])
                attached += media
            case _:  # pragma: no cover - validation admits only the roles above
                raise UnsupportedFeatureError(f"messages[{position}]: role {role!r} cannot be sent to Gemini")
    append("user", attached)
    if contents and _needs_signatures(target.model) and _fill_missing_signatures(contents, turn):
        logger.warning(
            "polyroute: %s: a tool call in this turn came back without its thought signature and this router no "
            "longer has it (a new process or a stored conversation); sent Gemini's documented placeholder "
            "signature instead. Keep tool-call ids (or provider_specific_fields) as returned to avoid it",
            target.label,
        )
    return system, contents


def _to_native_text_parts(content: Any, target: Target, position: int, role: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []  # Gemini refuses an empty text part
    out: list[dict[str, Any]] = []
    for part in cast("list[ContentPart]", content):
        if part.get("type") != "text":
            raise UnsupportedFeatureError(
                f"messages[{position}] ({role}): Gemini takes only text here, not a {part.get('type')!r} part; move "
                "it to a user message",
                param="messages",
            )
        if part.get("text"):
            out.append({"text": part.get("text", "")})
    return out


def _to_native_user_parts(content: Any, target: Target, position: int) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts = [_to_native_part(part, target, position) for part in cast("list[ContentPart]", content)]
    return [part for part in parts if part.get("text", True)]  # Gemini refuses an empty text part


def _to_native_part(part: ContentPart, target: Target, position: int) -> dict[str, Any]:
    """One OpenAI content part → one Gemini ``Part`` (content.proto ``Part.data``)."""
    kind = part.get("type")
    match kind:
        case "text":
            return {"text": part.get("text", "")}
        case "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            return _to_native_media(url, None, target, position, "image")
        case "file":
            file = part.get("file") or {}
            data = file.get("file_data")
            if data:
                # a data: URL, or a file by URL (a Responses input_file's file_url); else bare base64, named by its file
                if not data.startswith(("data:", "http://", "https://", "gs://")):
                    mime = mimetypes.guess_type(file.get("filename") or "")[0] or "application/pdf"
                    return {"inlineData": {"mimeType": mime, "data": data}}
                return _to_native_media(data, file.get("filename"), target, position, "file")
            file_id = file.get("file_id") or ""
            if file_id.startswith("files/"):
                return {"fileData": {"fileUri": f"{target.api_base.rstrip('/')}/v1beta/{file_id}"}}
            if file_id.startswith("https://"):
                return {"fileData": {"fileUri": file_id}}
            raise UnsupportedFeatureError(
                f"messages[{position}]: Gemini cannot read file_id {file_id!r}; send the file as file_data (a data "
                "URL) or as a Gemini Files API name ('files/...')",
                param="messages",
            )
        case "input_audio":
            audio = part.get("input_audio") or {}
            fmt = str(audio.get("format") or "wav")
            mime = {"mp3": "audio/mp3", "wav": "audio/wav"}.get(fmt, f"audio/{fmt}")
            return {"inlineData": {"mimeType": mime, "data": audio.get("data", "")}}
        case _:
            raise UnsupportedFeatureError(
                f"messages[{position}]: Gemini cannot take a {kind!r} content part; send text, image_url, file or "
                "input_audio",
                param="messages",
            )


def _to_native_media(url: str, filename: str | None, target: Target, position: int, what: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, _, data = url[5:].partition(",")
        mime, _, encoding = header.partition(";")
        if encoding != "base64":
            raise UnsupportedFeatureError(
                f"messages[{position}]: the {what} data URL must be base64 ('data:<mime>;base64,...')",
                param="messages",
            )
        mime = mime or mimetypes.guess_type(filename or "")[0] or "application/octet-stream"
        return {"inlineData": {"mimeType": mime, "data": data}}
    scheme = urlsplit(url).scheme
    if scheme in ("http", "https", "gs"):
        file_data: dict[str, Any] = {"fileUri": url}
        mime = _mime_from_url(url)
        if mime:
            file_data["mimeType"] = mime
        return {"fileData": file_data}
    raise UnsupportedFeatureError(
        f"messages[{position}]: Gemini cannot fetch a {what} from {url[:40]!r}; send a data URL or an http(s) URL",
        param="messages",
    )


def _mime_from_url(url: str) -> str | None:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host.endswith(("youtube.com", "youtu.be")):
        return "video/mp4"
    return mimetypes.guess_type(parts.path)[0]


def _to_native_model_parts(
    message: Message, names: dict[str, str], target: Target, position: int
) -> list[dict[str, Any]]:
    """An assistant message → ``model`` parts: its text (its signature back on the last text part), then its calls.

    Each call gets back the ``thoughtSignature`` it came with (see the module docstring for where it is found).
    """
    parts: list[dict[str, Any]] = []
    content = message.get("content")
    if isinstance(content, str):
        if content:
            parts.append({"text": content})
    elif content is not None:
        for part in content:
            kind = part.get("type")
            if kind == "text":
                if part.get("text"):  # an empty text part is refused ("empty text parameter")
                    parts.append({"text": part.get("text", "")})
            elif kind != "refusal":
                raise UnsupportedFeatureError(
                    f"messages[{position}] (assistant): Gemini takes only text here, not a {kind!r} part",
                    param="messages",
                )
    extra = cast("Mapping[str, Any]", message).get("provider_specific_fields")
    text_signature = cast("Mapping[str, Any]", extra).get("thought_signature") if isinstance(extra, Mapping) else None
    if isinstance(text_signature, str) and text_signature:
        texts = [p for p in parts if "text" in p]
        if texts:
            texts[-1]["thoughtSignature"] = text_signature
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        name = function.get("name", "")
        call_id = call.get("id") or ""
        base_id, signature = split_tool_call_id(call_id)
        names[call_id] = names[base_id] = name
        arguments = function.get("arguments") or "{}"
        try:
            args: Any = loads(arguments) if arguments.strip() else {}
        except ValueError as exc:
            raise UnsupportedFeatureError(
                f"messages[{position}]: tool call {name!r} has arguments that are not JSON; Gemini needs a JSON object",
                param="messages",
            ) from exc
        if not isinstance(args, dict):
            args = {"value": args}
        fc: dict[str, Any] = {"name": name, "args": args}
        if base_id:
            fc["id"] = base_id
        native: dict[str, Any] = {"functionCall": fc}
        signature = _signature_of(call) or signature
        if not signature and target.thinking_store is not None:
            signature = target.thinking_store.signature_for(base_id)  # a client that rewrote or shortened the id
        if signature:
            native["thoughtSignature"] = signature
        parts.append(native)
    return parts


def _signature_of(call: ToolCall) -> str | None:
    raw = cast("Mapping[str, Any]", call)
    fields = raw.get("provider_specific_fields")
    if isinstance(fields, Mapping):
        value = cast("Mapping[str, Any]", fields).get("thought_signature")
        if isinstance(value, str) and value:
            return value
    extra = raw.get("extra_content")
    if isinstance(extra, Mapping):
        google = cast("Mapping[str, Any]", extra).get("google")
        if isinstance(google, Mapping):
            value = cast("Mapping[str, Any]", google).get("thought_signature")
            if isinstance(value, str) and value:
                return value
    return None


def _to_native_function_response(
    message: Message, names: Mapping[str, str], target: Target, position: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A ``tool`` message → a ``functionResponse`` part, named after the call it answers, and the parts to send after
    the turn's function responses (its images or files that cannot ride inside it).

    content.proto ``FunctionResponse``: ``response`` is a Struct (the docs' convention is an ``output`` key: the
    result's text); ``parts`` are ``FunctionResponsePart`` s, media "that constitute a function response". Gemini 3
    reads images and documents there (ai.google.dev/gemini-api/docs/function-calling, "Multimodal function
    responses": PNG, JPEG, WebP, PDF, plain text), inline bytes only on the Gemini API (its
    ``FunctionResponsePart`` has ``inline_data`` alone), and URIs too on Vertex AI (a recorded Vertex request,
    pydantic-ai ``test_multimodal_tool_return_matrix[direct-url-image-google_vertex]``, sends ``file_data`` there).
    Older models refuse ``parts``, and any model takes media as ordinary parts of the same user turn: those go after
    the turn's function responses, each result's media announced by a text part naming its function, so the model
    sees the image rather than its base64.
    """
    call_id = message.get("tool_call_id") or ""
    base_id, _ = split_tool_call_id(call_id)
    name = names.get(call_id) or names.get(base_id) or message.get("name")
    if not name:
        raise UnsupportedFeatureError(
            f"messages[{position}]: tool result {call_id!r} answers no earlier assistant tool call; Gemini needs the "
            "function name, so keep the assistant message with its tool_calls in the history",
            param="messages",
        )
    content = message.get("content")
    nested: list[dict[str, Any]] = []
    after: list[dict[str, Any]] = []
    if isinstance(content, list):
        pieces: list[str] = []
        for part in content:
            kind = part.get("type")
            if kind == "text":
                pieces.append(part.get("text", ""))
            elif kind in ("image_url", "file"):
                media = _to_native_part(part, target, position)
                inside = _inside_function_response(media, target)
                if inside is not None:
                    nested.append(inside)
                else:
                    after.append(media)
            else:
                raise UnsupportedFeatureError(
                    f"messages[{position}]: a Gemini tool result takes text, image_url and file parts, not a {kind!r} "
                    "part",
                    param="messages",
                )
        text = "".join(pieces)
    else:
        text = content or ""
    response: dict[str, Any] = {"name": name, "response": {"output": text}}
    if base_id:
        response["id"] = base_id
    if nested:
        response["parts"] = nested
    if after:
        after.insert(0, {"text": f"The result of the {name} function call{f' {base_id}' if base_id else ''} includes:"})
    return {"functionResponse": response}, after


FUNCTION_RESPONSE_MEDIA = frozenset({"image/png", "image/jpeg", "image/webp", "application/pdf", "text/plain"})
"""What Gemini 3 reads inside a ``functionResponse`` (function-calling docs, "Multimodal function responses"; the
list pydantic-ai's Google profile keeps as ``GOOGLE_NATIVE_TOOL_RETURN_MIME_TYPES``)."""


def _inside_function_response(media: Mapping[str, Any], target: Target) -> dict[str, Any] | None:
    """``media`` (an ``inlineData`` or ``fileData`` part) as a ``FunctionResponsePart``, or None where it must go
    beside the response: a model before Gemini 3 (or one whose version the name does not tell), a MIME type the
    docs do not list, a URI on the Gemini API.
    """
    version = _model_version(target.model)
    if version is None or version[0] < 3:
        return None
    blob = cast("Mapping[str, Any]", media.get("inlineData") or media.get("fileData") or {})
    if str(blob.get("mimeType") or "").lower() not in FUNCTION_RESPONSE_MEDIA:
        return None
    if "inlineData" in media:
        return {"inlineData": {"mimeType": blob["mimeType"], "data": blob.get("data", "")}}
    if target.spec.adapter == "vertex":
        return {"fileData": dict(blob)}
    return None


def _fill_missing_signatures(contents: list[dict[str, Any]], turn: int) -> bool:
    """Give each current-turn step whose calls lost their signature the documented placeholder; whether any did.

    Gemini 3 validates signatures on the current turn's function calls only: those after the last user message that
    is more than function results (``turn``: the index of the content after it; the media polyroute sends beside
    function responses do not start a turn).
    """
    filled = False
    for content in contents[turn:]:
        if content["role"] != "model":
            continue
        calls = [p for p in content["parts"] if "functionCall" in p]
        if calls and not any("thoughtSignature" in p for p in calls):
            calls[0]["thoughtSignature"] = SKIP_SIGNATURE
            filled = True
    return filled


def _model_version(model: str) -> tuple[int, int] | None:
    found = re.search(r"gemini-(\d+)(?:\.(\d+))?", model)
    if not found:
        return None
    return int(found.group(1)), int(found.group(2) or 0)


def _needs_signatures(model: str) -> bool:
    version = _model_version(model)
    return version is None or version[0] >= 3


def _to_function_declaration(tool: Mapping[str, Any], target: Target) -> dict[str, Any]:
    """An OpenAI tool → a ``FunctionDeclaration`` (content.proto): ``parametersJsonSchema`` takes JSON Schema as is."""
    if tool.get("type", "function") != "function":
        raise UnsupportedFeatureError(
            f"{target.label} (Gemini) takes function tools only, not {tool.get('type')!r}", param="tools"
        )
    function = cast("Mapping[str, Any]", tool.get("function") or {})
    declaration: dict[str, Any] = {"name": function.get("name", ""), "description": function.get("description", "")}
    parameters = function.get("parameters")
    if parameters:
        version = _model_version(target.model)
        if version is not None and version[0] < 2:
            declaration["parameters"] = _to_native_schema(parameters, parameters, ())
        else:
            declaration["parametersJsonSchema"] = _to_gemini_json_schema(parameters)
    return declaration


_JSON_SCHEMA_KEYS = frozenset(
    {
        "type", "format", "title", "description", "enum", "minItems", "maxItems", "minimum", "maximum", "required",
        "propertyOrdering", "nullable",
    }
)  # fmt: skip
"""Keywords ``responseJsonSchema`` / ``parametersJsonSchema`` honour as they are (besides ``$``-keywords and the
sub-schema ones); generative_service.proto, ``GenerationConfig.response_json_schema``."""


def _to_gemini_json_schema(schema: Any) -> Any:
    """JSON Schema → the subset Gemini's ``responseJsonSchema`` / ``parametersJsonSchema`` honour, in one pass.

    Gemini ignores the keywords it does not support, so ``exclusiveMinimum``, ``multipleOf``, ``minLength``,
    ``maxLength``, ``pattern``, ``uniqueItems``, ``default``… move into the node's ``description`` (``{minLength:
    2}``): the model still reads them and the caller's validation still enforces them. ``const`` becomes a
    one-value ``enum``, a one-part ``allOf`` (older pydantic's wrapper of a described ``$ref``) a one-part
    ``anyOf``. A ``$ref`` may carry no sibling other than ``$``-keywords, so a ``$ref`` with a description (pydantic
    writes one for a described nested model) becomes ``{"anyOf": [{"$ref"}], "description"}``.
    """
    if not isinstance(schema, Mapping):
        return schema
    node = cast("Mapping[str, Any]", schema)
    out: dict[str, Any] = {}
    moved: list[tuple[str, Any]] = []
    for key, value in node.items():
        match key:
            case "properties" | "$defs" | "definitions" if isinstance(value, Mapping):
                out[key] = {str(k): _to_gemini_json_schema(v) for k, v in cast("Mapping[str, Any]", value).items()}
            case "anyOf" | "oneOf" | "prefixItems" if isinstance(value, list):
                out[key] = [_to_gemini_json_schema(v) for v in cast("list[Any]", value)]
            case "allOf" if isinstance(value, list) and len(cast("list[Any]", value)) == 1 and "anyOf" not in node:
                out["anyOf"] = [_to_gemini_json_schema(cast("list[Any]", value)[0])]  # one part: the same constraint
            case "items" | "additionalProperties" if isinstance(value, Mapping):
                out[key] = _to_gemini_json_schema(value)
            case "additionalProperties" | "items":
                out[key] = value
            case "const":
                out["enum"] = [value]
            case _ if key in _JSON_SCHEMA_KEYS or key.startswith("$"):
                out[key] = value
            case _:
                moved.append((key, node[key]))
    if moved:
        note = "{" + ", ".join(f"{k}: {v if isinstance(v, str) else dumps(v).decode()}" for k, v in moved) + "}"
        out["description"] = f"{out['description']}\n\n{note}" if out.get("description") else note
    if "$ref" in out:
        siblings = {k: out.pop(k) for k in list(out) if not k.startswith("$")}
        if siblings:
            ref = {k: out.pop(k) for k in list(out) if k in ("$ref",)}
            return {**out, "anyOf": [ref], **siblings}
    return out


_SCHEMA_KEYS = {
    "format": "format",
    "title": "title",
    "description": "description",
    "nullable": "nullable",
    "enum": "enum",
    "maxItems": "maxItems",
    "minItems": "minItems",
    "required": "required",
    "minProperties": "minProperties",
    "maxProperties": "maxProperties",
    "minimum": "minimum",
    "maximum": "maximum",
    "minLength": "minLength",
    "maxLength": "maxLength",
    "pattern": "pattern",
    "default": "default",
    "propertyOrdering": "propertyOrdering",
}


def _to_native_schema(schema: Any, root: Mapping[str, Any], seen: tuple[str, ...]) -> dict[str, Any]:
    """JSON Schema → the OpenAPI-subset ``Schema`` of content.proto, for models without ``parametersJsonSchema``.

    Loses what that message cannot say (see the module docstring); raises on recursive ``$ref``.
    """
    if not isinstance(schema, Mapping):
        return {}
    node = cast("Mapping[str, Any]", schema)
    ref = node.get("$ref")
    if isinstance(ref, str):
        if ref in seen:
            raise UnsupportedFeatureError(
                f"recursive schema ({ref}) cannot be expressed for this Gemini model; use a Gemini 2+ deployment",
                param="tools",
            )
        target_node: Any = root
        for piece in ref.lstrip("#/").split("/"):
            mapping: Mapping[str, Any] = (
                cast("Mapping[str, Any]", target_node) if isinstance(target_node, Mapping) else {}
            )
            target_node = mapping.get(piece, {})
        return _to_native_schema(target_node, root, (*seen, ref))
    out: dict[str, Any] = {key: node[src] for src, key in _SCHEMA_KEYS.items() if src in node}
    kind = node.get("type")
    if isinstance(kind, list):
        kinds = [str(k) for k in cast("list[Any]", kind)]
        if "null" in kinds:
            out["nullable"] = True
        kinds = [k for k in kinds if k != "null"]
        kind = kinds[0] if kinds else None
    if "const" in node:
        out["enum"] = [node["const"]]
        kind = kind or "string"
    if isinstance(kind, str):
        out["type"] = kind.upper()
    properties = node.get("properties")
    if isinstance(properties, Mapping):
        out["properties"] = {
            str(k): _to_native_schema(v, root, seen) for k, v in cast("Mapping[str, Any]", properties).items()
        }
        out.setdefault("type", "OBJECT")
    if "items" in node:
        out["items"] = _to_native_schema(node["items"], root, seen)
    variants = node.get("anyOf") or node.get("oneOf")
    if isinstance(variants, list):
        options = [_to_native_schema(v, root, seen) for v in cast("list[Any]", variants)]
        if any(o.get("type") == "NULL" for o in options):
            out["nullable"] = True
            options = [o for o in options if o.get("type") != "NULL"]
        if len(options) == 1:
            out.update(options[0])
        else:
            out["anyOf"] = options
    all_of = node.get("allOf")
    if isinstance(all_of, list):
        for piece in cast("list[Any]", all_of):
            out.update(_to_native_schema(piece, root, seen))
    moved = [(k, v) for k, v in node.items() if k not in _SCHEMA_KEYS and k not in _STRUCTURE_KEYS]
    if moved:  # constraints the Schema message cannot hold: told to the model, still enforced by the caller
        note = "{" + ", ".join(f"{k}: {v if isinstance(v, str) else dumps(v).decode()}" for k, v in moved) + "}"
        out["description"] = f"{out['description']}\n\n{note}" if out.get("description") else note
    return out


_STRUCTURE_KEYS = frozenset(
    {
        "type", "const", "properties", "items", "anyOf", "oneOf", "allOf", "$ref", "$defs", "definitions", "$schema",
        "$id", "additionalProperties", "examples",
    }
)  # fmt: skip
"""Keywords :func:`_to_native_schema` translates or drops without loss to the caller (not moved to descriptions)."""


def _to_tool_config(
    choice: Any, declarations: list[dict[str, Any]], target: Target
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """``tool_choice`` → ``functionCallingConfig`` (content.proto ``FunctionCallingConfig.Mode``)."""
    if choice is None:
        return declarations, None
    if isinstance(choice, str):
        match choice:
            case "auto":
                return declarations, {"mode": "AUTO"}
            case "none":
                return declarations, {"mode": "NONE"}
            case "required":
                return declarations, {"mode": "ANY"}
            case _:
                raise UnsupportedFeatureError(f"unknown tool_choice {choice!r}", param="tool_choice")
    choice = cast("Mapping[str, Any]", choice)
    kind = choice.get("type")
    if kind == "function":
        function = cast("Mapping[str, Any]", choice.get("function") or {})
        name = str(function.get("name") or "")
        return declarations, {"mode": "ANY", "allowedFunctionNames": [name]}
    if kind == "allowed_tools":
        allowed = cast("Mapping[str, Any]", choice.get("allowed_tools") or {})
        names = {
            str(cast("Mapping[str, Any]", t.get("function") or {}).get("name"))
            for t in cast("list[Mapping[str, Any]]", allowed.get("tools") or [])
        }
        kept = [d for d in declarations if d["name"] in names]
        return kept, {"mode": "ANY" if allowed.get("mode") == "required" else "AUTO"}
    raise UnsupportedFeatureError(f"{target.label} (Gemini) cannot honour tool_choice {kind!r}", param="tool_choice")


def _to_generation_config(body: ChatCompletionRequest, target: Target) -> dict[str, Any]:
    """Sampling and output settings → ``GenerationConfig`` (generative_service.proto)."""
    config: dict[str, Any] = {}
    pairs: Iterable[tuple[str, str]] = (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("n", "candidateCount"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    )
    raw = cast("Mapping[str, Any]", body)
    for ours, theirs in pairs:
        if raw.get(ours) is not None:
            config[theirs] = raw[ours]
    if config.get("candidateCount") == 1:
        del config["candidateCount"]
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    response_format = body.get("response_format") or {}
    match response_format.get("type"):
        case "json_schema":
            config["responseMimeType"] = "application/json"
            schema: Any = cast("Mapping[str, Any]", response_format.get("json_schema") or {}).get("schema")
            if schema:
                config["responseJsonSchema"] = _to_gemini_json_schema(schema)
        case "json_object":
            config["responseMimeType"] = "application/json"
        case "text" | None:
            pass
        case other:
            raise UnsupportedFeatureError(f"Gemini cannot honour response_format {other!r}", param="response_format")
    effort = body.get("reasoning_effort")
    if effort:
        thinking = _to_thinking_config(effort, target.model)
        if thinking is not None:
            config["thinkingConfig"] = thinking
    return config


_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768, "max": 32768}


def _to_thinking_config(effort: str, model: str) -> dict[str, Any] | None:
    """``reasoning_effort`` → ``thinkingConfig`` (https://ai.google.dev/gemini-api/docs/thinking).

    Gemini 3 and later take ``thinkingLevel``: Pro models know only ``low`` and ``high`` (none/minimal/low → low,
    medium and up → high), others ``minimal``/``low``/``medium``/``high`` (none → minimal: Gemini 3 cannot switch
    thinking off). Gemini 2.5 takes ``thinkingBudget`` tokens: none 0 (Pro: 128, its minimum), minimal 512, low 1024,
    medium 8192, high 24576, xhigh and max 32768 (Flash: 24576, its maximum). Thought summaries are asked for
    (``includeThoughts``) so they come back as ``reasoning_content``, except for ``none``. Models before 2.5 do not
    think: the setting is dropped.
    """
    version = _model_version(model)
    pro = "pro" in model
    include = effort != "none"
    if version is None or version[0] >= 3:
        if pro:
            level = "low" if effort in ("none", "minimal", "low") else "high"
        else:
            level = {"none": "minimal", "xhigh": "high", "max": "high"}.get(effort, effort)
        return {"thinkingLevel": level, "includeThoughts": include}
    if version < (2, 5):
        return None
    budget = _BUDGETS.get(effort, 8192)
    if pro:
        budget = max(budget, 128)
    elif budget > 24576:
        budget = 24576
    config: dict[str, Any] = {"thinkingBudget": budget}
    if include and budget:
        config["includeThoughts"] = True
    return config


def _merged(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        current = out.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            out[key] = _merged(cast("dict[str, Any]", current), cast("Mapping[str, Any]", value))
        else:
            out[key] = value
    return out


# -- tool-call ids and signatures -------------------------------------------------------------------------------


def join_tool_call_id(call_id: str, signature: str | None) -> str:
    """A tool-call id carrying ``signature`` (URL-safe base64 after :data:`SIGNATURE_MARK`), or ``call_id``."""
    if not signature:
        return call_id
    compact = signature.replace("+", "-").replace("/", "_").rstrip("=")
    return f"{call_id}{SIGNATURE_MARK}{compact}"


def split_tool_call_id(call_id: str) -> tuple[str, str | None]:
    """``(id, signature)`` from an id made by :func:`join_tool_call_id` (signature back in standard base64)."""
    base, mark, compact = call_id.partition(SIGNATURE_MARK)
    if not mark or not compact:
        return call_id, None
    signature = compact.replace("-", "+").replace("_", "/")
    signature += "=" * (-len(signature) % 4)
    try:
        base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return call_id, None  # not ours: an id that merely contains the mark
    return base, signature


def _native_call_id(function_call: Mapping[str, Any], response_id: str, candidate: int, position: int) -> str:
    """Gemini's own id when it sends one, else stable for this response (same streamed or not)."""
    given = function_call.get("id")
    if isinstance(given, str) and given:
        return given
    if not response_id:
        return tool_call_id()
    digest = hashlib.sha256(f"{response_id}:{candidate}:{position}".encode()).hexdigest()[:24]
    return f"call_{digest}"


# -- responses --------------------------------------------------------------------------------------------------


def _candidates(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        cast("dict[str, Any]", c) for c in cast("list[Any]", response.get("candidates") or []) if isinstance(c, dict)
    ]


def _candidate_index(candidate: Mapping[str, Any]) -> int:
    index = candidate.get("index")
    return index if isinstance(index, int) else 0


def _parts(candidate: Mapping[str, Any]) -> list[dict[str, Any]]:
    content = candidate.get("content")
    if not isinstance(content, dict):
        return []
    parts: list[Any] = cast("dict[str, Any]", content).get("parts") or []
    return [cast("dict[str, Any]", p) for p in parts if isinstance(p, dict)]


def _arguments(args: Any) -> str:
    return json.dumps(args if args is not None else {}, ensure_ascii=False, separators=(",", ":"))


def _from_native_parts(
    parts: Sequence[Mapping[str, Any]], response_id: str, candidate: int
) -> tuple[str, str, list[ToolCall], str | None]:
    """A candidate's parts → (text, reasoning, tool calls, the text signature)."""
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    text_signature: str | None = None
    pending: _StreamedCall | None = None  # a call whose arguments come in partialArgs pieces (Vertex AI)

    def close_pending() -> None:
        nonlocal pending
        if pending is not None:
            calls[-1]["function"]["arguments"] = _arguments(pending.args)
            pending = None

    for part in parts:
        signature = part.get("thoughtSignature")
        function_call = part.get("functionCall")
        if isinstance(function_call, dict):
            fc = cast("dict[str, Any]", function_call)
            partial = fc.get("partialArgs")
            if fc.get("name"):
                close_pending()
                call_id = _native_call_id(fc, response_id, candidate, len(calls))
                call: ToolCall = {
                    "id": join_tool_call_id(call_id, signature),
                    "type": "function",
                    "function": {"name": str(fc["name"]), "arguments": _arguments(fc.get("args"))},
                }
                if signature:
                    call["provider_specific_fields"] = {"thought_signature": signature}
                calls.append(call)
                if fc.get("willContinue"):
                    pending = _StreamedCall((candidate, len(calls) - 1))
            elif isinstance(partial, list) and pending is not None:
                for piece in cast("list[Any]", partial):
                    if isinstance(piece, dict):
                        pending.add(cast("dict[str, Any]", piece))
            elif not fc.get("willContinue"):
                close_pending()
            continue
        if signature:
            text_signature = signature
        value = part.get("text")
        if isinstance(value, str):
            (reasoning if part.get("thought") else text).append(value)
        # inlineData (image output), executableCode and codeExecutionResult (server-side code execution) have no
        # Chat Completions form; they are left out rather than mangled into text.
    close_pending()
    return "".join(text), "".join(reasoning), calls, text_signature


def _from_native_finish(reason: Any, has_calls: bool) -> FinishReason:
    mapped = _FINISH_REASONS.get(str(reason), "stop") if reason else "stop"
    if mapped == "stop" and has_calls:
        return "tool_calls"
    return mapped


def _filter_message(reason: Any, target: Target) -> str:
    return f"{target.label} (Gemini) stopped the answer: finishReason {reason}"


def _prompt_block_message(response: Mapping[str, Any], target: Target) -> str | None:
    feedback = response.get("promptFeedback")
    if not isinstance(feedback, dict):
        return None
    reason = cast("dict[str, Any]", feedback).get("blockReason")
    if not reason:
        return None
    return (
        f"{target.label} (Gemini) blocked the prompt (promptFeedback.blockReason {reason}); no answer was generated. "
        "Rephrase the request or adjust the deployment's safetySettings."
    )


def _from_native_usage(metadata: Any) -> Usage | None:
    """``usageMetadata`` → OpenAI usage (generative_service.proto ``UsageMetadata``)."""
    if not isinstance(metadata, dict):
        return None
    m = cast("dict[str, Any]", metadata)
    if not any(k in m for k in ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount")):
        return None
    prompt = int(m.get("promptTokenCount") or 0) + int(m.get("toolUsePromptTokenCount") or 0)
    thoughts = int(m.get("thoughtsTokenCount") or 0)
    completion = int(m.get("candidatesTokenCount") or 0) + thoughts
    cached = int(m.get("cachedContentTokenCount") or 0)
    usage: Usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    if thoughts:
        usage["completion_tokens_details"] = {"reasoning_tokens": thoughts}
    return usage


def _completion_id(response_id: str) -> str:
    return f"chatcmpl-{response_id}" if response_id else completion_id()


def _unreadable(target: Target, what: str) -> UpstreamStatusError:
    return UpstreamStatusError(
        f"{target.label} returned {what}", provider=target.provider, deployment=target.label, status=502
    )


def _retry_delay(details: Sequence[Mapping[str, Any]]) -> float | None:
    """``google.rpc.RetryInfo.retryDelay`` (a Duration in JSON: ``"34.4s"``) in seconds."""
    for detail in details:
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str):
                return parse_duration(delay)
            if isinstance(delay, dict):  # the proto3 object form, just in case
                d = cast("dict[str, Any]", delay)
                return float(d.get("seconds") or 0) + float(d.get("nanos") or 0) / 1e9
    return None


# -- streams ----------------------------------------------------------------------------------------------------

_JSON_PATH_TOKEN = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


class _StreamedCall:
    """A function call whose arguments arrive in pieces (Vertex AI ``partialArgs`` with ``willContinue``)."""

    __slots__ = ("args", "key", "open_path")

    def __init__(self, key: tuple[int, int]) -> None:
        self.key = key
        self.args: dict[str, Any] = {}
        self.open_path: str | None = None

    def add(self, piece: Mapping[str, Any]) -> None:
        path = str(piece.get("jsonPath") or "")
        if "stringValue" in piece:
            value: Any = str(piece["stringValue"])
            if self.open_path == path:
                value = str(_get_path(self.args, path) or "") + value
            self.open_path = path if piece.get("willContinue") else None
        else:
            self.open_path = None
            if "numberValue" in piece:
                value = piece["numberValue"]
            elif "boolValue" in piece:
                value = piece["boolValue"]
            elif "nullValue" in piece:
                value = None
            else:
                return
        _set_path(self.args, path, value)


def _path_keys(path: str) -> list[str | int]:
    keys: list[str | int] = []
    for match in _JSON_PATH_TOKEN.finditer(path.removeprefix("$")):
        name, index, quoted1, quoted2 = match.groups()
        if index is not None:
            keys.append(int(index))
        else:
            keys.append(name or quoted1 or quoted2 or "")
    return keys


def _get_path(root: Any, path: str) -> Any:
    node = root
    for key in _path_keys(path):
        if isinstance(key, int):
            if not isinstance(node, list) or key >= len(cast("list[Any]", node)):
                return None
            node = cast("list[Any]", node)[key]
        else:
            if not isinstance(node, dict):
                return None
            node = cast("dict[str, Any]", node).get(key)
    return node


def _set_path(root: dict[str, Any], path: str, value: Any) -> None:
    keys = _path_keys(path)
    if not keys:
        return
    node: Any = root
    for key, following in zip(keys, [*keys[1:], None], strict=True):
        last = following is None
        fresh: Any = value if last else ([] if isinstance(following, int) else {})
        if isinstance(key, int):
            items = cast("list[Any]", node)
            while len(items) <= key:
                items.append(None)
            if last or items[key] is None:
                items[key] = fresh
            node = items[key]
        else:
            mapping = cast("dict[str, Any]", node)
            if last or mapping.get(key) is None:
                mapping[key] = fresh
            node = mapping[key]


class GeminiStreamTranslator:
    """``streamGenerateContent?alt=sse`` events → OpenAI chunks.

    Each event is a partial ``GenerateContentResponse``: new parts per candidate, a ``finishReason`` on a candidate's
    last event, ``usageMetadata`` (cumulative: the last one counts). Byte splitting is the SSE decoder's concern.
    """

    __slots__ = (
        "_blocked",
        "_calls",
        "_finished",
        "_one_call",
        "_pending",
        "_response_id",
        "_seen",
        "builder",
        "target",
    )

    def __init__(self, target: Target, include_usage: bool, one_call: bool = False) -> None:
        self.target = target
        self._one_call = one_call
        """``parallel_tool_calls: false``: a candidate's calls after its first are left out."""
        self.builder = ChunkBuilder(model=target.model, include_usage=include_usage)
        self._response_id = ""
        self._seen: set[int] = set()
        self._finished: set[int] = set()
        self._calls: dict[int, int] = {}
        self._pending: dict[int, _StreamedCall] = {}
        self._blocked = False

    def feed(self, event: SSEEvent) -> list[ChatCompletionChunk]:
        """One ``data:`` event → the chunks it completes."""
        data = event.data.strip()
        if not data or data == "[DONE]":
            return []
        parsed = loads(data)
        if not isinstance(parsed, dict):
            raise _unreadable(self.target, "a stream event that is not a GenerateContentResponse")
        response = cast("dict[str, Any]", parsed)
        if "error" in response:
            raise classify_error(200, {}, data.encode(), self.target)
        if not self._response_id and response.get("responseId"):
            self._response_id = str(response["responseId"])
            self.builder.id = _completion_id(self._response_id)
        if response.get("modelVersion"):
            self.builder.model = str(response["modelVersion"])
        usage = _from_native_usage(response.get("usageMetadata"))
        if usage is not None:
            self.builder.usage = usage
        out: list[ChatCompletionChunk] = []
        candidates = _candidates(response)
        if not candidates and not self._blocked:
            blocked = _prompt_block_message(response, self.target)
            if blocked is not None:
                self._blocked = True
                out.append(self.builder.chunk({"refusal": blocked}))
                out.append(self.builder.finish("content_filter"))
        for candidate in candidates:
            out.extend(self._candidate(candidate))
        return out

    def _candidate(self, candidate: Mapping[str, Any]) -> list[ChatCompletionChunk]:
        index = _candidate_index(candidate)
        self._seen.add(index)
        builder = self.builder
        out: list[ChatCompletionChunk] = []
        for part in _parts(candidate):
            signature = part.get("thoughtSignature")
            function_call = part.get("functionCall")
            if isinstance(function_call, dict):
                out.extend(self._function_call(index, cast("dict[str, Any]", function_call), signature))
                continue
            value = part.get("text")
            if isinstance(value, str) and value:
                out.append(builder.reasoning(value, index) if part.get("thought") else builder.text(value, index))
            if signature:
                delta = cast("Delta", {"provider_specific_fields": {"thought_signature": signature}})
                out.append(builder.chunk(delta, index=index))
        reason = candidate.get("finishReason")
        if reason and index not in self._finished:
            out.extend(self._close_pending(index))
            self._finished.add(index)
            message: str | None = None
            finish = _from_native_finish(reason, self._calls.get(index, 0) > 0)
            if finish == "content_filter" and not self._calls.get(index):
                message = _filter_message(reason, self.target)
                out.append(builder.chunk({"refusal": message}, index=index))
            out.append(builder.finish(finish, index))
        return out

    def _function_call(self, index: int, fc: Mapping[str, Any], signature: Any) -> list[ChatCompletionChunk]:
        builder = self.builder
        out: list[ChatCompletionChunk] = []
        pending = self._pending.get(index)
        name = fc.get("name")
        partial = fc.get("partialArgs")
        if name:
            out.extend(self._close_pending(index))
            position = self._calls.get(index, 0)
            if self._one_call and position:
                return out  # its partialArgs pieces, if any, find no pending call and are ignored too
            self._calls[index] = position + 1
            key = (index, position)
            base_id = _native_call_id(fc, self._response_id, index, position)
            call_id = join_tool_call_id(base_id, signature)
            extra = {"thought_signature": signature} if signature else {}
            if signature and self.target.thinking_store is not None:
                self.target.thinking_store.remember_signature(base_id, str(signature))
            if fc.get("willContinue"):  # arguments follow in partialArgs pieces (Vertex AI)
                self._pending[index] = pending = _StreamedCall(key)
                out.append(builder.tool_call_start(key, call_id, str(name), "", extra, index=index))
            else:
                out.append(builder.tool_call_start(key, call_id, str(name), _arguments(fc.get("args")), extra, index))
        if isinstance(partial, list) and pending is not None:
            for piece in cast("list[Any]", partial):
                if isinstance(piece, dict):
                    pending.add(cast("dict[str, Any]", piece))
        if not name and not partial and not fc.get("willContinue"):
            out.extend(self._close_pending(index))  # an empty functionCall ends a streamed call
        return out

    def _close_pending(self, index: int) -> list[ChatCompletionChunk]:
        pending = self._pending.pop(index, None)
        if pending is None:
            return []
        return [self.builder.tool_call_arguments(pending.key, _arguments(pending.args), index=index)]

    def finish(self) -> list[ChatCompletionChunk]:
        """The stream ended: the usage chunk, or :class:`StreamInterruptedError` if a candidate never finished."""
        if not self._blocked and (not self._seen or self._seen - self._finished):
            raise StreamInterruptedError(
                f"{self.target.label} ended the stream without a finishReason",
                provider=self.target.provider,
                deployment=self.target.label,
                status=502,
            )
        if self.builder.usage is None:
            return []
        chunk = self.builder.usage_chunk(self.builder.usage)
        return [chunk] if chunk is not None else []
