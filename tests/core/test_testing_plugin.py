"""polyroute.testing, loaded as a user loads it: pytest runs in a subprocess on a generated project that records
against a loopback emulator, then replays with the emulator stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from vcr import VCR
from vcr.request import Request as VcrRequest

from polyroute import testing
from tests.emulators import Emulator, Reply, Request
from tests.emulators.openai_format import chunks, completion

REPO = Path(__file__).resolve().parents[2]
ENV_KEY = "sk-envkey-0123456789abcdefABCDEF"
CONFIG_KEY = "cfgkey-9876543210fedcbaZYXWVU"

AGENT_TESTS = """
import asyncio
import json
import os

import pytest

from polyroute import Router

BASE = os.environ["EMU_URL"]
PROMPT = os.environ.get("PROMPT", "Say hi")
MESSAGES = [{"role": "user", "content": PROMPT}]


def router():
    first = [{"provider": "openai-compatible", "model": "new-model", "api_base": BASE + "/v2"}]
    return Router({"models": [{"name": "chat", "deployments": [
        *(first if os.environ.get("EXTRA_FIRST") else []),
        {"provider": "openai", "model": "gpt-down", "api_base": BASE + "/v1"},
        {"provider": "azure", "model": "gpt-azure", "api_base": BASE, "api_key": os.environ["TEST_CONFIG_KEY"],
         "headers": json.loads(os.environ.get("EXTRA_HEADERS", "{}"))},
    ]}]})


@pytest.mark.vcr
def test_sync():
    with router().openai_client() as client:
        raw = client.chat.completions.with_raw_response.create(model="chat", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == "You said: " + PROMPT
    assert raw.headers["x-polyroute-deployment"] == "azure/gpt-azure"


@pytest.mark.vcr
def test_sync_stream():
    with router().openai_client() as client:
        stream = client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "You said: " + PROMPT


@pytest.mark.vcr
def test_async():
    async def main():
        async with router().async_openai_client() as client:
            completion = await client.chat.completions.create(model="chat", messages=MESSAGES)
        return completion.choices[0].message.content

    assert asyncio.run(main()) == "You said: " + PROMPT


@pytest.mark.vcr
def test_async_stream():
    async def main():
        async with router().async_openai_client() as client:
            stream = await client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    assert asyncio.run(main()) == "You said: " + PROMPT
"""

LEAKY_TESTS = """
import os

import pytest

from polyroute import Router

BASE = os.environ["EMU_URL"]


def ask(content, **deployment):
    router = Router({"models": [{"name": "chat", "deployments": [
        {"provider": "azure", "model": "gpt-azure", "api_base": BASE, "api_key": os.environ["TEST_CONFIG_KEY"],
         **deployment}]}]})
    messages = [{"role": "user", "content": content}]
    with router.openai_client() as client:
        return client.chat.completions.create(model="chat", messages=messages)


@pytest.mark.vcr
def test_header_leaks_config_key():
    ask("hello", headers={"x-debug-key": os.environ["TEST_CONFIG_KEY"]})


@pytest.mark.vcr
def test_prompt_leaks_env_key():
    ask("my key is " + os.environ["OPENAI_API_KEY"])


@pytest.mark.vcr
def test_clean():
    ask("hello")
"""

NAIVE_CONFTEST = """
import pytest

pytest_plugins = ["polyroute.testing"]


@pytest.fixture
def vcr_config():
    # a user's own filter list that forgets most providers' headers: the plugin still keeps them out
    return {"filter_headers": ["authorization"]}
"""

LOOPBACK_GUARD = """
import ipaddress
import socket

_real_connect = socket.socket.connect


def _connect(self, address):
    if isinstance(address, tuple) and address and str(address[0]) != "localhost":
        if not ipaddress.ip_address(str(address[0])).is_loopback:
            raise ConnectionRefusedError(f"tests may only connect to loopback, not {address[0]!r}")
    return _real_connect(self, address)


socket.socket.connect = _connect
"""

UNRELATED_PLUGINS = [
    f"-pno:{name}" for name in ("langsmith_plugin", "inline_snapshot", "syrupy", "codspeed", "benchmark")
]
"""Slow-to-import plugins of this environment that have nothing to do with recording."""

PYTEST_INI = """
[pytest]
addopts = -p no:cacheprovider
filterwarnings = error
asyncio_default_fixture_loop_scope = function
"""


def provider(request: Request) -> Reply:
    """An OpenAI-format upstream: ``gpt-down`` is overloaded, others echo the last message."""
    body = request.json()
    if body["model"] == "gpt-down":
        return Reply.json({"error": {"message": "overloaded", "type": "server_error", "code": None}}, status=503)
    text = "You said: " + body["messages"][-1]["content"]
    if body.get("stream"):
        return Reply.sse(chunks([text[:5], text[5:]], model=body["model"]))
    return Reply(body=completion(text, model=body["model"]))


def make_project(root: Path, tests: str, loading: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text(PYTEST_INI)
    (root / "_loopback_guard.py").write_text(LOOPBACK_GUARD)
    (root / "test_agent.py").write_text(textwrap.dedent(tests))
    if loading == "conftest":
        (root / "conftest.py").write_text(NAIVE_CONFTEST)
    return root


def run_pytest(project: Path, loading: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k not in testing.key_env_names()}
    clean["PYTHONPATH"] = os.pathsep.join([str(project), str(REPO)])
    clean.update(env)
    plugin = ["-p", "polyroute.testing"] if loading == "-p" else []
    cmd = [sys.executable, "-m", "pytest", "-p", "_loopback_guard", *plugin, "--rootdir", str(project)]
    cmd += ["-c", str(project / "pytest.ini"), "-q", *UNRELATED_PLUGINS, *args]
    return subprocess.run(cmd, cwd=project, env=clean, capture_output=True, text=True, timeout=180, check=False)


def cassettes(project: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((project / "cassettes").rglob("*.yaml"))}


@pytest.mark.slow
@pytest.mark.parametrize("loading", ["-p", "conftest"])
def test_record_then_replay_offline(emulator: Callable[..., Emulator], tmp_path: Path, loading: str) -> None:
    emu = emulator(provider)
    project = make_project(tmp_path / "project", AGENT_TESTS, loading)
    env = {"EMU_URL": emu.url, "OPENAI_API_KEY": ENV_KEY, "TEST_CONFIG_KEY": CONFIG_KEY}

    recorded = run_pytest(project, loading, "--record-mode=once", **env)
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    assert "4 passed" in recorded.stdout
    # the keys really went upstream: one from the environment, one from the config
    assert len(emu.requests) == 8
    assert {r.headers.get("authorization") for r in emu.requests} >= {f"Bearer {ENV_KEY}"}
    assert {r.headers.get("api-key") for r in emu.requests} >= {CONFIG_KEY}

    saved = cassettes(project)
    assert sorted(saved) == ["test_async.yaml", "test_async_stream.yaml", "test_sync.yaml", "test_sync_stream.yaml"]
    for text in saved.values():
        assert ENV_KEY not in text and CONFIG_KEY not in text
        lowered = text.lower()
        assert "authorization" not in lowered and "api-key:" not in lowered
        assert "gpt-down" in text and "503" in text  # the failover is in the cassette, and replays
        assert "api-version=" in text  # harmless query parameters are kept
    assert "data: [DONE]" in saved["test_sync_stream.yaml"]

    emu.stop()
    other_keys = {"OPENAI_API_KEY": "sk-replay-only-dummy-key", "TEST_CONFIG_KEY": "replay-only-dummy-key"}
    replayed = run_pytest(project, loading, "--record-mode=none", "--block-network", **{**env, **other_keys})
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "4 passed" in replayed.stdout
    assert cassettes(project) == saved

    if loading == "conftest":
        return  # the failure reports below do not depend on how the plugin was loaded
    changed = run_pytest(project, loading, "--record-mode=none", **{**env, "PROMPT": "Say bye"})
    assert changed.returncode == 1
    assert "4 failed" in changed.stdout
    assert "CannotOverwriteExistingCassetteException" in changed.stdout
    assert "llm_json_body" in changed.stdout and "$.messages[0].content" in changed.stdout
    assert changed.stdout.count("polyroute.testing") >= 4
    assert cassettes(project) == saved

    # A deployment that was not recorded comes first: vcrpy's no-match must fail the test, not be taken for an
    # upstream failure that the router falls over from (to the recorded deployments, which would pass).
    extra = run_pytest(project, loading, "--record-mode=none", **{**env, "EXTRA_FIRST": "1"})
    assert extra.returncode == 1
    assert "4 failed" in extra.stdout
    assert extra.stdout.count("not in its cassette") == 4
    assert "/v2/chat/completions" in extra.stdout


@pytest.mark.slow
@pytest.mark.parametrize("loading", ["-p", "conftest"])
def test_secret_guard_refuses_a_cassette_with_a_key(
    emulator: Callable[..., Emulator], tmp_path: Path, loading: str
) -> None:
    emu = emulator(provider)
    project = make_project(tmp_path / "project", LEAKY_TESTS, loading)
    env = {"EMU_URL": emu.url, "OPENAI_API_KEY": ENV_KEY, "TEST_CONFIG_KEY": CONFIG_KEY}
    result = run_pytest(project, loading, "--record-mode=once", **env)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "3 passed, 2 errors" in result.stdout
    assert "ERROR at teardown of test_header_leaks_config_key" in result.stdout
    assert "ERROR at teardown of test_prompt_leaks_env_key" in result.stdout
    assert "interactions[0].request.headers.x-debug-key" in result.stdout
    assert "OPENAI_API_KEY in interactions[0].request.body" in result.stdout
    assert ENV_KEY not in out and CONFIG_KEY not in out  # the report names where, never the key
    assert list(cassettes(project)) == ["test_clean.yaml"]
    assert CONFIG_KEY not in cassettes(project)["test_clean.yaml"]


def test_import_polyroute_does_not_load_the_plugin() -> None:
    code = "import sys, polyroute; sys.exit(any(m in sys.modules for m in ('polyroute.testing', 'vcr', 'pytest')))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def configured_vcr() -> VCR:
    vcr = VCR()
    testing.pytest_recording_configure(config=None, vcr=vcr)  # type: ignore[arg-type]
    return vcr


def test_defaults_drop_every_providers_credentials() -> None:
    before_record = configured_vcr().get_merged_config()["before_record_request"]
    headers = {
        "Authorization": "Bearer sk-abcdefghijkl",
        "x-api-key": "test-anthropic-abcdefghijkl",
        "x-goog-api-key": "AIzaabcdefghijkl",
        "api-key": "azure-abcdefghijkl",
        "OpenAI-Organization": "org-abc",
        "X-Amz-Date": "20250101T000000Z",
        "x-amz-security-token": "token-abcdefghijkl",
        "x-amz-content-sha256": "abc",
        "Cookie": "a=b",
        "content-type": "application/json",
    }
    url = "https://generativelanguage.googleapis.com/v1beta/models/g:streamGenerateContent?alt=sse&key=AIzaSECRET123"
    request = before_record(VcrRequest("POST", url, b"{}", headers))
    assert dict(request.headers) == {"content-type": "application/json"}
    assert request.query == [("alt", "sse")]
    assert "AIzaSECRET123" not in request.uri
    assert testing.GUARD.find("... sk-abcdefghijkl ... AIzaSECRET123 ...") != []


def test_defaults_scrub_responses_and_decode_them() -> None:
    config = configured_vcr().get_merged_config()
    response = {
        "status": {"code": 200, "message": "OK"},
        "headers": {"Set-Cookie": ["s=1"], "openai-organization": ["org-x"], "x-request-id": ["req_1"]},
        "body": {"string": b"{}"},
    }
    assert config["before_record_response"](response)["headers"] == {"x-request-id": ["req_1"]}
    assert [m.__name__ for m in config["match_on"]] == [
        "method",
        "scheme",
        "host",
        "port",
        "path",
        "query",
        "llm_json_body",
    ]


def body_request(body: object) -> VcrRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return VcrRequest("POST", "https://api.openai.com/v1/chat/completions", raw, {})


def test_json_body_matcher() -> None:
    match = testing.llm_json_body
    recorded = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    match(
        body_request(b'{"temperature":0,  "messages":[{"content":"hi","role":"user"}],"model":"m"}'),
        body_request(recorded),
    )  # key order and spacing do not matter
    with pytest.raises(AssertionError, match=r"\$\.messages\[0\]\.content: 'bye' \(this request\) != 'hi'"):
        match(body_request({**recorded, "messages": [{"role": "user", "content": "bye"}]}), body_request(recorded))
    with pytest.raises(AssertionError, match=r"\$\.seed is new"):
        match(body_request({**recorded, "seed": 1}), body_request(recorded))
    calls = [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    tool_turn = {"messages": [{"role": "assistant", "tool_calls": calls}, {"role": "tool", "tool_call_id": "call_1"}]}
    other = json.loads(json.dumps(tool_turn).replace("call_1", "call_2"))
    match(body_request(tool_turn), body_request(other))  # generated tool-call ids are volatile
    match(body_request(b"not json"), body_request(b"not json"))
    with pytest.raises(AssertionError):
        match(body_request(b"not json"), body_request(b"other"))


def test_guard_learns_keys_not_placeholders() -> None:
    guard = testing.SecretGuard()
    guard.add("Bearer sk-learned-0123456789", "the authorization header")
    guard.add("ollama", "a placeholder")
    guard.add(None, "nothing")
    assert guard.find("x sk-learned-0123456789 y") == ["the authorization header"]
    assert guard.find("ollama") == []
