"""polyroute chat model for LangChain: routing, translation and failover in-process, on the openai SDK.

The model speaks OpenAI Chat Completions to polyroute's transport and knows no provider: everything a provider
needs (Anthropic thinking signatures, Gemini thought signatures, reasoning text) travels as fields of polyroute's
wire format (``polyroute.types.openai``), kept in ``additional_kwargs`` and sent back on the next turn.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput, ModelProfile
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    InvalidToolCall,
    ToolCall,
    convert_to_openai_messages,
)
from langchain_core.messages.ai import InputTokenDetails, OutputTokenDetails, UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.base import OutputParserLike
from langchain_core.output_parsers.openai_tools import (
    JsonOutputKeyToolsParser,
    PydanticToolsParser,
    make_invalid_tool_call,
    parse_tool_call,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils import secret_from_env
from langchain_core.utils.function_calling import convert_to_openai_function, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator
from typing_extensions import Self

from polyroute import Router, RouterConfig
from polyroute.types.openai import Message as WireMessage
from polyroute.types.openai import ToolCall as WireToolCall

_PROVIDER = "polyroute"

# Fields of polyroute's request message that LangChain's converter does not produce: the round-trip data
# (``reasoning_content``, ``thinking_blocks``, ``provider_specific_fields``) a response carried, sent back from
# ``additional_kwargs``. ``provider_specific_fields`` is listed by hand: core's ``Message`` type does not declare it
# yet, though adapters read it (Gemini's signature on a text part).
_CONVERTED = frozenset({"role", "content", "name", "tool_calls", "tool_call_id", "refusal"})
_MESSAGE_EXTRAS = (
    WireMessage.__required_keys__ | WireMessage.__optional_keys__ | {"provider_specific_fields"}
) - _CONVERTED
_TOOL_CALL_EXTRAS = (WireToolCall.__required_keys__ | WireToolCall.__optional_keys__) - {"id", "type", "function"}
# Response message fields LangChain represents itself; anything else on a message or delta goes to additional_kwargs.
_STANDARD_RESPONSE_FIELDS = frozenset({"role", "content", "tool_calls", "function_call", "audio", "annotations"})

_DictOrPydanticClass = dict[str, Any] | type
_StructuredMethod = Literal["function_calling", "json_mode", "json_schema"]


class ChatPolyroute(BaseChatModel):
    """Chat model on polyroute: one model name, many provider deployments, failover and cost, no server.

    Setup:
        Install `langchain-polyroute` (or `polyroute[langchain]`) and describe your deployments in a polyroute
        config (a dict, or a YAML / TOML / JSON file); provider keys come from each provider's usual environment
        variable or the config.

        ```bash
        pip install "polyroute[langchain]"
        ```

    Key init args — completion params:
        model:
            A model name from the router's config (e.g. `"smart"`), or a direct `"provider/model"`.
        temperature:
            Sampling temperature.
        max_tokens:
            Max number of tokens to generate.
        stop:
            Stop sequences.
        reasoning_effort:
            Reasoning effort for reasoning models (`"low"`, `"medium"`, `"high"`).
        model_kwargs:
            Other Chat Completions fields, sent as they are.

    Key init args — client params:
        router:
            A `polyroute.Router` to share between models.
        config:
            A router config (dict, `RouterConfig`, or file path) when no `router` is given; with neither, a
            `Router()` that routes `"provider/model"` names with keys from the environment.
        timeout:
            Seconds per request.
        max_retries:
            Retries by the openai SDK (default 0: polyroute already retries and fails over).
        tags, user:
            Attribute every call in the router's usage records and budgets (`tags` are LangChain's own).

    Instantiate:
        ```python
        from langchain_polyroute import ChatPolyroute

        model = ChatPolyroute(model="smart", config="polyroute.yaml", temperature=0)
        ```

    Invoke:
        ```python
        model.invoke([("system", "Translate to French."), ("human", "I love programming.")])
        ```

    Stream:
        ```python
        for chunk in model.stream("Tell me a story"):
            print(chunk.text, end="")
        ```

    Async:
        ```python
        await model.ainvoke("Hello")
        async for chunk in model.astream("Hello"):
            ...
        await model.abatch(["Hello", "Hi"])
        ```

    Tool calling:
        ```python
        def get_weather(location: str) -> str:
            '''Get the weather at a location.'''
            return "sunny"


        ai_msg = model.bind_tools([get_weather]).invoke("Weather in Paris?")
        ai_msg.tool_calls
        ```

    Structured output:
        ```python
        class Joke(BaseModel):
            setup: str
            punchline: str


        model.with_structured_output(Joke).invoke("Tell me a joke about cats")
        ```

    Token usage:
        ```python
        model.invoke("Hello").usage_metadata
        # {"input_tokens": 8, "output_tokens": 9, "total_tokens": 17, "input_token_details": {"cache_read": 0}}
        ```

    Response metadata:
        ```python
        model.invoke("Hello").response_metadata
        # {"model_name": "gpt-4o-mini-2024-07-18", "model_provider": "polyroute", "finish_reason": "stop",
        #  "deployment": "openai/gpt-4o-mini", "attempts": 2, "cost": 1.2e-05}
        ```
        `deployment` is the deployment that served the call, `attempts` the upstream calls it took (failover
        included), `cost` its price in USD when the catalog knows it.
    """

    model: str = Field(alias="model_name")
    """A model name of the router (configured, or a direct ``provider/model``)."""
    router: Router | None = Field(default=None, exclude=True)
    """The router to send calls to; built from ``config`` (or the environment) when not given."""
    config: RouterConfig | dict[str, Any] | str | Path | None = Field(default=None, exclude=True, repr=False)
    """A router config (dict, ``RouterConfig`` or file path), used when ``router`` is not given."""
    temperature: float | None = None
    """Sampling temperature."""
    max_tokens: int | None = None
    """Max number of tokens to generate."""
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    """Stop sequences."""
    reasoning_effort: str | None = None
    """Reasoning effort for reasoning models."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Other Chat Completions fields, sent as they are."""
    timeout: float | None = None
    """Seconds per request."""
    max_retries: int = 0
    """Retries by the openai SDK; polyroute retries and fails over itself, so 0 by default."""
    streaming: bool = False
    """Stream by default (``invoke`` aggregates the stream)."""
    stream_usage: bool = True
    """Ask for token usage at the end of streams."""
    user: str | None = None
    """The user every call is attributed to in usage records and budgets (a call's own ``user`` wins)."""
    api_key: SecretStr | None = Field(default_factory=secret_from_env("POLYROUTE_API_KEY", default=None))
    """A key for the transport. polyroute never forwards it: provider keys belong in the router config."""

    model_config = ConfigDict(populate_by_name=True)

    _router: Router | None = PrivateAttr(default=None)
    _client: Any = PrivateAttr(default=None)
    _async_client: Any = PrivateAttr(default=None)

    # -- construction -------------------------------------------------------------------------------------------

    @model_validator(mode="after")
    def _build_clients(self) -> Self:
        router = self._get_router()
        options: dict[str, Any] = {
            "api_key": self.api_key.get_secret_value() if self.api_key else "polyroute",
            "max_retries": self.max_retries,
        }
        if self.timeout is not None:
            options["timeout"] = self.timeout
        if self.tags:  # LangChain's own model tags also attribute the model's calls in polyroute's usage records
            options["tags"] = list(self.tags)
        if self.user:
            options["user"] = self.user
        self._client = router.openai_client(**options)
        self._async_client = router.async_openai_client(**options)
        return self

    def _get_router(self) -> Router:
        if self._router is None:
            if self.router is not None:
                self._router = self.router
            else:
                self._router = Router(self.config)
        return self._router

    def _resolve_model_profile(self) -> ModelProfile | None:
        info = self._get_router().model_info(self.model)
        if not info.known:
            return None
        profile = ModelProfile(
            text_inputs=True,
            text_outputs=True,
            image_inputs=info.vision,
            pdf_inputs=info.pdf,
            audio_inputs=info.audio,
            reasoning_output=info.reasoning,
            tool_calling=info.tools,
            tool_choice=info.tools,
            tool_call_streaming=info.tools,
            structured_output=info.json_schema,
        )
        if info.context_window:
            profile["max_input_tokens"] = info.context_window
        if info.max_output_tokens:
            profile["max_output_tokens"] = info.max_output_tokens
        return profile

    # -- copies and pickles ---------------------------------------------------------------------------------------

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        """A copy that shares the live router and its clients (pools, health, limits); data fields are copied.

        LangChain and agent frameworks deep-copy models (``with_config``, graph state); a second router would
        open its own pools and lose the first one's health and rate-limit state.
        """
        memo = {} if memo is None else memo
        for live in (self.router, self._router, self._client, self._async_client):
            if live is not None:
                memo[id(live)] = live
        return super().__deepcopy__(memo)

    def __getstate__(self) -> dict[Any, Any]:
        """Pickles carry the router's config, not the live router: unpickling builds a router from it."""
        state = super().__getstate__()
        fields = dict(state["__dict__"])
        if fields.get("router") is not None:
            fields["config"] = fields["router"].config
            fields["router"] = None
        private = {"_router": None, "_client": None, "_async_client": None}
        return {**state, "__dict__": fields, "__pydantic_private__": private}

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self._build_clients()

    # -- token estimates ------------------------------------------------------------------------------------------

    def get_num_tokens(self, text: str) -> int:
        """An offline estimate: about four characters per token (``custom_get_token_ids`` wins when given).

        A route may end at any provider's model, whose tokenizer polyroute does not have; LangChain's default
        needs ``transformers`` (GPT-2's tokenizer, downloaded), and tiktoken fetches its tables on first use and
        is exact for OpenAI models only. The estimate never touches the network.
        """
        if self.custom_get_token_ids is not None:
            return len(self.custom_get_token_ids(text))
        return _estimate_tokens(text)

    def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools: Sequence[Any] | None = None) -> int:
        """An offline estimate for ``messages`` (and ``tools``) as sent: their Chat Completions JSON, about four
        characters per token, plus a few tokens of framing per message. ``trim_messages(token_counter=model)``
        uses this.
        """
        text = json.dumps(_to_wire_messages(messages), ensure_ascii=False, default=str)
        if tools:
            text += json.dumps([convert_to_openai_tool(tool) for tool in tools], ensure_ascii=False, default=str)
        return self.get_num_tokens(text) + 3 * len(messages)

    # -- LangChain identity ---------------------------------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "polyroute-chat"

    @property
    def lc_secrets(self) -> dict[str, str]:
        """Constructor arguments that are secrets, and their environment variables."""
        return {"api_key": "POLYROUTE_API_KEY"}

    @property
    def lc_attributes(self) -> dict[str, Any]:
        """A config file path is serialized (a dict config may hold keys, a router is live: neither is)."""
        if isinstance(self.config, str | os.PathLike):
            return {"config": os.fspath(self.config)}
        return {}

    @classmethod
    def is_lc_serializable(cls) -> bool:
        """Serializable with ``dumpd`` (secrets and live objects left out)."""
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        """The importable path of this class."""
        return ["langchain_polyroute", "chat_models"]

    @property
    def _default_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stop": self.stop or None,
            "reasoning_effort": self.reasoning_effort,
            **self.model_kwargs,
        }
        return {k: v for k, v in params.items() if v is not None}

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return self._default_params

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = {**self._default_params, **kwargs}
        ls_params = LangSmithParams(ls_provider=_PROVIDER, ls_model_name=params["model"], ls_model_type="chat")
        if isinstance(params.get("temperature"), int | float):
            ls_params["ls_temperature"] = params["temperature"]
        if isinstance(params.get("max_tokens"), int):
            ls_params["ls_max_tokens"] = params["max_tokens"]
        if ls_stop := stop or params.get("stop"):
            ls_params["ls_stop"] = ls_stop
        return ls_params

    # -- calls ----------------------------------------------------------------------------------------------------

    def _request(
        self, messages: list[BaseMessage], stop: list[str] | None, stream: bool, **kwargs: Any
    ) -> dict[str, Any]:
        """The ``create`` arguments: model, messages, stream, and every other field in ``extra_body``."""
        kwargs.pop("stream", None)
        stream_usage = kwargs.pop("stream_usage", self.stream_usage)
        body = {**self._default_params, **kwargs}
        if stop is not None:
            body["stop"] = stop
        if not body.get("stop"):
            body.pop("stop", None)
        if stream and stream_usage:
            body["stream_options"] = {"include_usage": True}
        return {
            "model": body.pop("model"),
            "messages": _to_wire_messages(messages),
            "stream": stream,
            "extra_body": body,
        }

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raw = self._client.chat.completions.with_raw_response.create(**self._request(messages, stop, False, **kwargs))
        return _chat_result(raw.parse().model_dump(exclude_none=True), raw.headers)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request = self._request(messages, stop, False, **kwargs)
        raw = await self._async_client.chat.completions.with_raw_response.create(**request)
        completion = raw.parse()
        if inspect.isawaitable(completion):  # the newer APIResponse parses asynchronously
            completion = await completion
        return _chat_result(completion.model_dump(exclude_none=True), raw.headers)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        raw = self._client.chat.completions.with_raw_response.create(**self._request(messages, stop, True, **kwargs))
        state = _StreamState(raw.headers)
        with raw.parse() as events:
            for event in events:
                for chunk in state.feed(event.model_dump(exclude_none=True)):
                    if run_manager:
                        run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
        last = state.finish()
        if run_manager:
            run_manager.on_llm_new_token("", chunk=last)
        yield last

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        request = self._request(messages, stop, True, **kwargs)
        raw = await self._async_client.chat.completions.with_raw_response.create(**request)
        state = _StreamState(raw.headers)
        events = raw.parse()
        if inspect.isawaitable(events):
            events = await events
        async with events:
            async for event in events:
                for chunk in state.feed(event.model_dump(exclude_none=True)):
                    if run_manager:
                        await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
        last = state.finish()
        if run_manager:
            await run_manager.on_llm_new_token("", chunk=last)
        yield last

    # -- tools and structured output ----------------------------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: dict[str, Any] | str | bool | None = None,
        strict: bool | None = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (functions, pydantic models, LangChain tools, OpenAI tool dicts) to this model.

        Args:
            tools: The tools the model may call.
            tool_choice: `"auto"`, `"none"`, `"required"` / `"any"` / `True` (some tool), or a tool name.
            strict: Ask for strict argument schemas where the provider supports them.
            parallel_tool_calls: `False` to allow at most one tool call per turn.
            **kwargs: Other request fields, bound as they are.

        Returns:
            A runnable that calls the model with these tools.
        """
        formatted = [convert_to_openai_tool(tool, strict=strict) for tool in tools]
        if tool_choice is not None and tool_choice is not False:
            kwargs["tool_choice"] = _tool_choice(tool_choice, formatted)
        elif tool_choice is False:
            kwargs["tool_choice"] = "none"
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        return super().bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: _DictOrPydanticClass | None = None,
        *,
        method: _StructuredMethod = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """A runnable whose output follows ``schema``.

        Args:
            schema: A pydantic class, a `TypedDict`, a JSON Schema, or an OpenAI function schema (optional with
                `json_mode`). A pydantic class gives validated instances; the others give dicts.
            method: `"function_calling"` (a forced tool call: works on every provider with tools),
                `"json_schema"` (the provider's native structured output), or `"json_mode"` (JSON objects; say
                the keys in the prompt).
            include_raw: Return `{"raw": AIMessage, "parsed": ..., "parsing_error": ...}` instead of raising on
                a parsing error.
            strict: Ask for strict schema adherence where the provider supports it.
            **kwargs: Other request fields, bound as they are.

        Returns:
            A runnable producing the parsed output (or the raw/parsed/parsing_error dict).
        """
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        parser: OutputParserLike[Any]
        ls_format = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
        if method == "function_calling":
            if schema is None:
                raise ValueError("with_structured_output(method='function_calling') needs a schema")
            tool = convert_to_openai_tool(schema, strict=strict)
            name = tool["function"]["name"]
            llm = self.bind_tools(
                [tool], tool_choice=name, strict=strict, ls_structured_output_format=ls_format, **kwargs
            )
            if is_pydantic:
                parser = PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
            else:
                parser = JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
        elif method == "json_schema":
            if schema is None:
                raise ValueError("with_structured_output(method='json_schema') needs a schema")
            function = convert_to_openai_function(schema, strict=strict)
            json_schema: dict[str, Any] = {"name": function["name"], "schema": function["parameters"]}
            if function.get("description"):
                json_schema["description"] = function["description"]
            if strict is not None:
                json_schema["strict"] = strict
            llm = self.bind(
                response_format={"type": "json_schema", "json_schema": json_schema},
                ls_structured_output_format=ls_format,
                **kwargs,
            )
            parser = PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()  # type: ignore[arg-type]
        elif method == "json_mode":
            llm = self.bind(
                response_format={"type": "json_object"},
                ls_structured_output_format={"kwargs": {"method": method}, "schema": schema},
                **kwargs,
            )
            parser = PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()  # type: ignore[arg-type]
        else:
            raise ValueError(f"method must be 'function_calling', 'json_schema' or 'json_mode', not {method!r}")
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([fallback], exception_key="parsing_error")


def _tool_choice(choice: dict[str, Any] | str | bool, tools: list[dict[str, Any]]) -> dict[str, Any] | str:
    if isinstance(choice, dict):
        return choice
    if choice is True:
        if len(tools) == 1:
            return {"type": "function", "function": {"name": tools[0]["function"]["name"]}}
        return "required"
    if choice == "any":
        return "required"
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


# -- LangChain messages → polyroute's wire format ------------------------------------------------------------------


def _estimate_tokens(text: str) -> int:
    """About four characters per token: the usual rule for English text with current tokenizers."""
    return math.ceil(len(text) / 4)


def _to_wire_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        converted: list[dict[str, Any]] = convert_to_openai_messages([message])  # type: ignore[assignment]
        if isinstance(message, AIMessage):
            converted = [_assistant_extras(m, message) if m.get("role") == "assistant" else m for m in converted]
        out.extend(converted)
    return out


def _assistant_extras(wire: dict[str, Any], message: AIMessage) -> dict[str, Any]:
    """Put back what the response carried for the next turn; keep only text in the content."""
    extra = message.additional_kwargs
    content = wire.get("content")
    if isinstance(content, list):
        # Reasoning and tool-call blocks (v1 output, Anthropic-style content) are carried by their own fields.
        texts = [part["text"] for part in content if isinstance(part, dict) and part.get("type") == "text"]
        thinking = [p for p in content if isinstance(p, dict) and p.get("type") in ("thinking", "redacted_thinking")]
        wire["content"] = "".join(texts) if texts or not wire.get("tool_calls") else None
        if thinking and "thinking_blocks" not in extra:
            wire["thinking_blocks"] = thinking
    for key in _MESSAGE_EXTRAS:
        if extra.get(key) is not None:
            wire[key] = extra[key]
    raw_calls = {c.get("id"): c for c in extra.get("tool_calls") or () if isinstance(c, dict)}
    for call in wire.get("tool_calls") or ():
        raw = raw_calls.get(call["id"]) or {}
        for key in _TOOL_CALL_EXTRAS:
            if raw.get(key) is not None:
                call[key] = raw[key]
    return wire


# -- polyroute's wire format → LangChain messages ------------------------------------------------------------------


def _chat_result(completion: dict[str, Any], headers: Mapping[str, str]) -> ChatResult:
    usage = completion.get("usage")
    generations: list[ChatGeneration] = []
    for choice in completion.get("choices") or ():
        message = _ai_message(choice.get("message") or {})
        message.id = completion.get("id")
        message.usage_metadata = _usage_metadata(usage) if usage else None
        message.response_metadata = _response_metadata(completion, choice.get("finish_reason"), usage, headers)
        info = {"finish_reason": choice.get("finish_reason")}
        generations.append(ChatGeneration(message=message, generation_info=info))
    return ChatResult(generations=generations, llm_output={"token_usage": usage, "model_name": completion.get("model")})


def _ai_message(message: dict[str, Any]) -> AIMessage:
    additional_kwargs = {k: v for k, v in message.items() if k not in _STANDARD_RESPONSE_FIELDS}
    tool_calls: list[ToolCall] = []
    invalid_tool_calls: list[InvalidToolCall] = []
    raw_calls: list[dict[str, Any]] = message.get("tool_calls") or []
    if raw_calls:
        additional_kwargs["tool_calls"] = raw_calls
    for raw in raw_calls:
        try:
            parsed = parse_tool_call(raw, return_id=True)
        except Exception as exc:  # the parser raises OutputParserException with the JSON error
            invalid_tool_calls.append(make_invalid_tool_call(raw, str(exc)))
        else:
            if parsed is not None:
                tool_calls.append(parsed)  # type: ignore[arg-type]
    return AIMessage(
        content=message.get("content") or "",
        additional_kwargs=additional_kwargs,
        tool_calls=tool_calls,
        invalid_tool_calls=invalid_tool_calls,
    )


def _usage_metadata(usage: Mapping[str, Any]) -> UsageMetadata:
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    total = int(usage.get("total_tokens") or prompt + completion)
    metadata: UsageMetadata = {"input_tokens": prompt, "output_tokens": completion, "total_tokens": total}  # pyright: ignore[reportAssignmentType]
    prompt_details: Mapping[str, Any] = usage.get("prompt_tokens_details") or {}
    completion_details: Mapping[str, Any] = usage.get("completion_tokens_details") or {}
    input_details = InputTokenDetails()
    for name, field in (
        ("cache_read", "cached_tokens"),
        ("cache_creation", "cache_creation_tokens"),
        ("audio", "audio_tokens"),
    ):
        if prompt_details.get(field) is not None:
            input_details[name] = int(prompt_details[field])  # type: ignore[literal-required]
    output_details = OutputTokenDetails()
    for name, field in (("reasoning", "reasoning_tokens"), ("audio", "audio_tokens")):
        if completion_details.get(field) is not None:
            output_details[name] = int(completion_details[field])  # type: ignore[literal-required]
    if input_details:
        metadata["input_token_details"] = input_details
    if output_details:
        metadata["output_token_details"] = output_details
    return metadata


def _response_metadata(
    completion: Mapping[str, Any],
    finish_reason: str | None,
    usage: Mapping[str, Any] | None,
    headers: Mapping[str, str],
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "model_name": completion.get("model"),
        "model_provider": _PROVIDER,
        "finish_reason": finish_reason,
    }
    for key in ("system_fingerprint", "service_tier"):
        if completion.get(key) is not None:
            metadata[key] = completion[key]
    deployment = headers.get("x-polyroute-deployment")
    if deployment:
        metadata["deployment"] = deployment
    attempts = headers.get("x-polyroute-attempts")
    if attempts and attempts.isdigit():
        metadata["attempts"] = int(attempts)
    cost = (usage or {}).get("cost")
    if cost is None and headers.get("x-polyroute-cost"):
        cost = float(headers["x-polyroute-cost"])
    if cost is not None:
        metadata["cost"] = cost
    return metadata


class _StreamState:
    """Chunks of one stream → message chunks; metadata and usage are held for the last chunk, so that exactly one
    chunk carries them (LangChain adds chunks up: two chunks with input_tokens would double count).
    """

    def __init__(self, headers: Mapping[str, str]) -> None:
        self.headers = headers
        self.id: str | None = None
        self.head: dict[str, Any] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self._runs = 0
        """Runs of reasoning or text seen so far (a new run each time the kind changes)."""
        self._kind = ""
        self._tool_offset: int | None = None
        """Added to OpenAI's tool-call indexes: LangChain numbers a v1 stream's blocks by runs of one kind and keeps an
        index a block already has, so tool calls numbered from 0 would merge into the reasoning or text before them.
        """

    def feed(self, event: dict[str, Any]) -> list[ChatGenerationChunk]:
        self.id = self.id or event.get("id")
        for key in ("model", "system_fingerprint", "service_tier"):
            if event.get(key) is not None:
                self.head[key] = event[key]
        if event.get("usage"):
            self.usage = event["usage"]
        out: list[ChatGenerationChunk] = []
        for choice in event.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            chunk = self._chunk(choice.get("delta") or {})
            if chunk is not None:
                out.append(ChatGenerationChunk(message=chunk))
        return out

    def _chunk(self, delta: dict[str, Any]) -> AIMessageChunk | None:
        additional_kwargs = {k: v for k, v in delta.items() if k not in _STANDARD_RESPONSE_FIELDS}
        raw_calls: list[dict[str, Any]] = delta.get("tool_calls") or []
        if raw_calls:
            additional_kwargs["tool_calls"] = raw_calls
        content = delta.get("content") or ""
        if not content and not additional_kwargs:
            return None
        for kind, present in (("reasoning", delta.get("reasoning_content")), ("text", content)):
            if present and kind != self._kind:
                self._kind = kind
                self._runs += 1
        if raw_calls and self._tool_offset is None:
            self._tool_offset = self._runs
            self._kind = "tool_call"
        offset = self._tool_offset or 0
        return AIMessageChunk(
            content=content,
            id=self.id,
            additional_kwargs=additional_kwargs,
            tool_call_chunks=[
                tool_call_chunk(
                    name=(call.get("function") or {}).get("name"),
                    args=(call.get("function") or {}).get("arguments"),
                    id=call.get("id"),
                    index=None if call.get("index") is None else call["index"] + offset,
                )
                for call in raw_calls
            ],
            response_metadata={"model_provider": _PROVIDER},
        )

    def finish(self) -> ChatGenerationChunk:
        message = AIMessageChunk(
            content="",
            id=self.id,
            chunk_position="last",
            usage_metadata=_usage_metadata(self.usage) if self.usage else None,
            response_metadata=_response_metadata(self.head, self.finish_reason, self.usage, self.headers),
        )
        return ChatGenerationChunk(message=message, generation_info={"finish_reason": self.finish_reason})
