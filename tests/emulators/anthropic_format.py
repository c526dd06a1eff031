"""An Anthropic Messages API emulator: scripted turns or recorded fixtures, JSON or SSE (with ``event:`` lines).

Made for reuse by framework tests (LangChain, LlamaIndex, AutoGen agents over Claude)::

    from tests.emulators import anthropic_format as claude

    script = claude.scripted([
        claude.tool_use("get_weather", {"city": "Paris"}, thinking="I should call the tool."),
        "It is sunny in Paris.",
    ])
    emu = emulator(script)
    router = Router({"models": [{"name": "claude", "deployments": [
        {"provider": "anthropic", "model": "claude-sonnet-4-5", "api_base": emu.url, "api_key": "test"}]}]})

Each call answers with the next turn, streamed or not as the request asks. Every request is checked the way
Anthropic's API checks it (the official SDK's request types, so unknown fields are refused; ``tool_use`` /
``tool_result`` adjacency; tools defined when tool blocks are present; thinking signatures issued by this emulator;
with thinking on, a last assistant turn with ``tool_use`` that starts with its thinking block; no thinking with a
forced tool; no empty or whitespace-only text; base64 images whose bytes are the declared media type, ``tool_result``
content of the block types the SDK lists (text, image, document…); ``budget_tokens < max_tokens``);
a bad request gets Anthropic's 400
``invalid_request_error`` with Anthropic's wording, so tests see what Claude would say.
``script.bodies`` holds the requests received.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.emulators.server import Reply, Request

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "anthropic"

DEFAULT_MODEL = "claude-sonnet-4-5-20250929"

Block = dict[str, Any]
Turn = str | Block | Sequence[Block] | Reply | Callable[[Request], Reply]
"""A scripted answer: text, one content block, a list of blocks, a fixed :class:`Reply`, or a function."""


# -- content blocks and messages -------------------------------------------------------------------------------


def text(value: str) -> Block:
    """A ``text`` block."""
    return {"type": "text", "text": value}


def tool_use(
    name: str,
    input: Mapping[str, Any] | None = None,
    *,
    id: str | None = None,
    text: str | None = None,
    thinking: str | None = None,
) -> list[Block]:
    """A tool-use turn: optional thinking, optional text, then the ``tool_use`` block (``id`` filled in if None)."""
    blocks: list[Block] = []
    if thinking is not None:
        blocks.append({"type": "thinking", "thinking": thinking, "signature": ""})
    if text is not None:
        blocks.append({"type": "text", "text": text})
    blocks.append({"type": "tool_use", "id": id or "", "name": name, "input": dict(input or {})})
    return blocks


def thinking(value: str, *then: Block | str) -> list[Block]:
    """A thinking block (signed by the emulator when sent), then the given blocks or texts."""
    blocks: list[Block] = [{"type": "thinking", "thinking": value, "signature": ""}]
    blocks += [{"type": "text", "text": b} if isinstance(b, str) else b for b in then]
    return blocks


def message(
    content: Sequence[Block],
    *,
    model: str = DEFAULT_MODEL,
    stop_reason: str | None = None,
    usage: Mapping[str, Any] | None = None,
    id: str = "msg_emu",
) -> dict[str, Any]:
    """A Messages API ``message`` body; ``stop_reason`` defaults to tool_use / end_turn from the content."""
    if stop_reason is None:
        stop_reason = "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
    return {
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": list(content),
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": dict(
            usage
            or {"input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 5}
        ),
    }


def events(msg: Mapping[str, Any], *, pieces: int = 3) -> list[str]:
    """The SSE events Anthropic streams for ``msg``: text, thinking and tool input split into ``pieces`` deltas."""
    usage = dict(msg.get("usage") or {})
    start = {**msg, "content": [], "stop_reason": None, "stop_sequence": None, "usage": {**usage, "output_tokens": 1}}
    out = [_event("message_start", {"type": "message_start", "message": start}), _event("ping", {"type": "ping"})]
    for index, block in enumerate(msg.get("content") or ()):
        kind = block["type"]
        if kind == "text":
            first = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in _split(block["text"], pieces)]
        elif kind == "thinking":
            first = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": p} for p in _split(block["thinking"], pieces)]
            deltas.append({"type": "signature_delta", "signature": block.get("signature", "")})
        elif kind == "tool_use":
            first = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            raw = json.dumps(block.get("input") or {}) if block.get("input") else ""
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in ["", *_split(raw, pieces)]]
        else:
            first, deltas = block, []
        out.append(
            _event("content_block_start", {"type": "content_block_start", "index": index, "content_block": first})
        )
        out += [
            _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas
        ]
        out.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    delta = {"stop_reason": msg.get("stop_reason"), "stop_sequence": msg.get("stop_sequence")}
    out.append(_event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
    out.append(_event("message_stop", {"type": "message_stop"}))
    return out


def error_event(error_type: str = "overloaded_error", text: str = "Overloaded") -> str:
    """An in-stream ``error`` event (streaming docs: errors can arrive after a 200)."""
    return _event("error", {"type": "error", "error": {"type": error_type, "message": text}})


def error(status: int, error_type: str, text: str, *, request_id: str = "req_emu", **headers: str) -> Reply:
    """Anthropic's error answer: ``{"type": "error", "error": {...}, "request_id"}`` plus ``request-id``."""
    body = {"type": "error", "error": {"type": error_type, "message": text}, "request_id": request_id}
    return Reply.json(body, status=status, request_id=request_id, **headers)


def overloaded() -> Reply:
    """HTTP 529 ``overloaded_error``."""
    return error(529, "overloaded_error", "Overloaded")


def _event(name: str, payload: Mapping[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(payload)}\n\n"


def _split(value: str, pieces: int) -> list[str]:
    if not value:
        return []
    step = max(1, -(-len(value) // max(1, pieces)))
    return [value[i : i + step] for i in range(0, len(value), step)]


# -- request checks ----------------------------------------------------------------------------------------------


def check_request(body: Mapping[str, Any], signatures: set[str] | None = None) -> str | None:
    """What Anthropic's API would reject in ``body`` (None if nothing): the SDK's types and the documented rules."""
    problem = validate_with_sdk(body)
    if problem:
        return problem
    messages = list(body["messages"])
    has_tool_blocks = False
    for i, msg in enumerate(messages):
        content = msg["content"] if isinstance(msg["content"], list) else []
        if any(b["type"] in ("tool_use", "tool_result") for b in content):
            has_tool_blocks = True
        uses = [b["id"] for b in content if msg["role"] == "assistant" and b["type"] == "tool_use"]
        if uses:
            nxt = messages[i + 1] if i + 1 < len(messages) else None
            nxt_content = nxt["content"] if nxt and isinstance(nxt["content"], list) else []
            leading: list[str] = []
            for b in nxt_content:
                if b["type"] != "tool_result":
                    break
                leading.append(b["tool_use_id"])
            missing = [u for u in uses if u not in leading]
            if nxt is None or nxt["role"] != "user" or missing:
                return (
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{', '.join(missing or uses)}. Each `tool_use` block must have a corresponding `tool_result` "
                    "block in the next message."
                )
        if msg["role"] == "user":
            previous = messages[i - 1] if i else None
            prev_content = previous["content"] if previous and isinstance(previous["content"], list) else []
            known = {b["id"] for b in prev_content if b["type"] == "tool_use"}
            for j, b in enumerate(content):
                if b["type"] == "tool_result" and b["tool_use_id"] not in known:
                    return (
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{b['tool_use_id']}. Each `tool_result` block must have a corresponding `tool_use` block "
                        "in the previous message."
                    )
        for j, b in enumerate(content):
            if b["type"] == "thinking" and signatures is not None and b.get("signature") not in signatures:
                return f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
            if b["type"] == "redacted_thinking" and signatures is not None and b.get("data") not in signatures:
                return f"messages.{i}.content.{j}: Invalid `data` in `redacted_thinking` block"
        if msg["content"] == [] and not (msg["role"] == "assistant" and i == len(messages) - 1):
            return (
                f"messages.{i}: all messages must have non-empty content except for the optional final assistant "
                "message"
            )
        problem = _blank_text(msg["content"], "messages") or _image_problem(content, f"messages.{i}")
        if problem:
            return problem
    problem = _blank_text(body.get("system") or [], "system")
    if problem:
        return problem
    if has_tool_blocks and not body.get("tools"):
        return "Requests which include `tool_use` or `tool_result` blocks must define tools."
    schema_problem = check_schemas(body)
    if schema_problem:
        return schema_problem
    thinking_cfg = body.get("thinking") or {}
    thinking_on = thinking_cfg.get("type") in ("enabled", "adaptive")
    problem = _final_assistant_thinking(messages, thinking_on)
    if problem:
        return problem
    if thinking_cfg.get("type") == "enabled":
        budget = thinking_cfg.get("budget_tokens", 0)
        if budget < 1024 or budget >= body["max_tokens"]:
            return "`max_tokens` must be greater than `thinking.budget_tokens` (at least 1024)"
        if body.get("temperature") not in (None, 1):
            return "`temperature` may only be set to 1 when thinking is enabled."
        if (body.get("tool_choice") or {}).get("type") in ("any", "tool"):
            return "Thinking may not be enabled when tool_choice forces tool use."
    return None


def check_schemas(body: Mapping[str, Any]) -> str | None:
    """The JSON Schema limits of structured outputs and strict tools (build-with-claude/structured-outputs).

    ``output_config.format.schema`` and the ``input_schema`` of a ``strict`` tool are compiled into a grammar that
    takes a subset of JSON Schema; a non-strict tool's ``input_schema`` is free-form. Messages are worded as the
    API's (recorded: "output_config.format.schema: For 'integer' type, property 'multipleOf' is not supported",
    "tools.0.custom: For 'array' type, 'minItems' values other than 0 or 1 are not supported (got: ...)",
    "For 'object' type, 'additionalProperties' must be explicitly set to false", "Schemas contains too many
    optional parameters (87), which would make grammar compilation inefficient. Reduce the number of optional
    parameters in your tool schemas (limit: 24).", "tools.9.custom.input_schema: input_schema does not support
    oneOf, allOf, or anyOf at the top level"; the union-type and strict-tool counts are worded alike, unrecorded).
    """
    compiled: list[Any] = []
    output_format = (body.get("output_config") or {}).get("format") or {}
    if output_format.get("type") == "json_schema":
        compiled.append(output_format.get("schema"))
        problem = schema_problem(output_format.get("schema"), "output_config.format.schema")
        if problem:
            return problem
    strict = 0
    for i, tool in enumerate(body.get("tools") or ()):
        input_schema = tool.get("input_schema")
        if isinstance(input_schema, Mapping) and any(k in input_schema for k in ("oneOf", "allOf", "anyOf")):
            return (
                f"tools.{i}.custom.input_schema: input_schema does not support oneOf, allOf, or anyOf at the top level"
            )
        if tool.get("strict"):
            strict += 1
            compiled.append(input_schema)
            problem = schema_problem(input_schema, f"tools.{i}.custom")
            if problem:
                return problem
    if strict > 20:
        return f"Too many strict tools ({strict}). The maximum number of strict tools supported is 20."
    optional, unions = _grammar_size(compiled)
    if optional > 24:
        return (
            f"Schemas contains too many optional parameters ({optional}), which would make grammar compilation "
            "inefficient. Reduce the number of optional parameters in your tool schemas (limit: 24)."
        )
    if unions > 16:
        return (
            f"Schemas contains too many parameters with union types ({unions}), which would make grammar compilation "
            "inefficient. Reduce the number of parameters with union types in your tool schemas (limit: 16)."
        )
    return None


def _grammar_size(schemas: list[Any]) -> tuple[int, int]:
    """Optional properties and union-typed nodes (``anyOf`` or a type list) across every compiled schema."""
    optional = unions = 0
    pending = list(schemas)
    while pending:
        node = pending.pop()
        if not isinstance(node, Mapping):
            continue
        if "anyOf" in node or isinstance(node.get("type"), list):
            unions += 1
        properties = node.get("properties")
        if isinstance(properties, Mapping):
            optional += len([name for name in properties if name not in (node.get("required") or ())])
            pending.extend(properties.values())
        for key in ("$defs", "definitions"):
            if isinstance(node.get(key), Mapping):
                pending.extend(node[key].values())
        for key in ("anyOf", "allOf"):
            if isinstance(node.get(key), list):
                pending.extend(node[key])
        pending.append(node.get("items"))
    return optional, unions


_NUMERIC_LIMITS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_STRING_LIMITS = ("minLength", "maxLength")
_ARRAY_LIMITS = ("maxItems", "uniqueItems", "contains", "minContains", "maxContains", "prefixItems")
_OBJECT_LIMITS = ("minProperties", "maxProperties", "patternProperties", "propertyNames", "dependentRequired")
_FORMATS = {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
_UNSUPPORTED_REGEX = ("(?=", "(?!", "(?<=", "(?<!", "\\b", "\\1", "\\2", "\\3")


def schema_problem(schema: Any, where: str) -> str | None:
    """What the structured-outputs grammar compiler rejects in ``schema`` (None if nothing)."""
    pending: list[Any] = [schema]
    while pending:
        node = pending.pop()
        if not isinstance(node, Mapping):
            continue
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            return f"{where}: external '$ref' values are not supported (got: {ref})"
        if "oneOf" in node:
            return f"{where}: 'oneOf' is not supported; use 'anyOf'"
        kinds = node.get("type")
        for kind in kinds if isinstance(kinds, list) else [kinds]:
            problem = _type_problem(node, kind, where)
            if problem:
                return problem
        for key in ("properties", "$defs", "definitions"):
            if isinstance(node.get(key), Mapping):
                pending.extend(node[key].values())
        for key in ("anyOf", "allOf"):
            if isinstance(node.get(key), list):
                pending.extend(node[key])
        pending.append(node.get("items"))
    return None


def _type_problem(node: Mapping[str, Any], kind: Any, where: str) -> str | None:
    limits: tuple[str, ...] = ()
    match kind:
        case "integer" | "number":
            limits = _NUMERIC_LIMITS
        case "string":
            limits = _STRING_LIMITS
            if "format" in node and node["format"] not in _FORMATS:
                return f"{where}: For 'string' type, format '{node['format']}' is not supported"
            pattern = node.get("pattern")
            if isinstance(pattern, str) and any(token in pattern for token in _UNSUPPORTED_REGEX):
                return (
                    f"{where}: For 'string' type, pattern '{pattern}' is not supported (lookarounds, "
                    "backreferences and word boundaries are not supported)"
                )
        case "array":
            limits = _ARRAY_LIMITS
            if node.get("minItems", 0) not in (0, 1):
                return (
                    f"{where}: For 'array' type, 'minItems' values other than 0 or 1 are not supported "
                    f"(got: {node['minItems']})"
                )
        case "object":
            limits = _OBJECT_LIMITS
            if "additionalProperties" not in node:
                return f"{where}: For 'object' type, 'additionalProperties' must be explicitly set to false"
            if node["additionalProperties"] is not False:
                return (
                    f"{where}: For 'object' type, 'additionalProperties: {json.dumps(node['additionalProperties'])}'"
                    " is not supported. Please set 'additionalProperties' to false"
                )
        case _:
            pass
    for key in limits:
        if key in node:
            return f"{where}: For '{kind}' type, property '{key}' is not supported"
    return None


THINKING_FIRST = (
    "When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the "
    "lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from previous "
    "turns. To avoid this requirement, disable `thinking`. Please consult our documentation at "
    "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
)
"""Anthropic's 400 for a tool loop whose last assistant turn lost its thinking (as recorded in public bug reports)."""


def _final_assistant_thinking(messages: Sequence[Mapping[str, Any]], thinking_on: bool) -> str | None:
    """Thinking on: the last assistant message, if it carries ``tool_use``, must start with (redacted) thinking.
    Thinking off: an assistant message in the final position cannot contain thinking.
    """
    last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i]["role"] == "assistant"), None)
    if last is None:
        return None
    content = messages[last]["content"]
    blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
    if thinking_on and any(b["type"] == "tool_use" for b in blocks):
        first = blocks[0]["type"] if blocks else "nothing"
        if first not in ("thinking", "redacted_thinking"):
            return (
                f"messages.{last}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{first}`. "
                + THINKING_FIRST
            )
    if not thinking_on and last == len(messages) - 1:
        for j, b in enumerate(blocks):
            if b["type"] in ("thinking", "redacted_thinking"):
                return (
                    f"messages.{last}.content.{j}: When thinking is disabled, an `assistant` message in the final "
                    "position cannot contain `thinking`. To use thinking blocks, enable `thinking` in your request."
                )
    return None


def _blank_text(content: Any, where: str) -> str | None:
    """Empty text anywhere; whitespace-only text in a message of nothing but text (Anthropic's wording, which names
    no index). A recorded request (simonw-llm-anthropic ``test_tools``) shows a ``" "`` block beside ``tool_use``
    blocks accepted, so whitespace next to non-text blocks passes here too.
    """
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    texts = [b for b in content if b.get("type") == "text"]
    for b in texts:
        if not b.get("text"):
            return f"{where}: text content blocks must be non-empty"
    if texts and len(texts) == len(content) and not any(b["text"].strip() for b in texts):
        return f"{where}: text content blocks must contain non-whitespace text"
    for b in content:
        if b.get("type") == "tool_result" and isinstance(b.get("content"), list):
            problem = _blank_text(b["content"], where)
            if problem:
                return problem
    return None


_IMAGE_MAGIC = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}


def _image_problem(content: Sequence[Mapping[str, Any]], where: str) -> str | None:
    """A base64 image whose bytes are not the declared media type (or not base64 at all), in a message or in a
    ``tool_result``: Anthropic checks them, "messages.6.content.5.image.source.base64.data: Image does not match the
    provided media type image/png" (users' reports, anthropics/claude-code#13131, #15746).
    """
    for j, block in enumerate(content):
        if block.get("type") == "tool_result" and isinstance(block.get("content"), list):
            problem = _image_problem(block["content"], f"{where}.content.{j}")
            if problem:
                return problem
        source = block.get("source") or {}
        if block.get("type") != "image" or source.get("type") != "base64":
            continue
        media = source.get("media_type")
        try:
            data = base64.b64decode(source.get("data") or "", validate=True)
        except ValueError:
            data = b""
        magic = _IMAGE_MAGIC.get(media, ())
        if not data.startswith(magic) or (media == "image/webp" and data[8:12] != b"WEBP"):
            return f"{where}.content.{j}.image.source.base64.data: Image does not match the provided media type {media}"
    return None


def validate_with_sdk(body: Mapping[str, Any]) -> str | None:
    """Validate against the official ``anthropic`` SDK's request TypedDicts; unknown keys are errors too.

    Pydantic validates ``Iterable`` fields lazily and ignores extra TypedDict keys, so the validated value is
    materialized and compared key by key with the input.
    """
    from pydantic import ValidationError

    if "stream" in body and not isinstance(body["stream"], bool):
        return "stream: Input should be a valid boolean"
    body = {k: v for k, v in body.items() if k != "stream"}  # one adapter for both (building one takes seconds)
    try:
        validated = _materialize(_adapter().validate_python(body))
    except ValidationError as exc:
        return f"request does not match anthropic's MessageCreateParams: {exc.errors()[0]}"[:600]
    extras = [e for e in _extras(body, validated) if e not in _SAMPLING]
    for name in _SAMPLING:
        if name in body and (isinstance(body[name], bool) or not isinstance(body[name], int | float)):
            return f"{name}: Input should be a valid number"
    if extras:
        return f"{extras[0]}: Extra inputs are not permitted"
    return None


_SAMPLING = ("temperature", "top_p", "top_k")
"""Accepted by ``anthropic-version: 2023-06-01`` though the SDK's newest request types no longer list them."""

_ADAPTER: list[Any] = []


def _adapter() -> Any:
    if not _ADAPTER:
        from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
        from pydantic import TypeAdapter

        _ADAPTER.append(TypeAdapter(MessageCreateParamsNonStreaming))
    return _ADAPTER[0]


def _materialize(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _materialize(v) for k, v in value.items()}
    if value is None or isinstance(value, str | bytes | int | float | bool):
        return value
    if isinstance(value, list | tuple) or hasattr(value, "__iter__"):
        return [_materialize(v) for v in value]  # a lazily validated Iterable validates here
    return value


_FREE_FORM = ("input_schema", "schema", "input", "metadata")


def _extras(src: Any, out: Any, path: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(src, Mapping) and isinstance(out, Mapping):
        for key, value in src.items():
            if key not in out:
                found.append(f"{path}.{key}".lstrip("."))
            elif key not in _FREE_FORM:
                found += _extras(value, out[key], f"{path}.{key}")
    elif isinstance(src, list) and isinstance(out, list):
        for i, (a, b) in enumerate(zip(src, out, strict=False)):
            found += _extras(a, b, f"{path}.{i}")
    return found


# -- handlers ----------------------------------------------------------------------------------------------------


@dataclass
class Scripted:
    """A handler answering successive Messages calls with scripted turns; see :func:`scripted`."""

    turns: list[Turn]
    model: str = DEFAULT_MODEL
    validate: bool = True
    repeat_last: bool = False
    pieces: int = 3
    usage: Mapping[str, Any] | None = None
    bodies: list[dict[str, Any]] = field(default_factory=list)
    signatures: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _calls: int = 0

    def __call__(self, request: Request) -> Reply:
        if not request.path.endswith("/v1/messages") or request.method != "POST":
            return error(404, "not_found_error", f"{request.method} {request.path} not found")
        if not request.headers.get("x-api-key"):
            return error(401, "authentication_error", "x-api-key header is required")
        if not request.headers.get("anthropic-version"):
            return error(400, "invalid_request_error", "anthropic-version header is required")
        body = request.json()
        with self._lock:
            self.bodies.append(body)
            index = self._calls
            self._calls += 1
        if self.validate:
            problem = check_request(body, self.signatures)
            if problem:
                return error(400, "invalid_request_error", problem)
        if index >= len(self.turns):
            if not self.repeat_last or not self.turns:
                return error(500, "api_error", f"the script has {len(self.turns)} turns; call {index + 1} has none")
            index = len(self.turns) - 1
        turn = self.turns[index]
        if isinstance(turn, Reply):
            return turn
        if callable(turn):
            return turn(request)
        msg = message(
            self._blocks(turn, index), model=body.get("model") or self.model, usage=self.usage, id=f"msg_emu_{index}"
        )
        if body.get("stream"):
            sse_headers = {"content-type": "text/event-stream", "request-id": f"req_emu_{index}"}
            return Reply(chunks=events(msg, pieces=self.pieces), headers=sse_headers)
        return Reply(body=msg, headers={"request-id": f"req_emu_{index}"})

    def _blocks(self, turn: str | Block | Sequence[Block], index: int) -> list[Block]:
        raw: list[Block]
        if isinstance(turn, str):
            raw = [text(turn)]
        elif isinstance(turn, Mapping):
            raw = [dict(turn)]
        else:
            raw = [dict(b) for b in turn]
        for position, block in enumerate(raw):
            if block["type"] == "tool_use" and not block.get("id"):
                block["id"] = f"toolu_emu_{index}_{position}"
            if block["type"] == "thinking" and not block.get("signature"):
                block["signature"] = base64.b64encode(f"emu-signature-{index}-{position}".encode()).decode()
            if block["type"] == "thinking":
                self.signatures.add(block["signature"])
            if block["type"] == "redacted_thinking":
                self.signatures.add(block["data"])
        return raw


def scripted(turns: Sequence[Turn], **options: Any) -> Scripted:
    """A handler answering call *i* with ``turns[i]``: text, blocks (see :func:`tool_use`, :func:`thinking`), a
    :class:`Reply` (e.g. :func:`overloaded`) or a function of the request. Options: ``model``, ``validate``,
    ``repeat_last`` (answer extra calls with the last turn), ``pieces`` (deltas per block when streaming), ``usage``.
    """
    return Scripted(list(turns), **options)


# -- recorded fixtures --------------------------------------------------------------------------------------------


@dataclass
class Interaction:
    """One recorded upstream exchange: the native request (None for response-only captures) and response."""

    name: str
    request: dict[str, Any] | None
    status: int
    headers: dict[str, str]
    body: dict[str, Any] | None = None
    """The JSON response body, for non-streamed answers and errors."""
    sse: str | None = None
    """The SSE response text, for streamed answers."""

    def reply(self, **kwargs: Any) -> Reply:
        """The recorded answer as an emulator :class:`Reply` (SSE sent as one chunk per event)."""
        headers = {k: v for k, v in self.headers.items() if k in ("request-id", "retry-after")}
        if self.sse is not None:
            chunks = [part + "\n\n" for part in self.sse.split("\n\n") if part.strip()]
            return Reply(chunks=chunks, headers={"content-type": "text/event-stream", **headers}, **kwargs)
        return Reply(status=self.status, body=self.body or {}, headers=headers, **kwargs)


def load(name: str) -> list[Interaction]:
    """The interactions of a fixture file in ``tests/fixtures/anthropic/`` (pydantic-ai, simonw, vercel formats)."""
    path = FIXTURES / name
    if name.endswith(".json"):
        body = json.loads(path.read_text())
        status = 400 if body.get("type") == "error" else 200
        return [Interaction(name, None, status, {}, body=body)]
    if name.endswith(".chunks.txt"):
        payloads = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        sse = "".join(_event(p.get("type", "message"), p) for p in payloads)
        return [Interaction(name, None, 200, {"content-type": "text/event-stream"}, sse=sse)]
    import yaml

    raw = gzip.decompress(path.read_bytes()).decode() if name.endswith(".gz") else path.read_text()
    out: list[Interaction] = []
    for item in yaml.safe_load(raw)["interactions"]:
        req, resp = item["request"], item["response"]
        if "anthropic.com" not in req["uri"] or "/v1/messages" not in req["uri"]:
            continue  # e.g. an image download recorded in the same cassette
        request = req.get("parsed_body")
        if request is None and isinstance(req.get("body"), str):
            request = json.loads(req["body"])
        headers = {k.lower(): (v[0] if isinstance(v, list) else v) for k, v in (resp.get("headers") or {}).items()}
        status = int(resp["status"]["code"])
        if "parsed_body" in resp:
            out.append(Interaction(name, request, status, headers, body=resp["parsed_body"]))
            continue
        content = resp["body"]["string"]
        if isinstance(content, bytes):
            content = gzip.decompress(content) if content[:2] == b"\x1f\x8b" else content
            content = content.decode()
        if content.lstrip().startswith("{"):
            out.append(Interaction(name, request, status, headers, body=json.loads(content)))
        else:
            out.append(Interaction(name, request, status, headers, sse=content))
    return out


def fixture_names() -> list[str]:
    """Every fixture file name."""
    return sorted(p.name for p in FIXTURES.iterdir() if p.is_file())


def replay(interactions: Sequence[Interaction]) -> Callable[[Request], Reply]:
    """A handler answering successive calls with the recorded responses, in order."""
    answers: Iterator[Interaction] = iter(list(interactions))

    def handle(request: Request) -> Reply:
        found = next(answers, None)
        if found is None:
            return error(500, "api_error", "no recorded interaction left")
        return found.reply()

    return handle
