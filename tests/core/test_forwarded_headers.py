"""Caller headers that reach the provider: what the caller added, provider-prefixed ones only to their provider,
never the SDK's own headers or credentials. And deployment ``headers:`` reach the provider."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest

from polyroute import Router
from polyroute import router as router_module
from polyroute.providers import adapter_for
from polyroute.providers._base import Target, forwarded_headers
from tests.core.routing_helpers import call, dep, make_router, ok
from tests.emulators import Emulator

Start = Callable[..., Emulator]

CALLER_HEADERS = {
    "X-Trace-Id": "trace-123",
    "anthropic-beta": "prompt-caching-2024-07-31",
    "anthropic-version": "2023-06-01",
    "x-goog-user-project": "my-project",
    "OpenAI-Beta": "assistants=v2",
    "x-api-key": "caller-secret-key-0001",
    "X-Session-Token": "caller-token-0002",
    "Cookie": "sid=caller-cookie",
    "Idempotency-Key": "caller-idempotency",
}


def sdk_headers(**client: Any) -> dict[str, str]:
    """The headers the openai SDK really sends for a chat completion with ``CALLER_HEADERS`` as ``extra_headers``."""
    lib: Any = router_module._client_library(None)  # pyright: ignore[reportPrivateUsage]
    seen: dict[str, str] = {}

    def record(request: Any) -> Any:
        seen.update(request.headers.items())
        return lib.Response(
            200, json={"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": []}
        )

    sdk = openai.OpenAI(
        api_key="sk-caller-key-to-polyroute-0003",
        base_url="http://polyroute.local/v1",
        http_client=lib.Client(transport=lib.MockTransport(record)),
        **client,
    )
    sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], extra_headers=CALLER_HEADERS)
    return seen


def target(provider: str) -> Target:
    router = Router(
        {
            "models": [
                {"name": "m", "deployments": [{"provider": provider, "model": "x", "api_base": "http://127.0.0.1:9"}]}
            ]
        }
    )
    return router.route("m").targets[0]


@pytest.fixture(scope="module")
def incoming() -> dict[str, str]:
    headers = sdk_headers(organization="org-caller", project="proj-caller")
    assert any(name.startswith("x-stainless-") for name in headers)  # the SDK's own headers are there to drop
    assert headers["authorization"] == "Bearer sk-caller-key-to-polyroute-0003"
    return headers


def test_sdk_and_http_headers_are_not_forwarded(incoming: dict[str, str]) -> None:
    for provider in ("openai", "anthropic", "gemini", "groq", "azure"):
        out = forwarded_headers(incoming, target(provider))
        for name in out:
            assert not name.startswith(("x-stainless-", "content-", "accept")), name
            assert name not in ("authorization", "user-agent", "host", "connection", "idempotency-key", "cookie")
        assert out["x-trace-id"] == "trace-123"


def test_credentials_never_forwarded(incoming: dict[str, str]) -> None:
    for provider in ("openai", "anthropic", "gemini", "mistral"):
        out = forwarded_headers(incoming, target(provider))
        assert "x-api-key" not in out and "x-session-token" not in out and "authorization" not in out
        assert not any("caller-" in value and "secret" in value for value in out.values())
    assert forwarded_headers({"X-Goog-Api-Key": "AIza-caller"}, target("gemini")) == {}
    assert forwarded_headers({"Proxy-Authorization": "Basic x"}, target("openai")) == {}


def test_provider_prefixed_headers_only_to_their_provider(incoming: dict[str, str]) -> None:
    anthropic = forwarded_headers(incoming, target("anthropic"))
    assert anthropic["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert "anthropic-version" not in anthropic  # the adapter's own (the body is translated for it)
    assert not any(n.startswith(("x-goog-", "openai-")) for n in anthropic)

    gemini = forwarded_headers(incoming, target("gemini"))
    assert gemini["x-goog-user-project"] == "my-project"
    assert not any(n.startswith(("anthropic-", "openai-")) for n in gemini)

    for provider in ("openai", "azure"):
        out = forwarded_headers(incoming, target(provider))
        assert out["openai-organization"] == "org-caller"
        assert out["openai-project"] == "proj-caller"
        assert out["openai-beta"] == "assistants=v2"
        assert not any(n.startswith(("anthropic-", "x-goog-")) for n in out)

    for provider in ("groq", "deepseek", "mistral", "ollama", "openai-compatible", "mock"):
        out = forwarded_headers(incoming, target(provider))
        assert not any(n.startswith(("anthropic-", "x-goog-", "openai-")) for n in out), provider
        assert out == {"x-trace-id": "trace-123"}


def test_names_are_matched_case_insensitively() -> None:
    out = forwarded_headers(
        {"ANTHROPIC-BETA": "b", "X-Stainless-Lang": "python", "AUTHORIZATION": "k"}, target("anthropic")
    )
    assert out == {"anthropic-beta": "b"}


DEPLOYMENT_HEADERS = {"X-Tenant": "tenant-7", "anthropic-beta": "from-deployment"}


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "azure", "mistral"])
def test_deployment_headers_are_in_every_native_request(provider: str) -> None:
    router = Router(
        {
            "models": [
                {
                    "name": "m",
                    "deployments": [
                        {
                            "provider": provider,
                            "model": "x",
                            "api_base": "http://127.0.0.1:9",
                            "api_key": "k-0123456789",
                            "headers": DEPLOYMENT_HEADERS,
                        }
                    ],
                }
            ]
        }
    )
    (t,) = router.route("m").targets
    body: Any = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    request = adapter_for(t.spec).build_request(body, t)
    assert request.headers["X-Tenant"] == "tenant-7"
    assert request.headers["anthropic-beta"] == "from-deployment"


def test_deployment_headers_reach_the_provider(emulator: Start) -> None:
    up = emulator(ok("hi"))
    router = make_router(dep(up, "a", headers={"X-Tenant": "tenant-7"}))
    call("sync", router)
    assert up.requests[0].headers["x-tenant"] == "tenant-7"
    assert json.loads(up.requests[0].body)["model"] == "a"
