"""Agents complete the two-tool calculator task through a provider emulator, sync and async, streamed and not.

FunctionAgent is an async workflow: it is run with ``await`` and, for the sync variant, driven from plain sync code
with ``asyncio.run``. The sync LLM methods get their own two-tool loop (``chat_with_tools`` /
``stream_chat_with_tools`` → ``get_tool_calls_from_response`` → tool results as ``role="tool"`` messages), the
loop FunctionAgent runs, on the sync client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from llama_index.core.agent.workflow import AgentStream, FunctionAgent, ReActAgent, ToolCallResult
from llama_index.core.llms import ChatMessage, MessageRole
from llama_index.core.tools import FunctionTool

from llama_index.llms.polyroute import Polyroute
from tests.emulators import Emulator
from tests.llamaindex.scripted import ANSWER, TASK, AnthropicCalculator, add, multiply, openai_calculator

TOOLS = [FunctionTool.from_defaults(add), FunctionTool.from_defaults(multiply)]
KEY = "sk-agent-test-0123456789"


def calculator_llm(emulator: Callable[..., Emulator], upstream: str) -> tuple[Polyroute, Emulator]:
    """A Polyroute LLM whose only deployment is the scripted calculator behind ``upstream``'s wire format."""
    if upstream == "anthropic":
        emu = emulator(AnthropicCalculator())
        deployment = {"provider": "anthropic", "model": "claude-sonnet-4-5", "api_base": emu.url, "api_key": KEY}
    else:
        emu = emulator(openai_calculator)
        deployment = {"provider": "openai", "model": "gpt-calc", "api_base": emu.url + "/v1", "api_key": KEY}
    config = {"models": [{"name": "calc", "deployments": [deployment]}]}
    return Polyroute(model="calc", config=config), emu


UPSTREAMS = ["anthropic", "openai"]


async def run_function_agent(llm: Polyroute, streaming: bool) -> tuple[str, list[Any]]:
    agent = FunctionAgent(tools=TOOLS, llm=llm, streaming=streaming, system_prompt="You are a calculator.")
    handler = agent.run(user_msg=TASK)
    events = [event async for event in handler.stream_events()]
    result = await handler
    return str(result), events


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streamed"])
async def test_function_agent_async(emulator: Callable[..., Emulator], upstream: str, streaming: bool) -> None:
    llm, emu = calculator_llm(emulator, upstream)
    answer, events = await run_function_agent(llm, streaming)
    assert answer == ANSWER
    calls = [(e.tool_name, e.tool_kwargs, e.tool_output.content) for e in events if isinstance(e, ToolCallResult)]
    assert calls == [("add", {"a": 3, "b": 4}, "7"), ("multiply", {"a": 7, "b": 5}, "35")]
    assert len(emu.requests) == 3
    assert all(r.json().get("stream", False) is streaming for r in emu.requests)
    deltas = "".join(e.delta for e in events if isinstance(e, AgentStream))
    assert deltas == (ANSWER if streaming else "")


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streamed"])
def test_function_agent_driven_from_sync_code(
    emulator: Callable[..., Emulator], upstream: str, streaming: bool
) -> None:
    llm, emu = calculator_llm(emulator, upstream)
    answer, _ = asyncio.run(run_function_agent(llm, streaming))
    assert answer == ANSWER
    assert len(emu.requests) == 3


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streamed"])
def test_sync_tool_loop(emulator: Callable[..., Emulator], upstream: str, streaming: bool) -> None:
    llm, emu = calculator_llm(emulator, upstream)
    history = [ChatMessage(role=MessageRole.USER, content=TASK)]
    by_name = {tool.metadata.name: tool for tool in TOOLS}
    for _ in range(5):
        if streaming:
            responses = list(llm.stream_chat_with_tools(TOOLS, chat_history=history))
            response = responses[-1]
            assert response.additional_kwargs["deployment"] in ("openai/gpt-calc", "anthropic/claude-sonnet-4-5")
        else:
            response = llm.chat_with_tools(TOOLS, chat_history=history)
        history.append(response.message)
        calls = llm.get_tool_calls_from_response(response, error_on_no_tool_call=False)
        if not calls:
            break
        for call in calls:
            output = by_name[call.tool_name].call(**call.tool_kwargs)
            history.append(
                ChatMessage(
                    role=MessageRole.TOOL, content=str(output), additional_kwargs={"tool_call_id": call.tool_id}
                )
            )
    assert history[-1].content == ANSWER
    assert len(emu.requests) == 3


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_predict_and_call(emulator: Callable[..., Emulator], upstream: str) -> None:
    llm, _ = calculator_llm(emulator, upstream)
    result = llm.predict_and_call(TOOLS, user_msg=TASK)
    assert result.response == "7"
    assert result.sources[0].tool_name == "add"


@pytest.mark.parametrize("upstream", UPSTREAMS)
async def test_apredict_and_call(emulator: Callable[..., Emulator], upstream: str) -> None:
    llm, _ = calculator_llm(emulator, upstream)
    result = await llm.apredict_and_call(TOOLS, user_msg=TASK)
    assert result.response == "7"


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streamed"])
async def test_react_agent(emulator: Callable[..., Emulator], upstream: str, streaming: bool) -> None:
    llm, emu = calculator_llm(emulator, upstream)
    agent = ReActAgent(tools=TOOLS, llm=llm, streaming=streaming)
    handler = agent.run(user_msg=TASK)
    events = [event async for event in handler.stream_events()]
    result = await handler
    assert str(result) == ANSWER
    assert [e.tool_output.content for e in events if isinstance(e, ToolCallResult)] == ["7", "35"]
    assert all("tools" not in r.json() for r in emu.requests)
