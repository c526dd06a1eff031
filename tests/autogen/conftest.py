"""Routers over loopback emulators for the AutoGen tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from polyroute import Router
from tests.emulators import Emulator

KEY = "sk-test-autogen-0123456789abcdef"
KEY_ENV = "POLYROUTE_TEST_AUTOGEN_KEY"

MakeRouter = Callable[..., Router]


@pytest.fixture
def provider_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """The upstream key, in the environment only (as a dumped-and-reloaded config expects)."""
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


def router_config(emu: Emulator, provider: str = "openai", model: str = "gpt-up", **deployment: Any) -> dict[str, Any]:
    """A one-route config (``smart``) whose deployment is the emulator; the key comes from ``KEY_ENV``."""
    base = emu.url + ("/v1" if provider == "openai" else "")
    dep = {"provider": provider, "model": model, "api_base": base, "api_key_env": KEY_ENV, **deployment}
    return {"models": [{"name": "smart", "deployments": [dep]}]}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Third-party warnings AutoGen's own code raises, ignored for these tests only.

    autogen-ext's ``create()`` logs ``ParsedChatCompletion.model_dump()``, whose generic ``parsed`` field makes
    pydantic warn ("Expected `none`") on openai 3.x; nothing of ours is involved.
    """
    for item in items:
        if "tests/autogen/" in item.nodeid:
            item.add_marker(pytest.mark.filterwarnings("ignore:(?s)Pydantic serializer warnings.*field_name='parsed'"))
