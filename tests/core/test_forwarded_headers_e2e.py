"""Caller headers reach the provider they are meant for, through the transport (the pure rules are in
test_forwarded_headers.py); the deployment's own key is the one sent, and a missing key names its variable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from polyroute import Router
from tests.emulators import Emulator, openai_format
from tests.emulators import anthropic_format as claude
from tests.emulators.gemini_format import GeminiEmulator, response
from tests.emulators.server import Handler

Start = Callable[[Handler], Emulator]
KEY = "test-key-0123456789"
HI: Any = [{"role": "user", "content": "Hi"}]


def _client(deployment: dict[str, Any], asynchronous: bool = False) -> Any:
    router = Router({"models": [{"name": "m", "deployments": [deployment]}], "retry": {"backoff": 0}})
    return router.async_openai_client() if asynchronous else router.openai_client()


def test_extra_headers_reach_anthropic_and_the_key_is_the_deployments(emulator: Start) -> None:
    upstream = emulator(claude.scripted(["hello"]))
    client = _client({"provider": "anthropic", "model": "claude-sonnet-4-5", "api_base": upstream.url, "api_key": KEY})
    client.chat.completions.create(
        model="m",
        messages=HI,
        extra_headers={
            "anthropic-beta": "context-1m-2025-08-07",
            "x-trace-id": "abc",
            "x-goog-user-project": "not-for-claude",
            "x-api-key": "caller-key-must-not-pass",
            "openai-organization": "org-x",
        },
    )
    headers = upstream.requests[0].headers
    assert headers["anthropic-beta"] == "context-1m-2025-08-07"
    assert headers["x-trace-id"] == "abc"
    assert headers["x-api-key"] == KEY
    assert "x-goog-user-project" not in headers
    assert "openai-organization" not in headers
    assert not any(name.startswith("x-stainless") for name in headers)


async def test_extra_headers_reach_gemini_async(emulator: Start) -> None:
    gemini = GeminiEmulator(response("hi"))
    upstream = emulator(gemini)
    client = _client(
        {"provider": "gemini", "model": "gemini-2.5-flash", "api_base": upstream.url, "api_key": KEY}, True
    )
    await client.chat.completions.create(
        model="m", messages=HI, extra_headers={"x-goog-user-project": "p1", "anthropic-beta": "nope"}
    )
    headers = upstream.requests[0].headers
    assert headers["x-goog-user-project"] == "p1"
    assert "anthropic-beta" not in headers
    assert headers["x-goog-api-key"] == KEY


def test_openai_organization_reaches_openai(emulator: Start) -> None:
    upstream = emulator(openai_format.handler("ok"))
    client = _client({"provider": "openai", "model": "gpt-x", "api_base": upstream.url + "/v1", "api_key": KEY})
    client.chat.completions.create(model="m", messages=HI, extra_headers={"OpenAI-Organization": "org-1"})
    headers = upstream.requests[0].headers
    assert headers["openai-organization"] == "org-1"
    assert headers["authorization"] == f"Bearer {KEY}"


def test_a_missing_key_names_the_deployments_variable(emulator: Start) -> None:
    upstream = emulator(claude.scripted(["never"]))
    client = _client(
        {"provider": "anthropic", "model": "claude-sonnet-4-5", "api_base": upstream.url, "api_key_env": "MY_KEY"}
    )
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model="m", messages=HI)
    assert "MY_KEY" in str(info.value) and "ANTHROPIC_API_KEY" not in str(info.value)
    assert upstream.requests == []
