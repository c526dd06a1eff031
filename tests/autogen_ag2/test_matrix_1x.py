"""The third-party client matrix for ag2 1.x (issue 12): an ``Agent`` tool loop (two tool calls, then text) through
``openai_config()`` on Anthropic and Gemini routes, with and without reasoning, streamed and not (ag2 1.x agents are
async).

Runs in the ag2 1.x environment (``tests/autogen_ag2/run.sh``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

ag2 = pytest.importorskip(
    "ag2.config", reason="needs ag2 1.x (its own environment: tests/autogen_ag2/run.sh)", exc_type=ImportError
)

from ag2 import Agent, tool  # noqa: E402

from polyroute import Router  # noqa: E402
from polyroute_autogen import openai_config  # noqa: E402
from tests.emulators import Emulator, prompted  # noqa: E402
from tests.emulators.server import Handler  # noqa: E402

Start = Callable[[Handler], Emulator]
KEY = "sk-matrix-ag2-0123456789"
PROVIDERS = {"anthropic": ("anthropic", "claude-sonnet-4-5"), "gemini": ("gemini", "gemini-3-flash-preview")}


@tool
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
async def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("reasoning", [False, True], ids=["plain", "reasoning"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_tool_loop(emulator: Start, provider: str, reasoning: bool, stream: bool) -> None:
    upstream = (
        prompted.AnthropicUpstream(prompted.calculator)
        if provider == "anthropic"
        else prompted.GeminiUpstream(prompted.calculator)
    )
    kind, model = PROVIDERS[provider]
    emu = emulator(upstream)
    router = Router(
        {
            "models": [
                {"name": "m", "deployments": [{"provider": kind, "model": model, "api_base": emu.url, "api_key": KEY}]}
            ]
        }
    )
    extra: dict[str, Any] = {"reasoning_effort": "high"} if reasoning else {}
    agent = Agent(
        "calculator",
        "You are a calculator.",
        config=openai_config(router, "m", streaming=stream, **extra),
        tools=[add, multiply],
    )
    reply = await agent.ask(prompted.CALC_TASK)
    assert reply.body == prompted.CALC_ANSWER
    prompted.check_calculator_traffic(upstream, reasoning=reasoning, stream=stream)
