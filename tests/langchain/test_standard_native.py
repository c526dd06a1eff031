"""LangChain's standard integration suite for ChatPolyroute against an Anthropic-format and a Gemini-format upstream.

``test_standard.py`` runs the suite over an OpenAI-format upstream; here the same scripted model
(``tests/langchain/scripted.py``) answers behind the native wire formats (``tests/emulators/prompted.py``), so
every translation polyroute does on those routes (messages, tools, forced tools, structured output, streams, usage,
stop sequences) meets the suite, and the emulators refuse what the real APIs refuse.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import pytest
from langchain_core.messages import AIMessage
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_polyroute import ChatPolyroute
from tests.emulators import Emulator, prompted
from tests.langchain.test_standard import _invoke

UsageDetail = Literal["audio_input", "audio_output", "reasoning_output", "cache_read_input", "cache_creation_input"]

KEY = "sk-emulator-not-a-real-key"
LANGCHAIN_TESTS_SIGNATURE = (
    "ErUBCkYICBgCIkDCTQUXPc3O7nHXd302Zercaz8WrrpddpOqHITxBih5zeFPoJkwKBvkvZ8ID1aAfJftji6+ZI5gBYDo7XmNBIkzEgzVDHKopedAn/sc"
    "G80aDFDXVZrDOWgla7lEBiIwLq5kfFjQjvF/CyuL8J5V7dRwsJN5gQIXaMB6xXTs6T+2Zp0VdiyiMb/hcdrHt+7aKh0z2E1UnjiOCoTlofNFHzOnKk0q"
    "PIoPmfGgpPgGNRgC"
)
"""The signature of the thinking block in ``test_anthropic_inputs``' history, which Anthropic issued (the suite runs
against the real API), so the emulator accepts it as its own."""
_shared: dict[str, Emulator] = {}


def _url(provider: str) -> str:
    """One upstream per format, shared by the session (the suite builds models from properties, not fixtures)."""
    if provider not in _shared:
        brain = prompted.follow_prompt
        upstream: prompted.Upstream
        if provider == "anthropic":
            upstream = prompted.AnthropicUpstream(brain, signed_elsewhere=(LANGCHAIN_TESTS_SIGNATURE,))
        else:
            upstream = prompted.GeminiUpstream(brain)
        _shared[provider] = Emulator(upstream).start()
    return _shared[provider].url


@pytest.fixture(autouse=True, scope="module")
def _stop_shared() -> Iterator[None]:
    yield
    while _shared:
        _shared.popitem()[1].stop()


def _config(provider: str, models: tuple[str, str]) -> dict[str, Any]:
    def route(model: str) -> dict[str, Any]:
        return {
            "name": model,
            "deployments": [{"provider": provider, "model": model, "api_base": _url(provider), "api_key": KEY}],
        }

    return {"models": [route(m) for m in models]}


class _NativeIntegration(ChatModelIntegrationTests):
    provider: str
    models: tuple[str, str]

    @property
    def chat_model_class(self) -> type[ChatPolyroute]:
        return ChatPolyroute

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": self.models[0], "config": _config(self.provider, self.models)}

    @property
    def model_override_value(self) -> str:
        return self.models[1]

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_anthropic_inputs(self) -> bool:
        return True

    def invoke_with_cache_read_input(self, *, stream: bool = False) -> AIMessage:
        return _invoke(ChatPolyroute(**self.chat_model_params), "A long shared prefix. " * 50, stream)


class TestChatPolyrouteAnthropicIntegration(_NativeIntegration):
    provider = "anthropic"
    models = ("claude-sonnet-4-5", "claude-haiku-4-5")

    @property
    def supported_usage_metadata_details(self) -> dict[Literal["invoke", "stream"], list[UsageDetail]]:
        return {
            "invoke": ["cache_read_input", "cache_creation_input"],
            "stream": ["cache_read_input", "cache_creation_input"],
        }

    def invoke_with_cache_creation_input(self, *, stream: bool = False) -> AIMessage:
        return _invoke(ChatPolyroute(**self.chat_model_params), "A long prefix to cache. " * 50, stream)


class TestChatPolyrouteGeminiIntegration(_NativeIntegration):
    provider = "gemini"
    models = ("gemini-3-flash-preview", "gemini-3-pro-preview")

    @property
    def supported_usage_metadata_details(self) -> dict[Literal["invoke", "stream"], list[UsageDetail]]:
        return {"invoke": ["reasoning_output", "cache_read_input"], "stream": ["reasoning_output", "cache_read_input"]}

    def invoke_with_reasoning_output(self, *, stream: bool = False) -> AIMessage:
        model = ChatPolyroute(**{**self.chat_model_params, "reasoning_effort": "high"})
        return _invoke(model, "Think hard: what is 2 + 2?", stream)


class TestChatPolyrouteAnthropicThinkingIntegration(TestChatPolyrouteAnthropicIntegration):
    """The suite again with extended thinking on: its fabricated histories carry no thinking blocks.

    With thinking, Claude takes only ``auto`` and ``none`` tool choices and has no JSON mode (issue 12 lets polyroute
    refuse those with its own 400), so the suite does not force tools or ask for JSON mode here; structured output
    must still work (through the schema). ``test_unicode_tool_call_integration`` forces ``tool_choice="any"`` in any
    case (the suite forbids overriding it): it passes if polyroute answers a forced tool with ``auto`` and a check.
    """

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {**super().chat_model_params, "reasoning_effort": "low"}

    @property
    def has_tool_choice(self) -> bool:
        return False

    @property
    def supports_json_mode(self) -> bool:
        return False


class TestChatPolyrouteGeminiThinkingIntegration(TestChatPolyrouteGeminiIntegration):
    """The suite again with thought summaries on."""

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {**super().chat_model_params, "reasoning_effort": "low"}
