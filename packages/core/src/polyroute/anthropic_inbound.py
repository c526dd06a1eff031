"""Anthropic Messages requests in, Chat Completions through the router, Messages answers out.

The reverse of :mod:`polyroute.providers.anthropic`: a client that speaks Messages (Claude Code, the ``anthropic``
SDK) asks a route whose deployment speaks Chat Completions. Pure functions only: :func:`to_chat_request`,
:func:`from_chat_completion`, and :class:`MessagesEventEncoder`, which turns chat chunks into Messages stream
events (docs: https://platform.claude.com/docs/en/api/messages and build-with-claude/streaming).

What cannot be carried raises :class:`~polyroute.errors.UnsupportedFeatureError` naming it (server tools such as
``web_search``, ``top_k``, citations, MCP servers…); a route with an Anthropic deployment gets those natively.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, cast

from polyroute.errors import InvalidRequestError, UnsupportedFeatureError
from polyroute.providers._base import as_object as _obj
from polyroute.providers._base import loads
from polyroute.types.openai import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest

_IGNORED = frozenset({"service_tier", "context_management"})
"""Fields about Anthropic's own capacity tiers and context editing, which mean nothing to another provider."""

_PASSED = frozenset({"model", "messages", "system", "max_tokens", "stop_sequences", "temperature", "top_p", "stream"})

_STOP_REASONS: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def _blocks(content: Any, where: str) -> list[Mapping[str, Any]]:
    """Content as a list of blocks (a string is one text block)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise InvalidRequestError(f"{where}: content must be a string or a list of content blocks", param=where)
    return [_obj(block) for block in cast("list[Any]", content)]


# -- requests -----------------------------------------------------------------------------------------------------


def to_chat_request(
    native: Mapping[str, Any], *, strict: bool = True, can_reason: bool = False
) -> ChatCompletionRequest:
    """A Messages request → the Chat Completions request that asks the same.

    ``strict=False`` translates what it can and skips the rest: it is what the router routes on (capabilities,
    token estimate) before a deployment is chosen; an Anthropic deployment then gets the native body unchanged.
    ``can_reason``: whether the deployment reasons. ``thinking: {type: enabled}`` asks for reasoning (a deployment
    without it is not chosen); ``adaptive`` thinking (Claude Code's default) lets the model decide, so it becomes
    ``reasoning_effort`` (from ``output_config.effort``) only where the deployment can reason.
    """
    if not isinstance(native.get("model"), str) or not native["model"]:
        raise InvalidRequestError("model: a model name is required", param="model")
    if not isinstance(native.get("messages"), list):
        raise InvalidRequestError("messages: a list of messages is required", param="messages")
    if not isinstance(native.get("tools") or [], list):
        raise InvalidRequestError("tools: must be a list of tools", param="tools")
    if strict:
        for name in native:
            if name not in _PASSED and name not in _IGNORED and name not in _TRANSLATED:
                raise UnsupportedFeatureError(
                    f"{name}: this Messages field has no equivalent on this route's deployment (only an Anthropic "
                    "deployment takes it); remove it or route to a Claude model",
                    param=name,
                )
    messages: list[dict[str, Any]] = []
    system = native.get("system")
    if system:
        messages.append({"role": "system", "content": _system_content(system)})
    for index, message in enumerate(cast("list[Any]", native["messages"])):
        messages.extend(_to_chat_messages(_obj(message), index, strict))
    out: dict[str, Any] = {"model": native["model"], "messages": messages}
    if native.get("max_tokens") is not None:
        out["max_completion_tokens"] = native["max_tokens"]
    if native.get("stop_sequences"):
        out["stop"] = list(native["stop_sequences"])
    for name in ("temperature", "top_p"):
        if native.get(name) is not None:
            out[name] = native[name]
    user = _obj(native.get("metadata")).get("user_id")
    if user:
        out["user"] = str(user)
    tools = [_to_chat_tool(_obj(tool), i, strict) for i, tool in enumerate(native.get("tools") or ())]
    tools = [tool for tool in tools if tool is not None]
    if tools:
        out["tools"] = tools
    choice = _obj(native.get("tool_choice"))
    if choice:
        _apply_tool_choice(choice, out)
    output_config = _obj(native.get("output_config"))
    effort = _to_reasoning_effort(_obj(native.get("thinking")), output_config, can_reason)
    if effort is not None:
        out["reasoning_effort"] = effort
    _apply_output_config(output_config, out, strict)
    if native.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}  # message_delta reports usage
    return cast("ChatCompletionRequest", out)


_TRANSLATED = frozenset({"metadata", "tools", "tool_choice", "thinking", "output_config"})


def _system_content(system: Any) -> str | list[dict[str, Any]]:
    if isinstance(system, str):
        return system
    parts: list[dict[str, Any]] = []
    for block in _blocks(system, "system"):
        part: dict[str, Any] = {"type": "text", "text": str(block.get("text", ""))}
        if block.get("cache_control"):
            part["cache_control"] = block["cache_control"]
        parts.append(part)
    return parts


def _to_chat_messages(message: Mapping[str, Any], index: int, strict: bool) -> list[dict[str, Any]]:
    role = message.get("role")
    where = f"messages[{index}]"
    blocks = _blocks(message.get("content"), f"{where}.content")
    if role == "user":
        return _to_chat_user(blocks, where, strict)
    if role == "assistant":
        return [_to_chat_assistant(blocks, where, strict)]
    if role == "system":  # a system message between turns (the SDK's SystemMessageParam): text blocks only
        return [{"role": "system", "content": _system_content(message.get("content"))}]
    raise InvalidRequestError(
        f"{where}.role: must be 'user', 'assistant' or 'system' (got {role!r})", param=f"{where}.role"
    )


def _to_chat_user(blocks: Sequence[Mapping[str, Any]], where: str, strict: bool) -> list[dict[str, Any]]:
    """Tool results become ``tool`` messages, first (they answer the previous turn); the rest one user message."""
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        kind = block.get("type")
        at = f"{where}.content[{i}]"
        if kind == "tool_result":
            text = _tool_result_text(block.get("content"), at, strict)
            if block.get("is_error"):
                text = f"Error: {text}"
            out.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")), "content": text})
            continue
        part = _to_chat_part(block, at, strict)
        if part is not None:
            parts.append(part)
    if parts:
        only_text = all(p["type"] == "text" and "cache_control" not in p for p in parts)
        content: Any = "\n".join(p["text"] for p in parts) if only_text and len(parts) == 1 else parts
        out.append({"role": "user", "content": content})
    return out


def _tool_result_text(content: Any, where: str, strict: bool) -> str:
    if content is None:
        return ""
    texts: list[str] = []
    for block in _blocks(content, where):
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif strict:
            raise UnsupportedFeatureError(
                f"{where}: a {block.get('type')!r} block in a tool result can only go to an Anthropic deployment; "
                "this route's deployment takes text tool results",
                param=where,
            )
    return "\n".join(texts)


def _to_chat_part(block: Mapping[str, Any], where: str, strict: bool) -> dict[str, Any] | None:
    kind = block.get("type")
    part: dict[str, Any] | None = None
    if kind == "text":
        part = {"type": "text", "text": str(block.get("text", ""))}
    elif kind == "image":
        source = _obj(block.get("source"))
        if source.get("type") == "base64":
            url = f"data:{source.get('media_type')};base64,{source.get('data')}"
            part = {"type": "image_url", "image_url": {"url": url}}
        elif source.get("type") == "url":
            part = {"type": "image_url", "image_url": {"url": str(source.get("url"))}}
    elif kind == "document":
        source = _obj(block.get("source"))
        if source.get("type") == "base64":
            data = f"data:{source.get('media_type')};base64,{source.get('data')}"
            part = {"type": "file", "file": {"file_data": data, "filename": str(block.get("title") or "document.pdf")}}
        elif source.get("type") == "text":
            part = {"type": "text", "text": str(source.get("data", ""))}
    if part is None:
        if strict:
            raise UnsupportedFeatureError(
                f"{where}: a {kind!r} content block can only go to an Anthropic deployment (this route's deployment "
                "takes text, base64 or URL images and base64 or text documents)",
                param=where,
            )
        return None
    if block.get("cache_control"):
        part["cache_control"] = block["cache_control"]
    return part


def _to_chat_assistant(blocks: Sequence[Mapping[str, Any]], where: str, strict: bool) -> dict[str, Any]:
    """Text joins into ``content``; ``tool_use`` blocks become ``tool_calls``; thinking rides as
    ``reasoning_content`` and the native blocks as ``thinking_blocks`` (the convention the chat adapters read).
    """
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    thinking: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            arguments = json.dumps(block.get("input") or {}, separators=(",", ":"), ensure_ascii=False)
            calls.append(
                {
                    "id": str(block.get("id", "")),
                    "type": "function",
                    "function": {"name": str(block.get("name", "")), "arguments": arguments},
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            thinking.append(dict(block))
        elif strict:
            raise UnsupportedFeatureError(
                f"{where}.content[{i}]: a {kind!r} block can only go to an Anthropic deployment",
                param=f"{where}.content[{i}]",
            )
    out: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        out["tool_calls"] = calls
    reasoning = "".join(str(b.get("thinking", "")) for b in thinking if b.get("type") == "thinking")
    if reasoning:
        out["reasoning_content"] = reasoning
    if thinking and any(b.get("signature") for b in thinking):
        out["thinking_blocks"] = thinking
    return out


def _to_chat_tool(tool: Mapping[str, Any], index: int, strict: bool) -> dict[str, Any] | None:
    kind = tool.get("type")
    if kind not in (None, "custom"):
        if strict:
            raise UnsupportedFeatureError(
                f"tools[{index}]: the server tool {kind!r} runs only on an Anthropic deployment; route to a Claude "
                "model or remove it",
                param=f"tools[{index}]",
            )
        return None
    function: dict[str, Any] = {"name": str(tool.get("name", "")), "parameters": tool.get("input_schema") or {}}
    if tool.get("description"):
        function["description"] = tool["description"]
    if tool.get("strict") is not None:
        function["strict"] = bool(tool["strict"])
    return {"type": "function", "function": function}


def _apply_tool_choice(choice: Mapping[str, Any], out: dict[str, Any]) -> None:
    match choice.get("type"):
        case "auto":
            out["tool_choice"] = "auto"
        case "any":
            out["tool_choice"] = "required"
        case "none":
            out["tool_choice"] = "none"
        case "tool":
            out["tool_choice"] = {"type": "function", "function": {"name": str(choice.get("name", ""))}}
        case other:
            raise InvalidRequestError(
                f"tool_choice.type: must be auto, any, tool or none (got {other!r})", param="tool_choice"
            )
    if choice.get("disable_parallel_tool_use") and out.get("tools"):
        out["parallel_tool_calls"] = False


_EFFORTS: dict[str, str] = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


def _to_reasoning_effort(thinking: Mapping[str, Any], output_config: Mapping[str, Any], can_reason: bool) -> str | None:
    """``thinking`` → ``reasoning_effort``: a budget maps to the effort whose Anthropic budget is nearest below
    (the same scale :mod:`polyroute.providers.anthropic` uses the other way: low 2048, medium 8192, high 16384);
    adaptive thinking takes ``output_config.effort`` (default medium), where the deployment can reason.
    """
    kind = thinking.get("type")
    if kind in (None, "disabled"):
        return None
    if kind == "adaptive":
        return _EFFORTS.get(str(output_config.get("effort")), "medium") if can_reason else None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int):
        return "medium"
    if budget >= 16384:
        return "high"
    if budget >= 8192:
        return "medium"
    return "low"


def _apply_output_config(config: Mapping[str, Any], out: dict[str, Any], strict: bool) -> None:
    """``output_config.format`` (structured outputs) → ``response_format``; ``effort`` is read with thinking."""
    for name, value in config.items():
        if name == "effort":
            continue
        if name == "format" and _obj(value).get("type") == "json_schema":
            schema = _obj(value).get("schema") or {"type": "object"}
            out["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
        elif strict:
            raise UnsupportedFeatureError(
                f"output_config.{name}: has no equivalent on this route's deployment (only an Anthropic deployment "
                "takes it)",
                param=f"output_config.{name}",
            )


# -- answers ------------------------------------------------------------------------------------------------------


def message_id() -> str:
    """A fresh Messages id."""
    return "msg_" + secrets.token_hex(12)


def to_messages_usage(usage: Mapping[str, Any] | None) -> dict[str, int]:
    """OpenAI usage → Messages usage: ``input_tokens`` excludes cache reads and writes, which Anthropic counts
    apart (writes: polyroute's ``cache_creation_tokens``, or OpenAI's own ``cache_write_tokens``).
    """
    usage = usage or {}
    details = _obj(usage.get("prompt_tokens_details"))
    cached = int(details.get("cached_tokens") or 0)
    written = int(details.get("cache_creation_tokens") or details.get("cache_write_tokens") or 0)
    return {
        "input_tokens": max(0, int(usage.get("prompt_tokens") or 0) - cached - written),
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
    }


def to_stop_reason(finish_reason: str | None) -> str:
    """A chat ``finish_reason`` → a Messages ``stop_reason``."""
    return _STOP_REASONS.get(finish_reason or "stop", "end_turn")


def from_chat_completion(completion: ChatCompletion, model: str) -> dict[str, Any]:
    """A chat completion → the Messages response (``model``: the name the client asked for)."""
    choice = _obj((completion.get("choices") or [{}])[0])
    message = _obj(choice.get("message"))
    content: list[dict[str, Any]] = []
    blocks = message.get("thinking_blocks")
    if isinstance(blocks, list) and blocks:
        content.extend(dict(_obj(b)) for b in cast("list[Any]", blocks))
    elif message.get("reasoning_content"):
        content.append({"type": "thinking", "thinking": str(message["reasoning_content"]), "signature": ""})
    if message.get("content"):
        content.append({"type": "text", "text": str(message["content"])})
    elif message.get("refusal"):
        content.append({"type": "text", "text": str(message["refusal"])})
    for call in cast("list[Any]", message.get("tool_calls") or []):
        function = _obj(_obj(call).get("function"))
        content.append(
            {
                "type": "tool_use",
                "id": str(_obj(call).get("id", "")),
                "name": str(function.get("name", "")),
                "input": _arguments(function.get("arguments")),
            }
        )
    return {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": to_stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": to_messages_usage(completion.get("usage")),
    }


def _arguments(raw: Any) -> Any:
    """Tool-call arguments (a JSON string) → the ``input`` object; what is not an object is kept under a key."""
    try:
        value: Any = loads(raw or "{}")
    except (TypeError, ValueError):
        return {"arguments": raw}
    return cast("dict[str, Any]", value) if isinstance(value, dict) else {"arguments": value}


# -- streams ------------------------------------------------------------------------------------------------------

MessagesEvent = dict[str, Any]
"""One Messages stream event (its ``type`` is the SSE event name)."""


class MessagesEventEncoder:
    """Chat chunks → Messages stream events, in the API's order: ``message_start``, ``ping``, then per block
    ``content_block_start`` / ``_delta`` / ``_stop`` (thinking, text, ``tool_use`` with ``input_json_delta``),
    ``message_delta`` (stop reason, usage) and ``message_stop`` from :meth:`finish`.
    """

    __slots__ = ("_block", "_finish", "_index", "_open", "_started", "_tools", "_usage", "model")

    def __init__(self, model: str) -> None:
        self.model = model
        self._started = False
        self._index = -1
        self._open: str | None = None
        """The kind of the open block: ``thinking``, ``text`` or ``tool_use``."""
        self._block: Any = None
        """The open tool call's OpenAI index."""
        self._tools: dict[int, int] = {}
        self._finish: str | None = None
        self._usage: Mapping[str, Any] | None = None

    def feed(self, chunk: ChatCompletionChunk) -> list[MessagesEvent]:
        """One chat chunk → the events it completes."""
        out: list[MessagesEvent] = self._start() if not self._started else []
        if chunk.get("usage"):
            self._usage = chunk.get("usage")
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = _obj(choice.get("delta"))
            if delta.get("reasoning_content"):
                out.extend(self._open_block("thinking", None, {"type": "thinking", "thinking": "", "signature": ""}))
                out.append(self._delta({"type": "thinking_delta", "thinking": delta["reasoning_content"]}))
            if delta.get("content"):
                out.extend(self._open_block("text", None, {"type": "text", "text": ""}))
                out.append(self._delta({"type": "text_delta", "text": delta["content"]}))
            for call in delta.get("tool_calls") or ():
                out.extend(self._tool_delta(_obj(call)))
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def finish(self) -> list[MessagesEvent]:
        """The last events: the open block's stop, ``message_delta`` and ``message_stop``."""
        out: list[MessagesEvent] = self._start() if not self._started else []
        out.extend(self._close_block())
        out.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": to_stop_reason(self._finish), "stop_sequence": None},
                "usage": to_messages_usage(self._usage),
            }
        )
        out.append({"type": "message_stop"})
        return out

    def _start(self) -> list[MessagesEvent]:
        self._started = True
        message: dict[str, Any] = {
            "id": message_id(),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [{"type": "message_start", "message": message}, {"type": "ping"}]

    def _open_block(self, kind: str, key: Any, block: dict[str, Any]) -> list[MessagesEvent]:
        if self._open == kind and self._block == key:
            return []
        out = self._close_block()
        self._index += 1
        self._open, self._block = kind, key
        out.append({"type": "content_block_start", "index": self._index, "content_block": block})
        return out

    def _close_block(self) -> list[MessagesEvent]:
        if self._open is None:
            return []
        self._open = None
        return [{"type": "content_block_stop", "index": self._index}]

    def _delta(self, delta: dict[str, Any]) -> MessagesEvent:
        return {"type": "content_block_delta", "index": self._index, "delta": delta}

    def _tool_delta(self, call: Mapping[str, Any]) -> list[MessagesEvent]:
        position = int(call.get("index", 0))
        function = _obj(call.get("function"))
        out: list[MessagesEvent] = []
        if call.get("id") or position not in self._tools:
            name = str(function.get("name", ""))
            block: dict[str, Any] = {"type": "tool_use", "id": str(call.get("id") or ""), "name": name, "input": {}}
            if self._open == "tool_use" and self._block == position:
                self._block = None  # a new call at a reused index: a new block
            out.extend(self._open_block("tool_use", position, block))
            self._tools[position] = self._index
        elif not (self._open == "tool_use" and self._block == position):
            return []  # arguments for a call whose block is already closed: Messages cannot reopen a block
        arguments = function.get("arguments")
        if arguments:
            out.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))
        return out
