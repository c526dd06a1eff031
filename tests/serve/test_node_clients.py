"""Node clients against ``polyroute serve``: the official ``openai`` package (chat, stream, tool call) and Claude
Code headless (``claude -p``) completing a task with a tool call."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.emulators import Emulator
from tests.emulators import anthropic_format as claude
from tests.emulators.openai_format import completion
from tests.emulators.server import Handler, Reply, Request
from tests.serve.helpers import (
    KEY,
    PROVIDER_KEY,
    ToolThenText,
    anthropic_route,
    config,
    openai_route,
    serving,
    text_events,
    tool_call_events,
)
from tests.serve.node import NODE_CLIENTS, require

StartEmulator = Callable[[Handler], Emulator]
HERE = Path(__file__).parent


def test_the_node_openai_package(emulator: StartEmulator) -> None:
    require(NODE_CLIENTS / "node_modules" / "openai", "the openai npm package")
    upstream = ToolThenText()
    emu = emulator(upstream)
    with serving(config([openai_route("gpt", emu.url)])) as server:
        # ES modules resolve packages from the script's own directory: run a copy beside node_modules
        script = NODE_CLIENTS / "node_openai_client.mjs"
        shutil.copyfile(HERE / "node_openai_client.mjs", script)
        done = subprocess.run(
            ["node", str(script), f"{server.url}/v1", KEY, "gpt"], capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {
        "chat": "It is sunny in Paris.",
        "streamed": "It is sunny in Paris.",
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
        "call": {"name": "get_weather", "arguments": {"city": "Paris"}},
        "answered": "It is sunny in Paris.",
        "unauthorized": 401,
    }


TASK = "polyroute-task: create hello.txt in the current directory containing the word polyroute"


def _wants_write(tools: list[str], history: str, answered: bool) -> bool:
    return "Write" in tools and not answered and "polyroute-task" in history


def _openai_coder(path: Path) -> Callable[[Request], Reply]:
    """An OpenAI-format model that calls Claude Code's ``Write`` tool for the task, then reports."""

    def handle(request: Request) -> Reply:
        body = request.json()
        tools = [t["function"]["name"] for t in body.get("tools") or []]
        answered = any(m.get("role") == "tool" for m in body["messages"])
        if _wants_write(tools, json.dumps(body["messages"]), answered):
            args = {"file_path": str(path), "content": "polyroute\n"}
            if body.get("stream"):
                return Reply.sse(tool_call_events("Write", args, "call_write_1"))
            call = {
                "id": "call_write_1",
                "type": "function",
                "function": {"name": "Write", "arguments": json.dumps(args)},
            }
            return Reply(body=completion(None, model="gpt-emu", tool_calls=[call]))
        answer = "Done: wrote hello.txt." if answered else "ok"
        return (
            Reply.sse(text_events([answer])) if body.get("stream") else Reply(body=completion(answer, model="gpt-emu"))
        )

    return handle


def _claude_coder(path: Path) -> Callable[[Request], Reply]:
    """An Anthropic-format model (checked as strictly as the emulator checks) doing the same; with thinking on
    (Claude Code asks for adaptive thinking) each answer starts with a signed thinking block, which Claude Code must
    send back intact for the next turn to be accepted."""
    signatures: set[str] = set()

    def handle(request: Request) -> Reply:
        body = request.json()
        # context_management is a beta field: the API takes it with its beta flag (which Claude Code sends, and
        # polyroute forwards to Anthropic deployments); the emulator checks the rest against the SDK's GA types.
        beta = request.headers.get("anthropic-beta", "")
        checked = {k: v for k, v in body.items() if k != "context_management" or "context-management" not in beta}
        problem = claude.check_request(checked, signatures)
        if problem:
            return claude.error(400, "invalid_request_error", problem)
        tools = [t.get("name", "") for t in body.get("tools") or []]
        answered = any(
            isinstance(m.get("content"), list) and any(b.get("type") == "tool_result" for b in m["content"])
            for m in body["messages"]
        )
        if _wants_write(tools, json.dumps(body["messages"]), answered):
            blocks = claude.tool_use("Write", {"file_path": str(path), "content": "polyroute\n"}, id="toolu_write_1")
        else:
            blocks = [claude.text("Done: wrote hello.txt." if answered else "ok")]
        if (body.get("thinking") or {}).get("type") in ("enabled", "adaptive"):
            signature = base64.b64encode(f"emu-signature-{len(signatures)}".encode()).decode()
            signatures.add(signature)
            blocks = [{"type": "thinking", "thinking": "The task needs one file.", "signature": signature}, *blocks]
        msg = claude.message(blocks, model=body["model"])
        if body.get("stream"):
            return Reply.sse(claude.events(msg))
        return Reply(body=msg)

    return handle


@pytest.mark.parametrize("upstream", ["openai", "anthropic"], ids=["translated", "native"])
def test_claude_code_headless_completes_a_task_with_a_tool(
    emulator: StartEmulator, tmp_path: Path, upstream: str
) -> None:
    wrapper = require(
        NODE_CLIENTS / "node_modules" / "@anthropic-ai" / "claude-code" / "cli-wrapper.cjs", "Claude Code (npm)"
    )
    work = tmp_path / "work"
    work.mkdir()
    target = work / "hello.txt"
    if upstream == "openai":
        emu = emulator(_openai_coder(target))
        route = openai_route("coder", emu.url)
    else:
        emu = emulator(_claude_coder(target))
        route = anthropic_route("coder", emu.url)
    with serving(config([route])) as server:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "ANTHROPIC_BASE_URL": server.url,
            "ANTHROPIC_API_KEY": KEY,
            "ANTHROPIC_MODEL": "coder",
            "ANTHROPIC_SMALL_FAST_MODEL": "coder",
            "ANTHROPIC_DEFAULT_HAIKU_MODEL": "coder",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }
        done = subprocess.run(
            ["node", str(wrapper), "-p", TASK, "--allowedTools", "Write", "--output-format", "json"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["is_error"] is False
    assert result["result"] == "Done: wrote hello.txt."
    assert target.read_text() == "polyroute\n"
    assert {r.headers.get("authorization") or r.headers.get("x-api-key") for r in emu.requests} <= {
        f"Bearer {PROVIDER_KEY}",
        PROVIDER_KEY,
    }
