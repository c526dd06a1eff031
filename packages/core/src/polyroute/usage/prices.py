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
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

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
"""(provider id, model) → what genai-prices knows of it (:class:`_Known`), or None when it does not know it."""
_lock = threading.Lock()
_available: bool | None = None


def counts(usage: Usage) -> tuple[int, int, int, int, int]:
    """``(input, output, cached, cache_write, reasoning)`` tokens of an OpenAI usage (input includes the cache):
    Chat Completions' and embeddings' (``prompt_tokens``), the Responses API's (``input_tokens``), or Anthropic's
    Messages answer (``input_tokens`` without the cache reads and writes it counts apart).
    """
    if "prompt_tokens" not in usage and "input_tokens" in usage:
        raw = cast("dict[str, Any]", usage)
        if "cache_read_input_tokens" in raw or "cache_creation_input_tokens" in raw:
            read, written = raw.get("cache_read_input_tokens") or 0, raw.get("cache_creation_input_tokens") or 0
            return ((raw.get("input_tokens") or 0) + read + written, raw.get("output_tokens") or 0, read, written, 0)
        inputs: dict[str, Any] = raw.get("input_tokens_details") or {}
        outputs: dict[str, Any] = raw.get("output_tokens_details") or {}
        return (
            raw.get("input_tokens") or 0,
            raw.get("output_tokens") or 0,
            inputs.get("cached_tokens") or 0,
            inputs.get("cache_creation_tokens") or inputs.get("cache_write_tokens") or 0,
            outputs.get("reasoning_tokens") or 0,
        )
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
    prompt, completion, cached, cache_write, reasoning = counts(usage)
    if target.deployment.prices is None:
        provider_id = GENAI_PROVIDERS.get(target.provider)
        if provider_id is not None:
            exact = genai_cost(provider_id, target.deployment.model, prompt, completion, cached, cache_write, reasoning)
            if exact is not None:
                return exact
    return target.info.cost(prompt, completion, cached, cache_write)


def is_priced(target: Target) -> bool:
    """Whether any source prices ``target``'s calls (its ``prices``, genai-prices, the catalog)."""
    if target.deployment.prices is not None or target.info.input_price is not None:
        return True
    provider_id = GENAI_PROVIDERS.get(target.provider)
    return provider_id is not None and _known(provider_id, target.deployment.model) is not None


Rate = tuple[float, tuple[tuple[int, float], ...]]
"""USD per million (base, ((tier start, price), …)): a tier's price applies to all tokens once the prompt passes
its start (genai-prices' "cliff" tiers)."""

_TOKEN_PRICES = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "output_reasoning_mtok")
_UNUSED_PRICES = frozenset({
    "cache_write_1h_mtok",  # polyroute reports one cache-write count, priced as the default (5-minute) write
    "input_audio_mtok", "output_audio_mtok", "cache_audio_read_mtok", "input_image_mtok", "output_image_mtok",
    "cache_image_read_mtok", "input_video_mtok", "output_video_mtok", "output_citation_mtok", "audio_hours",
    "input_audio_hours", "input_document_kpages", "input_annotated_document_kpages", "web_searches_kcount",
    "storage_searches_kcount",
})  # fmt: skip
"""Prices for counts polyroute never reports (0 of them): they add nothing."""
_RATES_TTL = 3600.0
"""Prices can change on a date (genai-prices' constraints): the rates of a model are looked up again hourly."""


@dataclass(frozen=True, slots=True)
class _Rates:
    input: Rate
    output: Rate
    cache_read: Rate | None
    cache_write: Rate | None
    reasoning: Rate | None
    per_request: float
    """USD per call (``requests_kcount`` / 1000)."""


@dataclass(slots=True)
class _Known:
    provider: Any
    model: Any
    rates: _Rates | None
    """None when the model's prices need genai-prices' own calculation (units polyroute does not map)."""
    until: float


def genai_cost(
    provider_id: str, model: str, prompt: int, completion: int, cached: int, cache_write: int, reasoning: int = 0
) -> float | None:
    """USD from genai-prices' data, or None when it does not know the model (or is not installed).

    Its rates are read once per model (hourly) and applied here: ``calc_price`` costs ≈ 80 µs a call, this ≈ 2 µs.
    Prices it expresses in other units take its own calculation.
    """
    known = _known(provider_id, model)
    if known is None:
        return None
    rates = known.rates
    if rates is None:
        return _slow_cost(known, prompt, completion, cached, cache_write, reasoning)
    uncached = max(prompt - cached - cache_write, 0)
    input_rate = _at(rates.input, prompt)
    total = uncached * input_rate
    total += cached * (_at(rates.cache_read, prompt) if rates.cache_read is not None else input_rate)
    total += cache_write * (_at(rates.cache_write, prompt) if rates.cache_write is not None else input_rate)
    output_rate = _at(rates.output, prompt)
    if rates.reasoning is not None and reasoning:
        total += reasoning * _at(rates.reasoning, prompt) + max(completion - reasoning, 0) * output_rate
    else:
        total += completion * output_rate
    return round(total / 1_000_000 + rates.per_request, 10)


def _at(rate: Rate, prompt: int) -> float:
    price, tiers = rate
    for start, tier_price in tiers:
        if prompt > start:
            price = tier_price
    return price


def _slow_cost(
    known: _Known, prompt: int, completion: int, cached: int, cache_write: int, reasoning: int
) -> float | None:
    from genai_prices import Usage as GenaiUsage  # pyright: ignore[reportMissingImports]

    counts: dict[str, int] = {
        "input_tokens": prompt,
        "output_tokens": completion,
        "cache_read_tokens": cached,
        "cache_write_tokens": cache_write,
    }
    if reasoning:
        counts["output_reasoning_tokens"] = reasoning
    try:
        price: Any = known.model.calc_price(GenaiUsage(**counts), known.provider)
    except Exception as exc:  # a price it cannot compute for these counts: the catalog's is next
        logger.debug("genai-prices could not price %s: %s", known.model, exc)
        return None
    return round(float(price.total_price), 10)


def _known(provider_id: str, model: str) -> _Known | None:
    key = (provider_id, model)
    found = _models.get(key, _MISSING)
    if isinstance(found, _Known) and found.until > time.monotonic():
        return found
    if found is None:
        return None
    found = None
    snapshot = _snapshot()
    if snapshot is not None:
        for ref in (model, model.rsplit("/", 1)[-1]):
            try:
                provider, info = snapshot.find_provider_model(ref, None, provider_id, None)
            except LookupError:
                continue
            found = _Known(provider, info, _rates(info), time.monotonic() + _RATES_TTL)
            break
    with _lock:
        if len(_models) >= 1024:  # callers may send any model name
            _models.clear()
        _models[key] = found
    return found


def _rates(info: Any) -> _Rates | None:
    declared = cast("dict[str, Any]", vars(info.get_prices(datetime.now(timezone.utc))))
    prices = {name: value for name, value in declared.items() if value is not None}
    unknown = set(prices) - set(_TOKEN_PRICES) - _UNUSED_PRICES - {"requests_kcount"}
    if unknown or "input_mtok" not in prices or "output_mtok" not in prices:
        return None
    rate: dict[str, Rate | None] = {name: _rate(prices.get(name)) for name in _TOKEN_PRICES}
    per_request = prices.get("requests_kcount")
    if per_request is not None and not isinstance(per_request, Decimal):
        return None
    input_rate, output_rate = rate["input_mtok"], rate["output_mtok"]
    if input_rate is None or output_rate is None:
        return None
    return _Rates(
        input_rate,
        output_rate,
        rate["cache_read_mtok"],
        rate["cache_write_mtok"],
        rate["output_reasoning_mtok"],
        float(per_request) / 1000 if per_request is not None else 0.0,
    )


def _rate(value: Any) -> Rate | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return float(value), ()
    return float(value.base), tuple((int(tier.start), float(tier.price)) for tier in value.tiers)


_warming: threading.Thread | None = None


def warm() -> None:
    """Load genai-prices' data in a background thread (once per process), so the first priced call does not wait
    ≈ 0.5 s for it; nothing when it is not installed.
    """
    global _warming
    if _warming is not None or _available is not None:
        return
    with _lock:
        if _warming is None:
            _warming = threading.Thread(target=_snapshot, name="polyroute-prices", daemon=True)
            _warming.start()


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
