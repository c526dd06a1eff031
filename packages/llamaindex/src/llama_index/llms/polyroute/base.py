"""``Polyroute``: a LlamaIndex ``FunctionCallingLLM`` on polyroute's in-process transport.

It builds an openai SDK client on the router's transport and maps LlamaIndex messages to the Chat Completions wire
format and back; routing, translation and failover happen in the router. It depends on ``llama-index-core`` only
(``llama-index-llms-openai`` pins ``openai<3``).

Assistant messages keep what the next turn needs in ``additional_kwargs``: the wire ``tool_calls`` (with any
``provider_specific_fields``, e.g. Gemini's thought signatures), ``reasoning_content``, ``thinking_blocks`` (Claude's
signed thinking) and the message's own ``provider_specific_fields``; they are sent back as they came. The blocks
also carry the modern LlamaIndex view (``ThinkingBlock``, ``TextBlock``, ``ToolCallBlock``). Usage, cost and the
serving deployment reach each response's ``raw`` and ``additional_kwargs``.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.generic_utils import (
    achat_to_completion_decorator,
    astream_chat_to_completion_decorator,
    chat_to_completion_decorator,
    stream_chat_to_completion_decorator,
)
from llama_index.core.base.llms.types import (
    AudioBlock,
    CachePoint,
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    DocumentBlock,
    ImageBlock,
    LLMMetadata,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW, DEFAULT_NUM_OUTPUTS
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.llms.utils import parse_partial_json

from llama_index.llms.polyroute._clients import RouterClients
from polyroute import Router, RouterConfig

if TYPE_CHECKING:
    import openai
    from llama_index.core.tools.types import BaseTool

# Message fields that carry provider data the next turn needs; kept in ``additional_kwargs`` and sent back.
_ROUND_TRIP = ("reasoning_content", "thinking_blocks", "provider_specific_fields")
_ROLES = {
    MessageRole.CHATBOT: "assistant",
    MessageRole.MODEL: "assistant",
    MessageRole.FUNCTION: "tool",
}


class Polyroute(RouterClients, FunctionCallingLLM):
    """A LlamaIndex LLM served by a polyroute router: routing, failover and provider translation in-process.

    Examples:
        ```python
        from llama_index.llms.polyroute import Polyroute

        llm = Polyroute(model="smart", config="polyroute.yaml")  # or router=Router(...); neither: Router() from env
        print(llm.complete("Say hi").text)
        ```
    """

    model: str = Field(description="A model name the router knows: a configured route or 'provider/model'.")
    temperature: float | None = Field(default=None, description="Sampling temperature; unset: the provider's default.")
    max_tokens: int | None = Field(default=None, gt=0, description="Most tokens to generate.")
    timeout: float | None = Field(default=None, gt=0, description="Seconds for a whole call (all attempts).")
    max_retries: int = Field(
        default=0, ge=0, description="openai SDK retries; the router already fails over, so 0 by default."
    )
    tags: list[str] | None = Field(
        default=None, description="Tags that attribute every call in the router's usage records and budgets."
    )
    user: str | None = Field(
        default=None, description="The user every call is attributed to in usage records and budgets."
    )
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Extra Chat Completions parameters sent with every call."
    )

    _router: Router = PrivateAttr()
    _config: Any = PrivateAttr(default=None)
    _client: openai.OpenAI | None = PrivateAttr(default=None)
    _aclient: openai.AsyncOpenAI | None = PrivateAttr(default=None)

    def __init__(
        self,
        model: str,
        router: Router | None = None,
        config: RouterConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if router is not None and config is not None:
            raise ValueError("pass router= or config=, not both")
        super().__init__(model=model, **kwargs)
        self._router = router if router is not None else Router(config)
        self._config = config
        self._router.route(model)  # an unknown model name fails here, not on the first call

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex serializes this class under."""
        return "Polyroute"

    @property
    def metadata(self) -> LLMMetadata:
        """Limits and capabilities from the router's catalog, across the model's deployments."""
        info = self._router.model_info(self.model)
        return LLMMetadata(
            context_window=info.context_window or DEFAULT_CONTEXT_WINDOW,
            num_output=self.max_tokens or info.max_output_tokens or DEFAULT_NUM_OUTPUTS,
            is_chat_model=True,
            is_function_calling_model=info.tools,
            model_name=self.model,
        )

    # -- clients and requests -----------------------------------------------------------------------------------

    def _body(self, messages: Sequence[ChatMessage], stream: bool, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        body.update(self.additional_kwargs)
        body.update(kwargs)
        body["messages"] = [_to_openai_message(m) for m in messages]
        if stream:
            body["stream"] = True
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return body

    # -- chat ---------------------------------------------------------------------------------------------------

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """One chat call."""
        return self._chat(messages, **kwargs)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """One chat call, async."""
        return await self._achat(messages, **kwargs)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """A streamed chat call: each response holds the message so far and the new ``delta``."""
        return self._stream_chat(messages, **kwargs)

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        """A streamed chat call, async."""
        return await self._astream_chat(messages, **kwargs)

    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        raw = self._sync_client.chat.completions.with_raw_response.create(**self._body(messages, False, kwargs))
        return _chat_response(raw.parse().model_dump(), _served(raw.headers))

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        create = self._async_client.chat.completions.with_raw_response.create
        raw = await create(**self._body(messages, False, kwargs))
        return _chat_response(raw.parse().model_dump(), _served(raw.headers))

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        raw = self._sync_client.chat.completions.with_raw_response.create(**self._body(messages, True, kwargs))
        served = _served(raw.headers)
        stream = raw.parse()

        def gen() -> Iterator[ChatResponse]:
            state = _StreamState(served)
            try:
                for chunk in stream:
                    yield state.feed(chunk.model_dump())
            finally:
                stream.close()  # the caller may stop early: release the upstream stream now, not at GC

        return gen()

    async def _astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        create = self._async_client.chat.completions.with_raw_response.create
        raw = await create(**self._body(messages, True, kwargs))
        served = _served(raw.headers)
        stream = raw.parse()

        async def gen() -> AsyncIterator[ChatResponse]:
            state = _StreamState(served)
            try:
                async for chunk in stream:
                    yield state.feed(chunk.model_dump())
            finally:
                await stream.close()

        return gen()

    # -- completion: one user message -------------------------------------------------------------------------

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Complete ``prompt`` (sent as one user message)."""
        return chat_to_completion_decorator(self._chat)(prompt, **kwargs)

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Complete ``prompt``, async."""
        return await achat_to_completion_decorator(self._achat)(prompt, **kwargs)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        """Complete ``prompt``, streamed."""
        return stream_chat_to_completion_decorator(self._stream_chat)(prompt, **kwargs)

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseAsyncGen:
        """Complete ``prompt``, streamed and async."""
        return await astream_chat_to_completion_decorator(self._astream_chat)(prompt, **kwargs)

    # -- tools --------------------------------------------------------------------------------------------------

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The ``chat`` arguments for a call that may use ``tools``.

        ``parallel_tool_calls`` is not sent (some vendors cannot disable it); when ``allow_parallel_tool_calls`` is
        False, :meth:`_validate_chat_with_tools_response` keeps the first call only.
        """
        messages = list(chat_history or [])
        if user_msg is not None:
            if isinstance(user_msg, str):
                user_msg = ChatMessage(role=MessageRole.USER, content=user_msg)
            messages.append(user_msg)
        out: dict[str, Any] = {"messages": messages, **kwargs}
        if tools:
            out["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": tool.metadata.name,
                        "description": tool.metadata.description,
                        "parameters": tool.metadata.get_parameters_dict(),
                    },
                }
                for tool in tools
            ]
            choice = tool_choice if tool_choice is not None else ("required" if tool_required else "auto")
            if isinstance(choice, str) and choice not in ("auto", "none", "required"):
                choice = {"type": "function", "function": {"name": choice}}  # a tool's name: force that tool
            out["tool_choice"] = choice
        return out

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """Keep only the first tool call unless parallel calls are allowed (the history must match the results)."""
        if allow_parallel_tool_calls:
            return response
        message = response.message
        calls = message.additional_kwargs.get("tool_calls")
        if calls and len(calls) > 1:
            message.additional_kwargs["tool_calls"] = calls[:1]
            first = next(b for b in message.blocks if isinstance(b, ToolCallBlock))
            message.blocks = [b for b in message.blocks if not isinstance(b, ToolCallBlock) or b is first]
        return response

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """The tool calls in a response (partial arguments parsed leniently, for streamed responses)."""
        selections = [
            ToolSelection(
                tool_id=call.get("id") or "",
                tool_name=call["function"]["name"],
                tool_kwargs=_parse_arguments(call["function"].get("arguments")),
            )
            for call in _wire_tool_calls(response.message)
        ]
        if not selections and error_on_no_tool_call:
            raise ValueError(f"Expected at least one tool call, got none: {response.message.content!r}")
        return selections


# -- LlamaIndex → wire ------------------------------------------------------------------------------------------


def _to_openai_message(message: ChatMessage) -> dict[str, Any]:
    """A Chat Completions message for ``message``; round-trip fields from ``additional_kwargs`` go back as they came."""
    role = _ROLES.get(message.role, message.role.value)
    extra = message.additional_kwargs
    out: dict[str, Any] = {"role": role}
    parts = _to_openai_parts(message)
    if role == "tool":
        out["content"] = "".join(p.get("text", "") for p in parts)
        out["tool_call_id"] = extra.get("tool_call_id") or extra.get("name") or ""
        return out
    if parts and all(p["type"] == "text" and "cache_control" not in p for p in parts):
        out["content"] = "\n".join(p["text"] for p in parts)
    else:
        out["content"] = parts or None
    if "name" in extra:
        out["name"] = extra["name"]
    if role == "assistant":
        calls = _wire_tool_calls(message)
        if calls:
            out["tool_calls"] = calls
        reasoning = extra.get("reasoning_content")
        if reasoning is None:
            thoughts = [b.content for b in message.blocks if isinstance(b, ThinkingBlock) and b.content]
            reasoning = "".join(thoughts) or None
        if reasoning is not None:
            out["reasoning_content"] = reasoning
        for name in ("thinking_blocks", "provider_specific_fields"):
            if extra.get(name):
                out[name] = extra[name]
    elif out["content"] is None:
        out["content"] = ""
    return out


def _to_openai_parts(message: ChatMessage) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageBlock):
            url = str(block.url) if block.url and not block.image and not block.path else block.inline_url()
            image: dict[str, Any] = {"url": url}
            if block.detail:
                image["detail"] = block.detail
            parts.append({"type": "image_url", "image_url": image})
        elif isinstance(block, AudioBlock):
            data = block.resolve_audio(as_base64=True).read().decode()
            parts.append({"type": "input_audio", "input_audio": {"data": data, "format": block.format or "wav"}})
        elif isinstance(block, DocumentBlock):
            import base64

            data = base64.b64encode(block.resolve_document().read()).decode()
            file: dict[str, Any] = {"file_data": f"data:{block.document_mimetype};base64,{data}"}
            if block.title:
                file["filename"] = block.title
            parts.append({"type": "file", "file": file})
        elif isinstance(block, CachePoint):
            if parts:  # cache everything up to here: mark the part before the cache point
                parts[-1]["cache_control"] = {"type": block.cache_control.type}
        elif isinstance(block, ThinkingBlock | ToolCallBlock):
            continue  # assistant-only data, sent as reasoning_content / tool_calls
        else:
            raise ValueError(
                f"polyroute cannot send a {type(block).__name__} ({block.block_type!r}) content block; "
                "use text, image, audio or document blocks"
            )
    return parts


def _wire_tool_calls(message: ChatMessage) -> list[dict[str, Any]]:
    """The message's tool calls as wire dicts: ``additional_kwargs["tool_calls"]`` as kept, else ToolCallBlocks."""
    kept = message.additional_kwargs.get("tool_calls")
    if kept:
        return [c if isinstance(c, dict) else c.model_dump(exclude_none=True) for c in kept]
    calls: list[dict[str, Any]] = []
    for block in message.blocks:
        if isinstance(block, ToolCallBlock):
            arguments = block.tool_kwargs if isinstance(block.tool_kwargs, str) else json.dumps(block.tool_kwargs)
            calls.append(
                {
                    "id": block.tool_call_id or f"call_{len(calls)}",
                    "type": "function",
                    "function": {"name": block.tool_name, "arguments": arguments},
                }
            )
    return calls


def _parse_arguments(arguments: str | None) -> dict[str, Any]:
    if not arguments:
        return {}
    try:
        parsed = parse_partial_json(arguments)
    except ValueError:  # a streamed fragment that is not JSON yet
        return {}
    return parsed if isinstance(parsed, dict) else {}


# -- wire → LlamaIndex ------------------------------------------------------------------------------------------


def _served(headers: Mapping[str, str]) -> dict[str, Any]:
    """What polyroute's headers say about the call: the serving deployment, the attempts, the cost."""
    served: dict[str, Any] = {"deployment": headers.get("x-polyroute-deployment")}
    attempts = headers.get("x-polyroute-attempts")
    if attempts is not None:
        served["attempts"] = int(attempts)
    cost = headers.get("x-polyroute-cost")
    if cost is not None:
        served["cost"] = float(cost)
    return served


def _from_openai_message(data: Mapping[str, Any]) -> ChatMessage:
    """A ChatMessage for a wire assistant message (a completion's, or one a stream assembled)."""
    blocks: list[Any] = []
    extra: dict[str, Any] = {}
    for name in _ROUND_TRIP:
        if data.get(name):
            extra[name] = data[name]
    if data.get("reasoning_content"):
        blocks.append(ThinkingBlock(content=data["reasoning_content"]))
    if data.get("content"):
        blocks.append(TextBlock(text=data["content"]))
    calls = [{k: v for k, v in c.items() if v is not None} for c in data.get("tool_calls") or []]
    if calls:
        extra["tool_calls"] = calls
        for call in calls:
            function = call.get("function") or {}
            blocks.append(
                ToolCallBlock(
                    tool_call_id=call.get("id"),
                    tool_name=function.get("name") or "",
                    tool_kwargs=_parse_arguments(function.get("arguments")),
                )
            )
    return ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks, additional_kwargs=extra)


def _usage_kwargs(usage: Mapping[str, Any] | None, served: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = dict(served)
    if usage:
        out["prompt_tokens"] = usage.get("prompt_tokens")
        out["completion_tokens"] = usage.get("completion_tokens")
        out["total_tokens"] = usage.get("total_tokens")
        out["usage"] = _without_nones(usage)
        if usage.get("cost") is not None:
            out["cost"] = usage["cost"]
    return out


def _without_nones(data: Mapping[str, Any]) -> dict[str, Any]:
    """The SDK's model dump lists every declared field; keep the ones the upstream sent."""
    return {k: _without_nones(v) if isinstance(v, Mapping) else v for k, v in data.items() if v is not None}


def _chat_response(completion: dict[str, Any], served: dict[str, Any]) -> ChatResponse:
    choices = completion.get("choices") or []
    message = choices[0]["message"] if choices else {"role": "assistant", "content": None}
    additional = _usage_kwargs(completion.get("usage"), served)
    if choices and choices[0].get("finish_reason"):
        additional["finish_reason"] = choices[0]["finish_reason"]
    return ChatResponse(
        message=_from_openai_message(message),
        raw={**completion, "polyroute": served},
        additional_kwargs=additional,
    )


class _StreamState:
    """Assembles streamed chunks into the message so far (the same mapping as for a whole completion)."""

    def __init__(self, served: dict[str, Any]) -> None:
        self.served = served
        self.message: dict[str, Any] = {"role": "assistant", "content": ""}
        self.calls: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None

    def feed(self, chunk: dict[str, Any]) -> ChatResponse:
        delta: dict[str, Any] = {}
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) == 0:
                delta = choice.get("delta") or {}
                self.finish_reason = choice.get("finish_reason") or self.finish_reason
        if chunk.get("usage"):
            self.usage = chunk["usage"]
            if self.usage.get("cost") is not None:
                self.served["cost"] = self.usage["cost"]
        text = delta.get("content") or ""
        self.message["content"] += text
        thinking = delta.get("reasoning_content") or ""
        if thinking:
            self.message["reasoning_content"] = self.message.get("reasoning_content", "") + thinking
        # polyroute streams each thinking block once, finished (signature included): keep them in order
        self.message.setdefault("thinking_blocks", []).extend(delta.get("thinking_blocks") or [])
        if delta.get("provider_specific_fields"):  # e.g. Gemini's signature on the answer's text
            self.message["provider_specific_fields"] = {
                **(self.message.get("provider_specific_fields") or {}),
                **delta["provider_specific_fields"],
            }
        for fragment in delta.get("tool_calls") or []:
            self._add_tool_call(fragment)
        self.message["tool_calls"] = [self.calls[i] for i in sorted(self.calls)]
        additional = _usage_kwargs(self.usage, self.served)
        if thinking:
            additional["thinking_delta"] = thinking  # FunctionAgent streams this as AgentStream.thinking_delta
        if self.finish_reason:
            additional["finish_reason"] = self.finish_reason
        return ChatResponse(
            message=_from_openai_message(self.message),
            delta=text,
            raw={**chunk, "polyroute": dict(self.served)},
            additional_kwargs=additional,
        )

    def _add_tool_call(self, fragment: Mapping[str, Any]) -> None:
        index = fragment.get("index") or 0
        call = self.calls.get(index)
        function = fragment.get("function") or {}
        if call is None:
            call = self.calls[index] = {
                "id": fragment.get("id") or "",
                "type": "function",
                "function": {"name": function.get("name") or "", "arguments": ""},
            }
        elif fragment.get("id"):
            call["id"] = fragment["id"]
        if function.get("name") and not call["function"]["name"]:
            call["function"]["name"] = function["name"]
        call["function"]["arguments"] += function.get("arguments") or ""
        if fragment.get("provider_specific_fields"):
            call["provider_specific_fields"] = {
                **call.get("provider_specific_fields", {}),
                **fragment["provider_specific_fields"],
            }
