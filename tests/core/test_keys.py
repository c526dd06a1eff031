"""Keys: read per call, named right when missing, redacted whatever their shape, and a 401 stays a 401."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import openai
import pytest
from pydantic import ValidationError

from polyroute import ConfigError, Deployment, Router
from polyroute.errors import redact
from tests.core.routing_helpers import MODES, call, dep, make_router, ok
from tests.emulators import Emulator, Reply, Request

Start = Callable[..., Emulator]

AZURE_KEY = "3f9a1c0e7b2d4a6f8e1c3b5d7a9f0e2c"  # 32 hex, the shape of an Azure OpenAI key: no prefix to match
MISTRAL_KEY = "Qx7mK2pL9vR4tY8wZ3nB6cD1fG5hJ0sA"  # 32 alphanumerics, the shape of a Mistral key


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


def echo_key_401(request: Request) -> Reply:
    """An upstream that refuses the key and quotes it back, as OpenAI and Azure do."""
    sent = request.headers.get("api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
    return Reply(
        status=401,
        body={"error": {"message": f"Incorrect API key provided: {sent}.", "type": "invalid_request_error"}},
    )


# -- 1. keys resolved per call ------------------------------------------------------------------------------------


def test_key_env_set_after_the_router_was_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MY_KEY", raising=False)
    router = Router(
        {"models": [{"name": "m", "deployments": [{"provider": "anthropic", "model": "c", "api_key_env": "MY_KEY"}]}]}
    )
    (target,) = router.route("m").targets
    error = target.missing_key_error()
    assert error is not None
    assert error.status == 401 and error.code == "missing_api_key" and error.error_type == "authentication_error"
    assert "set MY_KEY" in error.message and "ANTHROPIC_API_KEY" not in error.message
    monkeypatch.setenv("MY_KEY", "sk-ant-set-later-0123456789")
    assert target.api_key == "sk-ant-set-later-0123456789"
    assert target.missing_key_error() is None
    assert "set-later" not in repr(target)
    monkeypatch.setenv("MY_KEY", "sk-ant-rotated-0123456789")
    assert target.api_key == "sk-ant-rotated-0123456789"


def test_direct_route_names_the_provider_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    router = Router()
    (target,) = router.route("gemini/gemini-2.5-flash").targets
    error = target.missing_key_error()
    assert error is not None and "set GEMINI_API_KEY or GOOGLE_API_KEY" in error.message
    monkeypatch.setenv("GOOGLE_API_KEY", "google-key-set-later-0123456789")
    assert target.missing_key_error() is None
    assert Router().route("ollama/llama3").targets[0].missing_key_error() is None  # no key needed


def test_missing_key_error_names_api_key_env(emulator: Start, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MY_KEY", raising=False)
    up = emulator(ok("served"))
    router = make_router({"provider": "openai", "model": "x", "api_base": up.url + "/v1", "api_key_env": "MY_KEY"})
    with pytest.raises(openai.AuthenticationError, match="set MY_KEY") as caught:
        call(mode, router)
    assert "OPENAI_API_KEY" not in caught.value.message
    assert caught.value.code == "missing_api_key"
    assert not up.requests
    monkeypatch.setenv("MY_KEY", "sk-set-after-the-first-call-0123")
    result, _ = call(mode, router)
    assert result.choices[0].message.content == "served"
    assert up.requests[-1].headers["authorization"] == "Bearer sk-set-after-the-first-call-0123"


# -- 2. secrets -----------------------------------------------------------------------------------------------------


def test_upstream_401_echoing_an_azure_key_is_redacted(
    emulator: Start, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    up = emulator(echo_key_401)
    router = make_router({"provider": "azure", "model": "gpt-4o", "api_base": up.url, "api_key": AZURE_KEY, "id": "az"})
    with caplog.at_level(logging.DEBUG, logger="polyroute"), pytest.raises(openai.AuthenticationError) as caught:
        call(mode, router)
    assert up.requests[0].headers["api-key"] == AZURE_KEY  # the key did go upstream, and came back
    assert AZURE_KEY not in caught.value.message
    assert AZURE_KEY not in str(caught.value.body)
    assert "Incorrect API key provided: [redacted]" in caught.value.message
    assert AZURE_KEY not in caplog.text


def test_env_key_without_a_prefix_is_redacted(emulator: Start, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISTRAL_API_KEY", MISTRAL_KEY)
    up = emulator(echo_key_401)
    router = make_router({"provider": "mistral", "model": "mistral-small", "api_base": up.url + "/v1"})
    with pytest.raises(openai.AuthenticationError) as caught:
        call(mode, router)
    assert MISTRAL_KEY not in caught.value.message
    assert MISTRAL_KEY not in redact(f"echo {MISTRAL_KEY}")


SECRET_HEADERS = {
    "Authorization": "Bearer hdr-secret-bearer-0001",
    "api-key": "hdr-secret-api-key-0002",
    "X-Api-Key": "hdr-secret-x-api-key-0003",
    "X-Custom-Token": "hdr-secret-token-0004",
    "X-Trace": "visible-trace-value",
}


def test_secret_headers_hidden_from_reprs() -> None:
    router = Router(
        {
            "models": [
                {
                    "name": "m",
                    "deployments": [
                        {
                            "provider": "openai",
                            "model": "x",
                            "api_base": "http://127.0.0.1:9/v1",
                            "headers": SECRET_HEADERS,
                        }
                    ],
                }
            ]
        }
    )
    shown = repr(router.config) + repr(router.config.models[0].deployments[0]) + str(router.config)
    for name, value in SECRET_HEADERS.items():
        if name == "X-Trace":
            assert value in shown
        else:
            assert value.split()[-1] not in shown
    assert redact("upstream says: hdr-secret-bearer-0001 is bad") == "upstream says: [redacted] is bad"
    assert router.config.models[0].deployments[0].headers == SECRET_HEADERS  # still sent as given


def test_secret_headers_hidden_from_validation_errors() -> None:
    bad = {"provider": "openai", "model": "x", "headers": {"Authorization": ["Bearer list-secret-0001"]}}
    with pytest.raises(ConfigError) as caught:
        Router({"models": [{"name": "m", "deployments": [bad]}]})
    assert "list-secret-0001" not in str(caught.value)
    assert "headers.Authorization" in str(caught.value)
    with pytest.raises(ValidationError) as raw:
        Deployment(headers={"Authorization": "Bearer raw-secret-0001"}, provider="openai", model="x", error=500)
    assert "raw-secret-0001" not in str(raw.value)


# -- 3. a 401 stays a 401 -------------------------------------------------------------------------------------------


def test_repeated_401_stays_authentication_error(emulator: Start, mode: str) -> None:
    down = emulator(echo_key_401)
    router = make_router(dep(down, "a"))
    for _ in range(5):
        with pytest.raises(openai.AuthenticationError) as caught:
            call(mode, router)
        assert caught.value.status_code == 401
        assert "Incorrect API key" in caught.value.message
    assert len(down.requests) == 1  # the rejected key is not sent again while it is the same
    (target,) = router.route("m").targets
    assert router.state(target).circuit == "closed"


def test_rejected_key_is_tried_again_once_changed(emulator: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROTATING_KEY", "sk-old-rejected-0123456789")
    seen: list[str] = []

    def handle(request: Request) -> Reply:
        seen.append(request.headers["authorization"])
        if "old" in request.headers["authorization"]:
            return echo_key_401(request)
        return ok("new key works")(request)

    up = emulator(handle)
    router = make_router(
        {"provider": "openai", "model": "x", "api_base": up.url + "/v1", "api_key_env": "ROTATING_KEY"}
    )
    for _ in range(3):
        with pytest.raises(openai.AuthenticationError):
            call("sync", router)
    monkeypatch.setenv("ROTATING_KEY", "sk-new-accepted-0123456789")
    result, _ = call("sync", router)
    assert result.choices[0].message.content == "new key works"
    assert seen == ["Bearer sk-old-rejected-0123456789", "Bearer sk-new-accepted-0123456789"]


def test_wrong_key_is_skipped_for_the_others(emulator: Start, mode: str) -> None:
    down = emulator(echo_key_401)
    up = emulator(ok("second"))
    router = make_router(dep(down, "a"), dep(up, "b"))
    for _ in range(4):
        result, headers = call(mode, router)
        assert result.choices[0].message.content == "second"
        assert headers["x-polyroute-deployment"] == "b"
    assert len(down.requests) == 1


def test_missing_key_never_opens_the_circuit(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_KEY", raising=False)
    router = make_router(
        {"provider": "openai", "model": "x", "api_base": "http://127.0.0.1:9/v1", "api_key_env": "NOT_SET_KEY"}
    )
    for _ in range(5):
        with pytest.raises(openai.AuthenticationError, match="set NOT_SET_KEY"):
            call(mode, router)
    (target,) = router.route("m").targets
    state: Any = router.state(target)
    assert state.circuit == "closed" and state.consecutive_failures == 0


def test_every_deployment_failed_or_skipped_for_its_key_is_a_401(
    emulator: Start, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UNSET_TEAM_KEY", raising=False)
    down = emulator(echo_key_401)
    router = make_router(
        dep(down, "wrong-key"),
        {
            "provider": "openai",
            "model": "x",
            "id": "no-key",
            "api_base": down.url + "/v1",
            "api_key_env": "UNSET_TEAM_KEY",
        },
    )
    for _ in range(4):  # the first call tries "wrong-key"; later ones skip both without calling upstream
        with pytest.raises(openai.AuthenticationError) as caught:
            call(mode, router)
        assert caught.value.status_code == 401
        assert "Incorrect API key" in caught.value.message
        assert "set UNSET_TEAM_KEY" in caught.value.message
    assert len(down.requests) == 1


def test_keys_are_redacted_before_any_call(monkeypatch: pytest.MonkeyPatch) -> None:
    inline = "c0ffee00deadbeef1234567890abcdef"
    monkeypatch.setenv("TOGETHER_API_KEY", "tgp-0123456789abcdefghijklmnop")
    Router(
        {
            "models": [
                {
                    "name": "m",
                    "deployments": [
                        {"provider": "azure", "model": "x", "api_base": "https://r.example", "api_key": inline},
                        {"provider": "together", "model": "y"},
                    ],
                }
            ]
        }
    )
    text = f"keys {inline} and tgp-0123456789abcdefghijklmnop"
    assert redact(text) == "keys [redacted] and [redacted]"


def test_short_secret_header_values_are_not_redacted_words() -> None:
    Deployment(provider="openai", model="x", headers={"X-Auth-Mode": "standard", "X-Api-Key": "short-key"})
    assert redact("the standard tier; short-key") == "the standard tier; short-key"


def test_a_key_pasted_into_api_key_env_is_refused_without_echoing_it(capsys: pytest.CaptureFixture[str]) -> None:
    pasted = "sk-ant-api03-PASTEDSECRET0123456789"
    config = {
        "models": [{"name": "m", "deployments": [{"provider": "anthropic", "model": "c", "api_key_env": pasted}]}]
    }
    with pytest.raises(ConfigError) as info:
        Router(config)
    assert "api_key_env must name an environment variable" in str(info.value)
    assert "PASTEDSECRET" not in str(info.value) and "PASTEDSECRET" not in repr(info.value)
    assert "PASTEDSECRET" not in redact(f"echoed by someone: {pasted}")
