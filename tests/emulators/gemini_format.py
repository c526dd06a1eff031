"""A Gemini API emulator: ``generateContent`` and ``streamGenerateContent?alt=sse`` as Google serves them.

Handlers check what the real API checks that polyroute could get wrong (the path, ``alt=sse``, the key in the
``x-goog-api-key`` header and never in the URL, fields the v1beta protos do not have, inline bytes that are not
base64, multimodal function responses (``functionResponse.parts``: Gemini 3 only, inline images and documents of the
documented types, URIs on Vertex AI only), and on Gemini 3 paths only the thought signatures of the current turn's
function calls: present, and one this emulator sent or Google's documented placeholder) and answer with scripted
turns or recorded responses. Errors use the ``google.rpc.Status`` body Gemini
sends, with its wording.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from tests.emulators.server import Reply, Request

_PATH = re.compile(
    r"^/v1beta/(?P<model>(?:models|tunedModels)/[^:]+):(?P<method>generateContent|streamGenerateContent)$"
)

Turn = Mapping[str, Any] | Reply | Callable[[Request], Reply]
"""A scripted answer: a GenerateContentResponse (streamed or not, as asked), a ready Reply, or a function."""


def response(
    text: str | None = "Hello from Gemini!",
    *,
    thought: str | None = None,
    calls: Sequence[Mapping[str, Any]] = (),
    text_signature: str | None = None,
    finish: str | None = "STOP",
    usage: Mapping[str, Any] | None = None,
    response_id: str = "emu-response-1",
    model: str = "gemini-emu",
) -> dict[str, Any]:
    """A GenerateContentResponse with one candidate. ``calls``: ``{"name", "args", "thoughtSignature"?}``."""
    parts: list[dict[str, Any]] = []
    if thought:
        parts.append({"text": thought, "thought": True})
    if text is not None:
        part: dict[str, Any] = {"text": text}
        if text_signature:
            part["thoughtSignature"] = text_signature
        parts.append(part)
    for call in calls:
        part = {"functionCall": {"name": call["name"], "args": call.get("args", {})}}
        if call.get("thoughtSignature"):
            part["thoughtSignature"] = call["thoughtSignature"]
        parts.append(part)
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": dict(usage or {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15}),
        "modelVersion": model,
        "responseId": response_id,
    }


def stream_events(full: Mapping[str, Any], pieces: int = 3) -> list[dict[str, Any]]:
    """Split a whole response into stream events the way Gemini does: text in pieces, function calls whole, the
    finishReason and final usage on the last event."""
    events: list[dict[str, Any]] = []
    candidate = full["candidates"][0]
    common = {"modelVersion": full.get("modelVersion"), "responseId": full.get("responseId")}
    usage = full.get("usageMetadata") or {}
    early_usage = {k: v for k, v in usage.items() if k != "candidatesTokenCount"}
    for part in candidate["content"]["parts"]:
        if part.get("text"):
            text = part["text"]
            step = max(1, len(text) // pieces)
            for i in range(0, len(text), step):
                piece = {k: v for k, v in part.items() if k != "thoughtSignature"}
                piece["text"] = text[i : i + step]
                if "thoughtSignature" in part and i + step >= len(text):
                    piece["thoughtSignature"] = part["thoughtSignature"]
                events.append(_event(piece, early_usage, common))
        else:
            events.append(_event(part, early_usage, common))
    last = {"content": {"parts": [{"text": ""}], "role": "model"}, "index": 0}
    if candidate.get("finishReason"):
        last["finishReason"] = candidate["finishReason"]
        events.append({"candidates": [last], "usageMetadata": usage, **common})
    return events


def _event(part: Mapping[str, Any], usage: Mapping[str, Any], common: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "candidates": [{"content": {"parts": [dict(part)], "role": "model"}, "index": 0}],
        "usageMetadata": dict(usage),
        **common,
    }


def sse_body(events: Iterable[Mapping[str, Any]]) -> bytes:
    """The SSE body Gemini sends (``data: <json>`` events separated by CRLF CRLF)."""
    return b"".join(b"data: " + json.dumps(e).encode() + b"\r\n\r\n" for e in events)


def split(data: bytes, size: int) -> list[bytes]:
    """``data`` in pieces of ``size`` bytes (odd sizes cut JSON, UTF-8 and CRLF anywhere)."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def merged(events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The one GenerateContentResponse a stream adds up to: parts concatenated per candidate, the last finishReason,
    the last usage."""
    candidates: dict[int, dict[str, Any]] = {}
    out: dict[str, Any] = {}
    for event in events:
        for key in ("modelVersion", "responseId", "promptFeedback"):
            if key in event:
                out[key] = event[key]
        if any(k in (event.get("usageMetadata") or {}) for k in ("promptTokenCount", "candidatesTokenCount")):
            out["usageMetadata"] = event["usageMetadata"]
        for candidate in event.get("candidates") or ():
            index = candidate.get("index", 0)
            target = candidates.setdefault(index, {"content": {"parts": [], "role": "model"}, "index": index})
            target["content"]["parts"].extend((candidate.get("content") or {}).get("parts") or ())
            if candidate.get("finishReason"):
                target["finishReason"] = candidate["finishReason"]
    out["candidates"] = [candidates[i] for i in sorted(candidates)]
    return out


def rpc_error(status: int, rpc_status: str, message: str, *details: Mapping[str, Any]) -> Reply:
    """A Gemini error reply (``google.rpc.Status`` JSON)."""
    error: dict[str, Any] = {"code": status, "message": message, "status": rpc_status}
    if details:
        error["details"] = list(details)
    return Reply.json({"error": error}, status=status)


def rate_limited(retry_delay: str = "0.05s") -> Reply:
    """429 RESOURCE_EXHAUSTED with QuotaFailure and RetryInfo details, as the Gemini API sends it."""
    return rpc_error(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details.",
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": "PerMinute"}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay},
    )


class GeminiEmulator:
    """A handler answering ``turns`` in order (the last one repeats); records the native requests it accepted."""

    def __init__(
        self, *turns: Turn, chunk_size: int | None = 7, check_signatures: bool = True, vertex: bool = False
    ) -> None:
        self.turns = list(turns)
        self.chunk_size = chunk_size
        self.check_signatures = check_signatures
        self.vertex = vertex
        """Vertex AI's surface: a ``FunctionResponsePart`` may hold ``fileData`` too."""
        self.bodies: list[dict[str, Any]] = []
        self.issued: set[str] = set()
        """The thought signatures this emulator sent; replayed ones must be among them (or the documented skip)."""
        self._next = 0

    def __call__(self, request: Request) -> Reply:
        match = _PATH.match(request.path)
        if request.method != "POST" or not match:
            return rpc_error(404, "NOT_FOUND", f"{request.method} {request.path} is not a Gemini method")
        if "key" in request.query:
            return rpc_error(400, "INVALID_ARGUMENT", "test emulator: the API key must not be sent in the URL")
        if not request.headers.get("x-goog-api-key"):
            return rpc_error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers.")
        stream = match.group("method") == "streamGenerateContent"
        if stream and request.query.get("alt") != ["sse"]:
            return rpc_error(400, "INVALID_ARGUMENT", "test emulator: stream without alt=sse")
        body = request.json()
        problem = self._check(body, match.group("model"))
        if problem is not None:
            return problem
        self.bodies.append(body)
        turn = self.turns[min(self._next, len(self.turns) - 1)]
        self._next += 1
        if callable(turn):
            return turn(request)
        if isinstance(turn, Reply):
            return turn
        self.issued.update(_signatures(turn))
        if not stream:
            return Reply.json(dict(turn))
        data = sse_body(stream_events(turn))
        pieces = split(data, self.chunk_size) if self.chunk_size else [data]
        return Reply(chunks=pieces, headers={"content-type": "text/event-stream"})

    def _check(self, body: Mapping[str, Any], model: str) -> Reply | None:
        unknown = _unknown_field(body)
        if unknown is not None:
            return unknown
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            return rpc_error(400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified")
        for i, content in enumerate(contents):
            if content.get("role") not in ("user", "model"):
                return rpc_error(400, "INVALID_ARGUMENT", f"contents[{i}].role must be user or model")
            if not content.get("parts"):
                where = f"GenerateContentRequest.contents[{i}].parts"
                return rpc_error(400, "INVALID_ARGUMENT", f"* {where}: contents.parts must not be empty.\n")
            for j, part in enumerate(content["parts"]):
                if not any(part.get(k) for k in _DATA_FIELDS):  # proto3 JSON: "" is an unset field
                    where = f"GenerateContentRequest.contents[{i}].parts[{j}].data"
                    message = f"* {where}: required oneof field 'data' must have one initialized field\n"
                    return rpc_error(400, "INVALID_ARGUMENT", message)
        problem = check_fields(body) or check_media(body, _gemini_major(model), vertex=self.vertex)
        if problem is not None:
            return rpc_error(400, "INVALID_ARGUMENT", problem)
        if self.check_signatures and _gemini_major(model) >= 3:
            return self._check_signatures(contents)
        return None

    def _check_signatures(self, contents: Sequence[Mapping[str, Any]]) -> Reply | None:
        """Gemini 3 (thought-signatures docs): in the current turn (after the last user message with text), the first
        functionCall of each model step must carry the signature it was returned with; Gemini 2.5 does not check.
        A signature this emulator never issued is refused as a real one from elsewhere would be.
        """
        start = 0
        for i, content in enumerate(contents):
            if content["role"] == "user" and any("text" in p or "inlineData" in p for p in content["parts"]):
                start = i + 1
        for i in range(start, len(contents)):
            content = contents[i]
            calls = [(j, p) for j, p in enumerate(content["parts"]) if "functionCall" in p]
            if content["role"] != "model" or not calls:
                continue
            j, first = calls[0]
            signature = first.get("thoughtSignature")
            if signature is None:
                name = first["functionCall"].get("name")
                return rpc_error(
                    400,
                    "INVALID_ARGUMENT",
                    "Function call is missing a thought_signature in functionCall parts. This is required for tools "
                    "to work correctly, and missing thought_signature may lead to degraded model performance. "
                    f"Additional data, function call `default_api:{name}` , position {j + 1}. Please refer to "
                    "https://ai.google.dev/gemini-api/docs/thought-signatures for more details.",
                )
            if signature != SKIP_SIGNATURE and signature not in self.issued:
                return rpc_error(400, "INVALID_ARGUMENT", "Corrupted thought signature.")
        return None


SKIP_SIGNATURE = "skip_thought_signature_validator"
"""The placeholder Gemini documents for function calls whose signature is unknown (thought-signatures FAQ)."""


_DATA_FIELDS = (
    "text",
    "inlineData",
    "inline_data",
    "functionCall",
    "function_call",
    "functionResponse",
    "function_response",
    "fileData",
    "file_data",
    "executableCode",
    "executable_code",
    "codeExecutionResult",
    "code_execution_result",
)
"""The ``Part.data`` oneof: one must be set (Gemini answers an empty text part with the oneof error, as users report
in router-for-me/CLIProxyAPI#1292)."""

_PART_FIELDS = {
    *_DATA_FIELDS,
    "videoMetadata",
    "video_metadata",
    "thought",
    "thoughtSignature",
    "thought_signature",
    "partMetadata",
    "part_metadata",
}
"""Part's fields (v1beta content.proto). The corpus has Gemini refusing ``mediaResolution`` on a part."""


def _unknown_field(body: Mapping[str, Any]) -> Reply | None:
    """Gemini's 400 for a field the proto does not have (as recorded in pydantic-ai's video_url_detail cassette)."""
    found: tuple[str, str | None] | None = None
    for key in body:
        if key not in _REQUEST_FIELDS:
            found = (key, None)
            break
    for i, content in enumerate(body.get("contents") or () if found is None else ()):
        for key in content:
            if key not in ("role", "parts") and found is None:
                found = (key, f"contents[{i}]")
        for j, part in enumerate(content.get("parts") or ()):
            for key in part:
                if key not in _PART_FIELDS and found is None:
                    found = (key, f"contents[{i}].parts[{j}]")
    if found is None:
        return None
    name, where = found
    at = f" at '{where}'" if where else ""
    message = f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.'
    violation = {"field": where or name, "description": message}
    return rpc_error(
        400,
        "INVALID_ARGUMENT",
        message,
        {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [violation]},
    )


def _gemini_major(model: str) -> int:
    found = re.search(r"gemini-(\d+)", model)
    return int(found.group(1)) if found else 3  # unversioned names (aliases, tuned models): the strict family


def _signatures(turn: Mapping[str, Any]) -> set[str]:
    return {
        part["thoughtSignature"]
        for candidate in turn.get("candidates") or ()
        for part in (candidate.get("content") or {}).get("parts") or ()
        if part.get("thoughtSignature")
    }


def _names(*snake: str) -> frozenset[str]:
    """Proto field names as the JSON parser takes them: ``lowerCamelCase`` and the original ``snake_case``."""
    camel = [name.split("_")[0] + "".join(p.title() for p in name.split("_")[1:]) for name in snake]
    return frozenset((*snake, *camel))


_REQUEST_FIELDS = _names(
    "model", "system_instruction", "contents", "tools", "tool_config", "safety_settings", "generation_config",
    "cached_content",
)  # fmt: skip
_GENERATION_FIELDS = _names(
    "candidate_count", "stop_sequences", "max_output_tokens", "temperature", "top_p", "top_k", "seed",
    "response_mime_type", "response_schema", "response_json_schema", "presence_penalty", "frequency_penalty",
    "response_logprobs", "logprobs", "enable_enhanced_civic_answers", "response_modalities", "speech_config",
    "thinking_config", "image_config", "media_resolution",
) | {"_responseJsonSchema"}  # fmt: skip
_SCHEMA_FIELDS = _names(
    "type", "format", "title", "description", "nullable", "enum", "items", "max_items", "min_items", "properties",
    "required", "min_properties", "max_properties", "minimum", "maximum", "min_length", "max_length", "pattern",
    "example", "any_of", "property_ordering", "default",
)  # fmt: skip
"""generative_service.proto ``GenerateContentRequest`` / ``GenerationConfig`` and content.proto ``Schema``."""


_FUNCTION_RESPONSE_FIELDS = _names("id", "name", "response", "parts", "will_continue", "scheduling")
"""content.proto ``FunctionResponse``."""
_BLOB_FIELDS = _names("mime_type", "data")
"""content.proto ``FunctionResponseBlob``."""
_FILE_FIELDS = _names("mime_type", "file_uri")
"""Vertex AI's ``FunctionResponseFileData`` (as ``FileData``)."""

FUNCTION_RESPONSE_MEDIA = frozenset({"image/png", "image/jpeg", "image/webp", "application/pdf", "text/plain"})
"""What Gemini 3 reads inside a ``functionResponse`` (function-calling docs, "Multimodal function responses")."""


def check_media(body: Mapping[str, Any], major: int, *, vertex: bool = False) -> str | None:
    """Inline bytes and multimodal function responses, worded as Google's JSON parser words them.

    ``inlineData.data`` is proto ``bytes``: base64 in JSON (standard or URL-safe), anything else fails to parse.
    ``FunctionResponse`` has the fields of content.proto; its ``parts`` are ``FunctionResponsePart`` s, whose
    ``data`` oneof is ``inline_data`` alone on the Gemini API (Vertex AI's has ``file_data`` too: a recorded Vertex
    request, pydantic-ai ``test_multimodal_tool_return_matrix[direct-url-image-google_vertex]``, sends it), a
    ``FunctionResponseBlob`` of ``mime_type`` and ``data``. Models before Gemini 3 refuse ``parts`` (a 400 on
    gemini-2.5-flash, on both APIs, as users report), and Gemini 3 reads the documented MIME types there only: those
    two rules have no recorded wording, so their messages say ``test emulator``.
    """
    for i, content in enumerate(body.get("contents") or ()):
        for j, part in enumerate(content.get("parts") or ()):
            where = f"contents[{i}].parts[{j}]"
            blob = part.get("inlineData") or part.get("inline_data")
            if isinstance(blob, Mapping):
                problem = _bytes_problem(blob, f"{where}.inline_data.data")
                if problem:
                    return problem
            response = part.get("functionResponse") or part.get("function_response")
            if isinstance(response, Mapping):
                problem = _function_response_problem(response, f"{where}.function_response", major, vertex)
                if problem:
                    return problem
    return None


def _function_response_problem(response: Mapping[str, Any], where: str, major: int, vertex: bool) -> str | None:
    for name in response:
        if name not in _FUNCTION_RESPONSE_FIELDS:
            return _unknown(name, where)
    nested = response.get("parts")
    if nested is None:
        return None
    if major < 3:
        return f"test emulator: {where}.parts: multimodal function responses need Gemini 3 or later"
    kinds = _names("inline_data", "file_data") if vertex else _names("inline_data")
    for k, item in enumerate(nested):
        at = f"{where}.parts[{k}]"
        for name in item:
            if name not in kinds:
                return _unknown(name, at)
        if len(item) != 1:
            return f"* GenerateContentRequest.{at}.data: required oneof field 'data' must have one initialized field\n"
        inline = "inlineData" in item or "inline_data" in item
        blob = next(iter(item.values()))
        for name in blob:
            if name not in (_BLOB_FIELDS if inline else _FILE_FIELDS):
                return _unknown(name, f"{at}.{'inline_data' if inline else 'file_data'}")
        mime = str(blob.get("mimeType") or blob.get("mime_type") or "")
        if mime not in FUNCTION_RESPONSE_MEDIA:
            return (
                f"test emulator: {at}: {mime or 'no MIME type'} is not a MIME type Gemini reads in a function response"
            )
        problem = _bytes_problem(blob, f"{at}.inline_data.data") if inline else None
        if problem:
            return problem
    return None


def _unknown(name: str, where: str) -> str:
    return f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}': Cannot find field."


def _bytes_problem(blob: Mapping[str, Any], where: str) -> str | None:
    data = blob.get("data")
    text = data.replace("-", "+").replace("_", "/") if isinstance(data, str) else ""
    try:
        base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError:
        return f"Invalid value at '{where}' (TYPE_BYTES), Base64 decoding failed for \"{str(data)[:40]}\""
    return None


def check_fields(body: Mapping[str, Any]) -> str | None:
    """Unknown fields and schema rules, worded as Google's JSON parser and the API answer.

    The request and ``generationConfig`` are protobuf messages: an unknown name is a 400 ("Invalid JSON payload
    received. Unknown name ..."). ``responseSchema`` and a declaration's ``parameters`` are the OpenAPI-subset
    ``Schema`` message, equally strict. ``responseJsonSchema`` / ``parametersJsonSchema`` take JSON Schema and ignore
    keywords they do not support, but "if ``$ref`` is set on a sub-schema, no other properties, except for those
    starting as a ``$``, may be set" (generative_service.proto, ``response_json_schema``).
    """
    for name in body:
        if name not in _REQUEST_FIELDS:
            return f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.'
    config = body.get("generationConfig") or body.get("generation_config") or {}
    for name in config:
        if name not in _GENERATION_FIELDS:
            return f"Invalid JSON payload received. Unknown name \"{name}\" at 'generation_config': Cannot find field."
    if "responseSchema" in config and "responseJsonSchema" in config:
        return "generation_config: response_schema and response_json_schema are mutually exclusive"
    problem = _openapi_schema_problem(config.get("responseSchema"), "generation_config.response_schema")
    problem = problem or _json_schema_problem(
        config.get("responseJsonSchema"), "generation_config.response_json_schema"
    )
    if problem:
        return problem
    for i, tool in enumerate(body.get("tools") or ()):
        for j, declaration in enumerate(tool.get("functionDeclarations") or ()):
            where = f"tools[{i}].function_declarations[{j}]"
            problem = _openapi_schema_problem(declaration.get("parameters"), f"{where}.parameters")
            problem = problem or _json_schema_problem(declaration.get("parametersJsonSchema"), where)
            if problem:
                return problem
    return None


def _openapi_schema_problem(schema: Any, where: str) -> str | None:
    if not isinstance(schema, Mapping):
        return None
    for name, value in schema.items():
        if name not in _SCHEMA_FIELDS:
            return f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}': Cannot find field."
        if name == "properties" and isinstance(value, Mapping):
            for index, (_, child) in enumerate(value.items()):
                problem = _openapi_schema_problem(child, f"{where}.properties[{index}].value")
                if problem:
                    return problem
        elif name in ("items",):
            problem = _openapi_schema_problem(value, f"{where}.items")
            if problem:
                return problem
        elif name in ("anyOf", "any_of") and isinstance(value, list):
            for index, child in enumerate(value):
                problem = _openapi_schema_problem(child, f"{where}.any_of[{index}]")
                if problem:
                    return problem
    return None


def _json_schema_problem(schema: Any, where: str) -> str | None:
    pending: list[Any] = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
            continue
        if not isinstance(node, Mapping):
            continue
        if "$ref" in node:
            others = [k for k in node if not str(k).startswith("$")]
            if others:
                return (
                    f"{where}: a schema that sets '$ref' may not set other properties except those starting with "
                    f"'$' (found {others[0]!r})"
                )
        for key in ("properties", "$defs", "definitions"):
            if isinstance(node.get(key), Mapping):
                pending.extend(node[key].values())
        for key in ("anyOf", "oneOf", "allOf", "prefixItems", "items", "additionalProperties"):
            pending.append(node.get(key))
    return None


def replay(
    events: Sequence[Mapping[str, Any]], *, raw_sse: bytes | None = None, chunk_size: int = 7
) -> Callable[[Request], Reply]:
    """A handler serving one recorded response: as SSE when streamed (the recorded bytes if given), merged into one
    body when not."""

    def handle(request: Request) -> Reply:
        if request.path.endswith(":streamGenerateContent"):
            data = raw_sse if raw_sse is not None else sse_body(events)
            return Reply(chunks=split(data, chunk_size), headers={"content-type": "text/event-stream"})
        return Reply.json(merged(events))

    return handle
