"""Amazon Bedrock's Converse and ConverseStream APIs, translated to and from Chat Completions.

Docs cited below live under https://docs.aws.amazon.com/bedrock/latest/ ("APIReference/API_runtime_Converse.html",
"userguide/...").

**Translation through the Messages shape.** Converse is the Messages API in other clothes (blocks per turn, tool
use and results paired across turns, signed reasoning blocks, cache points), and its validation rules are Claude's
(empty content, tool pairing, "Thinking may not be enabled when tool_choice forces tool use": see the corpus
errors). So a request is built by :func:`polyroute.providers.anthropic.native_body` (history repair, blank text
left out, thinking restored from the router's store or turned off where the API would refuse it, forced tools,
structured output) and that body is then mapped block by block (:func:`to_converse`); answers and stream events
are mapped back to the Messages shape and read by the Anthropic adapter's own code. One set of rules, two wires.

**Mapping.** ``system`` text → ``system`` blocks; ``cache_control`` on a block, a message or a tool → a
``cachePoint`` after it; images (data URLs only: Converse takes bytes or S3, never a URL) → ``image``; PDF and
text documents → ``document`` (with the ``name`` Converse requires); ``tool_use`` / ``tool_result`` →
``toolUse`` / ``toolResult``; thinking and redacted thinking → ``reasoningContent`` (``reasoningText`` with its
``signature``, ``redactedContent``); ``max_tokens``, ``temperature``, ``top_p``, ``stop_sequences`` →
``inferenceConfig``; ``tools`` → ``toolConfig`` (``tool_choice`` none → no ``toolChoice``, and no tools unless the
history uses some, which Converse then requires declared; ``parallel_tool_calls: false``, which Converse cannot
carry, keeps an answer's first call); ``thinking``, ``top_k`` and any other model field →
``additionalModelRequestFields``; structured output → ``outputConfig.textFormat``. Converse's own fields
(``guardrailConfig``, ``performanceConfig``, ``serviceTier``, ``requestMetadata``…) pass through from the SDK's
``extra_body`` or the deployment's ``params`` (guardrails by config: ``params: {guardrailConfig: {...}}``).

**Reasoning across providers.** Signed thinking blocks are carried to Claude models only, and only when this request
has thinking on; other Bedrock models (Nova, Llama, Mistral, DeepSeek…) get the turn without them, as they cannot
verify a Claude signature. A Claude turn that lost its blocks has thinking turned off for that request (the
Anthropic adapter's rule), so a failover from Anthropic's API to Claude on Bedrock never meets a 400 for them.

**Auth.** A Bedrock API key (``api_key``, ``api_key_env`` or ``AWS_BEARER_TOKEN_BEDROCK``) is sent as a bearer
token; otherwise the request is SigV4-signed with botocore's signer, from the deployment's ``aws_access_key_id`` /
``aws_secret_access_key`` / ``aws_session_token``, else its ``aws_profile``, else botocore's credential chain.
botocore is imported on the first Bedrock request (``pip install "polyroute[bedrock]"``).

**Model ids.** Foundation models (``anthropic.claude-…``), cross-region inference profiles (``us.anthropic.…``,
``global.…``) and ARNs (inference profiles, provisioned throughput): URL-encoded into the path.

**Streams** are AWS event streams (``application/vnd.amazon.eventstream``): binary frames decoded with botocore's
``EventStreamBuffer`` at any byte split; exception frames (``throttlingException``…) raise like their HTTP peers.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import threading
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import quote

from polyroute._sse import SSEEvent
from polyroute.errors import UnsupportedFeatureError, UpstreamStatusError
from polyroute.providers import anthropic
from polyroute.providers._base import (
    Target,
    UpstreamRequest,
    completion_id,
    credentials_error,
    dumps,
    generic_status_error,
    include_usage,
    loads,
    upstream_status_error,
)
from polyroute.types.openai import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest

logger = logging.getLogger("polyroute")

SERVICE = "bedrock"
"""The SigV4 signing name of ``bedrock-runtime``."""

CONVERSE_FIELDS = frozenset(
    {
        "guardrailConfig",
        "additionalModelRequestFields",
        "promptVariables",
        "additionalModelResponseFieldPaths",
        "requestMetadata",
        "performanceConfig",
        "serviceTier",
        "outputConfig",
    }
)
"""ConverseRequest members besides messages, system, inferenceConfig and toolConfig: passed through as given."""

_MESSAGES_ONLY = frozenset({"model", "messages", "system", "max_tokens", "temperature", "top_p", "stop_sequences"})
_MESSAGES_MAPPED = frozenset({"tools", "tool_choice", "thinking", "output_config", "metadata", "stream"})
_DOC_NAME = re.compile(r"[^A-Za-z0-9 \-()\[\]]")
_DOC_FORMATS: Mapping[str, str] = {
    "application/pdf": "pdf",
    "text/plain": "txt",
    "text/csv": "csv",
    "text/html": "html",
    "text/markdown": "md",
}


def is_claude(model: str) -> bool:
    """Whether a Bedrock model id (foundation model, inference profile or ARN) names a Claude model."""
    return "anthropic." in model or "claude" in model


# -- requests -----------------------------------------------------------------------------------------------------


def build_request(body: ChatCompletionRequest, target: Target) -> UpstreamRequest:
    """The ``POST /model/{modelId}/converse`` (or ``converse-stream``) request, authenticated."""
    try:
        native = anthropic.native_body(body, target)
    except UnsupportedFeatureError as exc:  # the shared rules speak of the Messages API; this deployment is Bedrock
        raise UnsupportedFeatureError(
            exc.message.replace("(Anthropic Messages API)", "(Bedrock Converse)"), param=exc.param
        ) from exc
    converse = to_converse(native, target)
    stream = bool(body.get("stream"))
    url = endpoint(target, stream)
    content = dumps(converse)
    headers = {
        "content-type": "application/json",
        "accept": "application/vnd.amazon.eventstream" if stream else "application/json",
    }
    headers.update(target.deployment.headers)
    headers.update(_auth_headers(target, url, content, headers))
    return UpstreamRequest("POST", url, headers, content, stream=stream)


def endpoint(target: Target, stream: bool) -> str:
    """``{base}/model/{modelId}/converse[-stream]``; ``{region}`` in the base is the deployment's region."""
    base = target.api_base.rstrip("/")
    if "{region}" in base:
        base = base.replace("{region}", region(target))
    model = quote(target.model, safe="")  # ARNs hold ':' and '/'; inference profile ids hold ':'
    return f"{base}/model/{model}/{'converse-stream' if stream else 'converse'}"


def to_converse(native: Mapping[str, Any], target: Target) -> dict[str, Any]:
    """A Messages API body (from :func:`anthropic.native_body`) → a ConverseRequest body (without ``modelId``)."""
    claude = is_claude(target.model)
    thinking = cast("Mapping[str, Any]", native.get("thinking") or {})
    keep_reasoning = claude and thinking.get("type") in ("enabled", "adaptive")
    out: dict[str, Any] = {"messages": [_to_converse_message(m, target, keep_reasoning) for m in native["messages"]]}
    system = [block for b in native.get("system") or () for block in _to_converse_blocks(b, target)]
    if system:
        out["system"] = system
    inference: dict[str, Any] = {}
    for name, field in (("max_tokens", "maxTokens"), ("temperature", "temperature"), ("top_p", "topP")):
        if native.get(name) is not None:
            inference[field] = native[name]
    if native.get("stop_sequences"):
        inference["stopSequences"] = native["stop_sequences"]
    if inference:
        out["inferenceConfig"] = inference
    tool_config = _to_converse_tool_config(native, out["messages"])
    if tool_config:
        out["toolConfig"] = tool_config
    extra: dict[str, Any] = {}
    if thinking:
        if not claude:
            raise UnsupportedFeatureError(
                f"{target.label}: extended thinking through reasoning_effort is translated for Claude models on "
                "Bedrock only; remove reasoning_effort, pass the model's own field in extra_body "
                "(additionalModelRequestFields), or route to a Claude deployment",
                param="reasoning_effort",
            )
        extra["thinking"] = dict(thinking)
    output_format = cast(
        "Mapping[str, Any]", cast("Mapping[str, Any]", native.get("output_config") or {}).get("format")
    )
    if output_format:
        schema = dumps(output_format.get("schema")).decode()  # a JSON string, not an object (OutputFormatStructure)
        out["outputConfig"] = {
            "textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"name": "response", "schema": schema}}}
        }
    user = cast("Mapping[str, Any]", native.get("metadata") or {}).get("user_id")
    if user:
        out["requestMetadata"] = {"user_id": str(user)[:256]}
    for name, value in native.items():
        if name in _MESSAGES_ONLY or name in _MESSAGES_MAPPED:
            continue
        if name in CONVERSE_FIELDS:
            out[name] = {**out[name], **value} if isinstance(out.get(name), dict) and isinstance(value, dict) else value
        else:
            extra[name] = value  # top_k, anthropic_beta and other model fields
    if extra:
        given = cast("dict[str, Any]", out.get("additionalModelRequestFields") or {})
        out["additionalModelRequestFields"] = {**extra, **given}
    return out


def _to_converse_message(message: Mapping[str, Any], target: Target, keep_reasoning: bool) -> dict[str, Any]:
    content: Any = message["content"]
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    blocks: list[dict[str, Any]] = []
    for block in cast("list[Mapping[str, Any]]", content):
        if block["type"] in ("thinking", "redacted_thinking") and not keep_reasoning:
            continue  # another model cannot check a Claude signature; without thinking on, Claude needs none
        blocks.extend(_to_converse_blocks(block, target))
    return {"role": message["role"], "content": blocks}


def _to_converse_blocks(block: Mapping[str, Any], target: Target) -> list[dict[str, Any]]:
    """One Messages block → its Converse block, and a ``cachePoint`` after it if it had ``cache_control``."""
    out: list[dict[str, Any]] = []
    match block["type"]:
        case "text":
            out.append({"text": block["text"]})
        case "image":
            out.append({"image": _to_converse_image(block, target)})
        case "document":
            out.append({"document": _to_converse_document(block, target)})
        case "tool_use":
            out.append({"toolUse": {"toolUseId": block["id"], "name": block["name"], "input": block.get("input")}})
        case "tool_result":
            out.append({"toolResult": _to_converse_tool_result(block, target)})
        case "thinking":
            text = {"text": block.get("thinking") or "", "signature": block.get("signature") or ""}
            out.append({"reasoningContent": {"reasoningText": text}})
        case "redacted_thinking":
            out.append({"reasoningContent": {"redactedContent": block.get("data") or ""}})
        case other:
            raise UnsupportedFeatureError(
                f"{target.label} (Bedrock Converse) has no {other!r} content block; remove it", param="messages"
            )
    if block.get("cache_control"):
        out.append({"cachePoint": {"type": "default"}})
    return out


def _to_converse_image(block: Mapping[str, Any], target: Target) -> dict[str, Any]:
    source = cast("Mapping[str, Any]", block["source"])
    if source.get("type") != "base64":
        raise UnsupportedFeatureError(
            f"{target.label} (Bedrock Converse) takes images as bytes, not URLs: send the image as a data URL "
            "(data:image/png;base64,...)",
            param="messages",
        )
    media = str(source.get("media_type") or "image/png")
    return {"format": media.split("/", 1)[1], "source": {"bytes": source["data"]}}


def _to_converse_document(block: Mapping[str, Any], target: Target) -> dict[str, Any]:
    source = cast("Mapping[str, Any]", block["source"])
    media = str(source.get("media_type") or "")
    fmt = _DOC_FORMATS.get(media)
    if source.get("type") == "text":
        data = base64.b64encode(str(source.get("data") or "").encode()).decode()
        fmt = fmt or "txt"
    elif source.get("type") == "base64" and fmt is not None:
        data = str(source["data"])
    else:
        raise UnsupportedFeatureError(
            f"{target.label} (Bedrock Converse) takes documents as bytes ({', '.join(_DOC_FORMATS)}); send the file "
            "as file_data",
            param="messages",
        )
    # DocumentBlock.name: alphanumerics, whitespace (one at a time), hyphens, parentheses and brackets only.
    name = re.sub(r"\s+", " ", _DOC_NAME.sub(" ", str(block.get("title") or "document"))).strip() or "document"
    return {"format": fmt, "name": name[:200], "source": {"bytes": data}}


def _to_converse_tool_result(block: Mapping[str, Any], target: Target) -> dict[str, Any]:
    content: Any = block.get("content")
    parts: list[dict[str, Any]] = []
    if isinstance(content, str):
        parts.append({"text": content or "(empty)"})
    else:
        for item in cast("list[Mapping[str, Any]]", content or []):
            parts.extend(b for b in _to_converse_blocks(item, target) if "cachePoint" not in b)
        if not parts:
            parts.append({"text": "(empty)"})  # Converse rejects a blank text block as it does an empty one
    result: dict[str, Any] = {"toolUseId": block["tool_use_id"], "content": parts}
    if block.get("is_error"):
        result["status"] = "error"
    return result


def _to_converse_tool_config(native: Mapping[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """``toolConfig``: tools and ``toolChoice`` (auto / any / tool). Converse has no ``none``: then no tools are
    sent, unless the history holds tool blocks, which Converse accepts only with tools declared.
    """
    tools = cast("list[Mapping[str, Any]]", native.get("tools") or [])
    if not tools:
        return None
    choice = cast("Mapping[str, Any]", native.get("tool_choice") or {})
    history_tools = any("toolUse" in b or "toolResult" in b for m in messages for b in m["content"])
    if choice.get("type") == "none" and not history_tools:
        return None
    specs: list[dict[str, Any]] = []
    for tool in tools:
        spec: dict[str, Any] = {"name": tool["name"], "inputSchema": {"json": tool.get("input_schema")}}
        if tool.get("description"):
            spec["description"] = tool["description"]
        if tool.get("strict"):
            spec["strict"] = True
        specs.append({"toolSpec": spec})
        if tool.get("cache_control"):
            specs.append({"cachePoint": {"type": "default"}})
    config: dict[str, Any] = {"tools": specs}
    match choice.get("type"):
        case "any":
            config["toolChoice"] = {"any": {}}
        case "tool":
            config["toolChoice"] = {"tool": {"name": choice["name"]}}
        case "auto":
            config["toolChoice"] = {"auto": {}}
        case _:
            pass
    return config


# -- auth ---------------------------------------------------------------------------------------------------------

_CREDENTIALS: dict[tuple[str | None, ...], Any] = {}
_CREDENTIALS_LOCK = threading.Lock()


def region(target: Target) -> str:
    """The deployment's ``aws_region``, else ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else its profile's region."""
    d = target.deployment
    found = d.aws_region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not found:
        session = _session(d.aws_profile)
        found = session.get_config_variable("region") if session is not None else None
    if not found:
        raise credentials_error(
            target, "no AWS region: set aws_region in the deployment, or AWS_REGION", "missing_region"
        )
    return str(found)


def signed_headers(target: Target, url: str, content: bytes, headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with the request's auth added (a bearer API key, else SigV4): for other Bedrock Runtime operations
    (``InvokeModel`` for embeddings) signed as Converse is.
    """
    return {**headers, **_auth_headers(target, url, content, headers)}


def _auth_headers(target: Target, url: str, content: bytes, headers: Mapping[str, str]) -> dict[str, str]:
    """A Bedrock API key as a bearer token, else the SigV4 headers (``authorization``, ``x-amz-date``,
    ``x-amz-security-token``) for this exact request.
    """
    bearer = target.auth_headers()
    if bearer:
        return bearer
    try:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
    except ImportError as exc:
        raise credentials_error(
            target, 'Bedrock requests need botocore: pip install "polyroute[bedrock]"', "missing_dependency"
        ) from exc
    request = AWSRequest(method="POST", url=url, data=content, headers=dict(headers))
    signer: Any = SigV4Auth(_credentials(target), SERVICE, region(target))
    signer.add_auth(request)
    signed = {k.lower(): str(v) for k, v in request.headers.items()}
    return {k: v for k, v in signed.items() if k == "authorization" or k.startswith("x-amz-")}


def _credentials(target: Target) -> Any:
    """Frozen credentials for this call: the deployment's keys, else its profile's or botocore's chain (which
    refreshes temporary credentials itself, ahead of expiry). Credential providers are resolved once per source.
    """
    d = target.deployment
    secret = d.aws_secret_access_key.get_secret_value() if d.aws_secret_access_key else None
    if d.aws_access_key_id is not None and secret:
        from botocore.credentials import ReadOnlyCredentials

        token = d.aws_session_token.get_secret_value() if d.aws_session_token else None
        return ReadOnlyCredentials(d.aws_access_key_id.get_secret_value(), secret, token)
    key = (d.aws_profile,)
    found = _CREDENTIALS.get(key)
    if found is None:
        session = _session(d.aws_profile)
        found = session.get_credentials() if session is not None else None
        if found is None:
            raise credentials_error(
                target,
                "no AWS credentials: set aws_access_key_id / aws_secret_access_key or aws_profile in the deployment, "
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or a Bedrock API key in AWS_BEARER_TOKEN_BEDROCK",
                "missing_api_key",
            )
        with _CREDENTIALS_LOCK:
            _CREDENTIALS[key] = found
    return found.get_frozen_credentials()


_SESSIONS: dict[str | None, Any] = {}


def _session(profile: str | None) -> Any:
    """The botocore session for a profile (None: the default chain), made once: it reads config files."""
    session = _SESSIONS.get(profile)
    if session is None:
        try:
            import botocore.session
        except ImportError:
            return None
        session = _SESSIONS[profile] = botocore.session.Session(profile=profile)
    return session


# -- responses ----------------------------------------------------------------------------------------------------

_STOP_REASONS: Mapping[str, str] = {
    "end_turn": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "model_context_window_exceeded": "model_context_window_exceeded",
    "guardrail_intervened": "refusal",
    "content_filtered": "refusal",
}
"""Converse ``stopReason`` → the Messages ``stop_reason`` read by the Anthropic adapter (guardrails and content
filters are refusals: ``finish_reason: content_filter``)."""


def parse_response(content: bytes, target: Target, body: ChatCompletionRequest) -> ChatCompletion:
    """A ConverseResponse → a chat completion (through the Messages shape)."""
    data: Any = loads(content)
    if not isinstance(data, dict):
        raise ValueError("the Converse answer is not a JSON object")
    data = cast("Mapping[str, Any]", data)
    message = cast("Mapping[str, Any]", cast("Mapping[str, Any]", data["output"])["message"])
    blocks = [b for block in message.get("content") or () if (b := _from_converse_block(block)) is not None]
    if body.get("parallel_tool_calls") is False:  # Converse has no such switch: honoured here, first call kept
        uses = [b for b in blocks if b["type"] == "tool_use"]
        blocks = [b for b in blocks if b["type"] != "tool_use" or b is uses[0]]
    native = {
        "id": "",
        "model": target.model,
        "content": blocks,
        "stop_reason": _STOP_REASONS.get(str(data.get("stopReason")), "end_turn"),
        "usage": _from_converse_usage(data.get("usage") or {}),
    }
    completion = anthropic.from_native_message(native, target, body)
    if native["stop_reason"] == "refusal":
        completion["choices"][0]["message"]["refusal"] = refusal_text(str(data.get("stopReason")))
    if not completion["id"]:
        completion["id"] = completion_id()
    return completion


def refusal_text(stop_reason: str) -> str:
    """``message.refusal`` when a guardrail or the model's content filter stopped the answer."""
    return f"Bedrock stopped this answer (stopReason: {stop_reason})."


def _from_converse_block(block: Mapping[str, Any]) -> dict[str, Any] | None:
    if "text" in block:
        return {"type": "text", "text": block["text"]}
    if "toolUse" in block:
        use = block["toolUse"]
        return {"type": "tool_use", "id": use["toolUseId"], "name": use["name"], "input": use.get("input") or {}}
    if "reasoningContent" in block:
        reasoning = block["reasoningContent"]
        if "redactedContent" in reasoning:
            return {"type": "redacted_thinking", "data": reasoning["redactedContent"]}
        text = cast("Mapping[str, Any]", reasoning.get("reasoningText") or {})
        return {"type": "thinking", "thinking": text.get("text") or "", "signature": text.get("signature") or ""}
    return None  # citationsContent, guardContent, images: not part of a chat completion


def _from_converse_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    """Converse usage → Messages usage (``inputTokens`` excludes cache reads and writes, as Anthropic's does)."""
    return {
        "input_tokens": usage.get("inputTokens") or 0,
        "output_tokens": usage.get("outputTokens") or 0,
        "cache_read_input_tokens": usage.get("cacheReadInputTokens") or 0,
        "cache_creation_input_tokens": usage.get("cacheWriteInputTokens") or 0,
    }


# -- streams ------------------------------------------------------------------------------------------------------


class EventStreamDecoder:
    """``application/vnd.amazon.eventstream`` bytes → events, with botocore's own frame parser (prelude and message
    CRCs checked). An event is ``SSEEvent(event=<:event-type>, data=<JSON payload>)``; an exception frame is
    ``SSEEvent(event="exception:<:exception-type>", …)``.
    """

    __slots__ = ("_buffer", "_error")

    def __init__(self) -> None:
        from botocore.eventstream import EventStreamBuffer, ParserError

        self._buffer: Any = EventStreamBuffer()
        self._error = ParserError

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Add bytes; return every frame they complete. A corrupt frame (bad CRC, lengths) raises ``ValueError``."""
        self._buffer.add_data(chunk)
        try:
            return self._frames()
        except self._error as exc:
            raise ValueError(f"a corrupt event-stream frame: {exc}") from exc

    def _frames(self) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        for message in self._buffer:
            headers = cast("Mapping[str, str]", message.headers)
            payload = cast("bytes", message.payload).decode("utf-8", errors="replace")
            kind = headers.get(":message-type", "event")
            if kind == "event":
                events.append(SSEEvent(str(headers.get(":event-type", "")), payload))
            elif kind == "exception":
                events.append(SSEEvent(f"exception:{headers.get(':exception-type', '')}", payload))
            else:  # "error": :error-code and :error-message headers
                body = dumps({"message": headers.get(":error-message", "")}).decode()
                events.append(SSEEvent(f"exception:{headers.get(':error-code', 'error')}", body))
        return events

    def flush(self) -> list[SSEEvent]:
        """Nothing is held between frames: a partial frame at the end is a cut stream (the translator says so)."""
        return []


def stream_decoder() -> EventStreamDecoder:
    """ConverseStream answers with AWS event-stream frames."""
    return EventStreamDecoder()


def stream_translator(target: Target, body: ChatCompletionRequest) -> BedrockStreamTranslator:
    """A translator for one ConverseStream answer."""
    translator = BedrockStreamTranslator(
        target,
        include_usage(body),
        anthropic.json_tool_name(body, target),
        anthropic.forced_output_tool(body, target),
    )
    translator.one_call = body.get("parallel_tool_calls") is False
    return translator


class BedrockStreamTranslator(anthropic.AnthropicStreamTranslator):
    """ConverseStream events → the Messages stream events they mean → OpenAI chunks (the Anthropic translator's).

    Converse starts only tool blocks (``contentBlockStart``); text and reasoning blocks start with their first
    delta. ``messageStop`` carries the stop reason and ``metadata`` (after it) the usage: the finish and usage
    chunks go out on ``metadata``, or at the end of the body if it never came.
    """

    __slots__ = ("_converse_stop", "_kinds", "_stop_seen", "one_call")

    def __init__(
        self, target: Target, include_usage: bool, json_tool: str | None = None, output_tool: str | None = None
    ) -> None:
        super().__init__(target, include_usage, json_tool, output_tool)
        self._kinds: dict[int, str] = {}
        self._stop_seen = False
        self._converse_stop = ""
        self.one_call = False
        """``parallel_tool_calls: false``, which Converse cannot carry: tool calls after the first are left out."""

    def feed(self, event: SSEEvent) -> list[ChatCompletionChunk]:
        """One ConverseStream event → the chunks it completes."""
        if event.event.startswith("exception:"):
            raise _stream_exception(event, self.target)
        if not event.data:
            return []
        data: Mapping[str, Any] = loads(event.data)
        match event.event:
            case "messageStart":
                return self._message_start({})
            case "contentBlockStart":
                index = int(data["contentBlockIndex"])
                start = cast("Mapping[str, Any]", data.get("start") or {})
                use = start.get("toolUse")
                if use is None:
                    return []
                if self.one_call and "tool_use" in self._kinds.values():
                    self._kinds[index] = "skipped"  # never started: its deltas and stop find no block
                    return []
                self._kinds[index] = "tool_use"
                return self._block_start(index, {"type": "tool_use", "id": use["toolUseId"], "name": use["name"]})
            case "contentBlockDelta":
                return self._delta(int(data["contentBlockIndex"]), cast("Mapping[str, Any]", data["delta"]))
            case "contentBlockStop":
                return self._block_stop(int(data["contentBlockIndex"]))
            case "messageStop":
                self._stop_seen = True
                self._converse_stop = str(data.get("stopReason"))
                self._stop_reason = _STOP_REASONS.get(self._converse_stop, "end_turn")
                return []
            case "metadata":
                self._merge_usage(_from_converse_usage(cast("Mapping[str, Any]", data.get("usage") or {})))
                return self._stop() if self._stop_seen and not self._stopped else []
            case _:
                return []

    def _delta(self, index: int, delta: Mapping[str, Any]) -> list[ChatCompletionChunk]:
        out: list[ChatCompletionChunk] = []
        if "text" in delta:
            out += self._start(index, "text", {"type": "text", "text": ""})
            out += self._block_delta(index, {"type": "text_delta", "text": delta["text"]})
        elif "toolUse" in delta:
            fragment = cast("Mapping[str, Any]", delta["toolUse"]).get("input") or ""
            out += self._block_delta(index, {"type": "input_json_delta", "partial_json": fragment})
        elif "reasoningContent" in delta:
            reasoning = cast("Mapping[str, Any]", delta["reasoningContent"])
            if "redactedContent" in reasoning:
                block = {"type": "redacted_thinking", "data": reasoning["redactedContent"]}
                out += self._start(index, "redacted_thinking", block)
            else:
                out += self._start(index, "thinking", {"type": "thinking", "thinking": "", "signature": ""})
                if reasoning.get("text"):
                    out += self._block_delta(index, {"type": "thinking_delta", "thinking": reasoning["text"]})
                if reasoning.get("signature"):
                    out += self._block_delta(index, {"type": "signature_delta", "signature": reasoning["signature"]})
        return out

    def _start(self, index: int, kind: str, block: Mapping[str, Any]) -> list[ChatCompletionChunk]:
        if index in self._kinds:
            return []
        self._kinds[index] = kind
        return self._block_start(index, block)

    def _stop(self) -> list[ChatCompletionChunk]:
        """The Messages ``message_stop``, with Bedrock's words for a guardrail or filter refusal."""
        out = self._message_stop()
        for chunk in out:
            for choice in chunk["choices"]:
                if "refusal" in choice["delta"]:
                    choice["delta"]["refusal"] = refusal_text(self._converse_stop)
        return out

    def finish(self) -> list[ChatCompletionChunk]:
        """The body ended: after ``messageStop`` without ``metadata``, finish without usage; else interrupted."""
        if self._stop_seen and not self._stopped:
            return self._stop()
        return super().finish()


# -- errors -------------------------------------------------------------------------------------------------------

_STATUS_BY_EXCEPTION: Mapping[str, int] = {
    "ValidationException": 400,
    "AccessDeniedException": 403,
    "UnrecognizedClientException": 403,
    "ResourceNotFoundException": 404,
    "ModelNotReadyException": 503,
    "ModelTimeoutException": 504,
    "ModelErrorException": 502,
    "ModelStreamErrorException": 502,
    "ThrottlingException": 429,
    "ServiceQuotaExceededException": 429,
    "ServiceUnavailableException": 503,
    "InternalServerException": 500,
}
"""APIReference/CommonErrors and the Converse errors: each exception's HTTP peer (``ModelNotReadyException`` is a
model still loading, retried like a 503; a signature or token failure is a 403 from AWS: not retried)."""


def classify_error(status: int, headers: Mapping[str, str], content: bytes, target: Target) -> UpstreamStatusError:
    """An AWS JSON error (``{"message"}`` with ``x-amzn-errortype``) → an :class:`UpstreamStatusError`."""
    try:
        data: Any = loads(content)
    except ValueError:
        return generic_status_error(status, content, target, headers=headers)
    if not isinstance(data, dict):
        return generic_status_error(status, content, target, headers=headers)
    data = cast("Mapping[str, Any]", data)
    kind = (headers.get("x-amzn-errortype") or str(data.get("__type") or "")).split(":", 1)[0].split("#")[-1]
    message = str(data.get("message") or data.get("Message") or kind or f"HTTP {status}")
    mapped = _STATUS_BY_EXCEPTION.get(kind, status)
    return upstream_status_error(
        target,
        mapped,
        message,
        headers=headers,
        code=kind or None,
        request_id=headers.get("x-amzn-requestid"),
    )


def _stream_exception(event: SSEEvent, target: Target) -> UpstreamStatusError:
    kind = event.event.removeprefix("exception:")
    name = kind[:1].upper() + kind[1:]  # throttlingException → ThrottlingException
    return classify_error(_STATUS_BY_EXCEPTION.get(name, 500), {"x-amzn-errortype": name}, event.data.encode(), target)
