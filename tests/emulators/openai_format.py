"""An OpenAI Chat Completions emulator: scripted text or tool calls, JSON or SSE, as OpenAI sends them, with log
probabilities when asked (``logprobs`` / ``top_logprobs``, refused as OpenAI refuses them: :func:`check_logprobs`);
:class:`ChatEmulator` also checks the message rules of :func:`check_chat_messages`.

Stream chunks are compact JSON (``{"id":"…","object":"chat.completion.chunk",…}``), as OpenAI writes them; the
first is a role-only delta (``"content":""``) as OpenAI's, and with ``azure=True`` it is preceded by Azure's
prompt-filter chunk (``"choices":[]`` with ``prompt_filter_results``), as Azure OpenAI sends it (shape from
AbanteAI/archive-old-cli-mentat issue #429).
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.emulators.server import Reply, Request

AZURE_PROMPT_FILTER: dict[str, Any] = {
    "id": "",
    "choices": [],
    "created": 0,
    "model": "",
    "object": "",
    "system_fingerprint": None,
    "prompt_filter_results": [
        {
            "prompt_index": 0,
            "content_filter_results": {
                name: {"filtered": False, "severity": "safe"} for name in ("hate", "self_harm", "sexual", "violence")
            },
        }
    ],
}
"""Azure OpenAI's first stream chunk: the prompt's content-filter verdict, no choices."""


def compact_events(payloads: list[Any]) -> list[str]:
    """``data:`` events of compact JSON (strings such as ``[DONE]`` as they are), as OpenAI writes them."""
    return [
        f"data: {p if isinstance(p, str) else json.dumps(p, separators=(',', ':'), ensure_ascii=False)}\n\n"
        for p in payloads
    ]


def completion(
    text: str | None = "Hello!",
    *,
    model: str = "gpt-test",
    tool_calls: list[dict[str, Any]] | None = None,
    usage: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    top_logprobs: int | None = None,
) -> dict[str, Any]:
    """A chat.completion body; with ``top_logprobs`` (a request's ``logprobs: true``), its text's log probabilities,
    ``top_logprobs`` alternatives to each token (:func:`token_logprob`).
    """
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    logprobs = None
    if top_logprobs is not None:
        tokens = _WORDS.findall(text or "")
        logprobs = {"content": [token_logprob(t, i, top_logprobs) for i, t in enumerate(tokens)], "refusal": None}
    return {
        "id": "chatcmpl-emu",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": logprobs,
                "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop"),
            }
        ],
        "usage": usage or {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


_WORDS = re.compile(r"\s*\S+|\s+")
"""The emulator's tokens: words with the spaces before them."""


def token_logprob(token: str, position: int, top: int) -> dict[str, Any]:
    """One token's entry in a choice's ``logprobs.content``, as OpenAI sends it: the token, its logprob, its UTF-8
    bytes, and its ``top`` most likely alternatives (the token itself first, then ``alt1``, ``alt2``…, each less likely).
    """
    logprob = -0.25 * (position + 1)
    alternatives = [token, *(f"alt{k}" for k in range(1, top))][:top]
    return {
        "token": token,
        "logprob": logprob,
        "bytes": list(token.encode()),
        "top_logprobs": [
            {"token": alt, "logprob": logprob - k, "bytes": list(alt.encode())} for k, alt in enumerate(alternatives)
        ],
    }


def check_logprobs(body: dict[str, Any]) -> tuple[str, str, str | None] | None:
    """What OpenAI's Chat Completions API refuses in ``logprobs`` / ``top_logprobs``: (the message, its ``param``, its
    ``code``), or None. ``top_logprobs`` (0 to 20) only with ``logprobs: true`` ("The 'top_logprobs' parameter is only
    allowed when 'logprobs' is enabled.", recorded in IBM/unitxt#1193); the type and range wordings are modelled on
    OpenAI's other ``invalid_type`` / ``integer_above_max_value`` errors.
    """
    logprobs = body.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        got = type(logprobs).__name__
        return f"Invalid type for 'logprobs': expected a boolean, but got {got} instead.", "logprobs", "invalid_type"
    top = body.get("top_logprobs")
    if top is None:
        return None
    if isinstance(top, bool) or not isinstance(top, int):
        got = type(top).__name__
        return (
            f"Invalid type for 'top_logprobs': expected an integer, but got {got} instead.",
            "top_logprobs",
            "invalid_type",
        )
    if top < 0:
        return (
            f"Invalid 'top_logprobs': integer below minimum value. Expected a value >= 0, but got {top} instead.",
            "top_logprobs",
            "integer_below_min_value",
        )
    if top > 20:
        return (
            f"Invalid 'top_logprobs': integer above maximum value. Expected a value <= 20, but got {top} instead.",
            "top_logprobs",
            "integer_above_max_value",
        )
    if logprobs is not True:
        return "The 'top_logprobs' parameter is only allowed when 'logprobs' is enabled.", "top_logprobs", None
    return None


def chunks(
    pieces: list[str],
    *,
    model: str = "gpt-test",
    usage: dict[str, Any] | None = None,
    done: bool = True,
    finish: bool = True,
    azure: bool = False,
    top_logprobs: int | None = None,
) -> list[str]:
    """SSE events streaming ``pieces`` as OpenAI does: role delta, content deltas, finish, usage, [DONE]; with
    ``top_logprobs``, each content delta's choice carries its piece's log probabilities (the piece as one token).
    """

    def chunk(
        delta: dict[str, Any] | None, finish_reason: str | None = None, logprobs: Any = None, **extra: Any
    ) -> dict[str, Any]:
        choices = (
            []
            if delta is None
            else [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}]
        )
        return {
            "id": "chatcmpl-emu",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": model,
            "choices": choices,
            **extra,
        }

    payloads: list[Any] = [AZURE_PROMPT_FILTER] if azure else []
    payloads.append(chunk({"role": "assistant", "content": "", "refusal": None}))
    for i, piece in enumerate(pieces):
        logprobs = None
        if top_logprobs is not None:
            logprobs = {"content": [token_logprob(piece, i, top_logprobs)], "refusal": None}
        payloads.append(chunk({"content": piece}, logprobs=logprobs))
    if finish:
        payloads.append(chunk({}, "stop"))
        payloads.append(
            chunk(
                None,
                usage=usage
                or {"prompt_tokens": 10, "completion_tokens": len(pieces), "total_tokens": 10 + len(pieces)},
            )
        )
    if done:
        payloads.append("[DONE]")
    return compact_events(payloads)


def handler(text: str = "Hello from the emulator!", pieces: int = 5, **reply: Any):
    """A handler answering every chat request with ``text`` (streamed in ``pieces`` when asked), with log
    probabilities when asked (``logprobs: true``, ``top_logprobs`` alternatives each), refusing what OpenAI refuses
    of those fields (:func:`check_logprobs`).
    """

    def handle(request: Request) -> Reply:
        body = json.loads(request.body)
        problem = check_logprobs(body)
        if problem is not None:
            return responses_error(400, problem[0], param=problem[1], code=problem[2])
        top = (body.get("top_logprobs") or 0) if body.get("logprobs") else None
        if body.get("stream"):
            step = max(1, len(text) // pieces)
            split = [text[i : i + step] for i in range(0, len(text), step)]
            return Reply.sse(chunks(split, model=body["model"], top_logprobs=top), **reply)
        return Reply(body=completion(text, model=body["model"], top_logprobs=top), **reply)

    return handle


def check_chat_messages(messages: list[dict[str, Any]], *, tool_media: bool = False) -> tuple[str, str] | None:
    """What OpenAI's Chat Completions API refuses in ``messages`` that polyroute could get wrong: (the message, its
    ``param``), or None.

    - images in a message that is not the user's: "Invalid 'messages[234]'. Image URLs are only allowed for
      messages with role 'user', but this message with role 'tool' contains an image URL." (OpenHands/OpenHands#7700,
      openai/openai-node#1030);
    - a tool message's parts other than text (the API reference: "For tool messages, only type ``text`` is
      supported"; this wording is modelled on OpenAI's ``invalid_value`` errors, not recorded);
    - a tool message that does not answer the assistant message just before its run of tool messages ("Invalid
      parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
      miurla/morphic#136), and an assistant's tool calls not all answered right after it ("An assistant message with
      'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids
      did not have response messages: …", agno-agi/agno#3105).

    ``tool_media``: Mistral's rules, whose tool messages take content chunks, images included (``ToolMessage`` in
    its OpenAPI spec).
    """
    for i, message in enumerate(messages):
        role = message.get("role")
        content = message.get("content")
        parts = content if isinstance(content, list) else []
        media_ok = role == "user" or (role == "tool" and tool_media)
        if not media_ok and any(part.get("type") == "image_url" for part in parts):
            return (
                f"Invalid 'messages[{i}]'. Image URLs are only allowed for messages with role 'user', but this message "
                f"with role '{role}' contains an image URL.",
                f"messages[{i}]",
            )
        if role == "tool":
            for j, part in enumerate(parts):
                if part.get("type") != "text" and not tool_media:
                    return (
                        f"Invalid value: '{part.get('type')}'. Supported values are: 'text'.",
                        f"messages[{i}].content[{j}].type",
                    )
            k = i
            while k > 0 and messages[k - 1].get("role") == "tool":
                k -= 1
            calls = [c.get("id") for c in (messages[k - 1].get("tool_calls") or [])] if k else []
            if message.get("tool_call_id") not in calls:
                return (
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with "
                    "'tool_calls'.",
                    f"messages.[{i}].role",
                )
        calls = [c.get("id") for c in message.get("tool_calls") or []] if role == "assistant" else []
        if calls:
            answered: set[Any] = set()
            for later in messages[i + 1 :]:
                if later.get("role") != "tool":
                    break
                answered.add(later.get("tool_call_id"))
            missing = [c for c in calls if c not in answered]
            if missing:
                return (
                    "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                    f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(missing)}",
                    "messages",
                )
    return None


class ChatEmulator:
    """OpenAI's Chat Completions API with the message rules of :func:`check_chat_messages`: answers every accepted
    request with ``text`` (streamed when asked); ``bodies`` holds the accepted requests.
    """

    def __init__(self, text: str = "Hello from the emulator!", *, tool_media: bool = False) -> None:
        self.text = text
        self.tool_media = tool_media
        self.bodies: list[dict[str, Any]] = []
        self._answer = handler(text)

    def __call__(self, request: Request) -> Reply:
        body = request.json()
        problem = check_chat_messages(body.get("messages") or [], tool_media=self.tool_media)
        if problem is not None:
            return responses_error(400, problem[0], param=problem[1])
        self.bodies.append(body)
        return self._answer(request)


# -- the Responses API (POST /v1/responses) ------------------------------------------------------------------------

RESPONSES_FIELDS = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "text", "reasoning", "max_output_tokens",
        "temperature", "top_p", "parallel_tool_calls", "metadata", "truncation", "stream", "stream_options", "store",
        "include", "previous_response_id", "user", "safety_identifier", "prompt_cache_key", "prompt_cache_retention",
        "service_tier", "background", "max_tool_calls", "top_logprobs", "conversation", "prompt",
        "context_management", "moderation", "prompt_cache_options", "access_programs", "background_options", "image",
        "client_metadata",
    }
)  # fmt: skip
"""The request fields OpenAI's ``POST /v1/responses`` takes; any other gets its 400."""


def responses_error(status: int, message: str, *, param: str | None = None, code: str | None = None) -> Reply:
    """An OpenAI error body (``invalid_request_error`` for a 4xx)."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    return Reply.json({"error": {"message": message, "type": kind, "param": param, "code": code}}, status=status)


class ResponsesEmulator:
    """OpenAI's Responses API: scripted turns answered as a Response (compact JSON) or as its typed event stream
    (``event:`` lines, compact JSON, ``sequence_number`` from 0, as in ``tests/fixtures/openai-responses``).

    A turn is a dict: ``text``, ``calls`` (``[(name, arguments dict)]``), ``reasoning`` (a summary), or a
    :class:`Reply` (a failure). Requests are checked as OpenAI checks them: known fields only, flat function tools,
    a ``previous_response_id`` this server issued (and stored), reasoning ``encrypted_content`` this server issued,
    every ``function_call_output`` answering a call of the conversation. ``GET /v1/responses/{id}`` answers stored
    responses. ``bodies`` holds the accepted requests.
    """

    def __init__(self, *turns: dict[str, Any] | Reply, model: str = "gpt-5-emu") -> None:
        self.turns = list(turns)
        self.model = model
        self.bodies: list[dict[str, Any]] = []
        self.stored: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {}
        self.encrypted: set[str] = set()
        self.items: set[str] = set()
        """Ids of the output items of stored responses (OpenAI finds a reasoning item sent back by its id)."""
        self._next = 0
        self._ids = 0

    def _id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}_emu{self._ids:04d}"

    def __call__(self, request: Request) -> Reply:
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return responses_error(401, "You didn't provide an API key.")
        if request.method == "GET" and "/responses/" in request.path:
            found = self.stored.get(request.path.rsplit("/", 1)[1])
            return Reply.json(found[1]) if found else responses_error(404, "Response not found")
        if request.method != "POST" or not request.path.endswith("/v1/responses"):
            return responses_error(404, f"Invalid URL ({request.method} {request.path})")
        try:
            body = request.json()
        except ValueError:
            return responses_error(400, "We could not parse the JSON body of your request.")
        problem = self._check(body)
        if problem is not None:
            return problem
        self.bodies.append(body)
        turn = self.turns[min(self._next, len(self.turns) - 1)]
        self._next += 1
        if isinstance(turn, Reply):
            return turn
        response = self._response(body, turn)
        if body.get("store", True):
            self.stored[response["id"]] = (self._conversation(body), response)
            self.items.update(item["id"] for item in response["output"])
        if not body.get("stream"):
            return Reply(body=_compact(response), headers={"content-type": "application/json"})
        return Reply.sse(f"event: {e['type']}\ndata: {_compact(e)}\n\n" for e in response_events(response))

    def _conversation(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        items = body.get("input") or []
        if isinstance(items, str):
            items = [{"role": "user", "content": items}]
        previous = self.stored.get(body.get("previous_response_id") or "")
        return (previous[0] + previous[1]["output"] if previous else []) + list(items)

    def _check(self, body: dict[str, Any]) -> Reply | None:
        unknown = sorted(set(body) - RESPONSES_FIELDS)
        if unknown:
            return responses_error(400, f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0])
        if not isinstance(body.get("model"), str):
            return responses_error(400, "Missing required parameter: 'model'.", param="model")
        for name in ("reasoning", "text", "metadata"):  # objects in OpenAI's schema: anything else is a 400
            if body.get(name) is not None and not isinstance(body[name], dict):
                return responses_error(
                    400,
                    f"Invalid type for '{name}': expected an object, but got {type(body[name]).__name__} instead.",
                    param=name,
                )
        for i, tool in enumerate(body.get("tools") or []):
            if tool.get("type") == "function" and not isinstance(tool.get("name"), str):
                return responses_error(400, f"Missing required parameter: 'tools[{i}].name'.", param=f"tools[{i}].name")
        previous = body.get("previous_response_id")
        if previous is not None and previous not in self.stored:
            return responses_error(
                400,
                f"Previous response with id '{previous}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        items = body.get("input")
        for i, item in enumerate(items if isinstance(items, list) else []):
            call_id = item.get("call_id")
            if isinstance(call_id, str) and len(call_id) > 64:  # as OpenAI refuses a Gemini signature-carrying id
                return responses_error(
                    400,
                    f"Invalid 'input[{i}].call_id': string too long. Expected a string with maximum length 64, but "
                    f"got a string with length {len(call_id)} instead.",
                    param=f"input[{i}].call_id",
                    code="string_above_max_length",
                )
        conversation = self._conversation(body)
        calls = {item.get("call_id") for item in conversation if item.get("type") == "function_call"}
        for item in conversation:
            if item.get("type") == "function_call_output" and item.get("call_id") not in calls:
                return responses_error(
                    400,
                    f"No tool call found for function call output with call_id {item.get('call_id')}.",
                    param="input",
                )
            if item.get("type") != "reasoning":
                continue
            encrypted = item.get("encrypted_content")
            if encrypted is None and item.get("id") not in self.items:
                return responses_error(
                    404,
                    f"Item with id '{item.get('id')}' not found. Items are not persisted when `store` is set to "
                    "false. Try again with `store` set to true, or remove this item from your input.",
                    param="input",
                )
            if encrypted is not None and encrypted not in self.encrypted:
                return responses_error(
                    400,
                    f"The encrypted content for item {item.get('id')} could not be verified.",
                    param="input",
                    code="invalid_encrypted_content",
                )
        return None

    def _response(self, body: dict[str, Any], turn: dict[str, Any]) -> dict[str, Any]:
        output: list[dict[str, Any]] = []
        if turn.get("reasoning"):
            item: dict[str, Any] = {
                "id": self._id("rs"),
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": turn["reasoning"]}],
            }
            if "reasoning.encrypted_content" in (body.get("include") or []):
                item["encrypted_content"] = f"gAAAAemu{self._ids}"
                self.encrypted.add(item["encrypted_content"])
            output.append(item)
        if turn.get("text") is not None:
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": turn["text"]}
            output.append(
                {
                    "id": self._id("msg"),
                    "type": "message",
                    "status": "completed",
                    "content": [part],
                    "role": "assistant",
                }
            )
        for name, arguments in turn.get("calls") or []:
            output.append(
                {
                    "id": self._id("fc"),
                    "type": "function_call",
                    "status": "completed",
                    "arguments": json.dumps(arguments, separators=(",", ":")),
                    "call_id": self._id("call"),
                    "name": name,
                }
            )
        return {
            "id": self._id("resp"),
            "object": "response",
            "created_at": 1765552659,
            "status": "completed",
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": None,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"), "summary": None},
            "service_tier": "default",
            "store": body.get("store", True),
            "temperature": 1.0,
            "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": {
                "input_tokens": 12,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": 7,
                "output_tokens_details": {"reasoning_tokens": 3 if turn.get("reasoning") else 0},
                "total_tokens": 19,
            },
            "user": None,
            "metadata": body.get("metadata") or {},
        }


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def response_events(response: dict[str, Any], *, pieces: int = 3) -> list[dict[str, Any]]:
    """The events OpenAI streams for ``response``, numbered from 0 (order as in the recorded streams)."""
    events: list[dict[str, Any]] = []

    def emit(kind: str, **fields: Any) -> None:
        events.append({"type": kind, "sequence_number": len(events), **fields})

    start = {**response, "status": "in_progress", "output": [], "usage": None}
    emit("response.created", response=start)
    emit("response.in_progress", response=start)
    for index, item in enumerate(response["output"]):
        ref = {"item_id": item["id"], "output_index": index}
        match item["type"]:
            case "reasoning":
                emit("response.output_item.added", output_index=index, item={**item, "summary": []})
                for n, part in enumerate(item["summary"]):
                    emit("response.reasoning_summary_part.added", **ref, summary_index=n, part={**part, "text": ""})
                    for delta in _pieces(part["text"], pieces):
                        emit("response.reasoning_summary_text.delta", **ref, summary_index=n, delta=delta)
                    emit("response.reasoning_summary_text.done", **ref, summary_index=n, text=part["text"])
                    emit("response.reasoning_summary_part.done", **ref, summary_index=n, part=part)
            case "message":
                emit(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "content": []},
                )
                for n, part in enumerate(item["content"]):
                    emit("response.content_part.added", **ref, content_index=n, part={**part, "text": ""})
                    for delta in _pieces(part["text"], pieces):
                        emit("response.output_text.delta", **ref, content_index=n, delta=delta, logprobs=[])
                    emit("response.output_text.done", **ref, content_index=n, text=part["text"], logprobs=[])
                    emit("response.content_part.done", **ref, content_index=n, part=part)
            case "function_call":
                emit(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "arguments": "", "status": "in_progress"},
                )
                for delta in _pieces(item["arguments"], pieces):
                    emit("response.function_call_arguments.delta", **ref, delta=delta)
                emit("response.function_call_arguments.done", **ref, arguments=item["arguments"])
        emit("response.output_item.done", output_index=index, item=item)
    emit("response.completed", response=response)
    return events


def _pieces(text: str, pieces: int) -> list[str]:
    step = max(1, -(-len(text) // pieces))
    return [text[i : i + step] for i in range(0, len(text), step)]
