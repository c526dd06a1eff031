#!/usr/bin/env python3
"""Run polyroute's whole test suite, in every environment it must work in.

0. ruff (lint and format) and pyright (strict on core);
1. the workspace (uv.lock): every package and test, openai 3.x with httpx and httpx2 installed;
2. core on openai 2.x + httpx (what openai 2.x and several frameworks are built on);
3. core on openai 3.x + httpx2 only (no legacy httpx at all);
4. the ag2 (AutoGen 0.2 API) config_list tests, in their own environment, when present;
5. every install command the READMEs give, each in a fresh venv (``scripts/install_commands.py``, about a minute).

Needs only Python and uv (``python -m pip install uv``). Extra arguments go to every pytest run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UV = [sys.executable, "-m", "uv"]
TEST_DEPS = [
    "pytest>=8.4",
    "pytest-asyncio>=1.1",
    "pyyaml>=6",
    "vcrpy>=8.2,<9",
    "pytest-recording>=0.14",
    "anthropic>=2",
]
ENVS = {
    "openai2-httpx": ["openai>=2.44,<3", "httpx>=0.28"],
    "openai3-httpx2-only": ["openai>=3", "httpx2>=2.16"],
}


def run(cmd: list[str], **kwargs: object) -> int:
    """Run a command from the repository root, echoing it; its exit code."""
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT, **kwargs).returncode  # type: ignore[call-overload]


def core_env(name: str, deps: list[str], extra: list[str]) -> int:
    """A fresh venv with core, ``deps`` and the test tools; the core suite's exit code there."""
    venv = ROOT / ".venvs" / name
    if venv.exists():
        shutil.rmtree(venv)
    python = venv / "bin" / "python"
    if run([*UV, "venv", "-q", "--python", sys.executable, str(venv)]):
        return 1
    if run([*UV, "pip", "install", "-q", "--python", str(python), "-e", "packages/core", *deps, *TEST_DEPS]):
        return 1
    if name.endswith("httpx2-only"):
        check = "import importlib.util as u, sys; sys.exit(u.find_spec('httpx') is not None)"
        if run([str(python), "-c", check]):
            print(f"{name}: legacy httpx is installed, so this environment does not test httpx2 alone")
            return 1
    env = {**os.environ, "PYTHONPATH": str(ROOT), "POLYROUTE_TEST_ENV": name}
    return run([str(python), "-m", "pytest", "tests/core", "-q", "-p", "no:randomly", *extra], env=env)


def main() -> int:
    """Every step; failures are listed at the end, not fatal at once, except a workspace that will not sync."""
    extra = sys.argv[1:]
    failures: list[str] = []
    if run([*UV, "sync", "--frozen", "--all-packages"]):
        return 1
    for check in (["ruff", "check", "."], ["ruff", "format", "--check", "."], ["pyright"]):
        if run([*UV, "run", "--frozen", *check]):
            failures.append(check[0] + (" format" if "format" in check else ""))
    if run([*UV, "run", "--frozen", "pytest", *extra]):
        failures.append("workspace")
    for name, deps in ENVS.items():
        if core_env(name, deps, extra):
            failures.append(name)
    ag2 = ROOT / "tests" / "autogen_ag2" / "run.sh"
    if ag2.is_file() and run(["bash", str(ag2), *extra]):
        failures.append("ag2")
    if run([sys.executable, str(ROOT / "scripts" / "install_commands.py")]):
        failures.append("install-commands")
    print("test environments failed: " + ", ".join(failures) if failures else "all test environments passed")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
