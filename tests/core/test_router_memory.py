"""Direct ``provider/model`` routes and catalog rows are bounded: a caller sending any name cannot grow the router."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from polyroute import Router, catalog
from polyroute import router as router_module


def test_direct_routes_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(router_module, "MAX_DIRECT_ROUTES", 8)
    router = Router()
    first = router.route("openai/name-0")
    for i in range(1, 50):
        router.route(f"openai/name-{i}")
    assert len(router._direct) == 8  # pyright: ignore[reportPrivateUsage]
    assert len(router._states) == 8  # pyright: ignore[reportPrivateUsage]
    assert len(router._shared) == 8  # pyright: ignore[reportPrivateUsage]
    again = router.route("openai/name-0")  # dropped, built again on demand
    assert again is not first and again.targets[0].model == "name-0"
    assert router.state(first.targets[0]) is not None  # a target of a dropped route still has a state to report to


def test_memory_stays_flat_over_many_names() -> None:
    router = Router()
    tracemalloc.start()
    try:
        for i in range(router_module.MAX_DIRECT_ROUTES + 200):
            router.route(f"openai/warm-{i}")
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(3000):
            router.route(f"openai/unknown-model-{i}")
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 300_000, f"{grown} bytes kept for 3000 more names"  # unbounded: ~2.4 kB per name


def test_catalog_lookups_are_bounded() -> None:
    info = catalog._lookup.cache_info()  # pyright: ignore[reportPrivateUsage]
    assert info.maxsize == catalog.LOOKUP_CACHE_SIZE


def test_configured_state_survives_dropped_direct_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(router_module, "MAX_DIRECT_ROUTES", 2)
    router = Router({"models": [{"name": "m", "deployments": [{"provider": "openai", "model": "gpt-4o"}]}]})
    (configured,) = router.route("m").targets
    (direct,) = router.route("openai/gpt-4o").targets
    assert router.state(direct) is router.state(configured)
    for i in range(5):
        router.route(f"openai/other-{i}")
    assert router.state(configured) is router.state(router.route("openai/gpt-4o").targets[0])
