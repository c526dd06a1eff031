#!/usr/bin/env python3
"""Run every install command the READMEs give, each in a fresh venv, then use what it promised.

The commands are read from the Markdown (``README.md``, ``packages/*/README.md``, ``docs/*.md``) and must each have
a check in :data:`CHECKS` (a new command without one fails the run, so the list cannot drift from the docs):

- checkout commands (``./packages/...``) run as written from the repository root;
- published commands (``pip install "polyroute[langchain]"``) run against the four wheels built from this checkout
  (``uv build``) plus PyPI, as they will once published: the wheels dir is handed to the installer as a find-links
  source (``PIP_FIND_LINKS`` / ``UV_FIND_LINKS``), the command itself is unchanged;
- ``python3 -m pip install ...`` commands run with the real pip of the venv (``python3`` resolves to it), the
  plain ``pip install ...`` ones with ``uv pip``, which is much faster and installs the same packages.

Venvs live under ``.venvs/install-*`` (rebuilt each run), so this can run beside other environments. Needs Python
and uv (``python -m pip install uv``); registries are the only network used. Exit code 1 if any command fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UV = [sys.executable, "-m", "uv"]
VENVS = ROOT / ".venvs"
WHEELS = VENVS / "install-wheels"
DOCS = ("README.md", "packages/*/README.md", "docs/*.md")

_COMMAND = re.compile(r"""(?:python3 -m )?pip install (?:[^\s`#&|;]+)(?: [^\s`#&|;]+)*""")
"""An install command in Markdown, up to the end of its code span, a comment or a ``&&``."""

_MOCK = "mock/mock-1"  # a direct route to the built-in mock provider: no key, no network
_MOCK_EMBED = "mock/mock-embed"  # its embedding model

_SERVE_CHECK = (
    # the app behind `polyroute serve`, with a key, answering Anthropic's Messages API from the mock provider
    "python3 -c 'import asyncio, uvicorn, httpx2; from polyroute.serve import create_app, hash_key; "
    'app = create_app({"keys": [{"name": "k", "sha256": hash_key("pr-x")}]}); '
    "client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app)); "
    'body = {"model": "mock/mock-1", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}; '
    'r = asyncio.run(client.post("http://serve/v1/messages", headers={"x-api-key": "pr-x"}, json=body)); '
    'print(r.json()["content"][0]["text"])\''
)

_TESTING_CHECK = (
    # docs/testing.md's examples: the plugin, and the openai client its tests call (on the mock provider)
    "python3 -c 'import polyroute.testing, vcr, pytest_recording; from polyroute import Router; "
    f'print(Router().openai_client().chat.completions.create(model="{_MOCK}", '
    'messages=[{"role": "user", "content": "hi"}]).choices[0].message.content)\''
)

CHECKS: dict[str, str] = {
    # the README's own follow-up, as written: the demo runs on mock deployments through the openai SDK
    'python3 -m pip install "./packages/core[openai]"': "python3 -m polyroute demo",
    "python3 -m pip install uv": "python3 -m uv --version",
    'pip install "polyroute[yaml]"': "python3 -c 'import yaml, polyroute; print(yaml.safe_load(\"a: 1\"))'",
    'pip install "./packages/core[yaml]"': "python3 -c 'import yaml, polyroute; print(yaml.safe_load(\"a: 1\"))'",
    'pip install "polyroute[bedrock]"': (
        "python3 -c 'import botocore.auth, polyroute.providers.bedrock as b; print(b.stream_decoder().feed(bytes()))'"
    ),
    'pip install "polyroute[vertex]"': "python3 -c 'import google.oauth2.service_account, polyroute.providers.vertex'",
    'pip install "polyroute[testing,openai]"': _TESTING_CHECK,
    'pip install "./packages/core[testing,openai]"': _TESTING_CHECK,
    'pip install "polyroute[langchain]"': (
        "python3 -c 'from langchain_polyroute import ChatPolyroute as M, PolyrouteEmbeddings as E; "
        f'print(M(model="{_MOCK}").invoke("hi").content, len(E(model="{_MOCK_EMBED}").embed_query("hi")))\''
    ),
    "pip install ./packages/core ./packages/langchain": (
        "python3 -c 'from langchain_polyroute import ChatPolyroute as M, PolyrouteEmbeddings as E; "
        f'print(M(model="{_MOCK}").invoke("hi").content, len(E(model="{_MOCK_EMBED}").embed_query("hi")))\''
    ),
    'pip install "polyroute[llamaindex]"': (
        "python3 -c 'from llama_index.llms.polyroute import Polyroute as M; "
        "from llama_index.embeddings.polyroute import PolyrouteEmbedding as E; "
        f'print(M(model="{_MOCK}").complete("hi").text, len(E(model_name="{_MOCK_EMBED}").get_query_embedding("hi")))\''
    ),
    "pip install ./packages/core ./packages/llamaindex": (
        "python3 -c 'from llama_index.llms.polyroute import Polyroute as M; "
        "from llama_index.embeddings.polyroute import PolyrouteEmbedding as E; "
        f'print(M(model="{_MOCK}").complete("hi").text, len(E(model_name="{_MOCK_EMBED}").get_query_embedding("hi")))\''
    ),
    'pip install "polyroute[autogen]"': (
        "python3 -c 'import asyncio; from autogen_core.models import UserMessage; "
        "from polyroute_autogen import PolyrouteChatCompletionClient as M; "
        f'print(asyncio.run(M(model="{_MOCK}").create([UserMessage(content="hi", source="u")])).content)\''
    ),
    "pip install ./packages/core ./packages/autogen": (
        "python3 -c 'import asyncio; from autogen_core.models import UserMessage; "
        "from polyroute_autogen import PolyrouteChatCompletionClient as M; "
        f'print(asyncio.run(M(model="{_MOCK}").create([UserMessage(content="hi", source="u")])).content)\''
    ),
    'pip install "polyroute[autogen]" "ag2[openai]<1"': (
        "python3 -c 'from autogen import OpenAIWrapper; from polyroute import Router; "
        "from polyroute_autogen import config_list; "
        f'c = OpenAIWrapper(config_list=config_list(Router(), ["{_MOCK}"])); '
        'print(c.extract_text_or_completion_object(c.create(messages=[{"role": "user", "content": "hi"}]))[0])\''
    ),
    'pip install "polyroute[autogen]" "ag2[openai]>=1.2,<2"': (
        "python3 -c 'from ag2 import Agent; from polyroute import Router; from polyroute_autogen import openai_config; "
        f'print(type(openai_config(Router(), "{_MOCK}")).__name__)\''
    ),
    'pip install "polyroute[serve,yaml]"': _SERVE_CHECK + " && python3 -c 'import yaml'",
    'pip install "./packages/core[serve,yaml]"': _SERVE_CHECK + " && python3 -c 'import yaml'",
}
"""Each documented install command → a shell command, run in its venv afterwards, that uses what it installed."""


def documented_commands(root: Path = ROOT) -> dict[str, list[str]]:
    """Every install command in the docs → the files that give it."""
    found: dict[str, list[str]] = {}
    for pattern in DOCS:
        for path in sorted(root.glob(pattern)):
            for command in _COMMAND.findall(path.read_text(encoding="utf-8")):
                found.setdefault(command.strip(), []).append(str(path.relative_to(root)))
    return found


def _version() -> str:
    text = (ROOT / "packages" / "core" / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'^version = "([^"]+)"', text, re.MULTILINE)
    assert match, "packages/core/pyproject.toml has no version"
    return match[1]


OURS = ("polyroute", "langchain-polyroute", "llama-index-llms-polyroute", "polyroute-autogen")
"""The workspace's distributions, built into WHEELS."""


def _slug(command: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", command.lower().split("install", 1)[1]).strip("-")


def run_one(command: str, check: str) -> tuple[str, bool, float, str]:
    """Install ``command`` in a fresh venv and run its check; (command, ok, seconds, output)."""
    started = time.perf_counter()
    venv = VENVS / f"install-{_slug(command)}"
    shutil.rmtree(venv, ignore_errors=True)
    log: list[str] = []

    def sh(line: str, env: dict[str, str]) -> bool:
        done = subprocess.run(["bash", "-c", line], cwd=ROOT, env=env, capture_output=True, text=True)
        log.append(f"$ {line}\n{done.stdout}{done.stderr}")
        return done.returncode == 0

    seeded = ["--seed"] if command.startswith("python3 -m pip") else []
    base = {**os.environ, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    for name in ("PYTHONPATH", "UV_PROJECT_ENVIRONMENT", "UV_INTERNAL__PARENT_INTERPRETER", "UV_PYTHON"):
        base.pop(name, None)
    ok = sh(" ".join([*UV, "venv", "-q", *seeded, "--python", sys.executable, str(venv)]), base)
    install_env = {**base, "PIP_FIND_LINKS": str(WHEELS), "UV_FIND_LINKS": str(WHEELS)}
    # plain ``pip install`` → ``uv pip install``, told the venv's python outright (``python -m uv`` would otherwise
    # install into the interpreter that ran it)
    python = venv / "bin" / "python"
    # --refresh-package: the wheels just built carry the same file names as the last build's, which uv's cache
    # would otherwise serve (stale code from an earlier checkout)
    refresh = " ".join(f"--refresh-package {name}" for name in OURS)
    installer = (
        command
        if seeded
        else command.replace("pip install", f"{' '.join(UV)} pip install --python {python} {refresh}", 1)
    )
    ok = ok and sh(installer, {**install_env, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    # where the check runs: outside the checkout, so only what was installed can be imported
    ok = ok and sh(f"cd {venv} && {check}", base)
    wanted = _version()
    same = f'python3 -c \'import importlib.metadata as m, sys; sys.exit(m.version("polyroute") != "{wanted}")\''
    if "polyroute" in command or "./packages/" in command:
        ok = ok and sh(f"cd {venv} && {same}", base)  # this checkout's polyroute, not another index's
    return command, ok, time.perf_counter() - started, "\n".join(log)


def main() -> int:
    """Check the list against the docs, build the wheels, run each command; failures are printed in full."""
    documented = documented_commands()
    unknown = sorted(set(documented) - set(CHECKS))
    stale = sorted(set(CHECKS) - set(documented))
    if unknown or stale:
        for command in unknown:
            print(f"no check for {command!r} ({', '.join(documented[command])}): add one to CHECKS in {__file__}")
        for command in stale:
            print(f"CHECKS has {command!r}, which no README gives any more: remove it")
        return 1
    started = time.perf_counter()
    shutil.rmtree(WHEELS, ignore_errors=True)
    build = [*UV, "build", "--all-packages", "--wheel", "-q", "-o", str(WHEELS)]
    if subprocess.run(build, cwd=ROOT).returncode:
        print("uv build failed")
        return 1
    with ThreadPoolExecutor(max_workers=int(os.environ.get("POLYROUTE_INSTALL_JOBS", "3"))) as pool:
        results = list(pool.map(lambda c: run_one(c, CHECKS[c]), sorted(CHECKS)))
    failed = 0
    for command, ok, seconds, output in results:
        print(f"{'ok  ' if ok else 'FAIL'} {seconds:5.1f}s  {command}   ({', '.join(documented[command])})")
        if not ok:
            failed += 1
            print("    " + output.replace("\n", "\n    "))
    print(f"install commands: {len(results) - failed}/{len(results)} passed in {time.perf_counter() - started:.0f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
