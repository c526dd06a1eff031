"""OpenAI-compatible rows added for issue 18: OpenRouter, xAI, Cerebras, Perplexity, DeepInfra.

Each is data over the ``openai`` adapter: its base URL and key variable, the quirks its docs state, and catalog
prices from models.dev (under the vendor's models.dev provider id).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from polyroute import Router
from polyroute.errors import UnsupportedFeatureError
from polyroute.providers import PROVIDERS, openai
from polyroute.providers._base import Target

ROWS = {
    "openrouter": ("https://openrouter.ai/api/v1/chat/completions", "anthropic/claude-sonnet-4.5"),
    "xai": ("https://api.x.ai/v1/chat/completions", "grok-4.3"),
    "cerebras": ("https://api.cerebras.ai/v1/chat/completions", "gpt-oss-120b"),
    "perplexity": ("https://api.perplexity.ai/chat/completions", "sonar-pro"),
    "deepinfra": ("https://api.deepinfra.com/v1/openai/chat/completions", "MiniMaxAI/MiniMax-M2"),
}


def target(provider: str, model: str | None = None) -> Target:
    config = {"provider": provider, "model": model or ROWS[provider][1], "api_key": "test-key-0123456789abcdef"}
    return Router({"models": [{"name": "m", "deployments": [config]}]}).route("m").targets[0]


def build(vendor: str, **body: Any) -> tuple[str, dict[str, Any], dict[str, str]]:
    messages = [{"role": "user", "content": "hi"}]
    request = openai.build_request({"model": "m", "messages": messages, **body}, target(vendor))  # type: ignore[typeddict-item]
    return request.url, json.loads(request.content), request.headers


@pytest.mark.parametrize("provider", sorted(ROWS))
def test_row_endpoint_auth_and_catalog_prices(provider: str) -> None:
    url, native, headers = build(provider)
    assert url == ROWS[provider][0]
    assert headers["authorization"] == "Bearer test-key-0123456789abcdef"
    assert native["model"] == ROWS[provider][1]
    info = target(provider).info
    assert info.known and info.input_price is not None and info.output_price is not None
    assert PROVIDERS[provider].key_envs[0] == f"{provider.upper()}_API_KEY"


def test_openrouter_passes_reasoning_and_provider_preferences_through() -> None:
    reasoning = {"effort": "high", "exclude": False}
    preferences = {"order": ["anthropic", "amazon-bedrock"], "allow_fallbacks": False}
    _, native, _ = build("openrouter", reasoning=reasoning, provider=preferences, max_completion_tokens=64)
    assert native["reasoning"] == reasoning and native["provider"] == preferences
    assert native["max_tokens"] == 64 and "max_completion_tokens" not in native


@pytest.mark.parametrize("name", ["frequency_penalty", "presence_penalty", "logit_bias", "service_tier"])
def test_cerebras_refuses_what_its_api_refuses(name: str) -> None:
    value: Any = {"50256": -100} if name == "logit_bias" else ("flex" if name == "service_tier" else 0.5)
    with pytest.raises(UnsupportedFeatureError, match=name):
        build("cerebras", **{name: value})


def test_cerebras_takes_parallel_tool_calls_false_without_sending_it() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    _, native, _ = build("cerebras", tools=[tool], parallel_tool_calls=False)
    assert "parallel_tool_calls" not in native


def test_perplexity_has_no_function_tools_but_takes_its_search_options() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    with pytest.raises(UnsupportedFeatureError, match="tools"):
        build("perplexity", tools=[tool])
    _, native, _ = build("perplexity", search_recency_filter="week", search_domain_filter=["arxiv.org"])
    assert native["search_recency_filter"] == "week" and native["search_domain_filter"] == ["arxiv.org"]
