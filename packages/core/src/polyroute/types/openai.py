"""The OpenAI Chat Completions subset polyroute speaks, as TypedDicts (``total=False`` + ``Required``).

Outgoing responses and chunks are built as plain dicts of these shapes; a test compares the field names with
``openai.types.chat`` so that drift shows. Extra fields polyroute adds are documented where they are set:
``reasoning_content`` on messages and deltas (the convention DeepSeek and others use), and
``provider_specific_fields`` that carry native data the next turn needs (thinking signatures).
"""

from __future__ import annotations

from typing import Any, Literal

from typing_extensions import Required, TypedDict

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


class ImageURL(TypedDict, total=False):
    """``image_url`` of an image content part."""

    url: Required[str]
    detail: str


class FileData(TypedDict, total=False):
    """``file`` of a file content part."""

    file_data: str
    file_id: str
    filename: str


class ContentPart(TypedDict, total=False):
    """One part of a multi-part message ``content``."""

    type: Required[str]
    text: str
    image_url: ImageURL
    input_audio: dict[str, Any]
    file: FileData
    cache_control: dict[str, Any]


class FunctionCall(TypedDict, total=False):
    """``function`` of a tool call."""

    name: Required[str]
    arguments: Required[str]


class ToolCall(TypedDict, total=False):
    """An assistant tool call; ``provider_specific_fields`` carries e.g. Gemini's ``thought_signature``."""

    id: Required[str]
    type: Required[Literal["function"]]
    function: Required[FunctionCall]
    provider_specific_fields: dict[str, Any]


class Message(TypedDict, total=False):
    """A request message."""

    role: Required[Role]
    content: str | list[ContentPart] | None
    name: str
    tool_calls: list[ToolCall]
    tool_call_id: str
    reasoning_content: str | None
    thinking_blocks: list[dict[str, Any]]
    provider_specific_fields: dict[str, Any]
    refusal: str | None


class FunctionDefinition(TypedDict, total=False):
    """A tool's function."""

    name: Required[str]
    description: str
    parameters: dict[str, Any]
    strict: bool | None


class Tool(TypedDict, total=False):
    """A tool the model may call."""

    type: Required[str]
    function: Required[FunctionDefinition]


class StreamOptions(TypedDict, total=False):
    """``stream_options``."""

    include_usage: bool


class ChatCompletionRequest(TypedDict, total=False):
    """The request body of ``POST /v1/chat/completions``."""

    model: Required[str]
    messages: Required[list[Message]]
    stream: bool
    stream_options: StreamOptions | None
    temperature: float | None
    top_p: float | None
    n: int | None
    max_tokens: int | None
    max_completion_tokens: int | None
    stop: str | list[str] | None
    presence_penalty: float | None
    frequency_penalty: float | None
    seed: int | None
    user: str
    tools: list[Tool]
    tool_choice: str | dict[str, Any]
    parallel_tool_calls: bool
    response_format: dict[str, Any]
    reasoning_effort: str | None
    logprobs: bool | None
    top_logprobs: int | None
    logit_bias: dict[str, int] | None
    modalities: list[str] | None
    audio: dict[str, Any] | None
    metadata: dict[str, str] | None
    store: bool | None
    service_tier: str | None
    prediction: dict[str, Any] | None
    web_search_options: dict[str, Any]


class PromptTokensDetails(TypedDict, total=False):
    """``usage.prompt_tokens_details``."""

    cached_tokens: int
    audio_tokens: int
    cache_creation_tokens: int
    cache_write_tokens: int
    """OpenAI's own name for tokens written to the prompt cache (recorded 2026 answers carry it)."""


class CompletionTokensDetails(TypedDict, total=False):
    """``usage.completion_tokens_details``."""

    reasoning_tokens: int
    audio_tokens: int
    accepted_prediction_tokens: int
    rejected_prediction_tokens: int


class Usage(TypedDict, total=False):
    """Token usage; ``cost`` (USD, polyroute's addition) when the catalog has the deployment's prices."""

    prompt_tokens: Required[int]
    completion_tokens: Required[int]
    total_tokens: Required[int]
    prompt_tokens_details: PromptTokensDetails
    completion_tokens_details: CompletionTokensDetails
    cost: float


class ResponseMessage(TypedDict, total=False):
    """``choices[i].message`` of a completion."""

    role: Required[Literal["assistant"]]
    content: Required[str | None]
    refusal: str | None
    tool_calls: list[ToolCall]
    reasoning_content: str
    thinking_blocks: list[dict[str, Any]]
    provider_specific_fields: dict[str, Any]
    annotations: list[dict[str, Any]]


class Choice(TypedDict, total=False):
    """One choice of a completion."""

    index: Required[int]
    message: Required[ResponseMessage]
    finish_reason: Required[FinishReason | None]
    logprobs: dict[str, Any] | None


class ChatCompletion(TypedDict, total=False):
    """A non-streamed completion."""

    id: Required[str]
    object: Required[Literal["chat.completion"]]
    created: Required[int]
    model: Required[str]
    choices: Required[list[Choice]]
    usage: Usage
    system_fingerprint: str | None
    service_tier: str | None


class ToolCallDelta(TypedDict, total=False):
    """A tool call fragment in a stream delta."""

    index: Required[int]
    id: str
    type: Literal["function"]
    function: dict[str, str]
    provider_specific_fields: dict[str, Any]


class Delta(TypedDict, total=False):
    """``choices[i].delta`` of a chunk."""

    role: Literal["assistant"]
    content: str | None
    refusal: str | None
    tool_calls: list[ToolCallDelta]
    reasoning_content: str
    thinking_blocks: list[dict[str, Any]]
    provider_specific_fields: dict[str, Any]


class ChunkChoice(TypedDict, total=False):
    """One choice of a chunk."""

    index: Required[int]
    delta: Required[Delta]
    finish_reason: Required[FinishReason | None]
    logprobs: dict[str, Any] | None


class ChatCompletionChunk(TypedDict, total=False):
    """A streamed chunk."""

    id: Required[str]
    object: Required[Literal["chat.completion.chunk"]]
    created: Required[int]
    model: Required[str]
    choices: Required[list[ChunkChoice]]
    usage: Usage | None
    system_fingerprint: str | None
