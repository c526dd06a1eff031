"""Pure functions between the Responses API and Chat Completions, for deployments that speak only chat.

Request: input items → chat messages (:func:`to_chat`). A turn of the model (its reasoning, message and function
calls between two inputs) becomes one assistant message; a ``function_call_output`` a ``tool`` message (an output
of text, image and file parts as chat content parts, which each chat adapter carries as its API takes them);
``instructions`` the first ``system`` message. Answer: a chat completion → a Response object
(:func:`from_chat`); a chat chunk stream → the typed event stream (:class:`ChatToResponseEvents`), each event with
its ``sequence_number``, in the order OpenAI sends them (``response.created``, ``response.in_progress``, per item
``output_item.added`` … deltas … ``output_item.done``, then ``response.completed`` or ``response.incomplete``).

Reasoning that a provider wants back is carried in a reasoning item's ``encrypted_content`` when the caller asks
(``include: ["reasoning.encrypted_content"]``): Anthropic's signed thinking blocks and Gemini's text thought
signature, as an opaque ``polyroute:`` token (signed by the provider, not encrypted by polyroute: the thinking text
is the same the summary shows). Gemini's function-call signatures already ride in the call ids. So a conversation
with ``store: false`` keeps its reasoning with no store at all. The store always keeps the state; a reasoning item's
id names the response it is in (:func:`reasoning_id`), so one sent back by id alone (most clients' way) gets its state
from there (``to_chat``'s ``stored``).
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from polyroute.errors import InvalidRequestError, UnsupportedFeatureError
from polyroute.providers._base import as_list as _list
from polyroute.providers._base import as_object, dumps, loads
from polyroute.types.openai import ChatCompletion, ChatCompletionRequest, Message, Usage
from polyroute.validation import TOOL_MODES, declares_function

HOSTED_TOOLS = frozenset(
    {
        "web_search",
        "web_search_preview",
        "web_search_preview_2025_03_11",
        "web_search_2025_08_26",
        "file_search",
        "code_interpreter",
        "computer_use_preview",
        "computer",
        "image_generation",
        "mcp",
        "local_shell",
        "shell",
        "apply_patch",
        "tool_search",
        "programmatic_tool_calling",
    }
)
"""Tools that OpenAI runs itself (its ``Tool`` types but ``function``, ``custom`` and ``namespace``): only an OpenAI
(or Azure) deployment can take a request with one."""

ENCRYPTED_REASONING = "reasoning.encrypted_content"
LOGPROBS = "message.output_text.logprobs"
_TOKEN_PREFIX = "polyroute:"

_FIELDS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "text",
        "reasoning",
        "max_output_tokens",
        "temperature",
        "top_p",
        "parallel_tool_calls",
        "metadata",
        "truncation",
        "stream",
        "stream_options",
        "store",
        "include",
        "previous_response_id",
        "user",
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "service_tier",
        "background",
        "max_tool_calls",
        "top_logprobs",
        "conversation",
        "prompt",
        "context_management",
        "moderation",
        "prompt_cache_options",
        "access_programs",
        "background_options",
        "image",
        "client_metadata",
    }
)
"""Request fields of ``POST /v1/responses`` polyroute knows (the openai SDK's, and Codex CLI's ``client_metadata``).
Another goes as it is to an OpenAI deployment, which says whether it takes it (a field newer than this list works
there at once); a deployment reached through chat refuses it, naming it."""

_CHAT_ONLY = frozenset(
    {
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "response_format",
        "reasoning_effort",
        "functions",
        "function_call",
        "n",
        "stop",
        "seed",
        "logprobs",
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "verbosity",
        "modalities",
        "audio",
    }
)
"""Chat Completions fields that ``/v1/responses`` does not take: refused at once, whatever the route, with the
Responses field to use (a Chat Completions body sent to the wrong path)."""

RESPONSES_NAMES = {
    "messages": "input",
    "max_tokens": "max_output_tokens",
    "max_completion_tokens": "max_output_tokens",
    "response_format": "text.format",
    "reasoning_effort": "reasoning.effort",
    "verbosity": "text.verbosity",
    "logprobs": "include",
}
"""A Chat Completions request field → the Responses API's (what to tell a caller who sent the chat one, and how a
translated deployment's error, which names the chat field, names it on ``/v1/responses``)."""

_NOT_TRANSLATED = (
    "conversation",
    "prompt",
    "max_tool_calls",
    "context_management",
    "moderation",
    "access_programs",
    "background_options",
    "image",
)
_NOT_TRANSLATED_SET = frozenset(_NOT_TRANSLATED)
"""Fields only OpenAI's own servers implement: a translated deployment refuses them (a 400 naming the field).
(``client_metadata`` and ``prompt_cache_*`` change nothing in the answer: a translated deployment leaves them.)"""

_ITEM_TYPES = frozenset(
    {"message", "function_call", "function_call_output", "reasoning", "item_reference"}
    | {f"{name}_call" for name in ("web_search", "file_search", "computer", "code_interpreter", "image_generation")}
    | {"computer_call_output", "local_shell_call", "local_shell_call_output", "mcp_call", "mcp_list_tools"}
    | {"mcp_approval_request", "mcp_approval_response", "custom_tool_call", "custom_tool_call_output"}
)


ID_MARK = "pr"
"""After the prefix of every id polyroute makes (``rs_pr…``): OpenAI's ids are hex, so an id with the mark is
polyroute's, and an OpenAI deployment is never sent one of those items by id (it would not know it)."""


def new_id(prefix: str) -> str:
    """A fresh OpenAI-style item or response id (``resp_pr…``, ``msg_pr…``, ``rs_pr…``, ``fc_pr…``): 128 bits from
    ``os.urandom``, as unguessable as a uuid4 (a serve key's stored responses are found by id).
    """
    while True:
        try:
            return f"{prefix}_{ID_MARK}{_RANDOM_HEX.pop()}"
        except IndexError:  # one system call per 64 ids, not one per id (2 per translated answer)
            block = os.urandom(16 * 64).hex()
            _RANDOM_HEX.extend([block[i : i + 32] for i in range(0, len(block), 32)])


_RANDOM_HEX: list[str] = []
"""Random 128-bit hex strings not yet used (``list.pop`` is atomic: threads never share one)."""
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_RANDOM_HEX.clear)  # a forked worker must not reuse its parent's


def is_polyroute_id(value: Any) -> bool:
    """Whether an item id is one polyroute made (see :data:`ID_MARK`)."""
    return isinstance(value, str) and value.partition("_")[2].startswith(ID_MARK)


def reasoning_id(response_id: str, index: int) -> str:
    """The id of the reasoning item at ``output[index]`` of a response: ``rs_pr<the response's>_<index>``.

    Most clients send a reasoning item back by id alone (``encrypted_content`` only comes with ``include``): the id
    says which stored response holds the item's state (:func:`reasoning_source`), with no index to keep. A response
    id polyroute did not make gets a plain fresh id.
    """
    kind, _, rest = response_id.partition("_")
    if kind != "resp" or not rest.startswith(ID_MARK):
        return new_id("rs")
    return f"rs_{rest}_{index}"


def reasoning_source(item_id: Any) -> tuple[str, int] | None:
    """(response id, output index) named by a :func:`reasoning_id`; None for any other id (OpenAI's, or
    polyroute's own from before reasoning ids named their response: random, with nothing to look up).
    """
    if not isinstance(item_id, str) or not item_id.startswith(_REASONING_MARK):
        return None
    rest, _, index = item_id[3:].rpartition("_")
    if not rest or not 0 < len(index) <= 4 or not index.isdigit() or not index.isascii():
        return None
    return "resp_" + rest, int(index)


_REASONING_MARK = "rs_" + ID_MARK


# -- the request --------------------------------------------------------------------------------------------------


def validate(body: dict[str, Any]) -> dict[str, Any]:
    """Check a Responses request as OpenAI checks it; each failure is a 400 naming the field and what to fix.

    Cheap on every call: ``model`` and ``input`` are read, then each field present is checked by its rule in
    :data:`_CHECKS` (a type, or a function), so an absent field costs nothing; a null one is taken as absent, as
    OpenAI takes it.
    """
    if not _FIELDS.issuperset(body):
        chat = sorted(_CHAT_ONLY.intersection(body))
        if chat:
            use = RESPONSES_NAMES.get(chat[0])
            raise InvalidRequestError(
                f"Unrecognized request argument supplied: {', '.join(chat)} (a Chat Completions field, not one of "
                f"POST /v1/responses{f'; use {use!r}' if use else ''})",
                param=chat[0],
            )
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("'model' is required and must be a non-empty string", param="model")
    raw = body.get("input")
    if isinstance(raw, list):
        if raw:
            for i, item in enumerate(cast("list[Any]", raw)):
                _check_item(i, item)
        elif not (body.get("previous_response_id") or body.get("conversation") or body.get("prompt")):
            # OpenAI takes an empty input only to go on from a stored response (or a conversation, a prompt),
            # not with instructions alone
            raise InvalidRequestError(
                "'input' is an empty array: send at least one input item (a message), or continue a stored response "
                "with 'previous_response_id'",
                param="input",
            )
    elif raw is None:
        if not (body.get("previous_response_id") or body.get("instructions") or body.get("prompt")):
            raise InvalidRequestError("'input' is required: a string, or an array of input items", param="input")
    elif not isinstance(raw, str):
        raise InvalidRequestError(
            f"'input' must be a string or an array of input items, got {type(raw).__name__}", param="input"
        )
    for name, value in body.items():
        rule = _CHECKS.get(name)
        if rule is None or value is None:
            continue
        if isinstance(rule, type):  # checked here: most rules are a type, and a call would cost more than it
            if not isinstance(value, rule):
                raise InvalidRequestError(f"'{name}' must be {_KINDS[rule]}, got {value!r}", param=name)
        else:
            rule(value)
    choice = body.get("tool_choice")
    if type(choice) is dict:  # a tool named (a string is a mode, which needs none)
        _check_named_tool(cast("dict[str, Any]", choice), body.get("tools"))
    return body


_KINDS: dict[type, str] = {bool: "true or false", str: "a string", dict: "an object"}


def _number(name: str, top: int) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= top:
            raise InvalidRequestError(f"'{name}' must be a number from 0 to {top}, got {value!r}", param=name)

    return check


def _one_of(name: str, allowed: tuple[str, ...]) -> Callable[[Any], None]:
    members = frozenset(allowed)
    words = _words(allowed)

    def check(value: Any) -> None:
        if not isinstance(value, str) or value not in members:  # a list or an object is not hashable: str first
            raise InvalidRequestError(f"'{name}' must be {words}, got {value!r}", param=name)

    return check


def _words(values: Sequence[str]) -> str:
    """``'a', 'b' or 'c'``: the values allowed, for an error message."""
    quoted = [f"'{v}'" for v in values]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
"""``reasoning.effort`` (OpenAI's ``ReasoningEffort``; a model takes some of them)."""
_SUMMARIES = ("auto", "concise", "detailed")
_EFFORT_SET = frozenset(_EFFORTS)
_SUMMARY_SET = frozenset(_SUMMARIES)
_INCLUDABLE = (
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    ENCRYPTED_REASONING,
    LOGPROBS,
)
"""What ``include`` may ask for (OpenAI's ``IncludeEnum``)."""
_INCLUDABLE_SET = frozenset(_INCLUDABLE)


def _check_reasoning(value: Any) -> None:
    if not isinstance(value, dict):
        raise InvalidRequestError(f"'reasoning' must be an object, got {value!r}", param="reasoning")
    reasoning = cast("dict[str, Any]", value)
    effort = reasoning.get("effort")
    if effort is not None and (not isinstance(effort, str) or effort not in _EFFORT_SET):
        raise InvalidRequestError(
            f"'reasoning.effort' must be {_words(_EFFORTS)}, got {effort!r}", param="reasoning.effort"
        )
    summary = reasoning.get("summary")
    if summary is not None and (not isinstance(summary, str) or summary not in _SUMMARY_SET):
        raise InvalidRequestError(
            f"'reasoning.summary' must be {_words(_SUMMARIES)}, got {summary!r}", param="reasoning.summary"
        )


def _check_text(value: Any) -> None:
    if not isinstance(value, dict):
        raise InvalidRequestError(f"'text' must be an object, got {value!r}", param="text")
    fmt = as_object(cast("dict[str, Any]", value).get("format"))
    if fmt and fmt.get("type") not in ("text", "json_schema", "json_object"):
        raise InvalidRequestError(
            f"'text.format.type' must be 'text', 'json_schema' or 'json_object', got {fmt.get('type')!r}",
            param="text.format.type",
        )
    if fmt.get("type") == "json_schema" and not (
        isinstance(fmt.get("name"), str) and isinstance(fmt.get("schema"), dict)
    ):
        raise InvalidRequestError(
            "'text.format' of type json_schema needs 'name' and 'schema' (flat, not under 'json_schema')",
            param="text.format",
        )
    verbosity = cast("dict[str, Any]", value).get("verbosity")
    if verbosity is not None and verbosity not in ("low", "medium", "high"):
        raise InvalidRequestError(
            f"'text.verbosity' must be 'low', 'medium' or 'high', got {verbosity!r}", param="text.verbosity"
        )


def _check_metadata(value: Any) -> None:
    if not isinstance(value, dict):
        raise InvalidRequestError(f"'metadata' must be an object, got {value!r}", param="metadata")
    for key, item in cast("dict[str, Any]", value).items():
        if not isinstance(item, str):
            raise InvalidRequestError(
                f"'metadata' values must be strings (up to 512 characters), got {item!r} for {key!r}",
                param=f"metadata.{key}",
            )


def _check_max_output_tokens(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 16:
        raise InvalidRequestError(
            f"'max_output_tokens' must be an integer ≥ 16, got {value!r}", param="max_output_tokens"
        )


def _check_previous(value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidRequestError(
            f"'previous_response_id' must be a response id (a string), got {value!r}", param="previous_response_id"
        )


def _check_include(value: Any) -> None:
    if not isinstance(value, list):
        raise InvalidRequestError(f"'include' must be an array of strings, got {value!r}", param="include")
    for i, name in enumerate(cast("list[Any]", value)):
        if not isinstance(name, str) or name not in _INCLUDABLE_SET:
            raise InvalidRequestError(
                f"'include[{i}]' must be one of {', '.join(_INCLUDABLE)}; got {name!r}", param=f"include[{i}]"
            )


def _check_top_logprobs(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 20:
        raise InvalidRequestError(
            f"'top_logprobs' must be an integer from 0 to 20, got {value!r}", param="top_logprobs"
        )


def _check_background(value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidRequestError(f"'background' must be true or false, got {value!r}", param="background")
    if value:
        # A background response is polled with GET /v1/responses/{id}, which polyroute answers from its own store:
        # it would never see the upstream finish.
        raise InvalidRequestError(
            "'background' responses are not served through polyroute (it cannot poll them upstream); "
            "remove 'background' (stream instead for long answers)",
            param="background",
        )


def _check_tools(tools: Any) -> None:
    if not isinstance(tools, list):
        raise InvalidRequestError("'tools' must be an array", param="tools")
    for i, tool in enumerate(cast("list[Any]", tools)):
        kind = as_object(tool).get("type")
        if kind == "function":
            if not isinstance(as_object(tool).get("name"), str):
                raise InvalidRequestError(
                    f"'tools[{i}].name' is required: a Responses function tool is flat "
                    "({'type': 'function', 'name': ..., 'parameters': ...}), not nested under 'function'",
                    param=f"tools[{i}].name",
                )
        elif not isinstance(kind, str):
            raise InvalidRequestError(f"'tools[{i}].type' is required", param=f"tools[{i}].type")
        elif kind not in _TOOL_TYPES:
            raise InvalidRequestError(
                f"'tools[{i}].type' {kind!r} is not a tool type: use 'function' for a function you run ('custom' "
                f"or 'namespace' for OpenAI's other kinds of your own tools), or one of OpenAI's built-in tools: "
                f"{', '.join(sorted(HOSTED_TOOLS))}",
                param=f"tools[{i}].type",
            )


def _check_tool_choice(choice: Any) -> None:
    if isinstance(choice, str):
        if choice not in TOOL_MODES:
            raise InvalidRequestError(
                f"'tool_choice' must be 'none', 'auto' or 'required' (or an object naming a tool), got {choice!r}",
                param="tool_choice",
            )
        return
    if not isinstance(choice, dict):
        raise InvalidRequestError(
            f"'tool_choice' must be 'none', 'auto', 'required' or an object naming a tool, got {choice!r}",
            param="tool_choice",
        )
    choice = cast("dict[str, Any]", choice)
    kind = choice.get("type")
    if kind == "function":
        if not isinstance(choice.get("name"), str):
            raise InvalidRequestError(
                "'tool_choice.name' is required: a Responses tool_choice is flat ({'type': 'function', 'name': "
                "...}), not nested under 'function'",
                param="tool_choice.name",
            )
    elif kind == "allowed_tools":
        if choice.get("mode") not in ("auto", "required"):
            raise InvalidRequestError(
                f"'tool_choice.mode' must be 'auto' or 'required', got {choice.get('mode')!r}",
                param="tool_choice.mode",
            )
        if not isinstance(choice.get("tools"), list):
            raise InvalidRequestError(
                "'tool_choice.tools' must be an array of tools ({'type': 'function', 'name': ...}, …)",
                param="tool_choice.tools",
            )
    elif not isinstance(kind, str) or kind not in _TOOL_CHOICE_TYPES:
        raise InvalidRequestError(
            f"'tool_choice.type' {kind!r} is not a tool: use 'function' (with its 'name'), 'allowed_tools', or a "
            f"built-in tool ({', '.join(sorted(HOSTED_TOOLS))})",
            param="tool_choice.type",
        )


def _check_named_tool(choice: dict[str, Any], tools: Any) -> None:
    """A ``tool_choice`` naming tools (a function, a custom or built-in tool, an ``allowed_tools`` list): each one of
    ``tools``, as OpenAI has it, on every route before anything goes upstream. A translated provider would drop the
    choice, be asked to force or allow a tool it was never given (Gemini's ``allowedFunctionNames``), or narrow the
    list silently.
    """
    kind = choice.get("type")
    if kind == "function":
        if not declares_function(tools, choice["name"]):
            raise InvalidRequestError(
                f"Tool choice 'function' not found in 'tools' parameter: no function tool is named '{choice['name']}'",
                param="tool_choice",
            )
    elif kind == "allowed_tools":
        for i, entry in enumerate(cast("list[Any]", choice["tools"])):
            where = f"tool_choice.tools[{i}]"
            if not isinstance(entry, dict) or not isinstance(cast("dict[str, Any]", entry).get("type"), str):
                raise InvalidRequestError(
                    f"'{where}' must be a tool as 'tools' declares it ({{'type': 'function', 'name': ...}}, "
                    f"{{'type': 'mcp', 'server_label': ...}}, {{'type': 'image_generation'}}…), got {entry!r}",
                    param=where,
                )
            entry = cast("dict[str, Any]", entry)
            if entry["type"] == "function" and not isinstance(entry.get("name"), str):
                raise InvalidRequestError(
                    f"'{where}.name' is required: an allowed function is flat ({{'type': 'function', 'name': ...}})",
                    param=f"{where}.name",
                )
            if not _declares(tools, entry):
                raise InvalidRequestError(
                    f"Invalid '{where}': {_tool_words(entry)} is not in 'tools'. allowed_tools only narrows the tools "
                    "declared in 'tools': declare it there too, or remove it from the list",
                    param=where,
                )
    elif kind in _NAMED_BY_TYPE and not _declares(tools, choice):
        raise InvalidRequestError(
            f"Tool choice '{kind}' not found in 'tools' parameter: add {_tool_words(choice)} to 'tools', or choose "
            "'auto', 'required' or a tool 'tools' declares",
            param="tool_choice",
        )


_WEB_SEARCH = frozenset({"web_search", "web_search_preview", "web_search_preview_2025_03_11", "web_search_2025_08_26"})
_COMPUTER = frozenset({"computer", "computer_use", "computer_use_preview"})
_SAME_TOOL = {**dict.fromkeys(_WEB_SEARCH, _WEB_SEARCH), **dict.fromkeys(_COMPUTER, _COMPUTER)}
"""A tool type → the types of tool a choice of it may find: any version of web search, of the computer tool
(``computer_use`` is the choice's alias of ``computer``; openai-agents picks the choice's version apart from its
tool's). Any other type finds only its own."""
_NAMED_BY_TYPE = HOSTED_TOOLS | {"custom", "computer_use"}
"""``tool_choice`` types that name a tool by its type (a custom tool also by ``name``, an MCP server by
``server_label``): each must find it in ``tools``."""


def _declares(tools: Any, wanted: Mapping[str, Any]) -> bool:
    """Whether ``tools`` hold the tool a ``tool_choice`` (or an ``allowed_tools`` entry) names: a function by name, a
    custom tool by name, an MCP server by ``server_label`` (its ``name`` is a tool on that server), a built-in tool by
    type (:data:`_SAME_TOOL`).
    """
    kind = wanted["type"]
    if kind == "function":
        return declares_function(tools, wanted["name"])
    key = "server_label" if kind == "mcp" else "name"
    value = wanted.get(key)
    types = _SAME_TOOL.get(kind, (kind,))
    for tool in map(as_object, _list(tools)):
        if tool.get("type") in types and (value is None or tool.get(key) == value):
            return True
    return False


def _tool_words(wanted: Mapping[str, Any]) -> str:
    """How an error names the tool a choice wants: ``function 'f'``, ``MCP server 'docs'``, ``a 'file_search' tool``."""
    kind = wanted["type"]
    if kind == "mcp" and wanted.get("server_label") is not None:
        return f"MCP server {wanted['server_label']!r}"
    if kind == "function":
        return f"function {wanted['name']!r}"
    if kind == "custom" and wanted.get("name") is not None:
        return f"custom tool {wanted['name']!r}"
    return f"a {kind!r} tool"


_TOOL_TYPES = HOSTED_TOOLS | {"function", "custom", "namespace"}
"""Every type of tool OpenAI takes: functions, its other kinds of the caller's own tools, its built-in ones."""
_TOOL_CHOICE_TYPES = _TOOL_TYPES | {"computer_use"}
_CHECKS: dict[str, type | Callable[[Any], None]] = {
    "instructions": str,
    "tools": _check_tools,
    "tool_choice": _check_tool_choice,
    "text": _check_text,
    "reasoning": _check_reasoning,
    "metadata": _check_metadata,
    "max_output_tokens": _check_max_output_tokens,
    "temperature": _number("temperature", 2),
    "top_p": _number("top_p", 1),
    "top_logprobs": _check_top_logprobs,
    "previous_response_id": _check_previous,
    "include": _check_include,
    "background": _check_background,
    "stream": bool,
    "store": bool,
    "parallel_tool_calls": bool,
    "stream_options": dict,
    "truncation": _one_of("truncation", ("auto", "disabled")),
    "service_tier": _one_of("service_tier", ("auto", "default", "flex", "scale", "priority", "fast", "ultrafast")),
    "user": str,
    "safety_identifier": str,
    "prompt_cache_key": str,
    "prompt_cache_retention": _one_of("prompt_cache_retention", ("in_memory", "24h")),
}
"""The rule of each request field that has one, applied only when the field is present and not null: the type the
value must have (:data:`_KINDS`), or a function that raises for a bad value."""


def _check_item(i: int, item: Any) -> None:
    problem = _item_problem(item)
    if problem is not None:  # the field's name is written only for an error: a long input has hundreds of items
        field, why = problem
        where = f"input[{i}]{field}"
        raise InvalidRequestError(f"'{where}' {why}", param=where)


def _item_problem(item: Any) -> tuple[str, str] | None:
    """What is wrong with an input item: (the field under ``input[i]``, what to fix), or None."""
    if not isinstance(item, dict):
        return "", f"must be an object (an input item), got {type(item).__name__}"
    item = cast("dict[str, Any]", item)
    if item.get("id") is not None and not isinstance(item["id"], str):
        return ".id", f"must be a string (an item id), got {item['id']!r}"
    kind = item.get("type", "message" if "role" in item else None)
    if not isinstance(kind, str) or kind not in _ITEM_TYPES:
        return (
            ".type",
            f"{kind!r} is not an input item type (message, function_call, function_call_output, reasoning, …)",
        )
    if kind == "message":
        role = item.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            return ".role", f"must be user, assistant, system or developer, got {role!r}"
        content = item.get("content")
        if not isinstance(content, str):
            if not isinstance(content, list):
                return ".content", "must be a string or an array of parts"
            if not content:
                return ".content", "is an empty array: send at least one part (input_text, input_image, input_file)"
    elif kind == "function_call":
        for name in ("call_id", "name", "arguments"):
            if not isinstance(item.get(name), str):
                return f".{name}", "is required (a string)"
    elif kind == "function_call_output" and not isinstance(item.get("call_id"), str):
        return ".call_id", "is required (a string)"
    return None


_ROLES = frozenset({"user", "assistant", "system", "developer"})


def input_items(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The request's ``input`` as items (a string is one user message)."""
    raw = body.get("input")
    if raw is None:
        return []
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": raw}]}]
    items: list[dict[str, Any]] = []
    for item in map(as_object, _list(raw)):
        if "type" not in item:
            item = {"type": "message", **item}
        items.append(item)
    return items


def hosted_tools(body: Mapping[str, Any]) -> list[str]:
    """The OpenAI-hosted tools the request uses (its ``tools`` and a ``tool_choice`` naming one)."""
    if not body.get("tools") and "tool_choice" not in body:
        return []
    found = [str(kind) for t in _list(body.get("tools")) if (kind := as_object(t).get("type")) in HOSTED_TOOLS]
    choice = as_object(body.get("tool_choice")).get("type")
    if isinstance(choice, str) and choice in HOSTED_TOOLS and choice not in found:
        found.append(choice)
    return found


Stored = Callable[[str, Sequence[str]], Mapping[str, Any]]
"""The state of a reasoning item sent back by id alone: ``(item id, the tool-call ids of its turn) -> state`` (the
same shape as :func:`decode_reasoning`'s; ``{}`` when there is nothing to add). See
:func:`polyroute.responses.store.stored_reasoning`."""


def to_chat(
    body: Mapping[str, Any], items: Sequence[Mapping[str, Any]], label: str, stored: Stored | None = None
) -> ChatCompletionRequest:
    """A Responses request, its input already expanded to ``items`` → the Chat Completions request a chat adapter
    takes. ``label`` names the deployment in a 400 for what chat cannot carry; ``stored`` gives the state of
    reasoning items sent back without ``encrypted_content``.
    """
    if not _FIELDS.issuperset(body):
        unknown = sorted(set(body) - _FIELDS)
        raise UnsupportedFeatureError(
            f"Unrecognized request argument supplied: {', '.join(unknown)} (not a field polyroute knows for POST "
            f"/v1/responses, so {label}, reached through chat, cannot take it; an OpenAI deployment gets it as it is)",
            param=unknown[0],
        )
    if not _NOT_TRANSLATED_SET.isdisjoint(body):
        for name in _NOT_TRANSLATED:
            if body.get(name) not in (None, False):
                raise UnsupportedFeatureError(
                    f"'{name}' is served only by OpenAI's own Responses API; {label} is reached through chat. Remove "
                    f"'{name}' or route to an OpenAI or Azure deployment",
                    param=name,
                )
    raw_tools = body.get("tools")
    if raw_tools or "tool_choice" in body:
        hosted = hosted_tools(body)
        if hosted:
            raise UnsupportedFeatureError(
                f"the built-in tool {hosted[0]!r} runs only on OpenAI (or Azure) deployments, and {label} is not one; "
                "route to one or use a function tool",
                param="tools",
            )
    for tool in _list(raw_tools) if raw_tools else ():
        kind = as_object(tool).get("type")
        if kind in ("custom", "namespace"):
            raise UnsupportedFeatureError(
                f"{kind} tools ({'freeform input' if kind == 'custom' else 'a group of functions'}) are not "
                f"translated to chat for {label}; declare them as function tools, or route to an OpenAI or Azure "
                "deployment",
                param="tools",
            )
    out: dict[str, Any] = {"model": body["model"], "messages": _to_messages(body, items, stored)}
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    if raw_tools:
        tools = [_to_chat_tool(as_object(t)) for t in _list(raw_tools)]
        if tools:
            out["tools"] = tools
    choice = body.get("tool_choice")
    if choice is not None:
        out["tool_choice"] = _to_chat_tool_choice(choice, label)
    text = body.get("text")
    if text:
        text = as_object(text)
        fmt = as_object(text.get("format"))
        verbosity = text.get("verbosity")
        if verbosity is not None and verbosity != "medium":  # medium: OpenAI's default, nothing to ask for
            out["verbosity"] = verbosity  # a deployment without it says so (a 400 naming it), as on chat
        if fmt.get("type") == "json_schema":
            schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if fmt.get(k) is not None}
            out["response_format"] = {"type": "json_schema", "json_schema": schema}
        elif fmt.get("type") == "json_object":
            out["response_format"] = {"type": "json_object"}
    reasoning = body.get("reasoning")
    effort = as_object(reasoning).get("effort") if reasoning else None
    if effort is not None:
        out["reasoning_effort"] = effort
    if body.get("max_output_tokens") is not None:
        out["max_completion_tokens"] = body["max_output_tokens"]
    for name in ("temperature", "top_p", "parallel_tool_calls", "service_tier"):
        if body.get(name) is not None:
            out[name] = body[name]
    if wants_logprobs(body):
        out["logprobs"] = True  # a deployment without them refuses it (its chat adapter's 400, naming the field here)
        if body.get("top_logprobs") is not None:
            out["top_logprobs"] = body["top_logprobs"]
    user = body.get("safety_identifier") or body.get("user")
    if isinstance(user, str) and user:
        out["user"] = user
    return cast("ChatCompletionRequest", out)


def _to_chat_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None}
    return {"type": "function", "function": function}


def _to_chat_tool_choice(choice: Any, label: str) -> Any:
    if isinstance(choice, str):
        return choice
    choice = as_object(choice)
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise UnsupportedFeatureError(
        f"tool_choice {choice!r} is not translated for {label}; use 'auto', 'none', 'required' or a function",
        param="tool_choice",
    )


def _to_messages(
    body: Mapping[str, Any], items: Sequence[Mapping[str, Any]], stored: Stored | None = None
) -> list[Message]:
    messages: list[dict[str, Any]] = []
    pending: list[tuple[dict[str, Any], str, int]] | None = None  # reasoning items sent back by id alone
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    turn: dict[str, Any] | None = None  # the model's turn being assembled

    def model_turn() -> dict[str, Any]:
        nonlocal turn
        if turn is None:
            turn = {"role": "assistant", "content": None}
            messages.append(turn)
        return turn

    for i, item in enumerate(items):
        match item.get("type"):
            case "message" if item.get("role") == "assistant":
                text = _text_of(item.get("content"))
                current = model_turn()
                current["content"] = (current["content"] or "") + text if text else current["content"]
            case "message":
                turn = None
                messages.append({"role": item["role"], "content": _to_chat_content(item.get("content"), i)})
            case "function_call":
                current = model_turn()
                call = {
                    "id": item["call_id"],
                    "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]},
                }
                current.setdefault("tool_calls", []).append(call)
            case "function_call_output":
                turn = None
                messages.append(
                    {"role": "tool", "tool_call_id": item["call_id"], "content": _tool_output(item.get("output"), i)}
                )
            case "reasoning":
                current = model_turn()
                summary = "".join(str(as_object(s).get("text") or "") for s in _list(item.get("summary")))
                if summary:
                    current["reasoning_content"] = (current.get("reasoning_content") or "") + summary
                token = item.get("encrypted_content")
                if token is None and stored is not None and isinstance(item.get("id"), str):
                    # by id alone: asked for once the turn's tool calls are known (they follow the reasoning)
                    pending = pending or []
                    pending.append((current, item["id"], len(current.get("thinking_blocks") or ())))
                else:
                    _add_reasoning(current, decode_reasoning(token))
            case other:
                raise UnsupportedFeatureError(
                    f"input[{i}] is a {other!r} item, which only OpenAI's own Responses API can take; "
                    "route to an OpenAI or Azure deployment",
                    param=f"input[{i}]",
                )
    if pending and stored is not None:
        for turn, item_id, at in reversed(pending):  # from the last: each goes where its item stood in the turn
            calls = [str(call["id"]) for call in turn.get("tool_calls") or ()]
            _add_reasoning(turn, stored(item_id, calls), at)
    return cast("list[Message]", messages)


def _add_reasoning(turn: dict[str, Any], state: Mapping[str, Any], at: int | None = None) -> None:
    """A reasoning item's state onto the model's turn: its thinking blocks (at ``at`` among the turn's, else after
    them), its signature (a turn has one: Gemini's, on its last text part).
    """
    blocks = _list(state.get("thinking_blocks"))
    if blocks:
        mine: list[Any] = turn.setdefault("thinking_blocks", [])
        where = len(mine) if at is None else at
        mine[where:where] = blocks
    signature = state.get("thought_signature")
    if isinstance(signature, str) and signature:
        turn["provider_specific_fields"] = {"thought_signature": signature}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(str(as_object(p).get("text") or as_object(p).get("refusal") or "") for p in _list(content))


def _tool_output(output: Any, i: int) -> Any:
    """A ``function_call_output``'s ``output`` → the ``tool`` message's content: a string as it is; a list of parts
    (text, image, file: openai-agents' ``ToolOutputImage`` / ``ToolOutputFileContent``, a computer-use screenshot)
    as chat content parts, each chat adapter then carrying the image or file the way its API takes one in a tool
    result (never as the JSON of the list, which would hide the image from the model and send its base64 as text).
    Text alone is joined into a string, the form every provider's tool result takes.
    """
    if isinstance(output, str):
        return output
    if not isinstance(output, list):
        return json.dumps(output) if output is not None else ""
    parts = [_to_chat_part(as_object(part), f"input[{i}].output[{j}]") for j, part in enumerate(_list(output))]
    if all(part["type"] == "text" for part in parts):
        return "".join(str(part["text"]) for part in parts)
    return parts


def _to_chat_content(content: Any, i: int) -> Any:
    if isinstance(content, str):
        return content
    return [_to_chat_part(as_object(part), f"input[{i}].content[{j}]") for j, part in enumerate(_list(content))]


def _to_chat_part(part: Mapping[str, Any], where: str) -> dict[str, Any]:
    """One Responses content part (``input_text``, ``input_image``, ``input_file``) → its chat content part."""
    match part.get("type"):
        case "input_text" | "output_text" | "text":
            return {"type": "text", "text": str(part.get("text") or "")}
        case "input_image":
            url = part.get("image_url")
            if url is None and part.get("file_id") is not None:
                raise UnsupportedFeatureError(
                    f"'{where}' refers to an uploaded file (file_id); only OpenAI can read those: send "
                    "'image_url' (a URL or a data: URL)",
                    param=where,
                )
            if not isinstance(url, str):  # not the value: a data URL in an object would fill the message
                got = "nothing" if url is None else "an object" if isinstance(url, dict) else type(url).__name__
                raise InvalidRequestError(
                    f"'{where}.image_url' must be a URL string (https://… or a data: URL), got {got}: a "
                    "Responses input_image takes the URL itself, not {'url': ...} as Chat Completions does",
                    param=f"{where}.image_url",
                )
            image: dict[str, Any] = {"url": url}
            if part.get("detail"):
                image["detail"] = part["detail"]
            return {"type": "image_url", "image_url": image}
        case "input_file":
            data = part.get("file_data")
            if not isinstance(data, str):
                url = part.get("file_url")
                if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                    raise UnsupportedFeatureError(
                        f"'{where}' refers to an uploaded file (file_id); only OpenAI can read those: send "
                        "'file_data' (a data: URL) with 'filename', or 'file_url' (an http(s) URL)",
                        param=where,
                    )
                data = url  # each provider's adapter takes a URL in file_data as its API takes a file by URL
            file = {"file_data": data}
            if part.get("filename"):
                file["filename"] = part["filename"]
            return {"type": "file", "file": file}
        case other:
            raise InvalidRequestError(
                f"'{where}.type' {other!r} is not a content part (input_text, input_image, input_file)", param=where
            )


# -- reasoning state carried in encrypted_content ------------------------------------------------------------------


def encode_reasoning(state: Mapping[str, Any]) -> str:
    """Provider reasoning state (thinking blocks, a thought signature) → an opaque ``encrypted_content`` token."""
    return _TOKEN_PREFIX + base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()


def is_polyroute_token(token: Any) -> bool:
    """Whether an ``encrypted_content`` is one of :func:`encode_reasoning`'s."""
    return isinstance(token, str) and token.startswith(_TOKEN_PREFIX)


def decode_reasoning(token: Any) -> dict[str, Any]:
    """A token of :func:`encode_reasoning` → its state; anything else (OpenAI's own ciphertext) → ``{}``."""
    if not isinstance(token, str) or not token.startswith(_TOKEN_PREFIX):
        return {}
    try:
        return as_object(loads(base64.urlsafe_b64decode(token[len(_TOKEN_PREFIX) :])))
    except ValueError:
        raise InvalidRequestError(
            "a reasoning item's encrypted_content was changed; send it back as it was returned",
            param="input",
        ) from None


def wants_encrypted(body: Mapping[str, Any]) -> bool:
    """Whether the caller asked for reasoning state in ``encrypted_content``."""
    return ENCRYPTED_REASONING in _list(body.get("include"))


def wants_logprobs(body: Mapping[str, Any]) -> bool:
    """Whether the caller asked for the answer's log probabilities: ``include: ["message.output_text.logprobs"]``, or
    ``top_logprobs`` of 1 or more, each token's alternatives, which come only with them (openai-agents sends both;
    the number alone is asked and answered too, so a deployment that has none refuses it, as before).
    """
    return bool(body.get("top_logprobs")) or LOGPROBS in _list(body.get("include"))


def asks_top_logprobs_alone(body: Mapping[str, Any]) -> bool:
    """Whether ``top_logprobs`` alone asked for log probabilities (no ``include``): a deployment's refusal of chat's
    ``logprobs`` then names ``top_logprobs``, not ``include``.
    """
    return bool(body.get("top_logprobs")) and LOGPROBS not in _list(body.get("include"))


def to_logprobs(logprobs: Any) -> list[dict[str, Any]]:
    """A chat choice's ``logprobs`` (``{"content": [...]}``) → an ``output_text`` part's ``logprobs``: the same entries
    (token, bytes, logprob, top_logprobs), ``bytes`` as Responses types them (a list, where chat may send null).
    """
    out: list[dict[str, Any]] = []
    for entry in map(as_object, _list(as_object(logprobs).get("content"))):
        logprob = _logprob(entry)
        logprob["top_logprobs"] = [_logprob(as_object(top)) for top in _list(entry.get("top_logprobs"))]
        out.append(logprob)
    return out


def _logprob(entry: Mapping[str, Any]) -> dict[str, Any]:
    token = str(entry.get("token") or "")
    raw = entry.get("bytes")
    return {
        "token": token,
        "bytes": raw if isinstance(raw, list) else list(token.encode()),
        "logprob": entry.get("logprob"),
    }


# -- the answer ---------------------------------------------------------------------------------------------------


def skeleton(body: Mapping[str, Any], response_id: str, model: str, created_at: int | None = None) -> dict[str, Any]:
    """A Response object with the request's settings echoed, ``in_progress`` and no output yet."""
    text = as_object(body.get("text"))
    fmt = text.get("format") or {"type": "text"}
    reasoning = as_object(body.get("reasoning"))
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at if created_at is not None else int(time.time()),
        "status": "in_progress",
        "background": False,
        "completed_at": None,  # set by finish(), as OpenAI sets it: only on a completed response
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": model,
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "service_tier": "default",  # what served it (a chat completion may say): not what was asked for
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": fmt, "verbosity": text.get("verbosity") or "medium"},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation") or "disabled",
        "usage": None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def to_usage(usage: Usage | None) -> dict[str, Any] | None:
    """Chat usage → Responses usage (``input_tokens`` include cached ones, as ``prompt_tokens`` do)."""
    if not usage:
        return None
    prompt = usage.get("prompt_tokens", 0) or 0
    completion = usage.get("completion_tokens", 0) or 0
    details = usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens", 0) or 0
    written = details.get("cache_creation_tokens", 0) or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0) or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": usage.get("total_tokens", prompt + completion) or prompt + completion,
    }


_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def finish(response: dict[str, Any], finish_reason: str | None, usage: Usage | None) -> dict[str, Any]:
    """Set the final status (``incomplete`` with its reason for a cut answer), ``completed_at`` (unix seconds, only
    when completed, as OpenAI's ``Response`` has it) and usage.
    """
    reason = _INCOMPLETE.get(finish_reason or "")
    response["status"] = "incomplete" if reason else "completed"
    response["completed_at"] = None if reason else int(time.time())
    response["incomplete_details"] = {"reason": reason} if reason else None
    response["usage"] = to_usage(usage)
    return response


def reasoning_item(
    summary: str, state: Mapping[str, Any], encrypted: bool, item_id: str | None = None
) -> dict[str, Any]:
    """A reasoning output item: its text as the summary; the provider's state in ``encrypted_content`` (always
    kept: the store needs it to continue a chain, or to give it back to an item sent back by id alone; :func:`public`
    leaves it out for a caller who did not ask).
    """
    item: dict[str, Any] = {
        "id": item_id or new_id("rs"),
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": summary}] if summary else [],
    }
    if state or encrypted:
        item["encrypted_content"] = encode_reasoning(state) if state else None
    return item


def public(response: dict[str, Any], encrypted: bool) -> dict[str, Any]:
    """The response as the caller sees it: polyroute's reasoning state only when asked for (``include``)."""
    if encrypted or not any("encrypted_content" in item for item in response["output"]):
        return response
    return {**response, "output": [public_item(item, encrypted) for item in response["output"]]}


def public_item(item: dict[str, Any], encrypted: bool) -> dict[str, Any]:
    """An output item as the caller sees it (see :func:`public`)."""
    if encrypted or "encrypted_content" not in item:
        return dict(item)
    return {k: v for k, v in item.items() if k != "encrypted_content"}


def message_item(text: str, status: str = "completed", item_id: str | None = None) -> dict[str, Any]:
    """An assistant message output item."""
    return {
        "id": item_id or new_id("msg"),
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def call_item(call_id: str, name: str, arguments: str, status: str = "completed") -> dict[str, Any]:
    """A function_call output item."""
    return {
        "id": new_id("fc"),
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call_id,
        "name": name,
    }


def from_chat(
    completion: ChatCompletion, body: Mapping[str, Any], response_id: str, created_at: int | None = None
) -> dict[str, Any]:
    """A chat completion → the Response object for ``body``."""
    response = skeleton(body, response_id, str(completion.get("model") or body["model"]), created_at)
    choices = completion.get("choices") or []
    message: Mapping[str, Any] = choices[0].get("message", {}) if choices else {}
    output: list[dict[str, Any]] = response["output"]
    state = _reasoning_state(message)
    reasoning = str(message.get("reasoning_content") or "")
    if reasoning or state:
        output.append(reasoning_item(reasoning, state, wants_encrypted(body), reasoning_id(response_id, len(output))))
    text = message.get("content")
    if isinstance(text, str) and text:
        item = message_item(text)
        logprobs = choices[0].get("logprobs")
        if logprobs:
            item["content"][0]["logprobs"] = to_logprobs(logprobs)
        output.append(item)
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        item = message_item("")
        item["content"] = [{"type": "refusal", "refusal": refusal}]
        output.append(item)
    for call in _list(message.get("tool_calls")):
        function = as_object(as_object(call).get("function"))
        output.append(call_item(str(call["id"]), str(function.get("name")), str(function.get("arguments") or "")))
    tier = completion.get("service_tier")
    if isinstance(tier, str) and tier:
        response["service_tier"] = tier
    return finish(response, choices[0].get("finish_reason") if choices else None, completion.get("usage"))


def _reasoning_state(message: Mapping[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = {}
    blocks = _list(message.get("thinking_blocks"))
    if blocks:
        state["thinking_blocks"] = blocks
    signature = as_object(message.get("provider_specific_fields")).get("thought_signature")
    if isinstance(signature, str) and signature:
        state["thought_signature"] = signature
    return state


# -- the stream ---------------------------------------------------------------------------------------------------


class _Open:
    """An output item being streamed."""

    __slots__ = ("head", "index", "item", "logprobs", "text")

    def __init__(self, index: int, item: dict[str, Any]) -> None:
        self.index = index
        self.item = item
        self.text: list[str] = []
        self.logprobs: list[dict[str, Any]] = []
        self.head: bytes | None = None
        """The encoded middle of this item's text delta events (see :meth:`ChatToResponseEvents.more_text`)."""


_TEXT_DELTA = b'{"type":"response.output_text.delta","sequence_number":'


def _plain_text_delta(chunk: Mapping[str, Any]) -> str | None:
    """The text of a chunk that carries only text (its one choice's delta: content, perhaps a role), else None."""
    choices: Any = chunk.get("choices")
    if type(choices) is not list or len(cast("list[Any]", choices)) != 1 or chunk.get("usage"):
        return None
    choice: Any = cast("list[Any]", choices)[0]
    if type(choice) is not dict:
        return None
    choice = cast("dict[str, Any]", choice)
    if choice.get("finish_reason") or choice.get("index", 0) != 0:
        return None
    delta: Any = choice.get("delta")
    if type(delta) is not dict or not 1 <= len(cast("dict[str, Any]", delta)) <= 2:
        return None
    delta = cast("dict[str, Any]", delta)
    content: Any = delta.get("content")
    if not isinstance(content, str) or (len(delta) == 2 and "role" not in delta):
        return None
    return content


class ChatToResponseEvents:
    """Chat chunks (from a chat adapter's translator) → Responses stream events, with sequence numbers.

    One item is open at a time, as the providers stream them: reasoning, then the message, then each function
    call; an item closes (``…done`` events) when the next begins or the stream ends.
    """

    def __init__(self, body: Mapping[str, Any], response_id: str, model: str) -> None:
        self.body = body
        self.response = skeleton(body, response_id, model)
        self.encrypted = wants_encrypted(body)
        self.logprobs = wants_logprobs(body)
        """Asked for: each text delta carries its chunk's, so no chunk takes the text-only shortcut."""
        self.sequence = 0
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self._started = False
        self._open: _Open | None = None
        self._state: dict[str, Any] = {}
        self._calls: dict[int, _Open] = {}
        self._carried = False

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def start(self) -> list[dict[str, Any]]:
        """``response.created`` and ``response.in_progress`` (once)."""
        if self._started:
            return []
        self._started = True
        snapshot: dict[str, Any] = {**self.response, "output": []}
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    def feed(self, chunk: Mapping[str, Any]) -> list[dict[str, Any]]:
        """One chat chunk → its events."""
        current = self._open
        if current is not None and current.item["type"] == "message" and not self.logprobs:
            text = _plain_text_delta(chunk)
            if text:  # most of a stream: more text for the open message, one event
                current.text.append(text)
                ref = {"item_id": current.item["id"], "output_index": current.index, "content_index": 0}
                return [self._event("response.output_text.delta", **ref, delta=text, logprobs=[])]
        events = self.start()
        usage = chunk.get("usage")
        if usage:
            self.usage = cast("Usage", usage)
        for choice in _list(chunk.get("choices")):
            choice = as_object(choice)
            if choice.get("index", 0) != 0:
                continue
            delta = as_object(choice.get("delta"))
            reasoning = delta.get("reasoning_content")
            if reasoning:
                events += self._reasoning(str(reasoning))
            blocks = _list(delta.get("thinking_blocks"))
            if blocks:
                if self._open is None or self._open.item["type"] != "reasoning":
                    events += self._reasoning("")
                self._state.setdefault("thinking_blocks", []).extend(blocks)
            signature = as_object(delta.get("provider_specific_fields")).get("thought_signature")
            if isinstance(signature, str) and signature:
                self._state["thought_signature"] = signature
            content = delta.get("content")
            if content:
                events += self._text(str(content), to_logprobs(choice.get("logprobs")) if self.logprobs else [])
            for call in map(as_object, _list(delta.get("tool_calls"))):
                events += self._call(call)
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        return events

    def more_text(self, text: str) -> bytes | None:
        """The ``response.output_text.delta`` event's JSON for more text of the open message, encoded as it is
        made (most of a stream: one short event each, no dict to build and encode); None when no message is open.
        """
        current = self._open
        if current is None or current.item["type"] != "message":
            return None
        current.text.append(text)
        sequence = self.sequence
        self.sequence += 1
        head = current.head
        if head is None:
            head = current.head = b',"item_id":%s,"output_index":%d,"content_index":0,"delta":' % (
                dumps(current.item["id"]),
                current.index,
            )
        return _TEXT_DELTA + b"%d" % sequence + head + dumps(text) + b',"logprobs":[]}'

    def _reasoning(self, text: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        current = self._open
        if current is None or current.item["type"] != "reasoning":
            events += self._close()
            item_id = reasoning_id(self.response["id"], len(self.response["output"]))
            item: dict[str, Any] = {"id": item_id, "type": "reasoning", "summary": []}
            current = self._begin(item, events)
        if text:
            ref = {"item_id": current.item["id"], "output_index": current.index, "summary_index": 0}
            if not current.text:
                part = {"type": "summary_text", "text": ""}
                events.append(self._event("response.reasoning_summary_part.added", **ref, part=part))
            current.text.append(text)
            events.append(self._event("response.reasoning_summary_text.delta", **ref, delta=text))
        return events

    def _text(self, text: str, logprobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        current = self._open
        if current is None or current.item["type"] != "message":
            events += self._close()
            item: dict[str, Any] = {
                "id": new_id("msg"),
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            current = self._begin(item, events)
            part: dict[str, Any] = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            ref: dict[str, Any] = {"item_id": item["id"], "output_index": current.index, "content_index": 0}
            events.append(self._event("response.content_part.added", **ref, part=part))
        current.text.append(text)
        current.logprobs += logprobs
        ref = {"item_id": current.item["id"], "output_index": current.index, "content_index": 0}
        events.append(self._event("response.output_text.delta", **ref, delta=text, logprobs=logprobs))
        return events

    def _call(self, call: Mapping[str, Any]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        position = int(call.get("index", 0))
        function = as_object(call.get("function"))
        current = self._calls.get(position)
        if current is None:
            events += self._close()
            item = call_item(str(call.get("id") or new_id("call")), str(function.get("name") or ""), "", "in_progress")
            current = self._calls[position] = self._begin(item, events)
        arguments = function.get("arguments")
        if arguments:
            current.text.append(str(arguments))
            ref = {"item_id": current.item["id"], "output_index": current.index}
            events.append(self._event("response.function_call_arguments.delta", **ref, delta=str(arguments)))
        return events

    def _begin(self, item: dict[str, Any], events: list[dict[str, Any]]) -> _Open:
        current = _Open(len(self.response["output"]), item)
        self.response["output"].append(item)
        events.append(self._event("response.output_item.added", output_index=current.index, item=dict(item)))
        self._open = current
        return current

    def _close(self) -> list[dict[str, Any]]:
        current = self._open
        if current is None:
            return []
        self._open = None
        item = current.item
        text = "".join(current.text)
        events: list[dict[str, Any]] = []
        match item["type"]:
            case "reasoning":
                ref = {"item_id": item["id"], "output_index": current.index, "summary_index": 0}
                if current.text:
                    part = {"type": "summary_text", "text": text}
                    events.append(self._event("response.reasoning_summary_text.done", **ref, text=text))
                    events.append(self._event("response.reasoning_summary_part.done", **ref, part=part))
                    item["summary"] = [part]
                if self._state or self.encrypted:
                    item["encrypted_content"] = encode_reasoning(self._state) if self._state else None
                    self._carried = "thought_signature" in self._state
            case "message":
                ref = {"item_id": item["id"], "output_index": current.index, "content_index": 0}
                logprobs = current.logprobs
                part: dict[str, Any] = {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs}
                events.append(self._event("response.output_text.done", **ref, text=text, logprobs=logprobs))
                events.append(self._event("response.content_part.done", **ref, part=part))
                item["content"] = [part]
                item["status"] = "completed"
            case _:
                ref = {"item_id": item["id"], "output_index": current.index}
                events.append(
                    self._event("response.function_call_arguments.done", **ref, name=item["name"], arguments=text)
                )
                item["arguments"] = text
                item["status"] = "completed"
        done = public_item(item, self.encrypted)
        events.append(self._event("response.output_item.done", output_index=current.index, item=done))
        return events

    def _reasoning_item(self) -> dict[str, Any] | None:
        """The response's last reasoning item, if it has one."""
        for item in reversed(self.response["output"]):
            if item["type"] == "reasoning":
                return item
        return None

    def end(self) -> list[dict[str, Any]]:
        """The chat stream ended well: close the open item; ``response.completed`` (or ``response.incomplete``)."""
        events = self.start() + self._close()
        if self._state.get("thought_signature") and not self._carried:
            # Gemini signs its last text part, after the reasoning item closed: an item of its own carries it to a
            # caller who asked for encrypted_content; otherwise the turn's reasoning item keeps it in the store (the
            # caller never sees it there: that item is done, and is sent again without encrypted_content)
            if self.encrypted:
                self._state = {"thought_signature": self._state["thought_signature"]}
                events += self._reasoning("") + self._close()
            elif (earlier := self._reasoning_item()) is not None:
                earlier["encrypted_content"] = encode_reasoning(self._state)
        response = finish(self.response, self.finish_reason, self.usage)
        kind = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
        events.append(self._event(kind, response=public(response, self.encrypted)))
        return events


CONTENT_EVENTS = frozenset(
    {
        "response.output_text.delta",
        "response.function_call_arguments.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_text.delta",
        "response.refusal.delta",
    }
)
"""The events that commit a stream: content, as the commit rule of chat (text, reasoning, a tool call, a refusal)."""


def is_content(event: Mapping[str, Any]) -> bool:
    """Whether an event commits the stream (a function call's start counts, as a tool-call delta does in chat)."""
    kind = event.get("type")
    if kind in CONTENT_EVENTS:
        return True
    return kind == "response.output_item.added" and as_object(event.get("item")).get("type") == "function_call"
