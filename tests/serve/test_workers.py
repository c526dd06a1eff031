"""``polyroute serve --workers N``: each worker is a process with its own memory, so serve warns at startup about
the state that would split (the in-memory Responses store above all), and a stored response not found says why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import pytest

from polyroute.config import load_config
from polyroute.serve.startup import worker_warnings
from tests.serve.helpers import KEY, cli_serving, config, serving

HEADERS = {"authorization": f"Bearer {KEY}"}
TURN: dict[str, Any] = {"model": "limited", "input": "Say hi."}


def _write(tmp_path: Path, cfg: dict[str, Any]) -> Path:
    path = tmp_path / "polyroute.json"
    path.write_text(json.dumps(cfg))
    return path


def test_two_workers_with_the_memory_store_warn_naming_the_fix(tmp_path: Path) -> None:
    with cli_serving(_write(tmp_path, config([])), "--workers", "2") as server:
        server.wait_healthy()
        fetched = httpx2.get(f"{server.url}/v1/responses/resp_elsewhere", headers=HEADERS)
    assert fetched.status_code == 404
    assert "runs 2 worker processes" in fetched.json()["error"]["message"]  # each worker knows how many there are
    assert any("keys[].rpm (limited)" in line for line in server.stderr)
    warnings = [line for line in server.stderr if line.startswith("polyroute serve: warning: the Responses store")]
    assert len(warnings) == 1, server.stderr
    assert "previous_response_id" in warnings[0]
    assert "responses: {store_path: responses.db}" in warnings[0]
    assert "responses: {store: redis}" in warnings[0]
    assert "--workers 1" in warnings[0]


def test_one_worker_or_a_shared_store_does_not_warn_and_turns_chain_on_every_worker(tmp_path: Path) -> None:
    """With the SQLite store the README recommends, ``previous_response_id`` holds on whichever worker a turn
    reaches (each turn on a new connection, so the kernel spreads them)."""
    with cli_serving(_write(tmp_path, config([])), "--workers", "1") as single:
        single.wait_healthy()
    assert not [line for line in single.stderr if "warning" in line], single.stderr  # the key's rpm neither
    shared = config([], responses={"store_path": str(tmp_path / "responses.db")})
    with cli_serving(_write(tmp_path, shared), "--workers", "2") as server:
        server.wait_healthy()
        previous: str | None = None
        answers: list[httpx2.Response] = []
        for _ in range(8):
            turn = {**TURN, "previous_response_id": previous} if previous else TURN
            answers.append(httpx2.post(f"{server.url}/v1/responses", json=turn, headers=HEADERS))
            previous = answers[-1].json()["id"]
        found = [httpx2.get(f"{server.url}/v1/responses/{a.json()['id']}", headers=HEADERS) for a in answers]
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    assert [f.status_code for f in found] == [200] * 8
    assert not [line for line in server.stderr if "Responses store" in line], server.stderr


def test_a_missing_stored_response_on_a_split_store_says_it_may_be_on_another_worker(tmp_path: Path) -> None:
    """What the client sees when its turn reached another worker: the error names the cause and the fix."""
    for cfg, workers, hinted in [
        (config([]), 2, True),
        (config([]), 1, False),
        (config([], responses={"store_path": str(tmp_path / "r.db")}), 2, False),
    ]:
        with serving(cfg, workers=workers) as server:
            follow_up = httpx2.post(
                f"{server.url}/v1/responses", json={**TURN, "previous_response_id": "resp_other"}, headers=HEADERS
            )
            fetched = httpx2.get(f"{server.url}/v1/responses/resp_other", headers=HEADERS)
            chat = httpx2.post(
                f"{server.url}/v1/chat/completions", json={"model": "nope", "messages": []}, headers=HEADERS
            )
        assert follow_up.status_code == 400
        assert follow_up.json()["error"]["code"] == "previous_response_not_found"
        assert fetched.status_code == 404
        for answer in (follow_up, fetched):
            message = answer.json()["error"]["message"]
            assert message.startswith(("Previous response with id 'resp_other' not found", "Response with id"))
            assert ("2 worker processes" in message and "responses.store_path" in message) is hinted, message
        assert "worker" not in chat.json()["error"]["message"]


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"models": [{"name": "capped", "deployments": [{"provider": "mock", "model": "m", "rpm": 10}]}]}, ["capped"]),
        ({"budgets": [{"name": "daily", "usd": 5}]}, ["budgets (daily)"]),
        (
            {"keys": [{"name": "alice", "sha256": "0" * 64, "rpm": 60}]},
            ["keys[].rpm (alice)"],
        ),
    ],
    ids=["deployment-rpm", "budget", "key-rpm"],
)
def test_limits_and_budgets_that_count_per_worker_are_warned_about(extra: dict[str, Any], says: list[str]) -> None:
    cfg = load_config({"responses": {"store_path": "r.db"}, **extra})
    warnings = worker_warnings(cfg, 3)
    assert len(warnings) == 1
    for words in says:
        assert words in warnings[0]
    assert "3 times" in warnings[0]
    assert worker_warnings(cfg, 1) == []


def test_state_on_redis_shares_limits_and_budgets_but_not_key_rpm() -> None:
    cfg = load_config(
        {
            "state": {"backend": "redis", "url": "redis://127.0.0.1:1/0"},
            "responses": {"store": "redis"},
            "models": [{"name": "capped", "deployments": [{"provider": "mock", "model": "m", "tpm": 1000}]}],
            "budgets": [{"name": "daily", "usd": 5}],
            "keys": [{"name": "alice", "sha256": "0" * 64, "rpm": 60}],
        }
    )
    assert [w.split(" ", 2)[:2] for w in worker_warnings(cfg, 2)] == [["keys[].rpm", "(alice)"]]
    assert worker_warnings(load_config({"responses": {"store_path": ":memory:"}}), 2)[0].startswith(
        "the Responses store is in memory"
    )
