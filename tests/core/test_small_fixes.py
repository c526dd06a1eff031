"""Small ones: a direct name that needs config is a 400, ``polyroute check`` on bad files and missing keys, and one
deployment under two model names shares its health."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from polyroute import Router
from polyroute.__main__ import main
from polyroute.errors import InvalidRequestError
from tests.core.routing_helpers import MODES, call, dep, ok, status
from tests.emulators import Emulator

Start = Callable[..., Emulator]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.mark.parametrize("name", ["azure/x", "openai-compatible/x", "azure:gpt-4o"])
def test_direct_name_without_api_base_is_a_400(mode: str, name: str) -> None:
    with pytest.raises(openai.BadRequestError, match="needs an api_base") as caught:
        call(mode, Router(), model=name)
    assert caught.value.status_code == 400
    body: Any = caught.value.body
    assert body["type"] == "invalid_request_error" and body["param"] == "model"
    with pytest.raises(InvalidRequestError):
        Router().route(name)


def test_check_on_a_file_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "polyroute.yaml"
    path.write_bytes("models:\n  - name: caf\xe9\n".encode("latin-1"))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "not UTF-8" in err and "Traceback" not in err and str(path) in err


def test_check_warns_about_missing_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEAM_ANTHROPIC_KEY", raising=False)
    monkeypatch.setenv("SET_KEY", "sk-set-0123456789")
    config = {
        "models": [
            {
                "name": "smart",
                "deployments": [
                    {"provider": "anthropic", "model": "claude-x", "api_key_env": "TEAM_ANTHROPIC_KEY"},
                    {"provider": "gemini", "model": "gemini-x"},
                    {"provider": "openai", "model": "gpt-x", "api_key_env": "SET_KEY"},
                    {"provider": "ollama", "model": "llama3"},
                ],
            }
        ]
    }
    path = tmp_path / "polyroute.json"
    path.write_text(json.dumps(config))
    assert main(["check", str(path)]) == 0
    captured = capsys.readouterr()
    assert "smart: ordered: anthropic/claude-x, gemini/gemini-x, openai/gpt-x, ollama/llama3" in captured.out
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:") and "API key" in line]
    assert len(warnings) == 2
    assert "anthropic/claude-x" in warnings[0] and "set TEAM_ANTHROPIC_KEY" in warnings[0]
    assert "ANTHROPIC_API_KEY" not in warnings[0]
    assert "gemini/gemini-x" in warnings[1] and "GEMINI_API_KEY or GOOGLE_API_KEY" in warnings[1]


def test_one_deployment_under_two_models_shares_its_health(emulator: Start, mode: str) -> None:
    down = emulator(status(500))
    up = emulator(ok("backup"))
    shared = dep(down, "shared-deployment")
    router = Router(
        {
            "models": [
                {"name": "a", "deployments": [shared, dep(up, "backup-a")]},
                {"name": "b", "deployments": [shared, dep(up, "backup-b")]},
            ],
            "retry": {"allowed_fails": 3, "cooldown": 60},
        }
    )
    state_a = router.state(router.route("a").targets[0])
    assert state_a is router.state(router.route("b").targets[0])
    assert router.state(router.route("a").targets[1]) is not router.state(router.route("b").targets[1])
    for model in ("a", "b", "a"):  # three failures, counted together
        result, _ = call(mode, router, model=model)
        assert result.choices[0].message.content == "backup"
    assert len(down.requests) == 3
    assert state_a.circuit == "open"
    _, headers = call(mode, router, model="b")  # the circuit opened through "a" and "b" holds for "b" too
    assert headers["x-polyroute-deployment"] == "backup-b"
    assert len(down.requests) == 3


def test_check_warns_about_a_model_the_catalog_does_not_know(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deployments = [
        {"provider": "anthropic", "model": "claude-sonet-4-5", "api_key": "sk-test-0123456789"},
        {"provider": "anthropic", "model": "claude-sonnet-4-5", "api_key": "sk-test-0123456789"},
        {"provider": "ollama", "model": "my-local-finetune"},
    ]
    path = tmp_path / "polyroute.json"
    path.write_text(json.dumps({"models": [{"name": "smart", "deployments": deployments}]}))
    assert main(["check", str(path)]) == 0
    err = capsys.readouterr().err
    assert "'claude-sonet-4-5' is not in the model catalog" in err and "did you mean 'claude-sonnet-4-5'" in err
    assert err.count("not in the model catalog") == 1  # the known model and Ollama's own names pass quietly
