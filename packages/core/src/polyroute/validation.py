"""Checks on the caller's request before anything goes upstream; each failure names the field to fix."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

import pydantic_core

from polyroute.errors import InvalidRequestError
from polyroute.providers._base import as_list, as_object, dumps
from polyroute.types.openai import ChatCompletionRequest

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_NUMBERS = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
_POSITIVE_INTS = ("max_tokens", "max_completion_tokens", "n")
_PART_TYPES = frozenset({"text", "image_url", "input_audio", "file", "refusal"})


def json_object(raw: bytes, fields: str) -> dict[str, Any]:
    """A request body as a JSON object, or an :class:`InvalidRequestError` naming the ``fields`` it needs
    (``"'model' and 'messages'"``): every API's first check.
    """
    if not raw:
        raise InvalidRequestError(f"request body is empty; send a JSON object with {fields}")
    try:
        body = pydantic_core.from_json(raw)
    except ValueError as exc:
        body = _refused(raw, str(exc))
    if not isinstance(body, dict):
        raise InvalidRequestError(f"request body must be a JSON object with {fields}")
    return cast("dict[str, Any]", body)


def _refused(raw: bytes, why: str) -> Any:
    r"""A body pydantic-core's parser refused: malformed JSON (``json``'s own message says where), or JSON no provider
    takes. A lone UTF-16 surrogate escape (``"\ud83d"``, half an emoji) parses but is not text: every encoding of
    the request or of an answer echoing it would fail, as would the error naming it. Nesting deeper than 200 levels
    parses in ``json`` only up to its recursion limit. Both are a 400 here, before anything else reads the body.
    """
    if "recursion limit" in why:
        raise InvalidRequestError("request body nests JSON more than 200 levels deep; no model request needs that")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequestError(f"request body is not valid JSON: {exc}") from None
    try:
        dumps(body)
    except UnicodeEncodeError as exc:
        bad = "".join(f"\\u{ord(c):04x}" for c in exc.object[exc.start : exc.end])
        raise InvalidRequestError(
            f"the request holds a string that is not valid Unicode ({bad}: half of a UTF-16 surrogate pair); send "
            "the whole character (both halves of the pair) or remove it"
        ) from None
    return body


def parse_body(raw: bytes) -> ChatCompletionRequest:
    """The request body as a validated dict, or :class:`InvalidRequestError`."""
    return validate(json_object(raw, "'model' and 'messages'"))


def validate(body: dict[str, Any]) -> ChatCompletionRequest:
    """Check the fields polyroute reads or translates; other fields pass through for the provider to judge."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("'model' is required and must be a non-empty string", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("'messages' is required and must be a non-empty array", param="messages")
    for i, message in enumerate(cast("list[Any]", messages)):
        _check_message(i, message)
    for name, (low, high) in _NUMBERS.items():
        value = body.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high
        ):
            raise InvalidRequestError(f"'{name}' must be a number from {low:g} to {high:g}, got {value!r}", param=name)
    for name in _POSITIVE_INTS:
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InvalidRequestError(f"'{name}' must be a positive integer, got {value!r}", param=name)
    for name in ("stream", "parallel_tool_calls", "logprobs"):
        value = body.get(name)
        if value is not None and not isinstance(value, bool):
            raise InvalidRequestError(f"'{name}' must be true or false, got {value!r}", param=name)
    stop = body.get("stop")
    if (
        stop is not None
        and not isinstance(stop, str)
        and not (isinstance(stop, list) and all(isinstance(s, str) for s in cast("list[Any]", stop)))
    ):
        raise InvalidRequestError("'stop' must be a string or an array of strings", param="stop")
    _check_tools(body)
    choice = body.get("tool_choice")
    if choice is not None and not (type(choice) is str and choice in TOOL_MODES):  # most: nothing more to read
        _check_tool_choice(choice, body.get("tools"))
    _check_response_format(body.get("response_format"))
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequestError("'stream_options' must be an object", param="stream_options")
    return cast("ChatCompletionRequest", body)


def _check_message(i: int, message: Any) -> None:
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        raise InvalidRequestError(f"'{where}' must be an object with 'role' and 'content'", param=where)
    message = cast("dict[str, Any]", message)
    role = message.get("role")
    if role not in _ROLES:
        raise InvalidRequestError(
            f"'{where}.role' must be one of {', '.join(sorted(_ROLES))}, got {role!r}", param=f"{where}.role"
        )
    content = message.get("content")
    if content is None:
        if role != "assistant":
            raise InvalidRequestError(f"'{where}.content' is required for role {role!r}", param=f"{where}.content")
    elif isinstance(content, list):
        for j, part in enumerate(cast("list[Any]", content)):
            if not isinstance(part, dict) or cast("dict[str, Any]", part).get("type") not in _PART_TYPES:
                raise InvalidRequestError(
                    f"'{where}.content[{j}]' must be an object whose 'type' is one of {', '.join(sorted(_PART_TYPES))}",
                    param=f"{where}.content[{j}]",
                )
            part = cast("dict[str, Any]", part)
            kind = part["type"]
            if kind == "text" and not isinstance(part.get("text"), str):
                raise InvalidRequestError(f"'{where}.content[{j}].text' must be a string", param=f"{where}.content")
            if kind == "image_url":
                image = part.get("image_url")
                if not isinstance(image, dict) or not isinstance(cast("dict[str, Any]", image).get("url"), str):
                    raise InvalidRequestError(
                        f"'{where}.content[{j}].image_url.url' must be a string", param=f"{where}.content"
                    )
    elif not isinstance(content, str):
        raise InvalidRequestError(f"'{where}.content' must be a string or an array of parts", param=f"{where}.content")
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise InvalidRequestError(f"'{where}.tool_call_id' is required for role 'tool'", param=f"{where}.tool_call_id")
    calls = message.get("tool_calls")
    if calls is not None:
        if role != "assistant" or not isinstance(calls, list):
            raise InvalidRequestError(f"'{where}.tool_calls' must be an array on an assistant message", param=where)
        for k, call in enumerate(cast("list[Any]", calls)):
            ok = isinstance(call, dict) and isinstance(cast("Mapping[str, Any]", call).get("id"), str)
            function = cast("Mapping[str, Any]", call).get("function") if ok else None
            if (
                not ok
                or not isinstance(function, dict)
                or not isinstance(cast("Mapping[str, Any]", function).get("name"), str)
            ):
                raise InvalidRequestError(
                    f"'{where}.tool_calls[{k}]' needs an 'id' and a 'function' with a 'name'",
                    param=f"{where}.tool_calls",
                )


def _check_tools(body: Mapping[str, Any]) -> None:
    tools = body.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list):
        raise InvalidRequestError("'tools' must be an array", param="tools")
    for i, tool in enumerate(cast("list[Any]", tools)):
        function = cast("Mapping[str, Any]", tool).get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(cast("Mapping[str, Any]", function).get("name"), str):
            raise InvalidRequestError(f"'tools[{i}]' needs a 'function' with a 'name'", param=f"tools[{i}]")
        parameters = cast("Mapping[str, Any]", function).get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise InvalidRequestError(
                f"'tools[{i}].function.parameters' must be a JSON Schema object", param=f"tools[{i}]"
            )


def _check_tool_choice(choice: Any, tools: Any) -> None:
    """A ``tool_choice`` naming a function: one of ``tools``, refused as OpenAI refuses it (a translated provider would
    drop the choice, or be asked to force a tool it was never given).
    """
    name = as_object(as_object(choice).get("function")).get("name")
    if not isinstance(name, str):
        raise InvalidRequestError(
            "'tool_choice' must be 'auto', 'none', 'required' or {'type': 'function', 'function': {'name': ...}}",
            param="tool_choice",
        )
    if not declares_function(tools, name):
        raise InvalidRequestError(
            f"Invalid value for 'tool_choice': function '{name}' not found in 'tools'."
            if tools
            else "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            param="tool_choice",
        )


TOOL_MODES = frozenset({"auto", "none", "required"})
"""``tool_choice`` modes, not tools (both APIs): taken without ``tools`` too (clients send them either way)."""


def declares_function(tools: Any, name: str) -> bool:
    """Whether ``tools`` declare a function called ``name``, in either API's shape: Chat Completions nests it
    (``{'type': 'function', 'function': {'name': ...}}``), Responses does not (``{'type': 'function', 'name': ...}``).
    What a ``tool_choice`` naming a function must find, on both APIs.
    """
    for tool in as_list(tools):
        if isinstance(tool, dict):
            tool = cast("dict[str, Any]", tool)
            function = tool.get("function")
            if isinstance(function, dict):
                if cast("dict[str, Any]", function).get("name") == name:
                    return True
            elif tool.get("name") == name and tool.get("type") == "function":
                return True
    return False


def _check_response_format(value: Any) -> None:
    if value is None:
        return
    kind = cast("Mapping[str, Any]", value).get("type") if isinstance(value, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise InvalidRequestError(
            "'response_format.type' must be 'text', 'json_object' or 'json_schema'", param="response_format"
        )
    if kind == "json_schema":
        schema = cast("Mapping[str, Any]", value).get("json_schema")
        if not isinstance(schema, dict) or not isinstance(cast("Mapping[str, Any]", schema).get("name"), str):
            raise InvalidRequestError(
                "'response_format.json_schema' needs a 'name' and a 'schema'", param="response_format"
            )
