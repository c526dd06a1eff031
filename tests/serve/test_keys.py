"""Virtual keys in the config, the key ring, and ``import polyroute`` staying free of the server."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from polyroute import Router
from polyroute.config import VirtualKey
from polyroute.errors import ConfigError
from polyroute.serve.keys import KeyRing, KeyState, hash_key, new_key


def test_import_polyroute_loads_no_server() -> None:
    code = (
        "import sys, json, polyroute; from polyroute import Router; "
        "print(json.dumps([m for m in ('uvicorn', 'polyroute.serve', 'polyroute.messages_api', "
        "'polyroute.anthropic_inbound') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_serve_without_uvicorn_says_how_to_install_it_from_pypi_and_a_checkout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from polyroute.serve import run

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # not installed: `import uvicorn` raises ImportError
    with pytest.raises(SystemExit) as caught:
        run("polyroute.yaml")
    assert str(caught.value.code) == (
        'polyroute serve needs uvicorn: pip install "polyroute[serve]" '
        '(from a checkout: pip install "./packages/core[serve]")'
    )


def test_a_key_is_found_by_its_digest_only() -> None:
    key = new_key()
    ring = KeyRing([VirtualKey(name="a", sha256=hash_key(key))])
    found = ring.find(key)
    assert found is not None
    assert found.key.name == "a"
    assert ring.find(key + "x") is None
    assert ring.find(hash_key(key)) is None  # the stored digest is not itself a key


def test_rpm_is_a_sliding_minute() -> None:
    state = KeyState(VirtualKey(name="a", sha256="0" * 64, rpm=2))
    assert state.admit(now=100.0) is None
    assert state.admit(now=110.0) is None
    assert state.admit(now=120.0) == pytest.approx(40.0)
    assert state.admit(now=160.5) is None  # the call at 100 s left the window


def test_a_raw_key_pasted_as_sha256_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        Router({"keys": [{"name": "a", "sha256": "pr-my-secret-client-key"}]})
    assert "keys[0].sha256" in str(caught.value)
    assert "pr-my-secret-client-key" not in str(caught.value)


def test_the_same_key_twice_is_a_config_error() -> None:
    digest = hash_key("pr-x")
    with pytest.raises(ConfigError, match="listed twice"):
        Router({"keys": [{"name": "a", "sha256": digest}, {"name": "b", "sha256": digest}]})


def test_serving_without_keys_is_for_loopback_only(tmp_path: object) -> None:
    from pathlib import Path

    from polyroute.__main__ import main

    path = Path(str(tmp_path)) / "open.json"
    path.write_text('{"models": []}')
    assert main(["serve", str(path), "--no-auth", "--host", "0.0.0.0"]) == 2
    assert main(["serve", str(path)]) == 2  # no keys, no --no-auth: refused before binding anything
