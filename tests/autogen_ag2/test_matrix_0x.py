"""The third-party client matrix for ag2 0.x (issue 12): a ``ConversableAgent`` tool loop (two tool calls, then text)
through ``config_list()`` on Anthropic and Gemini routes, with and without reasoning, streamed and not, sync
(``initiate_chat``) and async (``a_initiate_chat``).

ag2 resends an assistant turn as ``{role, content, tool_calls}``: Claude's thinking blocks are not kept, so with
reasoning on a Claude route polyroute must supply them. Runs in the ag2 0.x environment (``tests/autogen_ag2/run.sh``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

autogen = pytest.importorskip(
    "autogen.oai", reason="needs ag2 0.x (its own environment: tests/autogen_ag2/run.sh)", exc_type=ImportError
)

from autogen import ConversableAgent  # noqa: E402

from polyroute import Router  # noqa: E402
from polyroute_autogen import config_list  # noqa: E402
from tests.emulators import Emulator, prompted  # noqa: E402
from tests.emulators.server import Handler  # noqa: E402

Start = Callable[[Handler], Emulator]
KEY = "sk-matrix-ag2-0123456789"
PROVIDERS = {"anthropic": ("anthropic", "claude-sonnet-4-5"), "gemini": ("gemini", "gemini-3-flash-preview")}


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def agents(emulator: Start, provider: str, reasoning: bool, stream: bool) -> tuple[Any, Any, prompted.Upstream]:
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
    if stream:
        extra["stream"] = True
    assistant = ConversableAgent(
        "calculator",
        system_message="You are a calculator. Use your tools.",
        llm_config={"config_list": config_list(router, ["m"], **extra), "cache_seed": None},
        human_input_mode="NEVER",
    )
    user = ConversableAgent(
        "user",
        llm_config=False,
        human_input_mode="NEVER",
        is_termination_msg=lambda m: (m.get("content") or "") == prompted.CALC_ANSWER,
    )
    for tool in (add, multiply):
        assistant.register_for_llm(description=tool.__doc__)(tool)
        user.register_for_execution()(tool)
    return assistant, user, upstream


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("reasoning", [False, True], ids=["plain", "reasoning"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_tool_loop(emulator: Start, provider: str, reasoning: bool, stream: bool, mode: str) -> None:
    assistant, user, upstream = agents(emulator, provider, reasoning, stream)
    if mode == "sync":
        result = user.initiate_chat(assistant, message=prompted.CALC_TASK, max_turns=4)
    else:
        result = await user.a_initiate_chat(assistant, message=prompted.CALC_TASK, max_turns=4)
    history = result.chat_history
    assert history[-1]["content"] == prompted.CALC_ANSWER
    outputs = [r["content"] for m in history for r in m.get("tool_responses") or ()]
    assert outputs == ["7", "35"]
    prompted.check_calculator_traffic(upstream, reasoning=reasoning, stream=stream)
