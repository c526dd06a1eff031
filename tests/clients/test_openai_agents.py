"""openai-agents on Claude and Gemini routes: ``Agent`` + ``OpenAIChatCompletionsModel`` on polyroute's client.

The Chat Completions model resends each assistant turn as ``{role, content, tool_calls}`` (no thinking blocks);
``output_type`` becomes a strict ``response_format`` json_schema.
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
    structured_upstream,
    tool_loop_upstream,
)
from tests.clients.matrix import get_weather as weather_of

agents = client_library("agents")

from openai.types.shared import Reasoning  # noqa: E402


@agents.function_tool
def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    return weather_of(city)


@pytest.fixture(autouse=True)
def _no_tracing() -> None:
    """Tracing would upload spans to OpenAI."""
    agents.set_tracing_disabled(True)


def agent(up: Upstream, **kwargs: Any) -> Any:
    model = agents.OpenAIChatCompletionsModel(model=up.route, openai_client=up.router.async_openai_client())
    settings = agents.ModelSettings(reasoning=Reasoning(effort=up.effort)) if up.effort else agents.ModelSettings()
    return agents.Agent(
        name="forecaster", instructions="Answer briefly.", model=model, model_settings=settings, **kwargs
    )


RUNS = ["run_sync", "run", "run_streamed"]


async def run(runner: str, built: Any, prompt: str) -> Any:
    """The agent's final output, run the given way (``run_sync`` inside a worker thread: it owns its loop)."""
    if runner == "run":
        return (await agents.Runner.run(built, prompt)).final_output
    if runner == "run_streamed":
        result = agents.Runner.run_streamed(built, prompt)
        async for _event in result.stream_events():
            pass
        return result.final_output
    import asyncio

    return (await asyncio.to_thread(agents.Runner.run_sync, built, prompt)).final_output


@pytest.mark.parametrize("runner", RUNS)
async def test_tool_loop(emulator: StartEmulator, provider: str, thinking: bool, runner: str) -> None:
    up = tool_loop_upstream(emulator, provider, thinking)
    output = await run(runner, agent(up, tools=[get_weather]), PROMPT)
    assert output == FINAL_TEXT
    check_tool_loop(up)


@pytest.mark.parametrize("runner", RUNS)
async def test_output_type(emulator: StartEmulator, provider: str, thinking: bool, runner: str) -> None:
    up = structured_upstream(emulator, provider, thinking)
    output = await run(runner, agent(up, output_type=Forecast), STRUCTURED_PROMPT)
    check_forecast(output)
    check_structured(up)
