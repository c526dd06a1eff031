#!/usr/bin/env python3
"""Run polyroute's whole test suite, in every environment it must work in.

After ``uv sync`` of the workspace, these steps run side by side (``POLYROUTE_TEST_JOBS`` at once, default 3: the
environments spend much of their time installing, and the CI machine has 2 cores):

- lint: ruff (lint and format) and pyright (strict on core);
- workspace: every package and test (uv.lock), openai 3.x with httpx and httpx2 installed;
- openai2-httpx: core on openai 2.x + httpx (what openai 2.x and several frameworks are built on);
- openai3-httpx2-only: core on openai 3.x + httpx2 only (no legacy httpx at all);
- ag2-0x, ag2-1x, ag2-0x-openai3: the ag2 (AutoGen 0.2 API) tests in their own environments (tests/autogen_ag2);
- clients, clients-instructor: the third-party client matrix (tests/clients: the openai SDK's helpers,
  langchain-openai, openai-agents, pydantic-ai, instructor), where a skipped case fails;
- install-commands: every install command the READMEs give, each in a fresh venv (``scripts/install_commands.py``);
- tests/redis (in the workspace step) against a real redis-server: Debian's ``redis-server`` and ``npm`` are
  installed first when missing (``ensure_system_packages``);
- node-clients: ``polyroute serve`` with the official Node ``openai`` package and Claude Code headless (npm, in
  ``.venvs/node-clients``; tests/serve/test_node_clients.py), where a skipped case fails;
- aider: ``polyroute serve`` with Aider (``aider-chat`` in ``.venvs/aider``; tests/serve/test_aider.py).

Each step's output goes to ``.venvs/logs/<step>.log`` and is printed whole when the step ends; the last line
adds up every pytest summary. Needs only Python and uv (``python -m pip install uv``). Extra arguments go to every
pytest run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import TextIO

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / ".venvs" / "logs"
UV = [sys.executable, "-m", "uv"]
TEST_DEPS = [
    "pytest>=8.4",
    "pytest-asyncio>=1.1",
    "pyyaml>=6",
    "vcrpy>=8.2,<9",
    "pytest-recording>=0.14",
    "anthropic>=2",
    # usage: exact prices, OTel spans checked with the SDK, the report's tables (optional extras of core)
    "genai-prices>=0.0.30",
    "opentelemetry-sdk>=1.27",
    "rich>=13",
    # Bedrock (SigV4, event streams) and Vertex (google-auth; the emulator signs with cryptography): core's extras
    "botocore>=1.40",
    "google-auth>=2.30",
    "cryptography>=42",
]
ENVS = {
    "openai2-httpx": ["openai>=2.44,<3", "httpx>=0.28"],
    "openai3-httpx2-only": ["openai>=3", "httpx2>=2.16"],
}

CLIENT_ENVS = {
    # name: (client libraries, test modules). The openai SDK's helpers run in the workspace (its openai) and again
    # beside instructor, whose jiter<0.15 pin holds openai at 3.3.
    "clients": (
        ["openai>=3.3,<4", "langchain-openai>=1.7,<2", "openai-agents>=0.24,<1", "pydantic-ai-slim[openai]>=2.38,<3"],
        ["test_langchain_openai.py", "test_openai_agents.py", "test_pydantic_ai.py", "test_responses_clients.py"],
    ),
    "clients-instructor": (["instructor>=1.17,<2", "openai>=3,<4"], ["test_instructor.py", "test_openai_helpers.py"]),
}

_SUMMARY = re.compile(r"^(?:=+ )?(\d+ (?:passed|failed|errors?|skipped|deselected)\b.*) in [\d.]+s")
_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)")


def run(cmd: list[str], log: TextIO, env: dict[str, str] | None = None) -> int:
    """Run a command from the repository root into ``log``, echoing it there; its exit code."""
    log.write("+ " + " ".join(cmd) + "\n")
    log.flush()
    return subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env).returncode


def fresh_venv(name: str, packages: list[str], log: TextIO) -> Path | None:
    """A new venv under .venvs/ with ``packages`` installed; its python, or None if that failed."""
    venv = ROOT / ".venvs" / name
    if venv.exists():
        shutil.rmtree(venv)
    python = venv / "bin" / "python"
    if run([*UV, "venv", "-q", "--python", sys.executable, str(venv)], log):
        return None
    if run([*UV, "pip", "install", "-q", "--python", str(python), *packages], log):
        return None
    return python


def lint(extra: list[str], log: TextIO) -> int:
    """Lint: ruff check, ruff format --check and pyright; all three run, any failure fails the step."""
    codes = [
        run([*UV, "run", "--frozen", *check], log)
        for check in (["ruff", "check", "."], ["ruff", "format", "--check", "."], ["pyright"])
    ]
    return max(codes)


def workspace(extra: list[str], log: TextIO) -> int:
    """Every package and test in the locked workspace."""
    return run([*UV, "run", "--frozen", "pytest", *extra], log)


def core_env(name: str) -> Callable[[list[str], TextIO], int]:
    """Core's suite in a fresh venv with core, ``ENVS[name]`` and the test tools."""

    def step(extra: list[str], log: TextIO) -> int:
        python = fresh_venv(name, ["-e", "packages/core", *ENVS[name], *TEST_DEPS], log)
        if python is None:
            return 1
        if name.endswith("httpx2-only"):
            check = "import importlib.util as u, sys; sys.exit(u.find_spec('httpx') is not None)"
            if run([str(python), "-c", check], log):
                log.write(f"{name}: legacy httpx is installed, so this environment does not test httpx2 alone\n")
                return 1
        env = {**os.environ, "PYTHONPATH": str(ROOT), "POLYROUTE_TEST_ENV": name}
        return run([str(python), "-m", "pytest", "tests/core", "-q", "-p", "no:randomly", *extra], log, env)

    return step


def client_env(name: str) -> Callable[[list[str], TextIO], int]:
    """One set of client libraries' part of tests/clients, where ``POLYROUTE_CLIENT_MATRIX=1`` makes a missing
    library or a skipped case a failure.
    """

    def step(extra: list[str], log: TextIO) -> int:
        deps, modules = CLIENT_ENVS[name]
        python = fresh_venv(name, ["-e", "packages/core", *deps, *TEST_DEPS], log)
        if python is None:
            return 1
        env = {**os.environ, "PYTHONPATH": str(ROOT), "POLYROUTE_TEST_ENV": name, "POLYROUTE_CLIENT_MATRIX": "1"}
        tests = [f"tests/clients/{module}" for module in modules]
        return run([str(python), "-m", "pytest", *tests, "-q", "-p", "no:randomly", *extra], log, env)

    return step


def ag2(which: str) -> Callable[[list[str], TextIO], int]:
    """One of tests/autogen_ag2/run.sh's environments."""

    def step(extra: list[str], log: TextIO) -> int:
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
        return run(["bash", "tests/autogen_ag2/run.sh", which, *extra], log, env)

    return step


NODE_CLIENTS = ["openai@6", "@anthropic-ai/claude-code"]
"""npm packages for tests/serve/test_node_clients.py (Claude Code's native binary comes as an optional dependency;
its postinstall is not needed: the tests run its cli-wrapper.cjs)."""


def node_clients(extra: list[str], log: TextIO) -> int:
    """``polyroute serve`` with Node clients: a fresh npm prefix, then their tests, where a skip is a failure."""
    prefix = ROOT / ".venvs" / "node-clients"
    if prefix.exists():
        shutil.rmtree(prefix)
    prefix.mkdir(parents=True)
    (prefix / "package.json").write_text('{"private": true}\n')
    if shutil.which("npm") is None:
        log.write("node-clients: npm is not installed (apt-get install nodejs npm)\n")
        return 1
    if run(["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", *NODE_CLIENTS], log):
        return 1
    env = {**os.environ, "POLYROUTE_NODE_CLIENTS": str(prefix), "POLYROUTE_CLIENT_MATRIX": "1"}
    test = "tests/serve/test_node_clients.py"
    return run([*UV, "run", "--frozen", "pytest", test, "-q", "-p", "no:randomly", *extra], log, env)


def aider(extra: list[str], log: TextIO) -> int:
    """``polyroute serve`` with Aider, from its own venv (its pins conflict with the workspace's); a skip fails."""
    python = fresh_venv("aider", ["aider-chat"], log)
    if python is None:
        return 1
    env = {**os.environ, "POLYROUTE_AIDER": str(python.parent / "aider"), "POLYROUTE_CLIENT_MATRIX": "1"}
    test = "tests/serve/test_aider.py"
    return run([*UV, "run", "--frozen", "pytest", test, "-q", "-p", "no:randomly", *extra], log, env)


def install_commands(extra: list[str], log: TextIO) -> int:
    """Every README install command in a fresh venv."""
    return run([sys.executable, "scripts/install_commands.py"], log)


STEPS: dict[str, Callable[[list[str], TextIO], int]] = {
    # longest first, so the slowest step starts at once
    "workspace": workspace,
    "clients": client_env("clients"),
    "openai2-httpx": core_env("openai2-httpx"),
    "openai3-httpx2-only": core_env("openai3-httpx2-only"),
    "clients-instructor": client_env("clients-instructor"),
    "install-commands": install_commands,
    "node-clients": node_clients,
    "aider": aider,
    "lint": lint,
    "ag2-0x": ag2("0x"),
    "ag2-1x": ag2("1x"),
    "ag2-0x-openai3": ag2("0x-openai3"),
}


def run_step(name: str, extra: list[str]) -> tuple[str, int, float]:
    """A step with its output in its log file; (name, exit code, seconds)."""
    started = time.monotonic()
    with (LOGS / f"{name}.log").open("w") as log:
        try:
            code = STEPS[name](extra, log)
        except Exception as exc:  # a step that cannot even start is a failed step, reported with the others
            log.write(f"{name}: {type(exc).__name__}: {exc}\n")
            code = 1
    return name, code, time.monotonic() - started


def tally(text: str) -> dict[str, int]:
    """Counts from every pytest summary line in a log."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        found = _SUMMARY.match(line.strip())
        if found:
            for number, kind in _COUNT.findall(found.group(1)):
                key = "errors" if kind.startswith("error") else kind
                counts[key] = counts.get(key, 0) + int(number)
    return counts


SYSTEM_PACKAGES = {"redis-server": "redis-server", "npm": "npm"}
"""Programs the tests run for real (a command → its Debian package): redis-server for shared state on Redis
(tests/redis), npm (with Node.js) for the Node clients of ``polyroute serve``."""


def ensure_system_packages() -> None:
    """Install the missing :data:`SYSTEM_PACKAGES` from Debian's packages (as root, or with sudo), so a fresh machine
    runs every test; the tests that need Redis then fail rather than skip without it (``POLYROUTE_REQUIRE_REDIS``).
    """
    missing = sorted({package for command, package in SYSTEM_PACKAGES.items() if shutil.which(command) is None})
    if missing and shutil.which("apt-get") is not None:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        print(f"+ apt-get install {' '.join(missing)}", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        update = subprocess.run([*sudo, "apt-get", "update", "-qq"], stdout=subprocess.DEVNULL, env=env)
        if update.returncode == 0:
            install = [*sudo, "apt-get", "install", "-y", "-qq", *missing]
            subprocess.run(install, stdout=subprocess.DEVNULL, env=env)
    os.environ.setdefault("POLYROUTE_REQUIRE_REDIS", "1")


def main() -> int:
    """Every step; failures are listed at the end, not fatal at once, except a workspace that will not sync."""
    extra = sys.argv[1:]
    only = os.environ.get("POLYROUTE_TEST_STEPS")
    names = [n for n in STEPS if not only or n in only.split(",")]
    ensure_system_packages()
    print("+ uv sync --frozen --all-packages", flush=True)
    if subprocess.run([*UV, "sync", "--frozen", "--all-packages"], cwd=ROOT).returncode:
        return 1
    LOGS.mkdir(parents=True, exist_ok=True)
    jobs = int(os.environ.get("POLYROUTE_TEST_JOBS", "3"))
    failures: list[str] = []
    totals: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run_step, name, extra) for name in names]
        for future in as_completed(futures):
            name, code, seconds = future.result()
            text = (LOGS / f"{name}.log").read_text(errors="replace")
            for key, value in tally(text).items():
                totals[key] = totals.get(key, 0) + value
            verdict = "passed" if code == 0 else f"FAILED (exit {code})"
            print(f"\n===== {name}: {verdict} in {seconds:.0f}s =====\n{text}", flush=True)
            if code:
                failures.append(name)
    print("test environments failed: " + ", ".join(failures) if failures else "all test environments passed")
    failed = totals.get("failed", 0) + totals.get("errors", 0)
    others = "".join(f", {totals[k]} {k}" for k in ("skipped", "xfailed", "xpassed") if totals.get(k))
    print(f"total: {totals.get('passed', 0)} passed, {failed} failed{others}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
