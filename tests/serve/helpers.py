"""A real ``polyroute serve`` on a loopback port (uvicorn in a thread, or the CLI in a subprocess), its keys, and
an OpenAI-format upstream that streams tool calls as OpenAI does."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx2
import uvicorn

from polyroute import Router
from polyroute.serve import create_app, hash_key
from tests.emulators.openai_format import compact_events, completion
from tests.emulators.server import Reply, Request

KEY = "pr-test-client-key-0123456789"
"""The virtual key clients send."""
OTHER_KEY = "pr-test-limited-key-9876543210"
"""A key allowed only the route ``limited``, at 2 requests a minute."""
PROVIDER_KEY = "sk-emu-provider-key-never-shown"
"""The deployments' own key: the upstream must see it; clients must never."""

KEYS: list[dict[str, Any]] = [
    {"name": "dev", "sha256": hash_key(KEY), "tags": ["team-a"]},
    {"name": "limited", "sha256": hash_key(OTHER_KEY), "routes": ["limited"], "rpm": 2},
]


def config(models: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A router config with the test keys and the ``limited`` route (mock); its own copy, for a test to change."""
    limited = {"name": "limited", "deployments": [{"provider": "mock", "model": "mock-1"}]}
    return {"models": [*models, limited], "keys": [dict(key) for key in KEYS], **extra}


def openai_route(name: str, url: str) -> dict[str, Any]:
    """A route to an OpenAI-compatible emulator."""
    return {
        "name": name,
        "deployments": [
            {"provider": "openai-compatible", "model": "gpt-emu", "api_base": f"{url}/v1", "api_key": PROVIDER_KEY}
        ],
    }


def anthropic_route(name: str, url: str) -> dict[str, Any]:
    """A route to an Anthropic emulator."""
    return {
        "name": name,
        "deployments": [
            {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "api_base": url, "api_key": PROVIDER_KEY}
        ],
    }


class Server:
    """uvicorn serving a router on 127.0.0.1 in a background thread (its own event loop, as in production)."""

    def __init__(self, router: Router, workers: int = 1) -> None:
        self.router = router
        self.app = create_app(router, workers=workers)
        self._config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(self._config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        sock = self._server.servers[0].sockets[0]
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    def start(self) -> Server:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)


@contextmanager
def serving(cfg: Mapping[str, Any], workers: int = 1) -> Iterator[Server]:
    """A started server for ``cfg`` (the app of one of ``workers`` processes); stopped afterwards."""
    server = Server(Router(dict(cfg)), workers).start()
    try:
        yield server
    finally:
        server.stop()


class CLIServer:
    """``polyroute serve`` run by the command line in a subprocess, its stdout and stderr lines collected."""

    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._collect, args=(proc.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._collect, args=(proc.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _collect(stream: IO[str] | None, lines: list[str]) -> None:
        assert stream is not None
        for line in stream:
            lines.append(line.rstrip("\n"))

    def wait_line(self, prefix: str, timeout: float = 60) -> str:
        """The first stdout line that starts with ``prefix``, once printed."""
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.stdout if line.startswith(prefix)]
            if found:
                return found[0]
            assert self.proc.poll() is None, "\n".join(self.stdout + self.stderr)
            assert time.monotonic() < deadline, f"polyroute serve printed no {prefix!r}: {self.stdout + self.stderr}"
            time.sleep(0.02)

    def wait_healthy(self, timeout: float = 60) -> None:
        """Until ``GET /health`` answers 200 (every worker need not be up: one is)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx2.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            assert self.proc.poll() is None, "\n".join(self.stdout + self.stderr)
            assert time.monotonic() < deadline, "polyroute serve did not start"
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        for reader in self._readers:
            reader.join(10)


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def cli_serving(path: Path, *args: str, port: int | None = None) -> Iterator[CLIServer]:
    """``polyroute serve path --port <port> *args`` in a subprocess (a free port by default), stopped afterwards."""
    port = free_port() if port is None else port
    proc = subprocess.Popen(
        [sys.executable, "-m", "polyroute", "serve", str(path), "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = CLIServer(proc, f"http://127.0.0.1:{port}")
    try:
        yield server
    finally:
        server.stop()


# -- an OpenAI-format upstream with tool calls ---------------------------------------------------------------------


def _chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    return {
        "id": "chatcmpl-emu",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-emu",
        "choices": choices,
        **extra,
    }


def tool_call_events(name: str, arguments: Mapping[str, Any], call_id: str = "call_emu_1") -> list[str]:
    """A streamed tool call as OpenAI sends it: id and name first, the arguments in fragments, usage last."""
    args = json.dumps(arguments, separators=(",", ":"))
    third = max(1, len(args) // 3)
    payloads: list[Any] = [_chunk({"role": "assistant", "content": None, "refusal": None})]
    payloads.append(
        _chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
                ]
            }
        )
    )
    for i in range(0, len(args), third):
        payloads.append(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + third]}}]}))
    payloads.append(_chunk({}, "tool_calls"))
    payloads.append(_chunk(None, usage={"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}))
    payloads.append("[DONE]")
    return compact_events(payloads)


def text_events(pieces: list[str]) -> list[str]:
    """Streamed text as OpenAI sends it, with the usage chunk when asked."""
    payloads: list[Any] = [_chunk({"role": "assistant", "content": "", "refusal": None})]
    payloads += [_chunk({"content": p}) for p in pieces]
    payloads.append(_chunk({}, "stop"))
    payloads.append(
        _chunk(None, usage={"prompt_tokens": 12, "completion_tokens": len(pieces), "total_tokens": 12 + len(pieces)})
    )
    payloads.append("[DONE]")
    return compact_events(payloads)


class ToolThenText:
    """An OpenAI-compatible upstream: a tool call while the conversation has no tool result (and tools are
    offered), then text; streamed or not as asked. Records bodies and the auth header it got."""

    def __init__(
        self,
        tool: str = "get_weather",
        arguments: Mapping[str, Any] | None = None,
        answer: str = "It is sunny in Paris.",
    ) -> None:
        self.tool = tool
        self.arguments = dict(arguments or {"city": "Paris"})
        self.answer = answer
        self.bodies: list[dict[str, Any]] = []
        self.auth: list[str | None] = []

    def __call__(self, request: Request) -> Reply:
        if not request.path.endswith("/chat/completions"):
            return Reply.json({"error": {"message": f"{request.path} not found", "type": "invalid_request_error"}}, 404)
        if request.headers.get("authorization") != f"Bearer {PROVIDER_KEY}":
            return Reply.json(
                {
                    "error": {
                        "message": "Incorrect API key provided",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                    }
                },
                401,
            )
        body = request.json()
        self.bodies.append(body)
        self.auth.append(request.headers.get("authorization"))
        answered = any(m.get("role") == "tool" for m in body["messages"])
        if body.get("tools") and not answered and body.get("tool_choice") != "none":
            if body.get("stream"):
                return Reply.sse(tool_call_events(self.tool, self.arguments))
            call = {
                "id": "call_emu_1",
                "type": "function",
                "function": {"name": self.tool, "arguments": json.dumps(self.arguments)},
            }
            return Reply(body=completion(None, model="gpt-emu", tool_calls=[call]))
        if body.get("stream"):
            words = self.answer.split(" ")
            return Reply.sse(text_events([w + " " for w in words[:-1]] + words[-1:]))
        return Reply(body=completion(self.answer, model="gpt-emu"))


def run(coro: Any) -> Any:
    """Run a coroutine to completion (for async clients in sync tests)."""
    return asyncio.run(coro)
