"""The install-commands step (scripts/install_commands.py) knows every install command the docs give."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("install_commands", ROOT / "scripts" / "install_commands.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_documented_command_has_a_check_and_no_check_is_stale() -> None:
    script = _script()
    assert set(script.documented_commands()) == set(script.CHECKS)


def test_checkout_and_published_forms_are_both_documented() -> None:
    commands = set(_script().documented_commands())
    for wrapper in ("langchain", "llamaindex", "autogen"):
        assert f'pip install "polyroute[{wrapper}]"' in commands
        assert f"pip install ./packages/core ./packages/{wrapper}" in commands
    # the form that cannot work from a checkout: the extra names a package no index has yet
    assert not any("./packages/core[langchain" in c or "./packages/core[llamaindex" in c for c in commands)


def test_commands_are_read_from_code_spans_blocks_and_comments(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(
        'Install with `pip install "polyroute[yaml]"`, then:\n\n```bash\n'
        "python3 -m pip install uv && python3 scripts/test.py\n"
        'pip install "polyroute[testing]"        # a comment\n'
        "pip install ./packages/core ./packages/langchain\n```\n",
        encoding="utf-8",
    )
    assert list(_script().documented_commands(tmp_path)) == [
        'pip install "polyroute[yaml]"',
        "python3 -m pip install uv",
        'pip install "polyroute[testing]"',
        "pip install ./packages/core ./packages/langchain",
    ]
