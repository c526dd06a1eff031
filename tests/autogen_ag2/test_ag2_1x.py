"""ag2 1.x: ``openai_config()`` gives an ``OpenAIConfig`` whose calls go through the router in-process.

ag2 1.x pins openai 3.x beside its own dependency set: these tests run in their own environment
(``tests/autogen_ag2/run.sh``) and are skipped elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

ag2 = pytest.importorskip(
    "ag2.config", reason="needs ag2 1.x (its own environment: tests/autogen_ag2/run.sh)", exc_type=ImportError
)

from ag2 import Agent, tool  # noqa: E402

from polyroute import Router  # noqa: E402
from polyroute_autogen import openai_config  # noqa: E402
from tests.autogen import scripted  # noqa: E402
from tests.autogen.conftest import router_config  # noqa: E402
from tests.emulators import Emulator  # noqa: E402

pytestmark = pytest.mark.usefixtures("provider_key")


@tool
async def get_weather(city: str) -> str:
    """The weather forecast for a city."""
    return f"{city}: sunny, 21 C"


async def test_agent_ask_through_the_router() -> None:
    router = Router({"models": [{"name": "smart", "deployments": [{"provider": "mock", "model": "mock-1",
                                                                   "response": "hello from ag2 1.x"}]}]})  # fmt: skip
    agent = Agent("assistant", "Be brief.", config=openai_config(router, "smart"))
    reply = await agent.ask("Say hello.")
    assert reply.body == "hello from ag2 1.x"


async def test_openai_config_attributes_calls_in_usage() -> None:
    router = Router({"models": [{"name": "smart", "deployments": [{"provider": "mock", "model": "mock-1"}]}]})
    agent = Agent("assistant", "Be brief.", config=openai_config(router, "smart", tags=["ag2"], user="ops"))
    await agent.ask("Say hello.")
    assert router.usage()["tag"]["ag2"]["calls"] == router.usage()["user"]["ops"]["calls"] == 1


@pytest.mark.parametrize("streaming", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("upstream", ["openai", "anthropic"])
async def test_agent_tool_loop(emulator: Callable[..., Emulator], upstream: str, streaming: bool) -> None:
    if upstream == "openai":
        emu = emulator(scripted.openai_handler)
        router = Router(router_config(emu))
    else:
        emu = emulator(scripted.anthropic_handler())
        router = Router(router_config(emu, "anthropic", "claude-sonnet-4-5"))
    agent = Agent(
        "assistant", "Use your tools.", config=openai_config(router, "smart", streaming=streaming), tools=[get_weather]
    )
    reply = await agent.ask("What is the weather in Paris?")
    assert reply.body == scripted.FINAL_TEXT
    assert len(emu.requests) == 2  # the tool call, then the answer with the tool result


def test_openai_config_fields() -> None:
    router = Router({"models": [{"name": "smart", "deployments": [{"provider": "mock", "model": "mock-1"}]}]})
    config = openai_config(router, "smart", temperature=0.2)
    assert config.model == "smart" and config.temperature == 0.2
    assert config.http_client is not None and config.max_retries == 0
