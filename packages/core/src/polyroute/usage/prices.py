"""What a call cost, in USD, from its OpenAI-shaped usage.

Three sources, most specific first: the deployment's own ``prices`` (config), then ``genai-prices`` (the pydantic
team's price data: tiers by prompt length, cache reads and writes; installed with ``polyroute[prices]``), then the
models.dev catalog (:mod:`polyroute.catalog`). Streams and non-streams go through the same function with the same
counts, so they cost the same. ``genai-prices`` is imported on the first price asked of it (≈ 0.5 s with its
data), never by ``import polyroute``.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polyroute.providers._base import Target
    from polyroute.types.openai import Usage

logger = logging.getLogger("polyroute")

GENAI_PROVIDERS: dict[str, str] = {
    "openai": "openai",
    "azure": "azure",
    "anthropic": "anthropic",
    "gemini": "google",
    "vertex": "google",
    "bedrock": "aws",
    "deepseek": "deepseek",
    "mistral": "mistral",
    "groq": "groq",
    "together": "together",
    "fireworks": "fireworks",
}
"""polyroute provider key → genai-prices provider id (providers it does not price are left to the catalog)."""

_MISSING = object()
_models: dict[tuple[str, str], Any] = {}
"""(provider id, model) → genai-prices' (provider, model) pair, or None when it does not know the model."""
_lock = threading.Lock()
_available: bool | None = None


def counts(usage: Usage) -> tuple[int, int, int, int, int]:
    """``(input, output, cached, cache_write, reasoning)`` tokens of an OpenAI usage (input includes the cache)."""
    prompt = usage.get("prompt_tokens", 0) or 0
    completion = usage.get("completion_tokens", 0) or 0
    details = usage.get("prompt_tokens_details") or {}
    out_details = usage.get("completion_tokens_details") or {}
    return (
        prompt,
        completion,
        details.get("cached_tokens", 0) or 0,
        # polyroute's name for it (Anthropic's cache_creation_input_tokens); OpenAI now reports cache_write_tokens
        details.get("cache_creation_tokens", 0) or details.get("cache_write_tokens", 0) or 0,
        out_details.get("reasoning_tokens", 0) or 0,
    )


def cost(target: Target, usage: Usage) -> float | None:
    """USD for ``usage`` on ``target``, or None when no source prices its model."""
    prompt, completion, cached, cache_write, _ = counts(usage)
    if target.deployment.prices is None:
        exact = _genai_cost(target, prompt, completion, cached, cache_write)
        if exact is not None:
            return exact
    return target.info.cost(prompt, completion, cached, cache_write)


def _genai_cost(target: Target, prompt: int, completion: int, cached: int, cache_write: int) -> float | None:
    provider_id = GENAI_PROVIDERS.get(target.provider)
    if provider_id is None:
        return None
    found = _genai_model(provider_id, target.deployment.model)
    if found is None:
        return None
    provider, model = found
    from genai_prices import Usage as GenaiUsage  # pyright: ignore[reportMissingImports]

    usage: Any = GenaiUsage(
        input_tokens=prompt, output_tokens=completion, cache_read_tokens=cached, cache_write_tokens=cache_write
    )
    try:
        price: Any = model.calc_price(usage, provider)
    except Exception as exc:  # a price it cannot compute for these counts: the catalog's is next
        logger.debug("genai-prices could not price %s: %s", target.label, exc)
        return None
    return round(float(price.total_price), 10)


def _genai_model(provider_id: str, model: str) -> Any:
    key = (provider_id, model)
    found = _models.get(key, _MISSING)
    if found is not _MISSING:
        return found
    found = None
    snapshot = _snapshot()
    if snapshot is not None:
        for ref in (model, model.rsplit("/", 1)[-1]):
            try:
                found = snapshot.find_provider_model(ref, None, provider_id, None)
                break
            except LookupError:
                continue
    with _lock:
        if len(_models) >= 1024:  # callers may send any model name
            _models.clear()
        _models[key] = found
    return found


def _snapshot() -> Any:
    global _available
    if _available is False:
        return None
    try:
        from genai_prices import data_snapshot  # pyright: ignore[reportMissingImports]
    except ImportError:
        _available = False
        return None
    _available = True
    return data_snapshot.get_snapshot()  # pyright: ignore[reportUnknownMemberType]
