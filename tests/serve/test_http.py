"""``polyroute serve`` over real HTTP: keys, generic forwarding, streaming without buffering, disconnects, cURL."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from polyroute.errors import ConfigError
from polyroute.serve import create_app
from tests.emulators import Emulator
from tests.emulators.server import Handler, Reply, Request
from tests.serve.helpers import (
    KEY,
    OTHER_KEY,
    PROVIDER_KEY,
    ToolThenText,
    cli_serving,
    config,
    openai_route,
    serving,
    text_events,
)

StartEmulator = Callable[[Handler], Emulator]
CHAT = {"model": "gpt", "messages": [{"role": "user", "content": "What is the weather in Paris?"}]}


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_health_needs_no_key() -> None:
    with serving(config([])) as server:
        response = httpx2.get(f"{server.url}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ({}, "no API key"),
        (bearer("pr-not-a-key"), "invalid API key"),
        (bearer(PROVIDER_KEY), "invalid API key"),
        ({"x-api-key": "wrong"}, "invalid API key"),
    ],
    ids=["missing", "unknown", "provider-key", "x-api-key-unknown"],
)
def test_requests_without_a_valid_key_get_401(emulator: StartEmulator, headers: dict[str, str], says: str) -> None:
    upstream = ToolThenText()
    emu = emulator(upstream)
    with serving(config([openai_route("gpt", emu.url)])) as server:
        chat = httpx2.post(f"{server.url}/v1/chat/completions", json=CHAT, headers=headers)
        messages = httpx2.post(f"{server.url}/v1/messages", json={**CHAT, "max_tokens": 10}, headers=headers)
    assert chat.status_code == 401
    assert chat.json()["error"]["type"] == "authentication_error"
    assert says in chat.json()["error"]["message"]
    assert messages.status_code == 401
    assert messages.json() == {
        "type": "error",
        "error": {"type": "authentication_error", "message": messages.json()["error"]["message"]},
    }
    assert upstream.bodies == []  # nothing went upstream


def test_a_key_reaches_only_its_routes_and_its_rate(emulator: StartEmulator) -> None:
    emu = emulator(ToolThenText())
    with serving(config([openai_route("gpt", emu.url)])) as server:
        refused = httpx2.post(f"{server.url}/v1/chat/completions", json=CHAT, headers=bearer(OTHER_KEY))
        limited = {**CHAT, "model": "limited"}
        first = httpx2.post(f"{server.url}/v1/chat/completions", json=limited, headers=bearer(OTHER_KEY))
        second = httpx2.post(f"{server.url}/v1/chat/completions", json=limited, headers={"x-api-key": OTHER_KEY})
        third = httpx2.post(f"{server.url}/v1/chat/completions", json=limited, headers=bearer(OTHER_KEY))
    assert refused.status_code == 403
    assert "may not call model 'gpt'" in refused.json()["error"]["message"]
    assert (first.status_code, second.status_code) == (200, 200)
    assert third.status_code == 429
    assert third.json()["error"]["type"] == "rate_limit_error"
    assert int(third.headers["retry-after"]) >= 1


def test_the_provider_key_goes_upstream_and_never_back(emulator: StartEmulator) -> None:
    upstream = ToolThenText()
    emu = emulator(upstream)
    with serving(config([openai_route("gpt", emu.url)])) as server:
        response = httpx2.post(f"{server.url}/v1/chat/completions", json=CHAT, headers=bearer(KEY))
    assert response.status_code == 200
    assert upstream.auth == [f"Bearer {PROVIDER_KEY}"]
    assert PROVIDER_KEY not in response.text
    assert KEY not in json.dumps(upstream.bodies)
    assert all(PROVIDER_KEY not in value and KEY not in value for value in response.headers.values())


def test_a_server_without_keys_refuses_to_start_unless_told() -> None:
    with pytest.raises(ConfigError, match="needs client keys"):
        create_app({"models": []})
    assert create_app({"models": []}, open_access=True).open_access


def test_any_path_the_transport_serves_is_served(emulator: StartEmulator) -> None:
    """Forwarding is generic: /v1/models and a 404 for an unknown path come from the transport itself."""
    emu = emulator(ToolThenText())
    with serving(config([openai_route("gpt", emu.url)])) as server:
        models = httpx2.get(f"{server.url}/v1/models", headers=bearer(KEY))
        one = httpx2.get(f"{server.url}/v1/models/gpt", headers=bearer(KEY))
        unknown = httpx2.post(f"{server.url}/v1/nothing", json={}, headers=bearer(KEY))
        usage = httpx2.get(f"{server.url}/usage", headers=bearer(KEY))
    assert [m["id"] for m in models.json()["data"]] == ["gpt", "limited"]
    assert one.json()["id"] == "gpt"
    assert unknown.status_code == 404
    assert "/v1/chat/completions" in unknown.json()["error"]["message"]
    assert usage.status_code == 403  # not an admin key


def test_bad_input_is_an_openai_error(emulator: StartEmulator) -> None:
    emu = emulator(ToolThenText())
    with serving(config([openai_route("gpt", emu.url)])) as server:
        broken = httpx2.post(f"{server.url}/v1/chat/completions", content=b"{not json", headers=bearer(KEY))
        no_route = httpx2.post(f"{server.url}/v1/chat/completions", json={**CHAT, "model": "nope"}, headers=bearer(KEY))
    assert broken.status_code == 400
    assert broken.json()["error"]["type"] == "invalid_request_error"
    assert no_route.status_code == 404
    assert "nope" in no_route.json()["error"]["message"]


def test_an_unreachable_upstream_is_a_502_not_a_traceback() -> None:
    dead = {
        "name": "gpt",
        "deployments": [
            {"provider": "openai-compatible", "model": "m", "api_base": "http://127.0.0.1:9/v1", "timeout": 2}
        ],
    }
    cfg = config([dead])
    cfg["retry"] = {"last_resort_retries": 0}
    with serving(cfg) as server:
        response = httpx2.post(f"{server.url}/v1/chat/completions", json=CHAT, headers=bearer(KEY))
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_unreachable"


def test_chunks_arrive_as_the_upstream_sends_them(emulator: StartEmulator) -> None:
    """No buffering: the first chunk reaches the client while the upstream is still pausing before the next."""
    emu = emulator(lambda request: Reply.sse(text_events(["one ", "two ", "three"]), chunk_delay=0.4))
    with (
        serving(config([openai_route("gpt", emu.url)])) as server,
        httpx2.stream(
            "POST", f"{server.url}/v1/chat/completions", json={**CHAT, "stream": True}, headers=bearer(KEY)
        ) as response,
    ):
        started = time.monotonic()
        arrivals: list[tuple[float, bytes]] = []
        for chunk in response.iter_bytes():
            arrivals.append((time.monotonic() - started, chunk))
    body = b"".join(chunk for _, chunk in arrivals)
    assert body.endswith(b"data: [DONE]\n\n")
    content = [at for at, chunk in arrivals if b'"content":"t' in chunk]
    assert len(content) == 2  # "two " and "three" each came in its own write
    assert content[1] - content[0] > 0.3


def test_a_client_that_leaves_closes_the_upstream_stream(emulator: StartEmulator) -> None:
    """The upstream sends one chunk, then no event for 30 s: a client that leaves must not keep it open."""

    def slow(request: Request) -> Reply:
        events = text_events(["first ", "never"])
        return Reply.sse(itertools.chain(events[:2], _after(30.0, events[2:])))

    emu = emulator(slow)
    with serving(config([openai_route("gpt", emu.url)])) as server:
        with httpx2.stream(
            "POST", f"{server.url}/v1/chat/completions", json={**CHAT, "stream": True}, headers=bearer(KEY)
        ) as response:
            first = next(response.iter_bytes())
            assert b"first" in first
            assert emu.open_connections == 1
        deadline = time.monotonic() + 3
        while emu.open_connections and time.monotonic() < deadline:
            time.sleep(0.02)
        assert emu.open_connections == 0


def _after(seconds: float, items: list[str]) -> Any:
    """Silence for ``seconds`` (SSE comments, which the router reads and the client never sees: a write to a
    closed connection is how the emulator notices its client left), then ``items``."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        time.sleep(0.05)
        yield ": keep-alive\n\n"
    yield from items


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl(emulator: StartEmulator) -> None:
    emu = emulator(ToolThenText())
    with serving(config([openai_route("gpt", emu.url)])) as server:

        def curl(*args: str) -> str:
            done = subprocess.run(
                ["curl", "-sS", "--fail-with-body", "-N", *args], capture_output=True, text=True, timeout=30
            )
            assert done.returncode == 0, done.stderr + done.stdout
            return done.stdout

        url = f"{server.url}/v1/chat/completions"
        answer = json.loads(
            curl(
                url,
                "-H",
                f"Authorization: Bearer {KEY}",
                "-H",
                "content-type: application/json",
                "-d",
                json.dumps(CHAT),
            )
        )
        streamed = curl(url, "-H", f"Authorization: Bearer {KEY}", "-d", json.dumps({**CHAT, "stream": True}))
        messages = json.loads(
            curl(
                f"{server.url}/v1/messages",
                "-H",
                f"x-api-key: {KEY}",
                "-H",
                "anthropic-version: 2023-06-01",
                "-d",
                json.dumps({**CHAT, "max_tokens": 50}),
            )
        )
        denied = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url, "-d", "{}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert answer["choices"][0]["message"]["content"] == "It is sunny in Paris."
    events = [line.removeprefix("data: ") for line in streamed.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert (
        "".join(c["choices"][0]["delta"].get("content") or "" for c in map(json.loads, events[:-1]) if c["choices"])
        == "It is sunny in Paris."
    )
    assert messages["type"] == "message"
    assert messages["content"] == [{"type": "text", "text": "It is sunny in Paris."}]
    assert denied.stdout == "401"


def test_the_cli_serves_with_workers(tmp_path: Any, emulator: StartEmulator) -> None:
    """``polyroute serve CONFIG --workers 2`` in a subprocess: both workers answer; ``polyroute key`` hashes."""
    emu = emulator(ToolThenText())
    path = tmp_path / "polyroute.json"
    path.write_text(json.dumps(config([openai_route("gpt", emu.url)])))
    hashed = subprocess.run(
        [sys.executable, "-m", "polyroute", "key", "--hash"],
        input=KEY + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    from polyroute.serve import hash_key

    assert hashed.stdout.strip() == hash_key(KEY)
    with cli_serving(path, "--workers", "2") as server:
        server.wait_healthy()
        with httpx2.Client() as client:
            answers = [
                client.post(f"{server.url}/v1/chat/completions", json=CHAT, headers=bearer(KEY)) for _ in range(4)
            ]
    assert [a.status_code for a in answers] == [200] * 4


def test_a_restricted_key_sees_only_its_models_and_its_name_never_goes_upstream(emulator: StartEmulator) -> None:
    emu = emulator(ToolThenText())
    with serving(config([openai_route("gpt", emu.url)])) as server:
        listed = httpx2.get(f"{server.url}/v1/models", headers=bearer(OTHER_KEY))
        hidden = httpx2.get(f"{server.url}/v1/models/gpt", headers=bearer(OTHER_KEY))
        spoofed = {**bearer(KEY), "x-polyroute-key": "someone-else", "x-polyroute-tags": "admin"}
        answered = httpx2.post(f"{server.url}/v1/chat/completions", json=CHAT, headers=spoofed)
    assert [m["id"] for m in listed.json()["data"]] == ["limited"]
    assert hidden.status_code == 403
    assert answered.status_code == 200
    assert not any(name.startswith("x-polyroute") for r in emu.requests for name in r.headers)


def test_a_client_that_leaves_before_the_answer_frees_the_deployment(emulator: StartEmulator) -> None:
    """A non-streamed call whose client gives up: the upstream call is cancelled and the deployment's only slot
    (``max_parallel: 1``) freed for the next caller, instead of being held until the upstream answers."""
    calls: list[int] = []

    def slow_first(request: Request) -> Reply:
        calls.append(1)
        if len(calls) == 1:
            return Reply(hang=20.0)
        return ToolThenText()(request)

    emu = emulator(slow_first)
    route = openai_route("gpt", emu.url)
    route["deployments"][0]["max_parallel"] = 1
    cfg = config([route])
    cfg["retry"] = {"limit_wait": 3.0, "last_resort_retries": 0}
    with serving(cfg) as server:
        with pytest.raises(httpx2.ReadTimeout):
            httpx2.post(f"{server.url}/v1/chat/completions", json=CHAT, headers=bearer(KEY), timeout=0.5)
        started = time.monotonic()
        second = httpx2.post(f"{server.url}/v1/chat/completions", json=CHAT, headers=bearer(KEY), timeout=30)
    assert second.status_code == 200, second.text
    assert time.monotonic() - started < 2.5


def test_the_usage_report_is_served_to_admin_keys(emulator: StartEmulator, tmp_path: Any) -> None:
    """``/usage``: the ledger's report for an admin key (HTML, or JSON), the calling key as a ``key:`` tag."""
    from polyroute.serve.keys import hash_key

    admin_key = "pr-test-admin-key-5555555555"
    emu = emulator(ToolThenText())
    ledger = tmp_path / "usage.db"
    cfg = config([openai_route("gpt", emu.url)], usage={"ledger": str(ledger)})
    cfg["keys"] = [*cfg["keys"], {"name": "ops", "sha256": hash_key(admin_key), "admin": True}]
    with serving(cfg) as server:
        assert httpx2.post(f"{server.url}/v1/chat/completions", json=CHAT, headers=bearer(KEY)).status_code == 200
        forbidden = httpx2.get(f"{server.url}/usage", headers=bearer(KEY))
        page = httpx2.get(f"{server.url}/usage", headers=bearer(admin_key))
        data = httpx2.get(f"{server.url}/usage?format=json&by=tag", headers=bearer(admin_key))
        bad = httpx2.get(f"{server.url}/usage?by=colour", headers=bearer(admin_key))
        bad_since = httpx2.get(f"{server.url}/usage?since=soon", headers=bearer(admin_key))
    assert forbidden.status_code == 403
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<svg" in page.text and "polyroute usage" in page.text
    assert data.json()["total"]["calls"] == 1
    assert set(data.json()["tag"]) == {"team-a", "key:dev"}
    assert bad.status_code == 400
    assert "choose from" in bad.json()["error"]["message"]
    assert bad_since.status_code == 400
    # the query parameter's name, not the command's --since
    assert bad_since.json()["error"]["message"].startswith("/usage: since='soon': use a duration (24h, 7d, 30m)")


def test_usage_without_a_ledger_says_how_to_get_one(emulator: StartEmulator) -> None:
    from polyroute.serve.keys import hash_key

    admin_key = "pr-test-admin-key-5555555555"
    cfg = config([])
    cfg["keys"] = [*cfg["keys"], {"name": "ops", "sha256": hash_key(admin_key), "admin": True}]
    with serving(cfg) as server:
        response = httpx2.get(f"{server.url}/usage", headers=bearer(admin_key))
    assert response.status_code == 404
    assert "usage.ledger" in response.json()["error"]["message"]


def test_a_keys_budget_holds_through_the_server(emulator: StartEmulator) -> None:
    """A budget on ``tag: key:<name>`` caps one client key; another key is not charged for it."""
    from tests.emulators.openai_format import completion

    def answer(request: Request) -> Reply:
        usage = {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
        return Reply(body=completion("ok", model=request.json()["model"], usage=usage))

    emu = emulator(answer)
    route = openai_route("gpt", emu.url)
    route["deployments"][0]["prices"] = {"input": 1000.0, "output": 1000.0}  # $0.02 a call
    budget = {"name": "dev-daily", "scope": "tag", "match": "key:dev", "usd": 0.03, "per": "day"}
    cfg = config([route], budgets=[budget])
    cfg["keys"][1] = {**cfg["keys"][1], "routes": None, "rpm": None}
    body = {**CHAT, "max_tokens": 10}  # the estimate reserved before a call: ~15 tokens in, 10 out
    with serving(cfg) as server:
        codes = [httpx2.post(f"{server.url}/v1/chat/completions", json=body, headers=bearer(KEY)) for _ in range(3)]
        other = httpx2.post(f"{server.url}/v1/chat/completions", json=body, headers=bearer(OTHER_KEY))
    assert [r.status_code for r in codes] == [200, 429, 429]  # $0.02 spent; the next would pass $0.03
    assert codes[1].json()["error"]["code"] == "budget_exceeded"
    assert "dev-daily" in codes[1].json()["error"]["message"]
    assert other.status_code == 200


def test_a_missing_provider_key_on_the_server_is_a_503_not_the_clients_401(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's polyroute key is fine; the server has no provider key: a 401 would tell the client (Claude Code,
    say) that *its* key is bad."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    route = {"name": "gpt", "deployments": [{"provider": "openai", "model": "gpt-4o-mini"}]}
    with serving(config([route])) as server:
        chat = httpx2.post(f"{server.url}/v1/chat/completions", json=CHAT, headers=bearer(KEY))
        messages = httpx2.post(f"{server.url}/v1/messages", json={**CHAT, "max_tokens": 10}, headers=bearer(KEY))
    for response in (chat, messages):
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["type"] == "api_error"
        assert "server's provider key" in error["message"] and "OPENAI_API_KEY" in error["message"]
    assert messages.json()["type"] == "error"  # still Anthropic's shape on /v1/messages


def test_a_stored_response_is_its_keys_alone() -> None:
    """Under ``polyroute serve`` a stored response belongs to the key that made it: another key can neither read,
    list, continue nor delete it (as OpenAI scopes responses to a project); the server sets the key, a client cannot.
    """
    cfg = config([])
    del cfg["keys"][1]["rpm"]  # the limited key makes more than its 2 calls a minute here
    with serving(cfg) as server:
        url = f"{server.url}/v1/responses"
        made = httpx2.post(url, json={"model": "limited", "input": "hi"}, headers=bearer(KEY))
        assert made.status_code == 200, made.text
        rid = made.json()["id"]
        other = bearer(OTHER_KEY)
        spoofed = {**other, "x-polyroute-key": "dev"}
        assert httpx2.get(f"{url}/{rid}", headers=other).status_code == 404
        assert httpx2.get(f"{url}/{rid}", headers=spoofed).status_code == 404
        assert httpx2.get(f"{url}/{rid}/input_items", headers=other).status_code == 404
        assert httpx2.delete(f"{url}/{rid}", headers=other).status_code == 404
        going_on = httpx2.post(
            url, json={"model": "limited", "input": "and?", "previous_response_id": rid}, headers=other
        )
        assert going_on.status_code == 400 and going_on.json()["error"]["param"] == "previous_response_id"
        assert httpx2.get(f"{url}/{rid}", headers=bearer(KEY)).json()["id"] == rid
        chained = httpx2.post(
            url, json={"model": "limited", "input": "and?", "previous_response_id": rid}, headers=bearer(KEY)
        )
        assert chained.status_code == 200, chained.text
        assert httpx2.delete(f"{url}/{rid}", headers=bearer(KEY)).status_code == 200


def test_an_openai_routes_stored_response_is_its_keys_alone_and_stays_deleted(emulator: StartEmulator) -> None:
    """On a route to OpenAI, which keeps its own copy of each response, another key's response id (or one deleted
    through polyroute) is refused by polyroute, never sent upstream to be continued from there."""
    from tests.emulators.openai_format import ResponsesEmulator

    upstream = ResponsesEmulator({"text": "alice's secret is 42"}, {"text": "Still 42."})
    url = emulator(upstream).url
    route = {
        "name": "oai",
        "deployments": [{"provider": "openai", "model": "gpt-5-emu", "api_base": f"{url}/v1", "api_key": PROVIDER_KEY}],
    }
    cfg = config([route])
    cfg["keys"][1]["routes"] = ["oai", "limited"]
    del cfg["keys"][1]["rpm"]
    with serving(cfg) as server:
        responses = f"{server.url}/v1/responses"
        made = httpx2.post(responses, json={"model": "oai", "input": "remember 42"}, headers=bearer(KEY))
        assert made.status_code == 200, made.text
        rid = made.json()["id"]
        going_on = httpx2.post(
            responses,
            json={"model": "oai", "input": "what was the secret?", "previous_response_id": rid},
            headers=bearer(OTHER_KEY),
        )
        assert going_on.status_code == 400, going_on.text
        assert going_on.json()["error"]["code"] == "previous_response_not_found"
        assert len(upstream.bodies) == 1  # never reached OpenAI
        chained = httpx2.post(
            responses, json={"model": "oai", "input": "and?", "previous_response_id": rid}, headers=bearer(KEY)
        )
        assert chained.status_code == 200, chained.text
        assert chained.json()["output"][-1]["content"][0]["text"] == "Still 42."
        assert upstream.bodies[1]["previous_response_id"] == rid  # its own: OpenAI goes on from its copy
        assert httpx2.delete(f"{responses}/{rid}", headers=bearer(KEY)).status_code == 200
        assert httpx2.get(f"{responses}/{rid}", headers=bearer(KEY)).status_code == 404
        assert httpx2.delete(f"{responses}/{rid}", headers=bearer(KEY)).status_code == 404
        after = httpx2.post(
            responses, json={"model": "oai", "input": "and now?", "previous_response_id": rid}, headers=bearer(KEY)
        )
        assert after.status_code == 400 and after.json()["error"]["code"] == "previous_response_not_found", after.text
        assert len(upstream.bodies) == 2
