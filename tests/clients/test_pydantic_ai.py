"""pydantic-ai on Claude and Gemini routes: ``OpenAIChatModel`` over an ``OpenAIProvider`` on polyroute's client.

pydantic-ai sends back only ``reasoning_content`` of a thinking turn (no signed thinking blocks). Its default output
is a ``final_result`` tool the model must call (a forced tool); ``NativeOutput`` is a strict ``response_format``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.clients.matrix import (
    FINAL_TEXT,
    PROMPT,
    STRUCTURED_PROMPT,
    Forecast,
    StartEmulator,
    Upstream,
    check_forecast,
    check_structured,
    check_tool_loop,
    client_library,
    get_weather,
    structured_upstream,
    tool_loop_upstream,
)

pydantic_ai = client_library("pydantic_ai")

from pydantic_ai.models.openai import OpenAIChatModel, OpenAIChatModelSettings  # noqa: E402
from pydantic_ai.providers.openai import OpenAIProvider  # noqa: E402


def agent(up: Upstream, **kwargs: Any) -> Any:
    model = OpenAIChatModel(up.route, provider=OpenAIProvider(openai_client=up.router.async_openai_client()))
    settings = OpenAIChatModelSettings(openai_reasoning_effort=up.effort) if up.effort else None  # type: ignore[typeddict-item]
    return pydantic_ai.Agent(model, instructions="Answer briefly.", model_settings=settings, **kwargs)


SYNC_RUNS = ["run_sync", "run_stream_sync"]
ASYNC_RUNS = ["run", "run_stream"]
OUTPUTS = ["tool", "native"]


def output_type(kind: str) -> Any:
    """The default tool output (``final_result``, forced) or ``NativeOutput`` (a strict response_format)."""
    return pydantic_ai.NativeOutput(Forecast) if kind == "native" else Forecast


def run_sync(runner: str, built: Any, prompt: str) -> Any:
    if runner == "run_sync":
        return built.run_sync(prompt).output
    result = built.run_stream_sync(prompt)
    for _chunk in result.stream_output():
        pass
    return result.get_output()


async def run(runner: str, built: Any, prompt: str) -> Any:
    if runner == "run":
        return (await built.run(prompt)).output
    async with built.run_stream(prompt) as result:
        async for _chunk in result.stream_output():
            pass
        return await result.get_output()


@pytest.mark.parametrize("runner", SYNC_RUNS)
def test_tool_loop_sync(emulator: StartEmulator, provider: str, thinking: bool, runner: str) -> None:
    up = tool_loop_upstream(emulator, provider, thinking)
    assert run_sync(runner, agent(up, tools=[get_weather]), PROMPT) == FINAL_TEXT
    check_tool_loop(up)


@pytest.mark.parametrize("runner", ASYNC_RUNS)
async def test_tool_loop_async(emulator: StartEmulator, provider: str, thinking: bool, runner: str) -> None:
    up = tool_loop_upstream(emulator, provider, thinking)
    assert await run(runner, agent(up, tools=[get_weather]), PROMPT) == FINAL_TEXT
    check_tool_loop(up)


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("runner", SYNC_RUNS)
def test_output_sync(emulator: StartEmulator, provider: str, thinking: bool, runner: str, output: str) -> None:
    up = structured_upstream(emulator, provider, thinking)
    check_forecast(run_sync(runner, agent(up, output_type=output_type(output)), STRUCTURED_PROMPT))
    check_structured(up)


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("runner", ASYNC_RUNS)
async def test_output_async(emulator: StartEmulator, provider: str, thinking: bool, runner: str, output: str) -> None:
    up = structured_upstream(emulator, provider, thinking)
    check_forecast(await run(runner, agent(up, output_type=output_type(output)), STRUCTURED_PROMPT))
    check_structured(up)
