"""Config validation: each error names the field and the bad value; files in three formats."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from polyroute import ConfigError, Router, RouterConfig
from polyroute.config import load_config

GOOD = {
    "models": [
        {
            "name": "smart",
            "fallbacks": ["cheap"],
            "deployments": [
                {"provider": "anthropic", "model": "claude-sonnet-4-5", "api_key": "sk-ant-inline-secret-123"}
            ],
        },
        {"name": "cheap", "deployments": [{"provider": "mock", "model": "mock-small"}]},
    ]
}


@pytest.mark.parametrize(
    ("config", "fragments"),
    [
        (
            {"models": [{"name": "a", "deployments": [{"provider": "antropic", "model": "x"}]}]},
            ["models[0].deployments[0].provider", "unknown provider 'antropic'", "anthropic"],
        ),
        ({"models": [{"name": "a", "deployments": []}]}, ["models[0].deployments"]),
        (
            {"models": [{"name": "a", "deployments": [{"provider": "openai", "model": "x", "timeout": -1}]}]},
            ["models[0].deployments[0].timeout", "-1"],
        ),
        (
            {"models": [{"name": "a", "strategy": "random", "deployments": [{"provider": "openai", "model": "x"}]}]},
            ["models[0].strategy", "'random'"],
        ),
        (
            {"models": [{"name": "a", "fallbacks": ["ghost"], "deployments": [{"provider": "openai", "model": "x"}]}]},
            ["'ghost'", "fallbacks"],
        ),
        (
            {"models": [{"name": "a", "deployments": [{"provider": "openai", "model": "x", "colour": "red"}]}]},
            ["models[0].deployments[0].colour: unknown field (known here: ", "api_base, api_key"],
        ),
        (  # a misspelt field is named with the one meant, at every level
            {"models": [{"name": "a", "deployments": [{"provider": "openai", "model": "x", "timout": 3}]}]},
            ["models[0].deployments[0].timout: unknown field (did you mean 'timeout'?)"],
        ),
        (
            {"models": [{"name": "a", "fallback": ["b"], "deployments": [{"provider": "openai", "model": "x"}]}]},
            ["models[0].fallback: unknown field (did you mean 'fallbacks'?)"],
        ),
        ({"model": []}, ["model: unknown field (did you mean 'models'?)"]),
        ({"state": {"backend": "redis", "urll": "x"}}, ["state.urll: unknown field (did you mean 'url'?)"]),
        (
            {
                "models": [
                    {"name": "a", "deployments": [{"provider": "mock", "model": "m", "capabilities": {"vison": 1}}]}
                ]
            },
            ["capabilities.vison: unknown field (did you mean 'vision'?)"],
        ),
        (
            {"models": [{"name": "a", "deployments": [{"provider": "openai", "model": "x", "error": 500}]}]},
            ["only apply to provider 'mock'"],
        ),
        (
            {"models": [{"name": "a", "deployments": [{"provider": "openai", "model": "x", "api_base": "ftp://h"}]}]},
            ["api_base", "http://"],
        ),
        (
            {
                "models": [
                    {"name": "a", "deployments": [{"provider": "openai", "model": "x"}]},
                    {"name": "a", "deployments": [{"provider": "openai", "model": "y"}]},
                ]
            },
            ["defined twice"],
        ),
    ],
)
def test_bad_config_names_field_and_value(config: dict, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        Router(config)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_config_errors_never_print_inline_keys() -> None:
    config = {
        "models": [
            {
                "name": "a",
                "deployments": [
                    {"provider": "openai", "model": "x", "api_key": "sk-very-secret-value-123", "error": 500}
                ],
            }
        ]
    }
    with pytest.raises(ConfigError) as caught:
        Router(config)
    assert "sk-very-secret-value-123" not in str(caught.value)


def test_openai_compatible_needs_a_base() -> None:
    with pytest.raises(ConfigError, match="needs api_base"):
        Router({"models": [{"name": "a", "deployments": [{"provider": "openai-compatible", "model": "x"}]}]})


def test_repr_never_shows_keys() -> None:
    router = Router(GOOD)
    target = router.route("smart").targets[0]
    assert "sk-ant-inline-secret-123" not in repr(target)
    assert "sk-ant-inline-secret-123" not in repr(router.config)
    assert "sk-ant-inline-secret-123" not in router.config.model_dump_json()


def test_key_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "from-default-env")
    monkeypatch.setenv("MY_KEY", "from-named-env")
    router = Router(
        {
            "models": [
                {
                    "name": "a",
                    "deployments": [
                        {"provider": "anthropic", "model": "m1"},
                        {"provider": "anthropic", "model": "m2", "api_key_env": "MY_KEY"},
                        {"provider": "anthropic", "model": "m3", "api_key": "inline"},
                    ],
                }
            ]
        }
    )
    assert [t.api_key for t in router.route("a").targets] == ["from-default-env", "from-named-env", "inline"]


@pytest.mark.parametrize("suffix", [".json", ".toml", ".yaml"])
def test_config_files(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"polyroute{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(GOOD))
    elif suffix == ".toml":
        path.write_text('[[models]]\nname = "cheap"\n[[models.deployments]]\nprovider = "mock"\nmodel = "mock-1"\n')
    else:
        path.write_text("models:\n  - name: cheap\n    deployments:\n      - provider: mock\n        model: mock-1\n")
    router = Router.from_config(path)
    assert "cheap" in router.model_names
    assert Router.from_config(str(path)).model_names == router.model_names


def test_relative_files_in_a_config_file_are_beside_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A config file's relative store_path, ledger and credentials are relative to the file, not to wherever the
    process runs; absolute paths and a dict config are left as they are.
    """
    folder = tmp_path / "conf"
    folder.mkdir()
    path = folder / "polyroute.json"
    config = {
        "models": [
            {"name": "cheap", "deployments": [{"provider": "mock", "model": "mock-1"}]},
            {
                "name": "g",
                "deployments": [{"provider": "vertex", "model": "gemini-2.5-flash", "credentials": "sa.json"}],
            },
        ],
        "responses": {"store_path": "responses.db"},
        "usage": {"ledger": str(tmp_path / "abs" / "usage.db")},
    }
    path.write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)
    loaded = load_config(path)
    assert loaded.responses.store_path == str(folder / "responses.db")
    assert loaded.usage.ledger == str(tmp_path / "abs" / "usage.db")
    assert loaded.models[1].deployments[0].credentials == str(folder / "sa.json")
    assert load_config(config).responses.store_path == "responses.db"  # a dict: the caller's own paths


def test_unreadable_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        Router.from_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ConfigError, match="cannot parse"):
        Router.from_config(bad)
    odd = tmp_path / "config.ini"
    odd.write_text("x")
    with pytest.raises(ConfigError, match="unknown config format"):
        Router.from_config(odd)


def test_yaml_without_pyyaml_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`pip install "polyroute[yaml]"` fails from a checkout (no index has polyroute): name the package itself."""
    path = tmp_path / "polyroute.yaml"
    path.write_text("models: []\n")
    monkeypatch.setitem(sys.modules, "yaml", None)  # PyYAML not installed: `import yaml` raises ImportError
    with pytest.raises(ConfigError) as caught:
        Router.from_config(path)
    assert "needs PyYAML: pip install pyyaml" in str(caught.value)
    assert "TOML / JSON" in str(caught.value)


def test_config_object_round_trips() -> None:
    config = RouterConfig.model_validate(GOOD)
    assert Router.from_config(config).config is config


def test_catalog_fills_capabilities_and_config_overrides() -> None:
    router = Router(
        {
            "models": [
                {
                    "name": "a",
                    "deployments": [
                        {
                            "provider": "anthropic",
                            "model": "claude-sonnet-4-5",
                            "capabilities": {"vision": False},
                            "prices": {"input": 1, "output": 2},
                        }
                    ],
                }
            ]
        }
    )
    info = router.route("a").targets[0].info
    assert info.known and info.context_window == 200000
    assert info.vision is False and info.tools is True
    assert (info.input_price, info.output_price) == (1, 2)


def test_unknown_model_is_assumed_capable() -> None:
    info = Router().route("openai/some-future-model").targets[0].info
    assert not info.known and info.tools and info.vision and info.context_window is None
