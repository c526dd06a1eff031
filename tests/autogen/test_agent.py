"""AssistantAgent runs through PolyrouteChatCompletionClient to a scripted loopback upstream, streamed and not."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.base import TaskResult
from autogen_agentchat.messages import (
    ModelClientStreamingChunkEvent,
    StructuredMessage,
    TextMessage,
    ToolCallExecutionEvent,
    ToolCallRequestEvent,
)
from autogen_core.tools import FunctionTool
from pydantic import BaseModel

from polyroute import Router
from polyroute_autogen import PolyrouteChatCompletionClient
from tests.autogen import scripted
from tests.autogen.conftest import router_config
from tests.emulators import Emulator

FORMATS: dict[str, tuple[str, str, Callable[[], Callable[..., Any]]]] = {
    # upstream: (provider, upstream model, handler factory)
    "anthropic": ("anthropic", "claude-sonnet-4-5", scripted.anthropic_handler),  # native structured outputs
    "anthropic-json-tool": ("anthropic", "claude-3-5-sonnet-20241022", scripted.anthropic_handler),  # forced tool
    "openai": ("openai", "gpt-up", lambda: scripted.openai_handler),
}


class Weather(BaseModel):
    city: str
    forecast: str
    celsius: int


async def get_weather(city: str) -> str:
    """The weather forecast for a city."""
    return f"{city}: sunny, 21 C"


async def run_agent(agent: AssistantAgent, task: str) -> tuple[list[Any], TaskResult]:
    items: list[Any] = []
    result: TaskResult | None = None
    async for item in agent.run_stream(task=task):
        if isinstance(item, TaskResult):
            result = item
        else:
            items.append(item)
    assert result is not None
    return items, result


@pytest.fixture(params=sorted(FORMATS))
def upstream(
    request: pytest.FixtureRequest, emulator: Callable[..., Emulator], provider_key: str
) -> tuple[Router, Emulator]:
    provider, model, handler = FORMATS[request.param]
    emu = emulator(handler())
    return Router(router_config(emu, provider, model)), emu


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_tool_call_and_reflection(upstream: tuple[Router, Emulator], stream: bool) -> None:
    router, emu = upstream
    client = PolyrouteChatCompletionClient(model="smart", router=router)
    agent = AssistantAgent(
        "assistant", client, tools=[get_weather], reflect_on_tool_use=True, model_client_stream=stream
    )
    items, result = await run_agent(agent, "What is the weather in Paris?")

    requests = [e for e in items if isinstance(e, ToolCallRequestEvent)]
    assert [(c.name, json.loads(c.arguments)) for c in requests[0].content] == [("get_weather", {"city": "Paris"})]
    executed = [e for e in items if isinstance(e, ToolCallExecutionEvent)]
    assert executed[0].content[0].content == "Paris: sunny, 21 C"
    final = result.messages[-1]
    assert isinstance(final, TextMessage)
    assert final.content == scripted.FINAL_TEXT
    # usage reaches AutoGen in both modes: streamed calls ask for the usage chunk by default
    assert final.models_usage is not None and final.models_usage.prompt_tokens > 0
    assert requests[0].models_usage is not None and requests[0].models_usage.completion_tokens > 0
    chunks = [e for e in items if isinstance(e, ModelClientStreamingChunkEvent)]
    assert "".join(c.content for c in chunks) == (scripted.FINAL_TEXT if stream else "")
    assert len(emu.requests) == 2  # the tool call, then the reflection with the tool result
    await client.close()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_structured_output_after_tool(upstream: tuple[Router, Emulator], stream: bool) -> None:
    router, _ = upstream
    client = PolyrouteChatCompletionClient(model="smart", router=router)
    # the openai SDK's parse() only accepts strict tools beside a response schema
    tool = FunctionTool(get_weather, description="The weather forecast for a city.", strict=True)
    agent = AssistantAgent("assistant", client, tools=[tool], output_content_type=Weather, model_client_stream=stream)
    _, result = await run_agent(agent, "Weather in Paris, as data.")
    final = result.messages[-1]
    assert isinstance(final, StructuredMessage)
    assert final.content == Weather(**scripted.WEATHER)
    await client.close()


async def test_client_usage_accumulates(upstream: tuple[Router, Emulator]) -> None:
    router, _ = upstream
    client = PolyrouteChatCompletionClient(model="smart", router=router)
    agent = AssistantAgent("assistant", client, tools=[get_weather], reflect_on_tool_use=True, model_client_stream=True)
    await run_agent(agent, "What is the weather in Paris?")
    total = client.total_usage()
    assert total.prompt_tokens > 0 and total.completion_tokens > 0
    await client.close()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_memory_adds_a_second_system_message(upstream: tuple[Router, Emulator], stream: bool) -> None:
    """``memory=[...]`` puts a system message after the task; autogen-ext refused it before any request unless
    ``model_info`` says ``multiple_system_messages``. Every provider gets both system messages.
    """
    from autogen_core.memory import ListMemory, MemoryContent, MemoryMimeType

    router, emu = upstream
    client = PolyrouteChatCompletionClient(model="smart", router=router)
    memory = ListMemory()
    await memory.add(MemoryContent(content="The user lives in Paris.", mime_type=MemoryMimeType.TEXT))
    agent = AssistantAgent("assistant", client, system_message="Be brief.", memory=[memory], model_client_stream=stream)
    _, result = await run_agent(agent, "What is the weather where I live?")
    assert isinstance(result.messages[-1], TextMessage)
    assert result.messages[-1].content == scripted.FINAL_TEXT
    sent = emu.requests[0].json()
    if "system" in sent:  # Anthropic: every system message in the top-level system, in order
        system = " ".join(block["text"] for block in sent["system"])
        assert system.index("Be brief.") < system.index("The user lives in Paris.")
    else:
        roles = [m["role"] for m in sent["messages"]]
        assert roles == ["system", "user", "system"] and "Paris" in sent["messages"][2]["content"]
    await client.close()
