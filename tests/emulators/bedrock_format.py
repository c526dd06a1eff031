"""A Bedrock Runtime emulator: Converse and ConverseStream, as strict as the real service.

What it checks before answering, as Bedrock does:

- **SigV4**: the ``authorization`` header is recomputed with botocore's signer from the known test credentials, the
  request's own method, path, signed headers and body hash, and the ``x-amz-date`` it carries (a changed byte, a
  wrong key, region or service, a missing session token, a stale date → 403 as AWS answers). A bearer token (Bedrock
  API key) is checked against the known key.
- **The ConverseRequest shape**, from botocore's own service model of ``bedrock-runtime``: unknown members,
  missing required members, unions with more or fewer than one member, wrong JSON types, and blobs that are not
  base64 (``ValidationException``).
- **Converse's rules**, with the messages Bedrock sends (``../shared/corpus/bedrock/``): empty content, blank text,
  reasoning content in user messages, tool names, ``toolUse`` answered by ``toolResult`` in the next turn, tool
  blocks without ``toolConfig``; and Claude's (prefixed "The model returned the following errors:"): thinking with a
  forced tool, the last assistant tool turn starting with its signed thinking, signatures it issued, temperature
  with thinking, ``max_tokens`` above the thinking budget.

Streams are binary event-stream frames built here per the AWS event-stream encoding (prelude with total and header
lengths and its CRC32, string headers, payload, message CRC32), with the ``p`` padding field real frames carry.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import struct
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import unquote

from tests.emulators.server import Reply, Request

ACCESS_KEY = "AKIDEXAMPLEPOLYROUTE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYpolyrouteKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEPolyrouteTestSessionToken0123456789"
API_KEY = "ABSKpolyroute-test-bedrock-api-key-0123456789"
REGION = "us-east-1"

CORAL = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
MODEL_ERROR = "The model returned the following errors: "

Block = dict[str, Any]


# -- event-stream framing -----------------------------------------------------------------------------------------


def frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (total length, headers length, CRC32), headers, payload, CRC32."""
    encoded = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded += struct.pack(">B", len(raw_name)) + raw_name + b"\x07" + struct.pack(">H", len(raw_value)) + raw_value
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + encoded + payload
    return message + struct.pack(">I", binascii.crc32(message) & 0xFFFFFFFF)


_PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def event(name: str, payload: Mapping[str, Any]) -> bytes:
    """An event frame, with the ``p`` padding field Bedrock adds (its length varies, as it does live)."""
    body = {**payload, "p": _PADDING[: 2 + (len(name) * 7) % 50]}
    headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, json.dumps(body, separators=(",", ":")).encode())


def exception(kind: str, message: str) -> bytes:
    """An exception frame (``throttlingException``, ``validationException``…) inside a 200 stream."""
    headers = {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    return frame(headers, json.dumps({"message": message}, separators=(",", ":")).encode())


# -- answers ------------------------------------------------------------------------------------------------------


def error(status: int, kind: str, message: str) -> Reply:
    """A Bedrock error answer: ``x-amzn-errortype`` and a ``{"message"}`` body."""
    headers = {"x-amzn-errortype": kind + CORAL, "x-amzn-requestid": "emu-request-id"}
    return Reply(status=status, body={"message": message}, headers=headers)


def invalid(message: str) -> Reply:
    """A ``ValidationException`` (400)."""
    return error(400, "ValidationException", message)


def throttled() -> Reply:
    """A ``ThrottlingException`` (429)."""
    return error(429, "ThrottlingException", "Too many requests, please wait before trying again.")


def text(value: str) -> Block:
    """A text block."""
    return {"text": value}


def tool_use(name: str, arguments: Mapping[str, Any], use_id: str | None = None) -> Block:
    """A toolUse block (an id is made up when not given)."""
    return {"toolUse": {"toolUseId": use_id or "", "name": name, "input": dict(arguments)}}


def reasoning(value: str, signature: str | None = None) -> Block:
    """A signed reasoning block (a signature is made up and remembered when not given)."""
    return {"reasoningContent": {"reasoningText": {"text": value, "signature": signature or ""}}}


def response(content: Sequence[Block], stop: str, usage: Mapping[str, int] | None = None) -> dict[str, Any]:
    """A ConverseResponse."""
    counts = dict(usage or {"inputTokens": 11, "outputTokens": 7})
    counts.setdefault("cacheReadInputTokens", 0)
    counts.setdefault("cacheWriteInputTokens", 0)
    counts["totalTokens"] = sum(counts[k] for k in ("inputTokens", "outputTokens"))
    counts["totalTokens"] += counts["cacheReadInputTokens"] + counts["cacheWriteInputTokens"]
    return {
        "output": {"message": {"role": "assistant", "content": list(content)}},
        "stopReason": stop,
        "usage": counts,
        "metrics": {"latencyMs": 321},
    }


def stream_frames(answer: Mapping[str, Any], pieces: int = 3) -> list[bytes]:
    """A ConverseResponse as the ConverseStream frames Bedrock sends for it."""
    frames = [event("messageStart", {"role": "assistant"})]
    for index, block in enumerate(answer["output"]["message"]["content"]):
        if "toolUse" in block:
            use = block["toolUse"]
            start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
            frames.append(event("contentBlockStart", {"contentBlockIndex": index, "start": start}))
            for part in _split(json.dumps(use["input"], separators=(",", ":")), pieces):
                frames.append(_delta(index, {"toolUse": {"input": part}}))
        elif "reasoningContent" in block:
            content = block["reasoningContent"]
            if "redactedContent" in content:
                frames.append(_delta(index, {"reasoningContent": {"redactedContent": content["redactedContent"]}}))
            else:
                for part in _split(content["reasoningText"]["text"], pieces):
                    frames.append(_delta(index, {"reasoningContent": {"text": part}}))
                signature = content["reasoningText"]["signature"]
                frames.append(_delta(index, {"reasoningContent": {"signature": signature}}))
        else:
            for part in _split(block["text"], pieces):
                frames.append(_delta(index, {"text": part}))
        frames.append(event("contentBlockStop", {"contentBlockIndex": index}))
    frames.append(event("messageStop", {"stopReason": answer["stopReason"]}))
    frames.append(event("metadata", {"usage": answer["usage"], "metrics": answer["metrics"]}))
    return frames


def _delta(index: int, delta: Mapping[str, Any]) -> bytes:
    return event("contentBlockDelta", {"contentBlockIndex": index, "delta": dict(delta)})


def _split(value: str, pieces: int) -> list[str]:
    if not value:
        return []
    size = max(1, -(-len(value) // pieces))
    return [value[i : i + size] for i in range(0, len(value), size)]


# -- the handler --------------------------------------------------------------------------------------------------

Turn = Any
"""Blocks (a list), a text, a :class:`Reply`, or a function of the request returning a :class:`Reply`."""


@dataclass
class Scripted:
    """Answers successive Converse / ConverseStream calls with scripted turns, after checking each request."""

    turns: list[Turn]
    pieces: int = 3
    stop: str | None = None
    usage: Mapping[str, int] | None = None
    signatures: set[str] = field(default_factory=set[str])
    """Reasoning signatures the service accepts: those it issued, plus any a test adds."""
    bodies: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    models: list[str] = field(default_factory=list[str])
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, request: Request) -> Reply:
        match = re.fullmatch(r"/model/([^/]+)/(converse|converse-stream)", request.path)
        if request.method != "POST" or match is None:
            return error(404, "UnknownOperationException", f"{request.method} {request.path}")
        problem = check_auth(request)
        if problem is not None:
            return problem
        model = unquote(match.group(1))
        try:
            body = request.json()
        except ValueError:
            return error(400, "SerializationException", "Could not parse the request body as JSON")
        with self._lock:
            index = len(self.bodies)
            self.bodies.append(body)
            self.models.append(model)
        problem_text = check_request(body, model, self.signatures)
        if problem_text is not None:
            return invalid(problem_text)
        if index >= len(self.turns):
            return error(500, "InternalServerException", f"the script has {len(self.turns)} turns")
        turn = self.turns[index]
        if isinstance(turn, Reply):
            return turn
        if callable(turn):
            return turn(request)
        blocks = self._blocks([text(turn)] if isinstance(turn, str) else turn, index)
        stop = self.stop or ("tool_use" if any("toolUse" in b for b in blocks) else "end_turn")
        answer = response(blocks, stop, self.usage)
        if match.group(2) == "converse-stream":
            headers = {"content-type": "application/vnd.amazon.eventstream", "x-amzn-requestid": f"emu-{index}"}
            return Reply(chunks=stream_frames(answer, self.pieces), headers=headers)
        return Reply(body=answer, headers={"x-amzn-requestid": f"emu-{index}"})

    def _blocks(self, blocks: Sequence[Block], index: int) -> list[Block]:
        out = json.loads(json.dumps(list(blocks)))
        for position, block in enumerate(out):
            if "toolUse" in block and not block["toolUse"]["toolUseId"]:
                block["toolUse"]["toolUseId"] = f"tooluse_emu{index}{position}"
            if "reasoningContent" in block and "reasoningText" in block["reasoningContent"]:
                reasoning_text = block["reasoningContent"]["reasoningText"]
                if not reasoning_text["signature"]:
                    reasoning_text["signature"] = base64.b64encode(f"bedrock-sig-{index}-{position}".encode()).decode()
                self.signatures.add(reasoning_text["signature"])
        return out


def scripted(turns: Sequence[Turn], **options: Any) -> Scripted:
    """A handler answering call *i* with ``turns[i]``."""
    return Scripted(list(turns), **options)


# -- auth ---------------------------------------------------------------------------------------------------------

_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^,]+), SignedHeaders=([^,]+), Signature=([0-9a-f]{64})")


def check_auth(request: Request) -> Reply | None:
    """The 403 AWS would send for this request's credentials, or None when the signature (or API key) holds."""
    authorization = request.headers.get("authorization", "")
    if authorization.startswith("Bearer "):
        if authorization.removeprefix("Bearer ") != API_KEY:
            return error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        return None
    found = _AUTH.fullmatch(authorization)
    if found is None:
        return error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    scope, signed_names, signature = found.groups()
    access_key, date, region, service, terminal = scope.split("/")
    if access_key != ACCESS_KEY:
        return error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    stamp = request.headers.get("x-amz-date", "")
    if terminal != "aws4_request" or service != "bedrock" or region != REGION or not stamp.startswith(date):
        return error(403, "InvalidSignatureException", f"Credential should be scoped correctly: {scope}")
    when = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    if abs((dt.datetime.now(dt.UTC) - when).total_seconds()) > 300:
        return error(403, "InvalidSignatureException", "Signature expired")
    token = request.headers.get("x-amz-security-token")
    if token != SESSION_TOKEN:
        return error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    if sign(request, signed_names.split(";"), stamp) != signature:
        return error(
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
            "Access Key and signing method. Consult the service documentation for details.",
        )
    return None


def sign(request: Request, signed_names: Sequence[str], stamp: str) -> str:
    """The SigV4 signature botocore computes for this request as received (its headers as signed, its body)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    headers = {name: request.headers.get(name, "") for name in signed_names}
    url = f"http://{request.headers['host']}{request.path}"
    aws = AWSRequest(method=request.method, url=url, data=request.body, headers=headers)
    aws.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN), "bedrock", REGION)
    canonical = signer.canonical_request(aws)
    return signer.signature(signer.string_to_sign(aws, canonical), aws)


# -- request rules ------------------------------------------------------------------------------------------------


@cache
def _service() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("bedrock-runtime")


def shape_problem(value: Any, shape: Any, where: str) -> str | None:
    """What the service's JSON protocol refuses in ``value`` for this botocore shape, or None."""
    kind = shape.type_name
    if kind == "structure" and shape.metadata.get("document"):
        return None  # a JSON document: any value (tool schemas, tool inputs, additionalModelRequestFields)
    if kind == "structure":
        if not isinstance(value, dict):
            return f"Value at '{where}' failed to satisfy constraint: Member must be a structure"
        members = shape.members
        for key in value:
            if key not in members:
                return f"extraneous key [{key}] is not permitted" + (f" at '{where}'" if where else "")
        for key in shape.required_members:
            if key not in value:
                return f"Value at '{where + '.' if where else ''}{key}' failed to satisfy constraint: Member must not be null"
        if shape.is_tagged_union and len(value) != 1:
            return f"Value at '{where}' failed to satisfy constraint: Member must have exactly one member set"
        for key, item in value.items():
            problem = shape_problem(item, members[key], f"{where}.{key}" if where else key)
            if problem:
                return problem
    elif kind == "list":
        if not isinstance(value, list):
            return f"Value at '{where}' failed to satisfy constraint: Member must be a list"
        for i, item in enumerate(value):
            problem = shape_problem(item, shape.member, f"{where}.{i + 1}.member")
            if problem:
                return problem
    elif kind == "map":
        if not isinstance(value, dict):
            return f"Value at '{where}' failed to satisfy constraint: Member must be a map"
        for key, item in value.items():
            problem = shape_problem(item, shape.value, f"{where}.{key}")
            if problem:
                return problem
    elif kind == "string":
        if not isinstance(value, str):
            return f"Value at '{where}' failed to satisfy constraint: Member must be a string"
        if shape.enum and value not in shape.enum:
            return f"Value '{value}' at '{where}' failed to satisfy constraint: Member must satisfy enum value set"
    elif kind == "blob":
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, TypeError, ValueError):
            return f"Value at '{where}' failed to satisfy constraint: Member must be base64-encoded bytes"
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            return f"Value at '{where}' failed to satisfy constraint: Member must be an integer"
    elif kind in ("float", "double"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            return f"Value at '{where}' failed to satisfy constraint: Member must be a number"
    elif kind == "boolean" and not isinstance(value, bool):
        return f"Value at '{where}' failed to satisfy constraint: Member must be a boolean"
    return None  # document (any JSON), timestamps


_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]+")


def check_request(body: Mapping[str, Any], model: str, signatures: set[str] | None = None) -> str | None:
    """What Bedrock would reject in a Converse body for ``model`` (None if nothing)."""
    shape = _service().operation_model("Converse").input_shape
    problem = shape_problem({"modelId": model, **body}, shape, "")
    if problem:
        return problem
    messages: list[dict[str, Any]] = body["messages"]
    claude = "anthropic." in model or "claude" in model
    tool_blocks = False
    for i, message in enumerate(messages):
        content = message["content"]
        if not content:
            return (
                f"The content field in the Message object at messages.{i} is empty. Add a ContentBlock object to the "
                "content field and try again."
            )
        for j, block in enumerate(content):
            if "text" in block and not block["text"]:  # whitespace passes: a recorded "\n" block was accepted
                return (
                    f"The text field in the ContentBlock object at messages.{i}.content.{j} is blank. Add text to the "
                    "text field, and try again."
                )
            if "reasoningContent" in block and message["role"] == "user":
                return (
                    "User messages cannot contain reasoning content. Please remove the reasoning content and try again."
                )
            if "toolUse" in block and not _TOOL_NAME.fullmatch(block["toolUse"]["name"]):
                return (
                    f"1 validation error detected: Value at 'messages.{i + 1}.member.content.{j + 1}.member.toolUse.name' "
                    "failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+"
                )
            tool_blocks = tool_blocks or "toolUse" in block or "toolResult" in block
        uses = [b["toolUse"]["toolUseId"] for b in content if "toolUse" in b]
        if uses and claude:  # Claude's rule; Nova's server tools (nova_code_interpreter) get no toolResult
            following = messages[i + 1]["content"] if i + 1 < len(messages) else []
            answered = [b["toolResult"]["toolUseId"] for b in following if "toolResult" in b]
            missing = [u for u in uses if u not in answered]
            if missing:
                return (
                    f"{MODEL_ERROR}messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately "
                    f"after: {', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block "
                    "in the next message."
                )
        if message["role"] == "user" and i:
            previous = {b["toolUse"]["toolUseId"] for b in messages[i - 1]["content"] if "toolUse" in b}
            results = [b["toolResult"]["toolUseId"] for b in content if "toolResult" in b]
            if len(results) > len(previous) or any(r not in previous for r in results):
                return (
                    f"The number of toolResult blocks at messages.{i}.content exceeds the number of toolUse blocks of "
                    "previous turn."
                )
    if tool_blocks and not body.get("toolConfig"):
        return "The toolConfig field must be defined when using toolUse and toolResult content blocks."
    for spec in (body.get("toolConfig") or {}).get("tools") or ():
        if "toolSpec" in spec and not _TOOL_NAME.fullmatch(spec["toolSpec"]["name"]):
            return "1 validation error detected: Value at 'toolConfig.tools.1.member.toolSpec.name' failed to satisfy constraint"
    if claude:
        return _claude_problem(body, signatures)
    return None


def _claude_problem(body: Mapping[str, Any], signatures: set[str] | None) -> str | None:
    extra = body.get("additionalModelRequestFields") or {}
    thinking = extra.get("thinking") or {}
    thinking_on = thinking.get("type") in ("enabled", "adaptive")
    choice = (body.get("toolConfig") or {}).get("toolChoice") or {}
    if thinking_on and ("any" in choice or "tool" in choice):
        return MODEL_ERROR + "Thinking may not be enabled when tool_choice forces tool use."
    inference = body.get("inferenceConfig") or {}
    if thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens", 0)
        if budget < 1024 or budget >= inference.get("maxTokens", 4096):
            return MODEL_ERROR + "`max_tokens` must be greater than `thinking.budget_tokens`"
        if inference.get("temperature") not in (None, 1):
            return MODEL_ERROR + "`temperature` may only be set to 1 when thinking is enabled."
    messages = body["messages"]
    for i, message in enumerate(messages):
        for j, block in enumerate(message["content"]):
            reasoning = block.get("reasoningContent")
            signature = (reasoning or {}).get("reasoningText", {}).get("signature")
            if reasoning and "reasoningText" in reasoning and signatures is not None and signature not in signatures:
                return f"{MODEL_ERROR}messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
    last = next((m for m in reversed(messages) if m["role"] == "assistant"), None)
    lost = (
        last is not None
        and any("toolUse" in b for b in last["content"])
        and "reasoningContent" not in last["content"][0]
    )
    if thinking_on and last is not None and lost:
        index = messages.index(last)
        first = next(iter(last["content"][0]))
        return (
            f"{MODEL_ERROR}messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
            f"`{first}`. When `thinking` is enabled, a final `assistant` message must start with a thinking block."
        )
    return None


# -- recorded fixtures --------------------------------------------------------------------------------------------

FIXTURES = __import__("pathlib").Path(__file__).parent.parent / "fixtures" / "bedrock"


@dataclass
class Interaction:
    """One recorded Bedrock exchange: model id, Converse request (None for response-only captures) and answer."""

    name: str
    model: str
    stream: bool
    request: dict[str, Any] | None
    status: int
    headers: dict[str, str]
    body: Any = None
    """The JSON answer (a ConverseResponse or an error)."""
    raw: bytes | None = None
    """A ConverseStream answer: its event-stream bytes as recorded."""
    events: list[dict[str, Any]] | None = None
    """A ConverseStream answer recorded as decoded events (vercel-ai ``.chunks.txt``)."""


def load(name: str) -> list[Interaction]:
    """The Converse interactions of a fixture file in ``tests/fixtures/bedrock/``."""
    path = FIXTURES / name
    if name.endswith(".chunks.txt"):
        events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [Interaction(name, "", True, None, 200, {}, events=events)]
    if name.endswith(".json"):
        data = json.loads(path.read_text())
        if "response" in data and "bodyBase64" in data["response"]:
            raw = base64.b64decode(data["response"]["bodyBase64"])
            return [Interaction(name, data.get("modelId", ""), True, None, data["response"]["status"], {}, raw=raw)]
        if "body" in data and "status" in data:
            headers = {k.lower(): v for k, v in data.get("headers", {}).items()}
            return [Interaction(name, data.get("modelId", ""), False, None, data["status"], headers, body=data["body"])]
        status = 400 if set(data) == {"message"} else 200
        headers = {"x-amzn-errortype": "ValidationException" + CORAL} if status == 400 else {}
        return [Interaction(name, "", False, None, status, headers, body=data)]
    import yaml

    out: list[Interaction] = []
    for item in yaml.safe_load(path.read_text())["interactions"]:
        req, resp = item["request"], item["response"]
        found = re.search(r"bedrock-runtime\.[^/]+/model/([^/]+)/(converse|converse-stream)$", req["uri"])
        if found is None:
            continue  # an image download recorded in the same cassette
        body = req.get("body")
        request = json.loads(body) if isinstance(body, str | bytes) and body else req.get("parsed_body")
        headers = {
            k.lower(): (v[0] if isinstance(v, list) else v).decode()
            if isinstance(v[0] if isinstance(v, list) else v, bytes)
            else (v[0] if isinstance(v, list) else v)
            for k, v in (resp.get("headers") or {}).items()
        }
        status = int(resp["status"]["code"])
        model, stream = unquote(found.group(1)), found.group(2) == "converse-stream"
        interaction = Interaction(name, model, stream, request, status, headers)
        if "parsed_body" in resp:
            interaction.body = resp["parsed_body"]
        else:
            content = resp["body"]["string"]
            content = content if isinstance(content, bytes) else content.encode()
            if stream and status == 200:
                interaction.raw = content
            else:
                interaction.body = json.loads(content)
        out.append(interaction)
    return out


def fixture_names() -> list[str]:
    """Every fixture file name."""
    return sorted(p.name for p in FIXTURES.iterdir() if p.is_file())
