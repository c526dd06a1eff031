"""Anthropic- and Gemini-format upstreams whose answers follow the request, for third-party agent frameworks.

A framework decides the prompts, tools and schemas, so scripted turns in a fixed order do not fit it. Here a *brain*
sees the request as an OpenAI-shaped view (``messages`` with ``tool`` results, ``tools``, ``tool_choice``,
``response_format``, ``stop``, ``reasoning_effort``) and returns an OpenAI-shaped assistant message (``content``,
``tool_calls``); the handler answers it in the provider's native format, streamed or not as asked, and thinks the
way the provider does:

- :class:`AnthropicUpstream`: with ``thinking`` enabled every answer starts with a signed thinking block; a request
  whose last assistant tool-use turn (after the last user prompt) does not start with a thinking block this
  emulator signed is refused with Anthropic's 400, as are forced tools with thinking and everything
  :func:`anthropic_format.check_request` refuses; ``output_config.format`` and strict tools may not use the JSON
  Schema keywords Anthropic's structured outputs reject.
- :class:`GeminiUpstream`: function calls carry a ``thoughtSignature`` (Gemini 2.5+ thinks by default), thought
  summaries come with ``includeThoughts``; a replayed signature must be one issued for that call (or Google's
  documented placeholder), and on Gemini 3 models the current turn's function calls must carry one.

Brains: :func:`calculator` (two tool calls, then the answer), :func:`structured` (a fixed object, through the forced
tool or as JSON text), and :func:`follow_prompt` (LangChain's standard suites).
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

from tests.emulators import anthropic_format as claude
from tests.emulators import gemini_format as gemini
from tests.emulators.server import Reply, Request

View = dict[str, Any]
"""An OpenAI-shaped view of a native request."""
Message = dict[str, Any]
"""An OpenAI-shaped assistant message: ``content``, ``tool_calls``."""
Brain = Callable[[View], Message]

CALC_TASK = "What is (3 + 4) * 5? Use the add and multiply tools."
CALC_ANSWER = "(3 + 4) * 5 = 35."

_ids = itertools.count(1)


# -- brains -------------------------------------------------------------------------------------------------------


def call(name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI-shaped tool call."""
    return {
        "id": f"call_{next(_ids)}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def tool_results(view: View) -> list[str]:
    """The tool results in the request, in order."""
    return [text_of(m) for m in view["messages"] if m["role"] == "tool"]


def calculator(view: View) -> Message:
    """``(3 + 4) * 5``: ``add(3, 4)``, then ``multiply(<add's result>, 5)``, then the answer built from
    ``multiply``'s result; a loop that loses or mixes up a result cannot reach :data:`CALC_ANSWER`."""
    names = {t["function"]["name"] for t in view.get("tools") or ()}
    if not {"add", "multiply"} <= names:
        return {"content": f"I need the add and multiply tools, not {sorted(names)}."}
    results = tool_results(view)
    if not results:
        return {"content": None, "tool_calls": [call("add", {"a": 3, "b": 4})]}
    if len(results) == 1:
        return {"content": None, "tool_calls": [call("multiply", {"a": int(float(results[0])), "b": 5})]}
    return {"content": f"(3 + 4) * 5 = {int(float(results[-1]))}."}


def structured(data: Mapping[str, Any]) -> Brain:
    """A brain answering ``data``: as the input of the forced (or only) tool, else as JSON text."""

    def brain(view: View) -> Message:
        tools = [t["function"] for t in view.get("tools") or ()]
        choice = view.get("tool_choice")
        if isinstance(choice, dict):
            return {"content": None, "tool_calls": [call(choice["function"]["name"], data)]}
        if len(tools) == 1 and choice != "none" and view["messages"][-1]["role"] != "tool":
            return {"content": None, "tool_calls": [call(tools[0]["name"], data)]}
        return {"content": json.dumps(data)}

    return brain


def follow_prompt(view: View) -> Message:
    """LangChain's scripted OpenAI-format model (``tests/langchain/scripted.py``), on the native request's view.

    A forced tool without properties (a provider's JSON-mode tool) is answered with the keys the prompt quotes.
    """
    from tests.langchain import scripted

    choice = view.get("tool_choice")
    tools = [t["function"] for t in view.get("tools") or ()]
    if isinstance(choice, dict):
        forced = next(t for t in tools if t["name"] == choice["function"]["name"])
        if not (forced.get("parameters") or {}).get("properties"):
            as_json = scripted.answer({**view, "tools": None, "response_format": {"type": "json_object"}})
            return {"content": None, "tool_calls": [call(forced["name"], json.loads(as_json["content"]))]}
    return scripted.answer(view)


# -- views of native requests -------------------------------------------------------------------------------------


def text_of(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or () if isinstance(p, Mapping))


def anthropic_view(body: Mapping[str, Any]) -> View:
    """A Messages API request as an OpenAI-shaped view."""
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append(
            {"role": "system", "content": system if isinstance(system, str) else text_of({"content": system})}
        )
    for msg in body["messages"]:
        content = msg["content"]
        if isinstance(content, str):
            messages.append({"role": msg["role"], "content": content})
            continue
        results = [b for b in content if b["type"] == "tool_result"]
        for result in results:
            inner = result.get("content") or ""
            messages.append(
                {"role": "tool", "tool_call_id": result["tool_use_id"], "content": text_of({"content": inner})}
            )
        texts = [b["text"] for b in content if b["type"] == "text"]
        uses = [b for b in content if b["type"] == "tool_use"]
        if texts or uses or not results:
            out: dict[str, Any] = {"role": msg["role"], "content": " ".join(texts)}
            if uses:
                out["tool_calls"] = [call(b["name"], b["input"]) for b in uses]
            messages.append(out)
    tools = [
        {"type": "function", "function": {"name": t["name"], "parameters": t.get("input_schema") or {}}}
        for t in body.get("tools") or ()
        if "input_schema" in t
    ]
    view: View = {"model": body["model"], "messages": messages, "tools": tools or None}
    choice = body.get("tool_choice") or {}
    match choice.get("type"):
        case "tool":
            view["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
        case "any":
            view["tool_choice"] = "required"
        case "none":
            view["tool_choice"] = "none"
    fmt = ((body.get("output_config") or {}).get("format")) or body.get("output_format")
    if fmt:
        view["response_format"] = {"type": "json_schema", "json_schema": {"name": "out", "schema": fmt.get("schema")}}
    if body.get("stop_sequences"):
        view["stop"] = body["stop_sequences"]
    if (body.get("thinking") or {}).get("type") in ("enabled", "adaptive"):
        view["reasoning_effort"] = "high"
    return view


def gemini_view(body: Mapping[str, Any], model: str) -> View:
    """A generateContent request as an OpenAI-shaped view."""
    messages: list[dict[str, Any]] = []
    system = body.get("systemInstruction")
    if system:
        messages.append({"role": "system", "content": "".join(p.get("text", "") for p in system.get("parts") or ())})
    for content in body["contents"]:
        parts = content.get("parts") or []
        for part in parts:
            if "functionResponse" in part:
                response = part["functionResponse"].get("response") or {}
                value = response.get("output", response.get("result", response))
                messages.append({"role": "tool", "content": value if isinstance(value, str) else json.dumps(value)})
        texts = [p["text"] for p in parts if "text" in p and not p.get("thought")]
        calls = [p["functionCall"] for p in parts if "functionCall" in p]
        if texts or calls:
            out: dict[str, Any] = {
                "role": "assistant" if content["role"] == "model" else "user",
                "content": " ".join(texts),
            }
            if calls:
                out["tool_calls"] = [call(c["name"], c.get("args") or {}) for c in calls]
            messages.append(out)
    declarations = [d for t in body.get("tools") or () for d in t.get("functionDeclarations") or ()]
    tools = [
        {
            "type": "function",
            "function": {"name": d["name"], "parameters": d.get("parametersJsonSchema") or d.get("parameters") or {}},
        }
        for d in declarations
    ]
    view: View = {"model": model, "messages": messages, "tools": tools or None}
    config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    if config.get("mode") == "ANY":
        allowed = config.get("allowedFunctionNames") or []
        view["tool_choice"] = (
            {"type": "function", "function": {"name": allowed[0]}} if len(allowed) == 1 else "required"
        )
    elif config.get("mode") == "NONE":
        view["tool_choice"] = "none"
    generation = body.get("generationConfig") or {}
    if generation.get("responseMimeType") == "application/json":
        schema = generation.get("responseJsonSchema") or generation.get("responseSchema")
        view["response_format"] = (
            {"type": "json_schema", "json_schema": {"name": "out", "schema": schema}}
            if schema
            else {"type": "json_object"}
        )
    if generation.get("stopSequences"):
        view["stop"] = generation["stopSequences"]
    if (generation.get("thinkingConfig") or {}).get("includeThoughts"):
        view["reasoning_effort"] = "high"
    return view


# -- Anthropic ----------------------------------------------------------------------------------------------------

UNSUPPORTED_SCHEMA_KEYWORDS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
)
"""JSON Schema keywords Anthropic's structured outputs and strict tools reject (build-with-claude/structured-outputs,
"JSON Schema limitations"); ``minItems`` only takes 0 or 1."""


def unsupported_keywords(schema: Any, path: str = "schema") -> list[str]:
    """Where ``schema`` uses keywords Anthropic's structured outputs reject."""
    found: list[str] = []
    if isinstance(schema, Mapping):
        for key, value in schema.items():
            if key in ("properties", "$defs", "definitions") and isinstance(value, Mapping):
                for name, sub in value.items():
                    found += unsupported_keywords(sub, f"{path}.{key}.{name}")
                continue
            if key in UNSUPPORTED_SCHEMA_KEYWORDS or (key == "minItems" and isinstance(value, int) and value > 1):
                found.append(f"{path}.{key}")
            elif isinstance(value, Mapping | list):
                found += unsupported_keywords(value, f"{path}.{key}")
    elif isinstance(schema, list):
        for i, item in enumerate(schema):
            found += unsupported_keywords(item, f"{path}.{i}")
    return found


class AnthropicUpstream:
    """A Messages API handler answering what ``brain`` decides, thinking when asked (see the module docstring)."""

    def __init__(
        self, brain: Brain, *, usage: Mapping[str, Any] | None = None, signed_elsewhere: tuple[str, ...] = ()
    ) -> None:
        """``signed_elsewhere``: signatures Anthropic issued in recorded traffic, accepted as if issued here."""
        self.brain = brain
        self.usage = dict(
            usage
            or {"input_tokens": 20, "cache_creation_input_tokens": 3, "cache_read_input_tokens": 7, "output_tokens": 9}
        )
        self.bodies: list[dict[str, Any]] = []
        self.signatures: set[str] = set(signed_elsewhere)
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Reply:
        if not request.path.endswith("/v1/messages") or request.method != "POST":
            return claude.error(404, "not_found_error", f"{request.method} {request.path} not found")
        if not request.headers.get("x-api-key") or not request.headers.get("anthropic-version"):
            return claude.error(401, "authentication_error", "x-api-key and anthropic-version headers are required")
        body = request.json()
        with self._lock:
            self.bodies.append(body)
            index = len(self.bodies)
        problem = claude.check_request(body, self.signatures) or self._check(body)
        if problem:
            return claude.error(400, "invalid_request_error", problem)
        view = anthropic_view(body)
        answer = self.brain(view)
        blocks: list[dict[str, Any]] = []
        if view.get("reasoning_effort"):
            signature = base64.b64encode(f"emu-sig-{index}".encode()).decode()
            self.signatures.add(signature)
            blocks.append({"type": "thinking", "thinking": f"Thinking about step {index}.", "signature": signature})
        if answer.get("content"):
            blocks.append(claude.text(answer["content"]))
        for position, tool_call in enumerate(answer.get("tool_calls") or ()):
            arguments = json.loads(tool_call["function"]["arguments"] or "{}")
            use_id = f"toolu_emu_{index}_{position}"
            blocks.append({"type": "tool_use", "id": use_id, "name": tool_call["function"]["name"], "input": arguments})
        stop = None
        for sequence in view.get("stop") or ():
            if answer.get("content") and sequence in answer["content"]:
                stop = sequence
        msg = claude.message(blocks, model=body["model"], usage=self.usage, id=f"msg_emu_{index}")
        if stop:
            msg["stop_reason"], msg["stop_sequence"] = "stop_sequence", stop
        if body.get("stream"):
            return Reply(
                chunks=claude.events(msg), headers={"content-type": "text/event-stream", "request-id": "req_emu"}
            )
        return Reply(body=msg, headers={"request-id": "req_emu"})

    def _check(self, body: Mapping[str, Any]) -> str | None:
        """The rules :func:`anthropic_format.check_request` leaves out."""
        messages = body["messages"]
        for i, msg in enumerate(messages):
            for j, block in enumerate(msg["content"] if isinstance(msg["content"], list) else ()):
                if block["type"] == "text" and not block["text"].strip():
                    return f"messages.{i}.content.{j}: text content blocks must contain non-whitespace text"
        thinking = (body.get("thinking") or {}).get("type") == "enabled"
        if thinking:
            prompts = [
                i
                for i, m in enumerate(messages)
                if m["role"] == "user"
                and (isinstance(m["content"], str) or any(b["type"] != "tool_result" for b in m["content"]))
            ]
            start = prompts[-1] if prompts else 0
            for i in range(start, len(messages)):
                content = messages[i]["content"]
                if messages[i]["role"] != "assistant" or isinstance(content, str):
                    continue
                if any(b["type"] == "tool_use" for b in content) and content[0]["type"] not in (
                    "thinking",
                    "redacted_thinking",
                ):
                    return (
                        f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                        f"`{content[0]['type']}`. When `thinking` is enabled, a final `assistant` message must start "
                        "with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks)."
                    )
        fmt = (body.get("output_config") or {}).get("format") or {}
        for where in unsupported_keywords(fmt.get("schema"), "output_config.format.schema"):
            return f"{where}: this JSON Schema keyword is not supported by structured outputs"
        for i, tool in enumerate(body.get("tools") or ()):
            if tool.get("strict"):
                for where in unsupported_keywords(tool.get("input_schema"), f"tools.{i}.input_schema"):
                    return f"{where}: this JSON Schema keyword is not supported for strict tools"
        return None


# -- Gemini -------------------------------------------------------------------------------------------------------


class GeminiUpstream:
    """A Gemini handler answering what ``brain`` decides (see the module docstring); ``model`` is the model id."""

    def __init__(self, brain: Brain, *, chunk_size: int | None = 7) -> None:
        self.brain = brain
        self.chunk_size = chunk_size
        self.bodies: list[dict[str, Any]] = []
        self.streamed: list[bool] = []
        self.issued: dict[str, str] = {}
        """thoughtSignature → the function call name it was issued with."""
        self._checks = gemini.GeminiEmulator(gemini.response("unused"), chunk_size=chunk_size, check_signatures=False)
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Reply:
        first = self._checks(request)  # path, key header, alt=sse, contents, roles, signature presence
        if first.status != 200:
            return first
        match = gemini._PATH.match(request.path)
        assert match is not None
        model = match.group("model").split("/", 1)[1]
        body = request.json()
        with self._lock:
            self.bodies.append(body)
            self.streamed.append(match.group("method") == "streamGenerateContent")
            index = len(self.bodies)
        problem = self._check(body, model)
        if problem:
            return gemini.rpc_error(400, "INVALID_ARGUMENT", problem)
        view = gemini_view(body, model)
        answer = self.brain(view)
        calls = []
        for position, tool_call in enumerate(answer.get("tool_calls") or ()):
            name = tool_call["function"]["name"]
            entry: dict[str, Any] = {"name": name, "args": json.loads(tool_call["function"]["arguments"] or "{}")}
            if position == 0:
                signature = base64.b64encode(f"gemini-sig-{index}".encode()).decode()
                self.issued[signature] = name
                entry["thoughtSignature"] = signature
            calls.append(entry)
        content = answer.get("content")
        for sequence in view.get("stop") or ():
            if content and sequence in content:
                content = content.split(sequence)[0]
        thoughts = 6 if view.get("reasoning_effort") else 0
        usage = {"promptTokenCount": 20, "candidatesTokenCount": 9, "totalTokenCount": 29 + thoughts}
        usage["cachedContentTokenCount"] = 7
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        full = gemini.response(
            content if content else None,
            thought=f"Thinking about step {index}." if view.get("reasoning_effort") else None,
            calls=calls,
            usage=usage,
            response_id=f"emu-{index}",
            model=model,
        )
        if not request.path.endswith(":streamGenerateContent"):
            return Reply.json(full)
        data = gemini.sse_body(gemini.stream_events(full))
        pieces = gemini.split(data, self.chunk_size) if self.chunk_size else [data]
        return Reply(chunks=pieces, headers={"content-type": "text/event-stream"})

    def _check(self, body: Mapping[str, Any], model: str) -> str | None:
        """Thought signatures (ai.google.dev/gemini-api/docs/thought-signatures): a replayed signature must be one
        this emulator issued (or Google's documented placeholder for calls no Gemini model made); Gemini 3 models
        also require one on the first function call of every model step."""
        contents = body["contents"]
        current = 0  # Gemini 3 validates the current turn only: after the last user message that is not all results
        for i, content in enumerate(contents):
            if content["role"] == "user" and any("functionResponse" not in p for p in content.get("parts") or ()):
                current = i + 1
        for i, content in enumerate(contents):
            calls = [p for p in content.get("parts") or () if "functionCall" in p]
            if content["role"] == "model" and calls:
                signature = calls[0].get("thoughtSignature")
                if signature is None and model.startswith("gemini-3") and i >= current:
                    return f"Function call is missing a thought_signature in functionCall parts. contents[{i}].parts"
                name = calls[0]["functionCall"]["name"]
                if signature is not None and signature not in DUMMY_SIGNATURES and self.issued.get(signature) != name:
                    return f"Corrupted thought signature. contents[{i}].parts[0].thoughtSignature"
            for j, part in enumerate(content.get("parts") or ()):
                if "text" in part and not part["text"] and len(content["parts"]) == 1:
                    return f"contents[{i}].parts[{j}]: a part must not be empty"
        return None


DUMMY_SIGNATURES = ("context_engineering_is_the_way_to_go", "skip_thought_signature_validator")
"""The placeholders Google documents for function calls that no Gemini model issued (thought-signatures, "FAQs")."""


# -- what the upstream received -----------------------------------------------------------------------------------

Upstream = AnthropicUpstream | GeminiUpstream


def views(upstream: Upstream) -> list[View]:
    """The OpenAI-shaped views of the requests ``upstream`` received."""
    if isinstance(upstream, AnthropicUpstream):
        return [anthropic_view(b) for b in upstream.bodies]
    return [gemini_view(b, "") for b in upstream.bodies]


def streamed(upstream: Upstream) -> list[bool]:
    """Whether each request asked for a stream."""
    if isinstance(upstream, AnthropicUpstream):
        return [bool(b.get("stream")) for b in upstream.bodies]
    return list(upstream.streamed)


def thinking_on(upstream: Upstream) -> list[bool]:
    """Whether each request asked for thinking (Gemini: thought summaries)."""
    if isinstance(upstream, AnthropicUpstream):
        return [(b.get("thinking") or {}).get("type") in ("enabled", "adaptive") for b in upstream.bodies]
    return [
        bool(((b.get("generationConfig") or {}).get("thinkingConfig") or {}).get("includeThoughts"))
        for b in upstream.bodies
    ]


def replayed_signatures(upstream: Upstream, body: Mapping[str, Any]) -> list[str | None]:
    """Per replayed assistant tool-call turn in ``body``: the signature it carries first (None if none)."""
    out: list[str | None] = []
    if isinstance(upstream, AnthropicUpstream):
        for msg in body["messages"]:
            content = msg["content"]
            if (
                msg["role"] == "assistant"
                and isinstance(content, list)
                and any(b["type"] == "tool_use" for b in content)
            ):
                out.append(content[0].get("signature") if content[0]["type"] == "thinking" else None)
        return out
    for content in body["contents"]:
        calls = [p for p in content.get("parts") or () if "functionCall" in p]
        if content["role"] == "model" and calls:
            out.append(calls[0].get("thoughtSignature"))
    return out


def issued_signatures(upstream: Upstream) -> set[str]:
    """The signatures ``upstream`` issued."""
    return set(upstream.signatures) if isinstance(upstream, AnthropicUpstream) else set(upstream.issued)


def check_calculator_traffic(upstream: Upstream, *, reasoning: bool, stream: bool) -> None:
    """The calculator loop reached the upstream as three accepted requests, each with the right stream and thinking
    settings, tool results in order, and (where thinking runs) every earlier tool-call turn replayed with the
    signature issued for it."""
    assert len(upstream.bodies) == 3, f"expected 3 upstream calls, got {len(upstream.bodies)}"
    assert streamed(upstream) == [stream] * 3
    assert thinking_on(upstream) == [reasoning] * 3
    assert [tool_results(v) for v in views(upstream)] == [[], ["7"], ["7", "35"]]
    if reasoning or isinstance(upstream, GeminiUpstream):
        last = replayed_signatures(upstream, upstream.bodies[-1])
        assert len(last) == 2 and all(s in issued_signatures(upstream) for s in last), last
