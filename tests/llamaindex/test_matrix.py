"""The third-party client matrix for LlamaIndex (issue 12): ``FunctionAgent`` tool loops and ``structured_predict``
on Anthropic and Gemini routes, with and without reasoning, streamed and not, sync and async where LlamaIndex has
both (``FunctionAgent`` is async only).

The upstreams (``tests/emulators/prompted.py``) answer in the native format and refuse what the real APIs refuse:
thinking turns replayed without their signed thinking block, forced tools with thinking, structured-output schema
keywords Anthropic rejects, function calls replayed without their thought signature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel, Field

from llama_index.llms.polyroute import Polyroute
from tests.emulators import Emulator, prompted
from tests.emulators.server import Handler

Start = Callable[[Handler], Emulator]
KEY = "sk-matrix-llamaindex-0123456789"

PROVIDERS = {"anthropic": ("anthropic", "claude-sonnet-4-5"), "gemini": ("gemini", "gemini-3-flash-preview")}


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


TOOLS = [FunctionTool.from_defaults(add), FunctionTool.from_defaults(multiply)]


class Review(BaseModel):
    """A film review's verdict."""

    title: str = Field(max_length=80, description="The film's title")
    stars: int = Field(ge=0, le=5)
    tags: list[str] = Field(min_length=1, max_length=3)


REVIEW = {"title": "Alien", "stars": 5, "tags": ["sci-fi", "horror"]}
PROMPT = PromptTemplate("Review the film {film}.")


def llm_for(emulator: Start, provider: str, brain: prompted.Brain, reasoning: bool) -> tuple[Polyroute, Any]:
    upstream = prompted.AnthropicUpstream(brain) if provider == "anthropic" else prompted.GeminiUpstream(brain)
    kind, model = PROVIDERS[provider]
    emu = emulator(upstream)
    deployment = {"provider": kind, "model": model, "api_base": emu.url, "api_key": KEY}
    extra = {"reasoning_effort": "high"} if reasoning else {}
    config = {"models": [{"name": "m", "deployments": [deployment]}]}
    return Polyroute(model="m", config=config, additional_kwargs=extra), upstream


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("reasoning", [False, True], ids=["plain", "reasoning"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_function_agent_tool_loop(emulator: Start, provider: str, reasoning: bool, stream: bool) -> None:
    llm, upstream = llm_for(emulator, provider, prompted.calculator, reasoning)
    agent = FunctionAgent(tools=TOOLS, llm=llm, streaming=stream, system_prompt="You are a calculator.")
    handler = agent.run(user_msg=prompted.CALC_TASK)
    events = [event async for event in handler.stream_events()]
    result = await handler
    assert str(result) == prompted.CALC_ANSWER
    calls = [(e.tool_name, e.tool_output.content) for e in events if isinstance(e, ToolCallResult)]
    assert calls == [("add", "7"), ("multiply", "35")]
    prompted.check_calculator_traffic(upstream, reasoning=reasoning, stream=stream)


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("reasoning", [False, True], ids=["plain", "reasoning"])
@pytest.mark.parametrize("mode", ["sync", "async", "stream", "astream"])
async def test_structured_predict(emulator: Start, provider: str, reasoning: bool, mode: str) -> None:
    llm, upstream = llm_for(emulator, provider, prompted.structured(REVIEW), reasoning)
    if mode == "sync":
        result: Any = llm.structured_predict(Review, PROMPT, film="Alien")
    elif mode == "async":
        result = await llm.astructured_predict(Review, PROMPT, film="Alien")
    elif mode == "stream":
        result = list(llm.stream_structured_predict(Review, PROMPT, film="Alien"))[-1]
    else:
        result = [p async for p in await llm.astream_structured_predict(Review, PROMPT, film="Alien")][-1]
    assert Review.model_validate(result.model_dump()) == Review.model_validate(REVIEW)
    assert len(upstream.bodies) == 1
    assert prompted.streamed(upstream) == [mode in ("stream", "astream")]
    assert prompted.thinking_on(upstream) == [reasoning]
    (view,) = prompted.views(upstream)
    assert "Alien" in prompted.text_of(view["messages"][-1])
