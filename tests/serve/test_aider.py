"""Aider (``aider --message``, PyPI ``aider-chat`` in its own venv) editing a file through ``polyroute serve`` on an
OpenAI-format route. ``scripts/test.py``'s ``aider`` step installs it and names it in ``POLYROUTE_AIDER``."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.clients.matrix import MATRIX_ENV
from tests.emulators import Emulator
from tests.emulators.openai_format import completion
from tests.emulators.server import Handler, Reply, Request
from tests.serve.helpers import KEY, PROVIDER_KEY, config, openai_route, serving, text_events

StartEmulator = Callable[[Handler], Emulator]
AIDER_ENV = "POLYROUTE_AIDER"

# Aider's "whole" edit format: the file name, then the whole new file in a fence
EDIT = 'hello.py\n```python\nprint("polyroute")\n```\n'


def aider() -> str:
    path = os.environ.get(AIDER_ENV)
    if path and Path(path).exists():
        return path
    reason = f"Aider is not installed: set {AIDER_ENV} to the aider of a venv with aider-chat (scripts/test.py aider)"
    if os.environ.get(MATRIX_ENV) == "1":
        pytest.fail(f"client matrix: {reason}")
    pytest.skip(reason)


def test_aider_edits_a_file_through_an_openai_route(emulator: StartEmulator, tmp_path: Path) -> None:
    command = aider()
    bodies: list[dict[str, object]] = []

    def coder(request: Request) -> Reply:
        body = request.json()
        bodies.append(body)
        if body.get("stream"):
            return Reply.sse(text_events([EDIT[:12], EDIT[12:30], EDIT[30:]]))
        return Reply(body=completion(EDIT, model="gpt-emu"))

    emu = emulator(coder)
    work = tmp_path / "work"
    work.mkdir()
    (work / "hello.py").write_text('print("hello")\n')
    home = tmp_path / "home"
    cache = home / ".aider" / "caches"
    cache.mkdir(parents=True)
    # a fresh model-metadata cache, so Aider does not download LiteLLM's price list from GitHub
    (cache / "model_prices_and_context_window.json").write_text("{}")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "OPENAI_API_KEY": KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    with serving(config([openai_route("coder", emu.url)])) as server:
        env["OPENAI_API_BASE"] = f"{server.url}/v1"
        done = subprocess.run(
            [
                command,
                "--model",
                "openai/coder",
                "--edit-format",
                "whole",
                "--message",
                "Change hello.py to print polyroute",
                "--yes-always",
                "--no-git",
                "--no-check-update",
                "--analytics-disable",
                "--no-show-model-warnings",
                "--no-show-release-notes",
                "--no-pretty",
                "hello.py",
            ],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Applied edit to hello.py" in done.stdout
    assert (work / "hello.py").read_text() == 'print("polyroute")\n'
    assert bodies and bodies[0]["model"] == "gpt-emu"
    assert {r.headers.get("authorization") for r in emu.requests} == {f"Bearer {PROVIDER_KEY}"}
