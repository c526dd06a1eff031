"""Anthropic's native Messages API (``POST /v1/messages``), translated to and from Chat Completions.

Docs cited below live under https://platform.claude.com/docs/en/ ("api/messages", "build-with-claude/...").

**Requests.** ``system`` and ``developer`` messages become the top-level ``system`` (text blocks, so their
``cache_control`` survives); user / assistant / tool turns become alternating ``messages``: consecutive tool
results merge into one user turn of ``tool_result`` blocks, placed before any text of that turn (api/messages:
results must come first and answer the previous assistant turn's ``tool_use`` blocks). Images (data URL → base64
source, http(s) URL → URL source) and ``file`` parts (PDF or plain text → ``document`` blocks) translate, in user
messages and in tool results (``tool_result`` content takes text, image and document blocks);
``input_audio`` and OpenAI ``file_id`` s cannot and raise :class:`UnsupportedFeatureError`. ``cache_control`` on
content parts, on a message (applied to its last block) or on a tool passes through for prompt caching.

**History repair** (the Messages API rejects histories the OpenAI API accepts; FRAMEWORKS.md §8):

- an assistant ``tool_use`` with no answer in the next turn gets a ``tool_result`` with ``is_error: true`` and
  the text "no result was recorded for this tool call", so that e.g. an interrupted agent loop can continue;
- a ``tool_result`` with no matching ``tool_use`` just before it becomes a text block naming the call;
- tool blocks in a request that defines no ``tools`` (AutoGen's reflection call, a summarising call): the tools
  named in the history are declared with an open schema and ``tool_choice: none``. Anthropic's API has rejected
  such requests ("Requests which include tool_use or tool_result blocks must define tools"), and declaring the
  tools keeps the history byte-for-byte (ids, thinking signatures, prompt-cache prefixes) where rewriting it as
  prose would not; ``none`` keeps the model from calling a tool the caller did not offer.

**Knobs.** ``max_tokens`` / ``max_completion_tokens`` → ``max_tokens`` (required; default: the catalog's output
limit, else 4096); ``stop`` → ``stop_sequences``; ``temperature``, ``top_p``; ``user`` / ``safety_identifier`` →
``metadata.user_id``; ``tools`` → ``input_schema`` tools (``strict`` kept where the model has structured
outputs); ``tool_choice`` auto / none / required / named → auto / none / any / tool; ``parallel_tool_calls:
false`` → ``disable_parallel_tool_use``. ``reasoning_effort`` → ``thinking: {type: enabled, budget_tokens}``
(minimal 1024, low 2048, medium 8192, high 16384 tokens; ``none`` → no thinking). Any body field that is not a
Chat Completions field (``thinking``, ``top_k``, ``output_config``, ``cache_control``, ``container``… sent with the
SDK's ``extra_body``) is passed through as a native field, then ``deployment.params`` are merged over the body.

Ignored, because they concern OpenAI's own storage, billing or caching and not the answer: ``metadata``, ``store``,
``service_tier``, ``prompt_cache_key``, ``prompt_cache_retention``, ``stream_options`` (usage is always known).
Dropped by the API's own rules: ``temperature`` (and ``top_p`` below 0.95) while thinking is on
(build-with-claude/extended-thinking: thinking is incompatible with temperature changes); ``top_p`` when
``temperature`` is also given (newer models reject the pair); both from ``anthropic-version`` 2026-10-21, which
takes no sampling parameters (the official SDK's newest request types no longer list them; the default version
2023-06-01 still does). Refused with a 400 naming the parameter (the router then tries the route's other
deployments), unless the deployment lists it in ``drop_params``: ``seed``, non-zero ``presence_penalty`` /
``frequency_penalty``, ``verbosity``, ``n > 1``, ``logprobs``, ``audio`` / ``modalities`` with audio,
``prediction``, ``web_search_options``, ``logit_bias``, legacy ``functions``.

**Structured output.** ``response_format: json_schema`` uses native structured outputs (``output_config.format``,
build-with-claude/structured-outputs) on models that have them: Claude Opus 4.1 and any Claude 4.5 or later, by
model name, unless the catalog says the deployment has no ``json_schema``. That schema, and the ``input_schema`` of a
``strict`` tool, are cut to the JSON Schema subset the API compiles (:func:`_to_anthropic_schema`: constraints it
rejects, such as ``minimum`` or ``maxLength``, move into descriptions, as the official SDK does); other tools'
schemas go as given. Otherwise (and for ``json_object``) a forced tool carries the schema; its input comes back as
the message's JSON ``content`` with ``finish_reason: "stop"``, streamed as content deltas.

**Thinking round trip.** Thinking text is ``message.reasoning_content`` (``delta.reasoning_content`` in streams).
The blocks themselves, signatures included, ride on the assistant message as ``thinking_blocks``: a list of the
native ``{"type": "thinking", "thinking", "signature"}`` and ``{"type": "redacted_thinking", "data"}`` blocks (the
convention LiteLLM also uses). Streams send each finished block once as ``delta.thinking_blocks: [block]``; a
client collects them in order. Sent back on an assistant message, they are replayed first in that turn, so a
tool loop with thinking is accepted. ``reasoning_content`` without ``thinking_blocks`` (from another provider)
has no signature and is not sent. Most clients (AutoGen, ag2, openai-agents, pydantic-ai, langchain-openai) send
the turn back as plain ``{role, content, tool_calls}``: the blocks returned with those tool calls are then taken
from the router's store (``Target.thinking_store``, filled by :func:`parse_response` and the stream translator).
Where the store no longer has them (a new process, a stored conversation), thinking is turned off for that
request with a warning (see :func:`_apply_thinking_rules`): the API accepts the loop without thinking, not
without the blocks. A forced tool with thinking on (which Anthropic refuses): one tool on a model with
structured outputs is answered through them (:func:`forced_output_tool`), any other with thinking off for that
request and a warning.

**Refusals.** ``stop_reason: refusal`` → ``finish_reason: "content_filter"`` and ``message.refusal`` (a
``delta.refusal`` before the finish chunk when streaming); any text Claude wrote first stays in ``content``.

**Blank text.** Empty and whitespace-only text blocks are never sent (the API refuses them: "text content blocks
must contain non-whitespace text"); a message left with nothing is left out, and the turns around it merge.

**Usage.** OpenAI's convention: ``prompt_tokens`` = input + cache reads + cache writes,
``prompt_tokens_details.cached_tokens`` = cache reads (``cache_creation_tokens`` = cache writes),
``completion_tokens`` = output tokens; the same numbers streamed or not.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import Any, Literal, cast

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
    tool_call_id,
    upstream_status_error,
)
from polyroute.providers._base import as_object as _obj
from polyroute.types.openai import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ContentPart,
    FinishReason,
    Message,
    ResponseMessage,
    ToolCall,
    Usage,
)

DEFAULT_VERSION = "2023-06-01"
"""The ``anthropic-version`` header unless ``deployment.api_version`` says otherwise (api/versioning)."""

DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` when neither the request nor the catalog gives one."""

THINKING_BUDGETS: Mapping[str, int] = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 32768,
    "max": 63999,
}
"""``reasoning_effort`` → ``thinking.budget_tokens`` (the minimum budget is 1024; each is kept below
``max_tokens``, itself at most the model's output limit)."""

SAMPLING_FREE_VERSION = "2026-10-21"
"""From this ``anthropic-version`` on, the API takes no temperature / top_p / top_k: they are dropped."""

JSON_TOOL = "json_response"
"""The forced tool's name when ``response_format`` cannot use native structured outputs."""

MISSING_RESULT = "No result was recorded for this tool call."

REFUSAL = "Claude declined to answer this request (Anthropic stop_reason: refusal)."
"""``message.refusal`` when Claude stops with ``stop_reason: refusal`` (api/handling-stop-reasons)."""

logger = logging.getLogger("polyroute")

_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_DATA_URL = re.compile(
    r"^data:(?P<media>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[^,;]+)*?)(?P<b64>;base64)?,(?P<data>.*)$", re.S
)
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_MODEL_VERSION = re.compile(
    r"claude-(?:(?P<family>opus|sonnet|haiku)-(?P<major>\d+)(?:[-.](?P<minor>\d)(?!\d))?|(?P<old>\d))"
)


def _event_obj(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """A stream event's required object: Anthropic always sends it, so its absence is a malformed event (the
    transport fails over before the commit, and ends the stream with an in-band error after it).
    """
    value = data[key]
    if not isinstance(value, dict):
        raise TypeError(f"{data.get('type')} event: {key!r} is not an object")
    return cast("Mapping[str, Any]", value)


def stream_decoder() -> SSEDecoder:
    """Anthropic streams are SSE with ``event:`` lines (build-with-claude/streaming)."""
    return SSEDecoder()


# -- requests -----------------------------------------------------------------------------------------------------


def build_request(body: ChatCompletionRequest, target: Target) -> UpstreamRequest:
    """The native ``POST {base}/v1/messages`` request for ``body``."""
    out = native_body(body, target)
    stream = bool(body.get("stream"))
    if stream:
        out["stream"] = True

    headers = {
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
        "anthropic-version": target.deployment.api_version or DEFAULT_VERSION,
        **target.auth_headers(),
    }
    headers.update(target.deployment.headers)
    base = target.api_base.rstrip("/")
    url = base + ("/messages" if base.endswith("/v1") else "/v1/messages")
    return UpstreamRequest("POST", url, headers, dumps(out), stream=stream)


def native_body(body: ChatCompletionRequest, target: Target) -> dict[str, Any]:
    """The Messages API body for ``body`` (without ``stream``): shared with Claude on Bedrock and on Vertex."""
    body = drop_params(body, target)
    _refuse_unsupported(body, target)
    out: dict[str, Any] = {"model": target.model}
    system, messages = _to_anthropic_messages(body["messages"], target, restore_thinking=_wants_thinking(body, target))
    if system:
        out["system"] = system
    out["messages"] = messages
    user_max = body.get("max_completion_tokens") or body.get("max_tokens")
    out["max_tokens"] = user_max or target.info.max_output_tokens or DEFAULT_MAX_TOKENS

    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None:
            out[name] = value
    user = body.get("user") or cast("Mapping[str, Any]", body).get("safety_identifier")
    if user:
        out["metadata"] = {"user_id": str(user)}

    output_tool = forced_output_tool(body, target)
    tools = [_to_anthropic_tool(tool, target) for tool in body.get("tools") or ()] if output_tool is None else []
    choice: dict[str, Any] | None = _to_anthropic_tool_choice(body) if output_tool is None else None
    json_tool = json_tool_name(body, target) if output_tool is None else None
    response_format = (body.get("response_format") or {}) if output_tool is None else {}
    if json_tool is not None:
        tools.append(_json_tool(response_format, json_tool))
        if choice is None or choice.get("type") in ("auto", "none"):
            # The answer must come through a tool: the JSON one, or one of the caller's own (OpenAI's semantics
            # with tools + response_format). Only the JSON tool when the caller ruled theirs out.
            only_json = (choice is not None and choice.get("type") == "none") or not body.get("tools")
            choice = {"type": "tool", "name": json_tool} if only_json else {"type": "any"}
    elif response_format.get("type") == "json_schema":
        schema: Any = _obj(response_format.get("json_schema")).get("schema") or {"type": "object"}
        out["output_config"] = {"format": {"type": "json_schema", "schema": _to_anthropic_schema(schema)}}
    elif output_tool is not None:
        parameters = _obj(_obj((body.get("tools") or [{}])[0]).get("function")).get("parameters")
        schema = parameters or {"type": "object", "properties": {}}
        out["output_config"] = {"format": {"type": "json_schema", "schema": _to_anthropic_schema(schema)}}
    if not tools and _history_uses_tools(messages):
        tools = _declared_history_tools(messages)
        choice = {"type": "none"}
    if tools:
        out["tools"] = tools
        if choice is not None:
            if body.get("parallel_tool_calls") is False and choice["type"] != "none":
                choice["disable_parallel_tool_use"] = True
            out["tool_choice"] = choice
        elif body.get("parallel_tool_calls") is False:
            out["tool_choice"] = {"type": "auto", "disable_parallel_tool_use": True}

    effort = body.get("reasoning_effort")
    if effort and effort != "none":
        out["thinking"] = _to_anthropic_thinking(effort, out, user_max, target)

    for name, value in body.items():
        if name not in OPENAI_REQUEST_FIELDS:
            out[name] = value  # native fields sent with extra_body: thinking, top_k, output_config, ...
    if target.deployment.params:
        out.update(target.deployment.params)
    _apply_thinking_rules(out, json_tool, target)
    return out


_REFUSABLE = frozenset(
    {
        "n",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "verbosity",
        "logprobs",
        "top_logprobs",
        "logit_bias",
        "audio",
        "modalities",
        "prediction",
        "web_search_options",
        "functions",
        "function_call",
        "reasoning_effort",
    }
)
"""The OpenAI fields :func:`_refuse_unsupported` looks at (most requests have none of them)."""


def _refuse_unsupported(body: ChatCompletionRequest, target: Target) -> None:
    if _REFUSABLE.isdisjoint(body):
        return
    raw = cast("Mapping[str, Any]", body)

    def refuse(param: str, why: str) -> UnsupportedFeatureError:
        return UnsupportedFeatureError(
            f"{target.label} (Anthropic Messages API) {why}, route to a deployment that has it, or list '{param}' in "
            "this deployment's drop_params",
            param=param,
        )

    if (body.get("n") or 1) > 1:
        raise refuse("n", "returns one choice per call; remove 'n' or set it to 1")
    if body.get("seed") is not None:
        raise refuse("seed", "has no sampling seed; remove 'seed'")
    for name in ("presence_penalty", "frequency_penalty"):
        if raw.get(name):  # 0 is OpenAI's default: nothing to honour
            raise refuse(name, f"has no {name.replace('_', ' ')}; remove '{name}'")
    if raw.get("verbosity") is not None:
        raise refuse("verbosity", "has no 'verbosity' setting; remove it")
    if body.get("logprobs") or body.get("top_logprobs"):
        raise refuse("logprobs", "does not return log probabilities; remove 'logprobs' / 'top_logprobs'")
    if body.get("logit_bias"):
        raise refuse("logit_bias", "does not support 'logit_bias'; remove it")
    if body.get("audio") or "audio" in (body.get("modalities") or ()):
        raise refuse("modalities", "does not produce audio; remove 'audio' and audio from 'modalities'")
    if body.get("prediction"):
        raise refuse("prediction", "does not support predicted outputs; remove 'prediction'")
    if body.get("web_search_options") is not None:
        raise refuse(
            "web_search_options",
            "has web search as a server tool, not 'web_search_options'; remove it or pass native 'tools'",
        )
    if raw.get("functions") or raw.get("function_call"):
        raise refuse("functions", "takes 'tools' / 'tool_choice', not the legacy 'functions' / 'function_call'")
    if body.get("reasoning_effort") not in (None, "none") and target.info.known and not target.info.reasoning:
        raise refuse("reasoning_effort", f"model {target.model} has no extended thinking; remove 'reasoning_effort'")


def _wants_thinking(body: ChatCompletionRequest, target: Target) -> bool:
    """Whether this request asks for thinking (``reasoning_effort``, or native ``thinking`` in the body or params)."""
    return _thinking_type(body, target) in ("enabled", "adaptive")


def _thinking_type(body: ChatCompletionRequest, target: Target) -> str | None:
    native = target.deployment.params.get("thinking", cast("Mapping[str, Any]", body).get("thinking"))
    if native is not None:
        return _obj(native).get("type")
    return "enabled" if body.get("reasoning_effort") not in (None, "none") else None


def forced_output_tool(body: ChatCompletionRequest, target: Target) -> str | None:
    """The name of a forced tool answered through native structured outputs instead, else None.

    One tool, forced (``tool_choice`` "required" or that function), with manual thinking on: the pattern of
    LangChain ``with_structured_output``, LlamaIndex ``structured_predict`` and instructor TOOLS, whose tool
    exists only to shape the answer. Anthropic refuses thinking with a forced tool, so on a model with native
    structured outputs the tool's parameters become ``output_config.format`` and the JSON answer comes back as a
    call of that tool (``finish_reason: "tool_calls"``), thinking kept. A ``response_format`` sent along (instructor's
    RESPONSES_TOOLS sends the schema as both) is left aside: a forced call writes no text for it to shape. Other
    forced tools: see :func:`_apply_thinking_rules`.
    """
    tools = body.get("tools") or ()
    if len(tools) != 1 or _thinking_type(body, target) != "enabled":
        return None
    name = _obj(tools[0].get("function")).get("name")
    choice = body.get("tool_choice")
    forced = choice == "required" or (isinstance(choice, dict) and _obj(choice.get("function")).get("name") == name)
    if not forced or not isinstance(name, str) or not native_structured_output(target):
        return None
    return name


def _to_anthropic_messages(
    messages: list[Message], target: Target, *, restore_thinking: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI messages → (``system`` text blocks, alternating native messages with the history repaired).

    ``restore_thinking``: give assistant turns with tool calls the thinking blocks the client dropped (from the
    target's store); without thinking on, the API has no use for them.
    """
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        role = message["role"]
        match role:
            case "system" | "developer":
                system.extend(_to_anthropic_blocks(message, index, target, allowed=("text",)))
                continue
            case "user":
                blocks = _to_anthropic_blocks(message, index, target)
                native_role = "user"
            case "assistant":
                blocks = _to_anthropic_assistant_blocks(message, index, target, restore_thinking)
                native_role = "assistant"
            case "tool" | "function":
                blocks = [_to_anthropic_tool_result(message, index, target)]
                native_role = "user"
        if not blocks:
            continue
        if turns and turns[-1]["role"] == native_role:
            turns[-1]["content"].extend(blocks)  # the Messages API wants alternating turns: merge
        else:
            turns.append({"role": native_role, "content": blocks})
    if not turns and messages:
        raise UnsupportedFeatureError(
            "Anthropic needs at least one user message with content besides the system prompt, and this request has "
            "none (only system messages or instructions, or empty or whitespace-only text); send some text as input",
            param="messages",
        )
    return system, _repair_tool_adjacency(turns)


def _to_anthropic_blocks(
    message: Message, index: int, target: Target, allowed: tuple[str, ...] | None = None
) -> list[dict[str, Any]]:
    """A message's ``content`` (string or parts) → native content blocks; message-level cache_control → last."""
    content = message.get("content")
    blocks: list[dict[str, Any]] = []
    if isinstance(content, str):
        if content.strip():  # the Messages API refuses empty and whitespace-only text blocks
            blocks.append({"type": "text", "text": content})
    elif content:
        for part in content:
            block = _to_anthropic_part(part, index, target)
            if block is None:
                continue
            if allowed is not None and block["type"] not in allowed:
                raise UnsupportedFeatureError(
                    f"messages[{index}]: a {message['role']} message can carry only text for {target.label}; "
                    f"move the {part['type']} part to a user message",
                    param=f"messages[{index}].content",
                )
            blocks.append(block)
    cache_control = cast("Mapping[str, Any]", message).get("cache_control")
    if cache_control and blocks:
        blocks[-1]["cache_control"] = cache_control
    return blocks


def _to_anthropic_part(part: ContentPart, index: int, target: Target) -> dict[str, Any] | None:
    """One OpenAI content part → one native block (build-with-claude/vision, build-with-claude/pdf-support)."""
    where = f"messages[{index}].content"
    kind = part["type"]
    block: dict[str, Any]
    match kind:
        case "text" | "refusal":
            text = part.get("text") or cast("Mapping[str, Any]", part).get("refusal") or ""
            if not text.strip():
                return None  # the Messages API rejects empty and whitespace-only text blocks
            block = {"type": "text", "text": text}
        case "image_url":
            if target.info.known and not target.info.vision:
                raise UnsupportedFeatureError(
                    f"{target.label} does not take images; remove the image part or route to a vision model",
                    param=where,
                )
            block = _to_anthropic_image(str(_obj(part.get("image_url")).get("url") or ""), where)
        case "file":
            block = _to_anthropic_document(part.get("file") or {}, where, target)
        case "input_audio":
            raise UnsupportedFeatureError(
                f"{target.label} (Anthropic) does not take audio input; transcribe it to text or route the call to "
                "an audio-capable model",
                param=where,
            )
        case _:
            raise UnsupportedFeatureError(
                f"{target.label} cannot take a {kind!r} content part; send text, image_url or file parts",
                param=where,
            )
    cache_control = part.get("cache_control")
    if cache_control:
        block["cache_control"] = cache_control
    return block


def _to_anthropic_image(url: str, where: str) -> dict[str, Any]:
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    found = _DATA_URL.match(url)
    if not found or not found["b64"]:
        raise UnsupportedFeatureError(
            "an image_url must be an http(s) URL or a base64 data URL (data:image/png;base64,...)", param=where
        )
    media = (found["media"] or "").lower()
    if media == "application/pdf":
        return {"type": "document", "source": {"type": "base64", "media_type": media, "data": found["data"]}}
    if media not in _IMAGE_TYPES:
        raise UnsupportedFeatureError(
            f"Anthropic takes JPEG, PNG, GIF and WebP images, not {media or 'an untyped data URL'}; convert the image",
            param=where,
        )
    return {"type": "image", "source": {"type": "base64", "media_type": media, "data": found["data"]}}


def _to_anthropic_document(file: Mapping[str, Any], where: str, target: Target) -> dict[str, Any]:
    if target.info.known and not target.info.pdf:
        raise UnsupportedFeatureError(
            f"{target.label} does not take documents; remove the file part or route to a model with PDF support",
            param=where,
        )
    data = file.get("file_data")
    if not isinstance(data, str) or not data:
        raise UnsupportedFeatureError(
            "Anthropic cannot read OpenAI file ids; send the file inline as 'file_data' (a base64 data URL)",
            param=where,
        )
    block: dict[str, Any]
    if data.startswith(("http://", "https://")):
        block = {"type": "document", "source": {"type": "url", "url": data}}
    else:
        found = _DATA_URL.match(data)
        media, payload = ((found["media"] or "").lower(), found["data"]) if found else ("application/pdf", data)
        if found and media.startswith("text/"):
            if found["b64"]:
                import base64

                payload = base64.b64decode(payload).decode("utf-8", errors="replace")
            else:
                from urllib.parse import unquote

                payload = unquote(payload)
            block = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": payload}}
        elif media == "application/pdf" and (found is None or found["b64"]):
            block = {"type": "document", "source": {"type": "base64", "media_type": media, "data": payload}}
        elif media in _IMAGE_TYPES and found is not None and found["b64"]:
            block = {"type": "image", "source": {"type": "base64", "media_type": media, "data": payload}}
        else:
            raise UnsupportedFeatureError(
                f"Anthropic reads PDF and plain-text documents, not {media or 'this file'}; convert it to PDF or text",
                param=where,
            )
    filename = file.get("filename")
    if filename and block["type"] == "document":
        block["title"] = filename
    return block


def _to_anthropic_assistant_blocks(
    message: Message, index: int, target: Target, restore_thinking: bool = False
) -> list[dict[str, Any]]:
    """Thinking blocks first (signatures intact), then text, then ``tool_use`` (build-with-claude/extended-thinking).

    A turn with tool calls that comes back without its thinking blocks (most clients drop them) gets the blocks
    this router returned with those calls, from the target's thinking store.
    """
    blocks: list[dict[str, Any]] = []
    thinking = message.get("thinking_blocks") or ()
    calls = message.get("tool_calls") or ()
    store = target.thinking_store
    if restore_thinking and calls and store is not None and not any(_replayable(b) for b in thinking):
        thinking = store.blocks_for([call["id"] for call in calls]) or ()
    for block in thinking:
        match block.get("type"):
            case "thinking" if block.get("signature"):
                blocks.append(
                    {"type": "thinking", "thinking": block.get("thinking", ""), "signature": block["signature"]}
                )
            case "redacted_thinking" if block.get("data"):
                blocks.append({"type": "redacted_thinking", "data": block["data"]})
            case _:
                pass  # unsigned thinking cannot be replayed; Anthropic would reject it
    blocks.extend(_to_anthropic_blocks(message, index, target, allowed=("text",)))
    for call in message.get("tool_calls") or ():
        blocks.append(_to_anthropic_tool_use(call, index))
    return blocks


def _replayable(block: Mapping[str, Any]) -> bool:
    return bool(block.get("signature") if block.get("type") == "thinking" else block.get("data"))


def _to_anthropic_tool_use(call: ToolCall, index: int) -> dict[str, Any]:
    function = call["function"]
    raw = function.get("arguments") or "{}"
    try:
        arguments = loads(raw)
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        raise UnsupportedFeatureError(
            f"messages[{index}].tool_calls: the arguments of {call['id']!r} must be a JSON object for Anthropic, "
            f"got {raw[:80]!r}",
            param=f"messages[{index}].tool_calls",
        )
    return {"type": "tool_use", "id": call["id"], "name": function["name"], "input": arguments}


def _to_anthropic_tool_result(message: Message, index: int, target: Target) -> dict[str, Any]:
    content = message.get("content")
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.get("tool_call_id") or ""}
    if isinstance(content, str) or content is None:
        result["content"] = content or ""
    else:
        blocks = [block for part in content if (block := _to_anthropic_part(part, index, target)) is not None]
        result["content"] = blocks
    cache_control = cast("Mapping[str, Any]", message).get("cache_control")
    if cache_control:
        result["cache_control"] = cache_control
    return result


def _repair_tool_adjacency(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every ``tool_use`` answered at the start of the next user turn; stray ``tool_result`` s become text.

    api/messages (tool use): "Each tool_use block must have a corresponding tool_result block in the next message",
    and results must come first in that message.
    """
    if not any(block["type"] in _TOOL_BLOCKS for turn in turns for block in turn["content"]):
        return turns  # no tool in the conversation: nothing to pair
    out: list[dict[str, Any]] = []
    pending: list[str] = []  # tool_use ids of the assistant turn just before
    for turn in turns:
        if turn["role"] == "user":
            results = [b for b in turn["content"] if b["type"] == "tool_result" and b["tool_use_id"] in pending]
            answered = {b["tool_use_id"] for b in results}
            missing = [
                {"type": "tool_result", "tool_use_id": i, "content": MISSING_RESULT, "is_error": True}
                for i in pending
                if i not in answered
            ]
            rest = [
                _stray_result_as_text(b) if b["type"] == "tool_result" else b
                for b in turn["content"]
                if not (b["type"] == "tool_result" and b["tool_use_id"] in answered)
            ]
            out.append({"role": "user", "content": results + missing + rest})
            pending = []
        else:
            if pending:
                out.append({"role": "user", "content": _missing_results(pending)})
            out.append(turn)
            pending = [b["id"] for b in turn["content"] if b["type"] == "tool_use"]
    if pending:
        out.append({"role": "user", "content": _missing_results(pending)})
    return out


_TOOL_BLOCKS = frozenset({"tool_use", "tool_result"})


def _missing_results(ids: list[str]) -> list[dict[str, Any]]:
    return [{"type": "tool_result", "tool_use_id": i, "content": MISSING_RESULT, "is_error": True} for i in ids]


def _stray_result_as_text(block: Mapping[str, Any]) -> dict[str, Any]:
    content = block.get("content")
    if isinstance(content, list):
        content = "\n".join(
            b.get("text", "") for b in cast("list[Mapping[str, Any]]", content) if b.get("type") == "text"
        )
    return {"type": "text", "text": f"[result of tool call {block.get('tool_use_id')}]\n{content or ''}"}


def _history_uses_tools(messages: list[dict[str, Any]]) -> bool:
    return any(b["type"] in ("tool_use", "tool_result") for m in messages for b in m["content"])


def _declared_history_tools(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = dict.fromkeys(b["name"] for m in messages for b in m["content"] if b["type"] == "tool_use")
    if not names:  # only results (their uses were cut off): any declared tool satisfies the API
        names = {"tool": None}
    return [
        {
            "name": name,
            "description": "A tool used earlier in this conversation (declared by polyroute; not callable now).",
            "input_schema": {"type": "object"},
        }
        for name in names
    ]


def _to_anthropic_tool(tool: Mapping[str, Any], target: Target) -> dict[str, Any]:
    """An OpenAI function tool → ``{name, description, input_schema}`` (agents-and-tools/tool-use/overview)."""
    function: Mapping[str, Any] = tool.get("function") or {}
    if tool.get("type", "function") != "function":
        raise UnsupportedFeatureError(
            f"{target.label} takes function tools only, not {tool.get('type')!r}", param="tools"
        )
    out: dict[str, Any] = {
        "name": function["name"],
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = function["description"]
    if function.get("strict") and native_structured_output(target):
        out["strict"] = True
        out["input_schema"] = _to_anthropic_schema(out["input_schema"])
    cache_control = tool.get("cache_control") or function.get("cache_control")
    if cache_control:
        out["cache_control"] = cache_control
    return out


def _to_anthropic_tool_choice(body: ChatCompletionRequest) -> dict[str, Any] | None:
    choice = body.get("tool_choice")
    match choice:
        case None:
            return None
        case "auto":
            return {"type": "auto"}
        case "none":
            return {"type": "none"}
        case "required":
            return {"type": "any"}
        case str():
            return {"type": "auto"}
        case _:
            name = _obj(choice.get("function")).get("name")
            return {"type": "tool", "name": str(name)} if name else {"type": "auto"}


def native_structured_output(target: Target) -> bool:
    """Whether the model has native structured outputs: Opus 4.1 and Claude 4.5+ by name, unless the catalog
    (or the deployment's ``capabilities``) says it has no ``json_schema``.
    """
    if not target.info.json_schema:
        return False
    version = _model_version(target.model)
    if version is None:
        return False
    family, major, minor = version
    return (major, minor) >= (4, 5) or (family == "opus" and (major, minor) >= (4, 1))


def _model_version(model: str) -> tuple[str, int, int] | None:
    found = _MODEL_VERSION.search(model)
    if found is None:
        return None
    if found["old"]:
        return "", int(found["old"]), 0  # claude-3-5-sonnet, claude-3-opus: the 3.x naming
    return found["family"], int(found["major"]), int(found["minor"] or 0)


def json_tool_name(body: ChatCompletionRequest, target: Target) -> str | None:
    """The forced tool's name when ``response_format`` goes through a tool on this target, else None."""
    response_format = body.get("response_format") or {}
    kind = response_format.get("type")
    if kind == "json_object" or (kind == "json_schema" and not native_structured_output(target)):
        name = str(_obj(response_format.get("json_schema")).get("name") or JSON_TOOL)
        if not _TOOL_NAME.match(name):
            name = JSON_TOOL
        taken = {_obj(t.get("function")).get("name") for t in body.get("tools") or ()}
        while name in taken:
            name += "_"
        return name
    return None


def _json_tool(response_format: Mapping[str, Any], name: str) -> dict[str, Any]:
    spec: Mapping[str, Any] = response_format.get("json_schema") or {}
    schema = spec.get("schema") or {"type": "object"}
    description = spec.get("description") or "Respond with your answer as this tool's input."
    return {"name": name, "description": description, "input_schema": schema}


def _to_anthropic_schema(schema: Any) -> Any:
    """JSON Schema → the subset native structured outputs and strict tools accept, in one pass over the nodes.

    build-with-claude/structured-outputs ("JSON Schema limitations"), done the way the official SDK's
    ``transform_schema`` does it: every object gets ``additionalProperties: false``; ``oneOf`` becomes ``anyOf``;
    a ``$ref`` node keeps only the reference; what the API rejects (``minimum``, ``maximum``, ``exclusiveMinimum``,
    ``exclusiveMaximum``, ``multipleOf``, ``minLength``, ``maxLength``, ``pattern``, ``maxItems``, ``uniqueItems``,
    ``minItems`` above 1, ``minProperties``, ``maxProperties``, string formats outside its list, ``default``,
    ``examples``…) moves into the node's ``description`` as ``{minimum: 0, maxLength: 20}``, so the model still
    reads the constraint and the caller's own validation (pydantic, instructor…) still enforces it.
    """
    if not isinstance(schema, dict):
        return schema
    node = cast("dict[str, Any]", schema)
    out: dict[str, Any] = {}
    ref = node.get("$ref")
    if isinstance(ref, str):  # the SDK keeps a reference alone (with its definitions, if any)
        for key in ("$defs", "definitions"):
            if isinstance(node.get(key), dict):
                out[key] = _to_anthropic_schemas(node[key])
        out["$ref"] = ref
        return out
    moved: list[tuple[str, Any]] = []
    for key, value in node.items():
        match key:
            case "properties" | "$defs" | "definitions" if isinstance(value, dict):
                out[key] = _to_anthropic_schemas(cast("dict[str, Any]", value))
            case "anyOf" | "oneOf" | "allOf" if isinstance(value, list):
                variants = [_to_anthropic_schema(v) for v in cast("list[Any]", value)]
                out["allOf" if key == "allOf" else "anyOf"] = variants
            case "items" if isinstance(value, dict):
                out[key] = _to_anthropic_schema(value)
            case "type" | "title" | "description" | "required":
                out[key] = value
            case "enum" | "const" if _primitive(value, key):
                out[key] = value
            case "format" if value in _STRING_FORMATS:
                out[key] = value
            case "minItems" if value in (0, 1):
                out[key] = value
            case "additionalProperties":
                pass  # false on every object, below
            case _:
                moved.append((key, value))
    kind = out.get("type")
    if kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in out:
        out["additionalProperties"] = False
    if moved:
        note = "{" + ", ".join(f"{key}: {_constraint_text(value)}" for key, value in moved) + "}"
        description = out.get("description")
        out["description"] = f"{description}\n\n{note}" if description else note
    return out


def _to_anthropic_schemas(schemas: dict[str, Any]) -> dict[str, Any]:
    """``properties`` / ``$defs``: names → schemas, each converted once."""
    return {name: _to_anthropic_schema(value) for name, value in schemas.items()}


_STRING_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
)
"""The string formats structured outputs accept (build-with-claude/structured-outputs)."""


def _primitive(value: Any, key: str) -> bool:
    """``enum`` of strings, numbers, booleans and nulls (not objects or arrays); ``const`` of one of those."""
    values = cast("list[Any]", value) if key == "enum" and isinstance(value, list) else [value]
    return (key != "enum" or isinstance(value, list)) and all(
        v is None or isinstance(v, str | int | float | bool) for v in values
    )


def _constraint_text(value: Any) -> str:
    """How a moved constraint reads in a description: strings as they are, the rest as compact JSON."""
    return value if isinstance(value, str) else dumps(value).decode()


def _to_anthropic_thinking(effort: str, out: dict[str, Any], user_max: int | None, target: Target) -> dict[str, Any]:
    """``reasoning_effort`` → an extended-thinking budget below ``max_tokens`` (build-with-claude/extended-thinking)."""
    budget = THINKING_BUDGETS.get(effort)
    if budget is None:
        raise UnsupportedFeatureError(
            f"reasoning_effort must be one of none, {', '.join(THINKING_BUDGETS)} for {target.label}, got {effort!r}",
            param="reasoning_effort",
        )
    if user_max is None:
        ceiling = target.info.max_output_tokens
        wanted = max(out["max_tokens"], budget + DEFAULT_MAX_TOKENS)
        out["max_tokens"] = min(wanted, ceiling) if ceiling else wanted
    budget = min(budget, out["max_tokens"] - 1)
    if budget < 1024:
        raise UnsupportedFeatureError(
            f"extended thinking needs max_tokens above 1024 (got {out['max_tokens']}); raise max_tokens or remove "
            "reasoning_effort",
            param="reasoning_effort",
        )
    return {"type": "enabled", "budget_tokens": budget}


def _apply_thinking_rules(out: dict[str, Any], json_tool: str | None, target: Target) -> None:
    """Make thinking and the rest of the request fit together (build-with-claude/extended-thinking).

    Thinking is turned off for this one request, with a warning in the ``polyroute`` log, where the API would
    refuse it and the caller cannot fix that:

    - a forced tool (``tool_choice`` required or a named function; LangChain ``with_structured_output``,
      LlamaIndex ``structured_predict``, pydantic-ai tool output and instructor TOOLS all force one) that
      :func:`forced_output_tool` cannot answer through native structured outputs (several tools, or a model
      without them): manual thinking "may not be enabled when tool_choice forces tool use". Turning thinking off
      keeps the tool forced, so the caller gets the tool call it asked for; the docs' own advice for the conflict.
      (``tool_choice: auto`` plus a check would fail only after the answer, often mid-stream: worse for callers);
    - a tool loop whose last assistant turn has no thinking block left to start with (the client dropped it and
      this router no longer holds it: a new process, a stored conversation): the API wants that turn to start
      with its signed thinking, and accepts the loop without thinking ("To avoid this requirement, disable
      `thinking`").

    ``response_format`` going through the forced JSON tool (``json_object``, or ``json_schema`` on a model without
    native structured outputs) with thinking is refused with a 400 instead: the caller can fix it (use
    ``json_schema`` on Claude 4.5+, or drop ``reasoning_effort``).

    Then the sampling knobs the request cannot carry are dropped ("Sampling parameters"): temperature (and top_p
    below 0.95) while thinking; top_p next to temperature, which newer models reject even at defaults; all of them
    from API version 2026-10-21, which takes no sampling parameters.
    """
    thinking_type = _obj(out.get("thinking")).get("type")
    forced = _obj(out.get("tool_choice")).get("type") in ("any", "tool")
    if thinking_type == "enabled" and forced:
        if json_tool is not None:
            raise _json_tool_with_thinking(target)
        out.pop("thinking")
        logger.warning(
            "polyroute: %s: thinking turned off for this request: Anthropic does not allow thinking when "
            "tool_choice forces a tool (tool_choice=%s); remove reasoning_effort or use tool_choice auto to keep it",
            target.label,
            "required" if _obj(out.get("tool_choice")).get("type") == "any" else "a named function",
        )
        thinking_type = None
    if thinking_type in ("enabled", "adaptive") and _tool_loop_lost_thinking(out["messages"]):
        out.pop("thinking")
        logger.warning(
            "polyroute: %s: thinking turned off for this request: the tool loop's last assistant turn came back "
            "without its thinking blocks and this router no longer has them (a new process or a stored "
            "conversation); Anthropic accepts the loop only without thinking. Send back the message's "
            "thinking_blocks to keep thinking on",
            target.label,
        )
        thinking_type = None
    if thinking_type in ("enabled", "adaptive"):
        out.pop("temperature", None)
        if out.get("top_p") is not None and out["top_p"] < 0.95:
            out.pop("top_p")
    if "temperature" in out and "top_p" in out:
        out.pop("top_p")
    if (target.deployment.api_version or DEFAULT_VERSION) >= SAMPLING_FREE_VERSION:
        out.pop("temperature", None)
        out.pop("top_p", None)


def _tool_loop_lost_thinking(messages: list[dict[str, Any]]) -> bool:
    """Whether the last assistant turn has ``tool_use`` but does not start with a (redacted) thinking block."""
    for message in reversed(messages):
        if message["role"] == "assistant":
            content = message["content"]
            uses_tools = any(block["type"] == "tool_use" for block in content)
            return uses_tools and content[0]["type"] not in ("thinking", "redacted_thinking")
    return False


def _json_tool_with_thinking(target: Target) -> UnsupportedFeatureError:
    """The 400 for ``response_format`` that needs the forced JSON tool while thinking is on."""
    if native_structured_output(target):  # then json_schema is native: only json_object takes the tool
        why = (
            "response_format json_object is answered through a forced tool on Anthropic, and thinking may not be "
            "enabled when a tool is forced; use response_format json_schema (native structured outputs, which work "
            "with thinking on this model) or remove reasoning_effort"
        )
    else:
        why = (
            "response_format is answered through a forced tool on this model, which has no native "
            "structured outputs, and thinking may not be enabled when a tool is forced; remove reasoning_effort or "
            "route to a model with structured outputs (Claude Opus 4.1, Claude 4.5 or later)"
        )
    return UnsupportedFeatureError(why, param="reasoning_effort")  # the router names the deployment


# -- responses ----------------------------------------------------------------------------------------------------


def parse_response(content: bytes, target: Target, body: ChatCompletionRequest) -> ChatCompletion:
    """A native ``message`` → a chat completion (api/messages)."""
    data = loads(content)
    if not isinstance(data, dict) or cast("Mapping[str, Any]", data).get("type") == "error":
        raise classify_error(200, {}, content, target)
    return from_native_message(cast("dict[str, Any]", data), target, body)


def from_native_message(message_data: Mapping[str, Any], target: Target, body: ChatCompletionRequest) -> ChatCompletion:
    """A native ``message`` object → a chat completion (shared with Claude on Bedrock, whose Converse answer is
    mapped to this shape first).
    """
    json_tool = json_tool_name(body, target)
    texts: list[str] = []
    reasoning: list[str] = []
    thinking_blocks: list[dict[str, Any]] = []
    tool_calls: list[ToolCall] = []
    json_answer: str | None = None
    for block in message_data.get("content") or ():
        match block.get("type"):
            case "text":
                texts.append(block.get("text", ""))
            case "thinking":
                reasoning.append(block.get("thinking", ""))
                thinking_blocks.append(
                    {"type": "thinking", "thinking": block.get("thinking", ""), "signature": block.get("signature", "")}
                )
            case "redacted_thinking":
                thinking_blocks.append({"type": "redacted_thinking", "data": block.get("data", "")})
            case "tool_use" if block.get("name") == json_tool:
                json_answer = dumps(block.get("input") or {}).decode()
            case "tool_use":
                tool_calls.append(
                    {
                        "id": block["id"],
                        "type": "function",
                        "function": {"name": block["name"], "arguments": dumps(block.get("input") or {}).decode()},
                    }
                )
            case _:
                pass  # server tools (server_tool_use, web_search_tool_result...) ran upstream; their text follows
    text = json_answer if json_answer is not None else "".join(texts)
    output_tool = forced_output_tool(body, target)
    if output_tool is not None and text and message_data.get("stop_reason") != "refusal":
        tool_calls.append(
            {"id": tool_call_id(), "type": "function", "function": {"name": output_tool, "arguments": text}}
        )
        text = ""
    refused = message_data.get("stop_reason") == "refusal"
    message: ResponseMessage = {"role": "assistant", "content": text if text or not (tool_calls or refused) else None}
    if refused:
        message["refusal"] = REFUSAL
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if thinking_blocks:
        message["thinking_blocks"] = thinking_blocks
        if tool_calls and target.thinking_store is not None:
            target.thinking_store.remember_blocks([call["id"] for call in tool_calls], thinking_blocks)
    finish = _from_anthropic_stop_reason(message_data.get("stop_reason"), bool(tool_calls))
    completion: ChatCompletion = {
        "id": str(message_data.get("id") or ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(message_data.get("model") or target.model),
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": _from_anthropic_usage(message_data.get("usage") or {}),
    }
    return completion


def _from_anthropic_stop_reason(reason: str | None, user_tool_called: bool) -> FinishReason:
    """api/handling-stop-reasons. ``tool_use`` of the JSON tool alone is a plain answer: ``stop``."""
    match reason:
        case "tool_use":
            return "tool_calls" if user_tool_called else "stop"
        case "max_tokens" | "model_context_window_exceeded":
            return "length"
        case "refusal":
            return "content_filter"
        case _:
            return "tool_calls" if user_tool_called else "stop"  # end_turn, stop_sequence, pause_turn, None


def _from_anthropic_usage(usage: Mapping[str, Any]) -> Usage:
    """Native usage → OpenAI's: cache reads and writes are part of the prompt (api/messages: usage)."""
    cache_read = int(usage.get("cache_read_input_tokens") or 0)
    cache_write = int(usage.get("cache_creation_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cache_read + cache_write
    reasoning = int(_obj(usage.get("output_tokens_details")).get("thinking_tokens") or 0)
    return make_usage(
        prompt, int(usage.get("output_tokens") or 0), cached=cache_read, cache_write=cache_write, reasoning=reasoning
    )


# -- streams ------------------------------------------------------------------------------------------------------


def stream_translator(target: Target, body: ChatCompletionRequest) -> AnthropicStreamTranslator:
    """A translator for one Messages stream."""
    return AnthropicStreamTranslator(
        target, include_usage(body), json_tool_name(body, target), forced_output_tool(body, target)
    )


BlockKind = Literal["text", "thinking", "redacted_thinking", "tool", "json", "other"]


class AnthropicStreamTranslator:
    """``message_start`` … ``message_stop`` events → OpenAI chunks (build-with-claude/streaming).

    Finish reason and usage are sent on ``message_stop``, so a stream cut after ``message_delta`` never looks
    finished; :meth:`finish` raises :class:`StreamInterruptedError` when ``message_stop`` never came.
    """

    __slots__ = (
        "_blocks",
        "_json_tool",
        "_output_call",
        "_output_tool",
        "_started",
        "_stop_reason",
        "_stopped",
        "_usage",
        "builder",
        "target",
    )

    def __init__(
        self, target: Target, include_usage: bool, json_tool: str | None = None, output_tool: str | None = None
    ) -> None:
        self.target = target
        self.builder = ChunkBuilder(model=target.model, include_usage=include_usage)
        self._json_tool = json_tool
        self._output_tool = output_tool
        self._output_call: str | None = None
        """The id of the tool call the structured answer streams as (see :func:`forced_output_tool`)."""
        self._blocks: dict[int, dict[str, Any]] = {}
        self._usage: dict[str, Any] = {}
        self._stop_reason: str | None = None
        self._started = False
        self._stopped = False

    def feed(self, event: SSEEvent) -> list[ChatCompletionChunk]:
        """One native event → the chunks it completes."""
        if not event.data:
            return []
        data: dict[str, Any] = loads(event.data)
        kind = data.get("type") or event.event
        match kind:
            case "message_start":
                return self._message_start(_event_obj(data, "message"))
            case "content_block_start":
                return self._block_start(int(data["index"]), _event_obj(data, "content_block"))
            case "content_block_delta":
                return self._block_delta(int(data["index"]), _event_obj(data, "delta"))
            case "content_block_stop":
                return self._block_stop(int(data["index"]))
            case "message_delta":
                delta = _obj(data.get("delta"))
                if delta.get("stop_reason"):
                    self._stop_reason = delta["stop_reason"]
                self._merge_usage(data.get("usage") or {})
                return []
            case "message_stop":
                return self._message_stop()
            case "error":
                raise classify_error(200, {}, event.data.encode(), self.target)
            case _:
                return []  # ping, and event types added later (streaming: "handle unknown events gracefully")

    def plain_text(self, event: SSEEvent) -> str | None:
        """The text of a ``text_delta`` that only adds to an open text block (most of a stream), else None.

        No side effects: a caller that has a shorter way to send plain text (the Responses translation) uses it and
        skips :meth:`feed`; for anything else it feeds the event.
        """
        if event.event != "content_block_delta" or self._output_tool is not None or '"text_delta"' not in event.data:
            return None
        data = _obj(loads(event.data))
        delta = _obj(data.get("delta"))
        text = delta.get("text")
        if delta.get("type") != "text_delta" or type(text) is not str or not text:
            return None
        state = self._blocks.get(data.get("index", -1))
        return text if state is not None and state["kind"] == "text" else None

    def _message_start(self, message: Mapping[str, Any]) -> list[ChatCompletionChunk]:
        self._started = True
        if message.get("id"):
            self.builder.id = str(message["id"])
        if message.get("model"):
            self.builder.model = str(message["model"])
        self._merge_usage(message.get("usage") or {})
        return []

    def usage_so_far(self) -> Usage | None:
        """The usage the stream has told so far (``message_start``'s, then each ``message_delta``'s), for a stream
        that ends before its last event.
        """
        return _from_anthropic_usage(self._usage) if self._usage else None

    def _merge_usage(self, usage: Mapping[str, Any]) -> None:
        # message_delta usage is cumulative (streaming docs): later non-null values replace earlier ones.
        for key, value in usage.items():
            if value is not None:
                self._usage[key] = value

    def _block_start(self, index: int, block: Mapping[str, Any]) -> list[ChatCompletionChunk]:
        kind: BlockKind
        out: list[ChatCompletionChunk] = []
        state: dict[str, Any] = {"args": ""}
        match block.get("type"):
            case "text":
                kind = "text"
                if block.get("text"):
                    out.extend(self._text(block["text"]))
            case "thinking":
                kind = "thinking"
                state["thinking"] = block.get("thinking") or ""
                state["signature"] = block.get("signature") or ""
                if state["thinking"]:
                    out.append(self.builder.reasoning(state["thinking"]))
            case "redacted_thinking":
                kind = "redacted_thinking"
                state["data"] = block.get("data") or ""
            case "tool_use" if block.get("name") == self._json_tool:
                kind = "json"
                state["input"] = block.get("input") or {}
            case "tool_use":
                kind = "tool"
                state["input"] = block.get("input") or {}
                state["id"] = str(block["id"])
                out.append(self.builder.tool_call_start(index, str(block["id"]), str(block["name"])))
            case _:
                kind = "other"
        state["kind"] = kind
        self._blocks[index] = state
        return out

    def _block_delta(self, index: int, delta: Mapping[str, Any]) -> list[ChatCompletionChunk]:
        state = self._blocks.get(index)
        if state is None:
            return []
        match delta.get("type"):
            case "text_delta" if delta.get("text"):
                return self._text(delta["text"])
            case "thinking_delta" if delta.get("thinking"):
                state["thinking"] = state.get("thinking", "") + delta["thinking"]
                return [self.builder.reasoning(delta["thinking"])]
            case "signature_delta":
                state["signature"] = state.get("signature", "") + (delta.get("signature") or "")
                return []
            case "input_json_delta" if delta.get("partial_json"):
                fragment: str = delta["partial_json"]
                state["args"] += fragment
                if state["kind"] == "json":
                    return [self.builder.text(fragment)]
                if state["kind"] == "tool":
                    return [self.builder.tool_call_arguments(index, fragment)]
                return []
            case _:
                return []  # empty deltas, citations_delta

    def _text(self, text: str) -> list[ChatCompletionChunk]:
        """Text as content, or as the arguments of the forced tool answered through structured outputs."""
        if self._output_tool is None:
            return [self.builder.text(text)]
        if self._output_call is None:
            self._output_call = tool_call_id()
            return [self.builder.tool_call_start("output", self._output_call, self._output_tool, text)]
        return [self.builder.tool_call_arguments("output", text)]

    def _block_stop(self, index: int) -> list[ChatCompletionChunk]:
        state = self._blocks.get(index)
        if state is None:
            return []
        match state["kind"]:
            case "thinking":
                block = {"type": "thinking", "thinking": state["thinking"], "signature": state["signature"]}
                state["block"] = block
                return [self.builder.chunk({"thinking_blocks": [block]})]
            case "redacted_thinking":
                state["block"] = {"type": "redacted_thinking", "data": state["data"]}
                return [self.builder.chunk({"thinking_blocks": [state["block"]]})]
            case "tool" if not state["args"]:
                # No argument deltas (a tool without parameters): send the start block's input, as non-streamed.
                return [self.builder.tool_call_arguments(index, dumps(state["input"]).decode())]
            case "json" if not state["args"]:
                return [self.builder.text(dumps(state["input"]).decode())]
            case _:
                return []

    def _message_stop(self) -> list[ChatCompletionChunk]:
        self._stopped = True
        states = [self._blocks[index] for index in sorted(self._blocks)]
        call_ids = [state["id"] for state in states if state["kind"] == "tool"]
        if self._output_call is not None:
            call_ids.append(self._output_call)
        store = self.target.thinking_store
        if call_ids and store is not None:
            store.remember_blocks(call_ids, [state["block"] for state in states if "block" in state])
        out: list[ChatCompletionChunk] = []
        if self._stop_reason == "refusal":
            out.append(self.builder.chunk({"refusal": REFUSAL}))
        out.append(self.builder.finish(_from_anthropic_stop_reason(self._stop_reason, bool(call_ids))))
        usage_chunk = self.builder.usage_chunk(_from_anthropic_usage(self._usage))
        if usage_chunk is not None:
            out.append(usage_chunk)
        return out

    def finish(self) -> list[ChatCompletionChunk]:
        """The upstream body ended: fine after ``message_stop``, an interruption otherwise."""
        if not self._stopped:
            where = "before message_start" if not self._started else "without message_stop"
            raise StreamInterruptedError(
                f"{self.target.label} ended the stream {where}",
                provider=self.target.provider,
                deployment=self.target.label,
                status=502,
            )
        return []


# -- errors -------------------------------------------------------------------------------------------------------

_STATUS_BY_TYPE: Mapping[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
"""api/errors: the HTTP status of each error type (also used for ``error`` events inside a 200 stream)."""


def classify_error(status: int, headers: Mapping[str, str], content: bytes, target: Target) -> UpstreamStatusError:
    """``{"type": "error", "error": {"type", "message"}, "request_id"}`` → an :class:`UpstreamStatusError`.

    ``overloaded_error`` (529) becomes 503 and is retryable; "prompt is too long" gets OpenAI's
    ``context_length_exceeded`` code and phrase (LangChain and others match on it).
    """
    try:
        data = loads(content)
    except ValueError:
        return generic_status_error(status, content, target, headers=headers)
    error = cast("Mapping[str, Any]", data).get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return generic_status_error(status, content, target, headers=headers)
    error = cast("Mapping[str, Any]", error)
    native_type = str(error.get("type") or "api_error")
    message = str(error.get("message") or f"HTTP {status}")
    if status < 400:  # an error event inside a stream or a 200 body
        status = _STATUS_BY_TYPE.get(native_type, 500)
    body_id = cast("Mapping[str, Any]", data).get("request_id")
    return upstream_status_error(
        target,
        status,
        message,
        headers=headers,
        code=native_type,
        request_id=headers.get("request-id") or headers.get("x-request-id") or (str(body_id) if body_id else None),
    )
