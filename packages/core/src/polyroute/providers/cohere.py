"""Cohere's v2 Chat API (``POST /v2/chat``), translated to and from Chat Completions.

Docs: https://docs.cohere.com/reference/chat and https://docs.cohere.com/reference/chat-stream.

**Requests.** Messages keep OpenAI's roles and shapes (``system``, ``user`` with text and ``image_url`` parts,
``assistant`` with ``tool_calls``, ``tool`` with ``tool_call_id``); ``developer`` becomes ``system``; an assistant
turn's text beside its tool calls goes as ``tool_plan`` (Cohere's place for it); blank assistant turns without calls
are left out. ``max_tokens`` / ``max_completion_tokens`` → ``max_tokens``; ``stop`` → ``stop_sequences``;
``top_p`` → ``p``; ``temperature``, ``seed``, ``frequency_penalty``, ``presence_penalty`` as they are; tools as they
are (any ``strict`` tool → ``strict_tools: true``); ``tool_choice`` required / none → ``REQUIRED`` / ``NONE``, a
named function → that one tool, ``REQUIRED``; ``response_format`` → ``json_object`` (with ``json_schema``);
``reasoning_effort`` → ``thinking`` (``none`` disables it, else a token budget). ``parallel_tool_calls: false`` has
no field: the answer's calls after its first are left out. Cohere's own fields (``documents``, ``citation_options``,
``safety_mode``, ``k``…) pass through from ``extra_body``; ``deployment.params`` are merged last. Refused with a 400
naming them: ``n > 1``, ``logprobs``, ``logit_bias``, ``audio``, ``prediction``, ``web_search_options``, ``file``
parts (send ``documents``), images in a tool result (its content is text or documents).

**Answers.** Text content → ``content``; ``thinking`` content → ``reasoning_content``; ``tool_plan`` → ``content``
when there is no other text; ``citations`` → ``message.annotations`` (``url_citation`` with the cited span, the
source document's ``url`` / ``title`` when it has them, else the source id); ``finish_reason`` COMPLETE /
STOP_SEQUENCE / MAX_TOKENS / TOOL_CALL → stop / stop / length / tool_calls (ERROR and TIMEOUT are upstream
failures); usage from ``usage.tokens`` with ``cached_tokens`` as cached prompt tokens.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, cast

from polyroute._sse import SSEDecoder, SSEEvent
from polyroute.errors import StreamInterruptedError, UnsupportedFeatureError, UpstreamStatusError
from polyroute.providers._base import (
    OPENAI_REQUEST_FIELDS,
    ChunkBuilder,
    Target,
    UpstreamRequest,
    drop_params,
    dumps,
    generic_status_error,
    include_usage,
    loads,
    make_usage,
    upstream_status_error,
)
from polyroute.providers._base import as_object as _obj
from polyroute.types.openai import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    FinishReason,
    Message,
    ResponseMessage,
    ToolCall,
    Usage,
)

THINKING_BUDGETS: Mapping[str, int] = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 31000}
"""``reasoning_effort`` → ``thinking.token_budget``."""

_FINISH: Mapping[str, FinishReason] = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}

_REFUSED: Mapping[str, str] = {
    "logprobs": "log probabilities are not translated; remove 'logprobs'",
    "top_logprobs": "log probabilities are not translated; remove 'top_logprobs'",
    "logit_bias": "has no logit_bias; remove it",
    "audio": "does not produce audio; remove 'audio'",
    "prediction": "does not take predicted outputs; remove 'prediction'",
    "web_search_options": "has no web search option; pass 'documents' for grounded answers",
    "functions": "takes 'tools', not the legacy 'functions'",
}


def stream_decoder() -> SSEDecoder:
    """Chat streams are SSE with ``event:`` lines."""
    return SSEDecoder()


# -- requests -----------------------------------------------------------------------------------------------------


def build_request(body: ChatCompletionRequest, target: Target) -> UpstreamRequest:
    """The ``POST {base}/v2/chat`` request."""
    body = drop_params(body, target)
    raw = cast("Mapping[str, Any]", body)
    for name, why in _REFUSED.items():
        if raw.get(name):
            raise _refuse(target, name, why)
    if (body.get("n") or 1) > 1:
        raise _refuse(target, "n", "returns one choice per call; remove 'n'")
    out: dict[str, Any] = {"model": target.model, "messages": _to_cohere_messages(body["messages"], target)}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens:
        out["max_tokens"] = max_tokens
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    for name, field in (
        ("temperature", "temperature"),
        ("top_p", "p"),
        ("seed", "seed"),
        ("frequency_penalty", "frequency_penalty"),
        ("presence_penalty", "presence_penalty"),
    ):
        if raw.get(name) is not None:
            out[field] = raw[name]
    tools = list(body.get("tools") or ())
    choice = body.get("tool_choice")
    if isinstance(choice, dict):  # one named function: only that tool, required
        name = _obj(choice.get("function")).get("name")
        tools = [t for t in tools if _obj(t.get("function")).get("name") == name]
        choice = "required"
    if tools:
        out["tools"] = [_to_cohere_tool(tool, target) for tool in tools]
        if any(_obj(t.get("function")).get("strict") for t in tools):
            out["strict_tools"] = True
        if choice in ("required", "none"):
            out["tool_choice"] = choice.upper()
    response_format = _obj(body.get("response_format"))
    match response_format.get("type"):
        case "json_object":
            out["response_format"] = {"type": "json_object"}
        case "json_schema":
            schema = _obj(response_format.get("json_schema")).get("schema") or {"type": "object"}
            out["response_format"] = {"type": "json_object", "json_schema": schema}
        case _:
            pass
    effort = body.get("reasoning_effort")
    if effort == "none":
        out["thinking"] = {"type": "disabled"}
    elif effort:
        budget = THINKING_BUDGETS.get(effort)
        if budget is None:
            raise _refuse(target, "reasoning_effort", f"takes none, {', '.join(THINKING_BUDGETS)}, not {effort!r}")
        out["thinking"] = {"type": "enabled", "token_budget": budget}
    for name, value in body.items():
        if name not in OPENAI_REQUEST_FIELDS:
            out[name] = value  # documents, citation_options, safety_mode, k, thinking...
    if target.deployment.params:
        out.update(target.deployment.params)
    stream = bool(body.get("stream"))
    out["stream"] = stream
    headers = {
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
        **target.auth_headers(),
    }
    headers.update(target.deployment.headers)
    base = target.api_base.rstrip("/")
    url = base + ("/chat" if base.endswith("/v2") else "/v2/chat")
    return UpstreamRequest("POST", url, headers, dumps(out), stream=stream)


def _refuse(target: Target, param: str, why: str) -> UnsupportedFeatureError:
    return UnsupportedFeatureError(
        f"{target.label} (Cohere chat) {why}; or route to a deployment that has it, or list '{param}' in this "
        "deployment's drop_params",
        param=param,
    )


def _to_cohere_messages(messages: Sequence[Message], target: Target) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        role = message["role"]
        content: Any = message.get("content")
        match role:
            case "system" | "developer":
                out.append({"role": "system", "content": _text_of(content)})
            case "user":
                out.append({"role": "user", "content": _to_cohere_user_content(content, target, index)})
            case "assistant":
                text = _text_of(content)
                calls = message.get("tool_calls") or ()
                if calls:
                    turn: dict[str, Any] = {"role": "assistant", "tool_calls": [_to_cohere_call(c) for c in calls]}
                    if text.strip():
                        turn["tool_plan"] = text
                    out.append(turn)
                elif text.strip():
                    out.append({"role": "assistant", "content": text})
            case "tool" | "function":
                _refuse_tool_media(content, target, index)
                result = _text_of(content)
                out.append({"role": "tool", "tool_call_id": message.get("tool_call_id") or "", "content": result})
    return out


def _refuse_tool_media(content: Any, target: Target, index: int) -> None:
    """A tool result's content is text or documents in the v2 API (reference/chat: tool message ``content``), not
    images: a 400 rather than the image silently left out.
    """
    if isinstance(content, str) or content is None:
        return
    for part in cast("list[Mapping[str, Any]]", content):
        if part.get("type") not in ("text", "refusal"):
            raise UnsupportedFeatureError(
                f"messages[{index}]: {target.label} (Cohere chat) takes text in a tool result, not a "
                f"{part.get('type')!r} part; send the image in a user message, or route to a deployment whose API "
                "takes images in tool results (Anthropic, Gemini, Bedrock)",
                param=f"messages[{index}].content",
            )


def _text_of(content: Any) -> str:
    if isinstance(content, str) or content is None:
        return content or ""
    parts = cast("list[Mapping[str, Any]]", content)
    return "".join(str(p.get("text") or p.get("refusal") or "") for p in parts if p.get("type") in ("text", "refusal"))


def _to_cohere_user_content(content: Any, target: Target, index: int) -> Any:
    if isinstance(content, str) or content is None:
        return content or ""
    parts: list[dict[str, Any]] = []
    for part in cast("list[Mapping[str, Any]]", content):
        match part.get("type"):
            case "text":
                parts.append({"type": "text", "text": part.get("text") or ""})
            case "image_url":
                image = _obj(part.get("image_url"))
                parts.append({"type": "image_url", "image_url": {k: v for k, v in image.items() if v is not None}})
            case other:
                raise UnsupportedFeatureError(
                    f"messages[{index}]: {target.label} (Cohere chat) takes text and image_url parts, not {other!r}; "
                    "pass files as Cohere 'documents' in extra_body",
                    param=f"messages[{index}].content",
                )
    return parts


def _to_cohere_call(call: ToolCall) -> dict[str, Any]:
    function = call["function"]
    return {
        "id": call["id"],
        "type": "function",
        "function": {"name": function["name"], "arguments": function["arguments"]},
    }


def _to_cohere_tool(tool: Mapping[str, Any], target: Target) -> dict[str, Any]:
    if tool.get("type", "function") != "function":
        raise _refuse(target, "tools", f"takes function tools only, not {tool.get('type')!r}")
    function = _obj(tool.get("function"))
    spec: dict[str, Any] = {"name": function["name"], "parameters": function.get("parameters") or {"type": "object"}}
    if function.get("description"):
        spec["description"] = function["description"]
    return {"type": "function", "function": spec}


# -- answers ------------------------------------------------------------------------------------------------------


def parse_response(content: bytes, target: Target, body: ChatCompletionRequest) -> ChatCompletion:
    """A v2 chat response → a chat completion."""
    data = _obj(loads(content))
    native = _obj(data.get("message"))
    texts: list[str] = []
    thinking: list[str] = []
    for block in cast("list[Mapping[str, Any]]", native.get("content") or []):
        if block.get("type") == "thinking":
            thinking.append(str(block.get("thinking") or ""))
        elif block.get("type") == "text":
            texts.append(str(block.get("text") or ""))
    calls: list[ToolCall] = [
        {
            "id": str(c.get("id") or ""),
            "type": "function",
            "function": {
                "name": str(_obj(c.get("function")).get("name") or ""),
                "arguments": str(_obj(c.get("function")).get("arguments") or "{}"),
            },
        }
        for c in cast("list[Mapping[str, Any]]", native.get("tool_calls") or [])
    ]
    if body.get("parallel_tool_calls") is False:
        calls = calls[:1]
    text = "".join(texts) or str(native.get("tool_plan") or "")
    finish = _finish(data.get("finish_reason"), target)
    message: ResponseMessage = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    annotations = [_to_annotation(c) for c in cast("list[Mapping[str, Any]]", native.get("citations") or [])]
    if annotations:
        cast("dict[str, Any]", message)["annotations"] = annotations
    return {
        "id": str(data.get("id") or ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": target.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": _from_cohere_usage(_obj(data.get("usage"))),
    }


def _finish(reason: Any, target: Target) -> FinishReason:
    found = _FINISH.get(str(reason))
    if found is not None:
        return found
    if reason in ("ERROR", "TIMEOUT"):
        status = 504 if reason == "TIMEOUT" else 502
        raise upstream_status_error(target, status, f"Cohere ended the answer with finish_reason {reason}")
    return "stop"


def _to_annotation(citation: Mapping[str, Any]) -> dict[str, Any]:
    """A Cohere citation → an OpenAI ``url_citation`` annotation over the same span of the answer."""
    sources = cast("list[Mapping[str, Any]]", citation.get("sources") or [])
    first: Mapping[str, Any] = sources[0] if sources else {}
    document = _obj(first.get("document") or first.get("tool_output"))
    return {
        "type": "url_citation",
        "url_citation": {
            "start_index": int(citation.get("start") or 0),
            "end_index": int(citation.get("end") or 0),
            "url": str(document.get("url") or document.get("URL") or ""),
            "title": str(document.get("title") or first.get("id") or ""),
        },
    }


def _from_cohere_usage(usage: Mapping[str, Any]) -> Usage:
    tokens = _obj(usage.get("tokens")) or _obj(usage.get("billed_units"))
    prompt = int(tokens.get("input_tokens") or 0)
    cached = min(int(usage.get("cached_tokens") or 0), prompt)
    return make_usage(prompt, int(tokens.get("output_tokens") or 0), cached=cached)


# -- streams ------------------------------------------------------------------------------------------------------


def stream_translator(target: Target, body: ChatCompletionRequest) -> CohereStreamTranslator:
    """A translator for one chat stream."""
    return CohereStreamTranslator(target, include_usage(body), one_call=body.get("parallel_tool_calls") is False)


class CohereStreamTranslator:
    """``message-start`` … ``message-end`` events → OpenAI chunks; :meth:`finish` raises if ``message-end`` never
    came.
    """

    __slots__ = ("_annotations", "_ended", "_has_text", "_one_call", "_plan", "_started", "builder", "target")

    def __init__(self, target: Target, include_usage: bool, one_call: bool = False) -> None:
        self.target = target
        self.builder = ChunkBuilder(model=target.model, include_usage=include_usage)
        self._one_call = one_call
        self._started = False
        self._ended = False
        self._has_text = False
        self._plan: list[str] = []
        self._annotations: list[dict[str, Any]] = []

    def feed(self, event: SSEEvent) -> list[ChatCompletionChunk]:
        """One event → the chunks it completes."""
        if not event.data or event.data == "[DONE]":  # Cohere ends its streams with OpenAI's sentinel too
            return []
        data = _obj(loads(event.data))
        kind = data.get("type") or event.event
        delta = _obj(_obj(data.get("delta")).get("message"))
        index = int(data.get("index") or 0)
        match kind:
            case "message-start":
                self._started = True
                if data.get("id"):
                    self.builder.id = str(data["id"])
                return []
            case "content-start" | "content-delta":
                content = _obj(delta.get("content"))
                if content.get("thinking"):
                    return [self.builder.reasoning(str(content["thinking"]))]
                if content.get("text"):
                    self._has_text = True
                    return [self.builder.text(str(content["text"]))]
                return []
            case "tool-plan-delta":
                if delta.get("tool_plan"):
                    self._plan.append(str(delta["tool_plan"]))  # sent as content if no text and no call follows
                return []
            case "tool-call-start":
                if self._one_call and index > 0:
                    return []
                out = self._flush_plan()
                call = _obj(delta.get("tool_calls"))
                function = _obj(call.get("function"))
                name, arguments = str(function.get("name") or ""), str(function.get("arguments") or "")
                out.append(self.builder.tool_call_start(index, str(call.get("id") or ""), name, arguments))
                return out
            case "tool-call-delta":
                if self._one_call and index > 0:
                    return []
                fragment = _obj(_obj(delta.get("tool_calls")).get("function")).get("arguments")
                return [self.builder.tool_call_arguments(index, str(fragment))] if fragment else []
            case "citation-start":
                citation = _obj(delta.get("citations"))
                if citation:
                    self._annotations.append(_to_annotation(citation))
                return []
            case "message-end":
                return self._message_end(_obj(data.get("delta")))
            case _:
                return []  # content-end, tool-call-end, citation-end, debug

    def _flush_plan(self) -> list[ChatCompletionChunk]:
        if not self._plan or self._has_text:
            return []
        text, self._plan = "".join(self._plan), []
        self._has_text = True
        return [self.builder.text(text)]

    def _message_end(self, delta: Mapping[str, Any]) -> list[ChatCompletionChunk]:
        self._ended = True
        out = self._flush_plan()
        if self._annotations:
            out.append(self.builder.chunk(cast("Any", {"annotations": self._annotations})))
        reason = delta.get("finish_reason")
        out.append(self.builder.finish(_finish(reason, self.target)))
        usage_chunk = self.builder.usage_chunk(_from_cohere_usage(_obj(delta.get("usage"))))
        if usage_chunk is not None:
            out.append(usage_chunk)
        return out

    def finish(self) -> list[ChatCompletionChunk]:
        """The body ended: fine after ``message-end``, an interruption otherwise."""
        if not self._ended:
            raise StreamInterruptedError(
                f"{self.target.label} ended the stream without message-end",
                provider=self.target.provider,
                deployment=self.target.label,
                status=502,
            )
        return []


# -- errors -------------------------------------------------------------------------------------------------------


def classify_error(status: int, headers: Mapping[str, str], content: bytes, target: Target) -> UpstreamStatusError:
    """``{"id", "message"}`` → an :class:`UpstreamStatusError` (Cohere's 498 "invalid token" is a 401)."""
    try:
        data: Any = loads(content)
    except ValueError:
        return generic_status_error(status, content, target, headers=headers)
    message = _obj(data).get("message")
    if not message:
        return generic_status_error(status, content, target, headers=headers)
    return upstream_status_error(
        target,
        401 if status == 498 else status,
        str(message),
        headers=headers,
        request_id=headers.get("x-debug-trace-id"),
    )
