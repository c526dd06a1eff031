"""Prices: genai-prices' rates applied by polyroute give genai-prices' own figure, for every model it prices at the
providers polyroute maps, tiers and cache included; a deployment's ``prices`` come first, the catalog last."""

from __future__ import annotations

import random
from typing import Any

import pytest

pytest.importorskip("genai_prices", reason="the prices extra (genai-prices) is not installed")

from genai_prices import Usage, data_snapshot

from polyroute import Router
from polyroute.usage import prices

PROMPTS = (10, 1000, 128_000, 199_999, 200_000, 200_001, 272_001, 1_500_000)
"""Around the tier starts genai-prices uses (Anthropic and Gemini at 200k, OpenAI at 272k)."""


def _models() -> list[tuple[str, str]]:
    snapshot = data_snapshot.get_snapshot()
    wanted = set(prices.GENAI_PROVIDERS.values())
    return [(p.id, m.id) for p in snapshot.providers if p.id in wanted for m in p.models]


def test_fast_rates_equal_genai_prices_own_calculation() -> None:
    rng = random.Random(16)
    fast = checked = 0
    mismatches: list[Any] = []
    for provider_id, model in _models():
        known = prices._known(provider_id, model)  # pyright: ignore[reportPrivateUsage]
        if known is None:
            continue  # ids genai-prices lists but cannot find back (regional Bedrock aliases)
        fast += known.rates is not None
        for prompt in PROMPTS:
            cached = rng.randint(0, prompt // 2)
            write = rng.randint(0, (prompt - cached) // 2)
            out = rng.randint(0, 5000)
            reasoning = rng.choice([0, rng.randint(0, out)])
            ours = prices.genai_cost(provider_id, model, prompt, out, cached, write, reasoning)
            counts = {
                "input_tokens": prompt,
                "output_tokens": out,
                "cache_read_tokens": cached,
                "cache_write_tokens": write,
            }
            if reasoning:
                counts["output_reasoning_tokens"] = reasoning
            try:
                theirs = float(known.model.calc_price(Usage(**counts), known.provider).total_price)
            except Exception:
                theirs = None
            checked += 1
            if (ours is None) != (theirs is None) or (
                ours is not None and theirs is not None and ours != pytest.approx(theirs, rel=1e-9, abs=1e-10)
            ):
                mismatches.append((provider_id, model, counts, ours, theirs))
    assert mismatches == []
    assert checked > 2000 and fast > 300  # most models take the fast path


def test_tiers_apply_to_the_whole_call_past_their_start() -> None:
    below = prices.genai_cost("anthropic", "claude-sonnet-4-5", 200_000, 1000, 0, 0)
    above = prices.genai_cost("anthropic", "claude-sonnet-4-5", 200_001, 1000, 0, 0)
    assert below == pytest.approx((200_000 * 3 + 1000 * 15) / 1e6)
    assert above == pytest.approx((200_001 * 6 + 1000 * 22.5) / 1e6)


def test_unknown_models_and_providers_fall_back_to_the_catalog() -> None:
    assert prices.genai_cost("openai", "no-such-model-anywhere", 10, 10, 0, 0) is None
    router = Router({"models": [{"name": "m", "deployments": [{"provider": "mock", "model": "mock-1"}]}]})
    target = router.route("m").targets[0]
    usage: Any = {"prompt_tokens": 1000, "completion_tokens": 100}
    assert prices.cost(target, usage) == target.info.cost(1000, 100)
    assert prices.cost(target, usage) is not None


def test_counts_read_chat_and_responses_usage_alike() -> None:
    chat: Any = {
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 30},
        "completion_tokens_details": {"reasoning_tokens": 5},
    }
    responses: Any = {
        "input_tokens": 100,
        "output_tokens": 20,
        "input_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 30},
        "output_tokens_details": {"reasoning_tokens": 5},
    }
    assert prices.counts(chat) == prices.counts(responses) == (100, 20, 60, 30, 5)
