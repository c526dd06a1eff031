"""The third-party client matrix for AutoGen (issue 12): ``AssistantAgent`` over ``PolyrouteChatCompletionClient``
with tools, with ``memory=[ListMemory(...)]`` and with structured output (``output_content_type``), on Anthropic and
Gemini routes, with and without reasoning, streamed and not (AutoGen's agents are async only).

AutoGen resends an assistant turn as ``{role, content, tool_calls}``: Claude's thinking blocks are not kept, so with
reasoning on a Claude route polyroute must supply them (it issued them) or the loop gets Anthropic's 400. The
upstreams (``tests/emulators/prompted.py``) answer in the native format and refuse what the real APIs refuse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.base import TaskResult
from autogen_agentchat.messages import StructuredMessage, TextMessage, ToolCallExecutionEvent
from autogen_core.memory import ListMemory, MemoryContent, MemoryMimeType
from autogen_core.models import ModelFamily
from pydantic import BaseModel, Field

from polyroute import Router
from polyroute_autogen import PolyrouteChatCompletionClient
from tests.autogen.test_agent import run_agent
from tests.emulators import Emulator, prompted
from tests.emulators.server import Handler

Start = Callable[[Handler], Emulator]
KEY = "sk-matrix-autogen-0123456789"

PROVIDERS = {"anthropic": ("anthropic", "claude-sonnet-4-5"), "gemini": ("gemini", "gemini-3-flash-preview")}
CASES = [
    pytest.param(provider, reasoning, stream, id=f"{provider}-{'reasoning' if reasoning else 'plain'}-{s}")
    for provider in sorted(PROVIDERS)
    for reasoning in (False, True)
    for stream, s in ((False, "whole"), (True, "streamed"))
]


async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


class Review(BaseModel):
    """A film review's verdict."""

    title: str = Field(max_length=80, description="The film's title")
    stars: int = Field(ge=0, le=5)
    tags: list[str] = Field(min_length=1, max_length=3)


REVIEW = {"title": "Alien", "stars": 5, "tags": ["sci-fi", "horror"]}


def client_for(
    emulator: Start, provider: str, brain: prompted.Brain, reasoning: bool
) -> tuple[PolyrouteChatCompletionClient, prompted.Upstream]:
    upstream = prompted.AnthropicUpstream(brain) if provider == "anthropic" else prompted.GeminiUpstream(brain)
    kind, model = PROVIDERS[provider]
    emu = emulator(upstream)
    deployment = {"provider": kind, "model": model, "api_base": emu.url, "api_key": KEY}
    router = Router({"models": [{"name": "m", "deployments": [deployment]}]})
    extra: dict[str, Any] = {"reasoning_effort": "high"} if reasoning else {}
    return PolyrouteChatCompletionClient(model="m", router=router, **extra), upstream


def check_calculator(items: list[Any], result: TaskResult) -> None:
    executed = [r.content for e in items if isinstance(e, ToolCallExecutionEvent) for r in e.content]
    assert executed == ["7", "35"]
    final = result.messages[-1]
    assert isinstance(final, TextMessage)
    assert final.content == prompted.CALC_ANSWER


@pytest.mark.parametrize(("provider", "reasoning", "stream"), CASES)
async def test_tool_loop(emulator: Start, provider: str, reasoning: bool, stream: bool) -> None:
    client, upstream = client_for(emulator, provider, prompted.calculator, reasoning)
    agent = AssistantAgent(
        "calculator", client, tools=[add, multiply], max_tool_iterations=5, model_client_stream=stream
    )
    items, result = await run_agent(agent, prompted.CALC_TASK)
    check_calculator(items, result)
    prompted.check_calculator_traffic(upstream, reasoning=reasoning, stream=stream)
    await client.close()


@pytest.mark.parametrize(("provider", "reasoning", "stream"), CASES)
async def test_tool_loop_with_memory(emulator: Start, provider: str, reasoning: bool, stream: bool) -> None:
    client, upstream = client_for(emulator, provider, prompted.calculator, reasoning)
    memory = ListMemory()
    await memory.add(MemoryContent(content="Show the sum before the product.", mime_type=MemoryMimeType.TEXT))
    agent = AssistantAgent(
        "calculator",
        client,
        tools=[add, multiply],
        max_tool_iterations=5,
        model_client_stream=stream,
        memory=[memory],
    )
    items, result = await run_agent(agent, prompted.CALC_TASK)
    check_calculator(items, result)
    prompted.check_calculator_traffic(upstream, reasoning=reasoning, stream=stream)
    system = " ".join(prompted.text_of(m) for m in prompted.views(upstream)[0]["messages"] if m["role"] == "system")
    assert "Show the sum before the product." in system  # the memory reached the model, as a system instruction
    await client.close()


@pytest.mark.parametrize(("provider", "reasoning", "stream"), CASES)
async def test_structured_output(emulator: Start, provider: str, reasoning: bool, stream: bool) -> None:
    client, upstream = client_for(emulator, provider, prompted.structured(REVIEW), reasoning)
    agent = AssistantAgent("critic", client, output_content_type=Review, model_client_stream=stream)
    _, result = await run_agent(agent, "Review the film Alien.")
    final = result.messages[-1]
    assert isinstance(final, StructuredMessage)
    assert final.content == Review.model_validate(REVIEW)
    assert len(upstream.bodies) == 1
    assert prompted.streamed(upstream) == [stream]
    assert prompted.thinking_on(upstream) == [reasoning]
    (view,) = prompted.views(upstream)
    assert set(view["response_format"]["json_schema"]["schema"]["properties"]) == {"title", "stars", "tags"}
    await client.close()


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_model_info_names_the_family_and_system_messages(emulator: Start, provider: str) -> None:
    """autogen-ext's provider guards run by ``family``; ``memory=`` needs ``multiple_system_messages``."""
    client, _ = client_for(emulator, provider, prompted.calculator, False)
    info = client.model_info
    assert ModelFamily.is_claude(info["family"]) if provider == "anthropic" else ModelFamily.is_gemini(info["family"])
    assert info.get("multiple_system_messages") is True
