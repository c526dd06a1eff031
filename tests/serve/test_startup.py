"""What ``polyroute serve`` prints when it starts: one line once it answers, naming where, how many workers, the
routes and the Responses store, and never a key; a port already taken is said at once, with no such line."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import httpx2

from polyroute.config import load_config
from polyroute.serve import hash_key
from polyroute.serve.startup import listening_line
from tests.serve.helpers import KEY, OTHER_KEY, PROVIDER_KEY, cli_serving, config, openai_route

LISTENING = "polyroute serve: listening on "


def _write(tmp_path: Path, cfg: dict[str, Any]) -> Path:
    path = tmp_path / "polyroute.json"
    path.write_text(json.dumps(cfg))
    return path


def test_a_started_server_says_where_it_listens_once_it_answers(tmp_path: Path) -> None:
    cfg = config([openai_route("gpt", "http://127.0.0.1:9/never-called")])
    with cli_serving(_write(tmp_path, cfg), "--workers", "2", port=0) as server:
        line = server.wait_line(LISTENING)
        url = re.fullmatch(r"polyroute serve: listening on (http://127\.0\.0\.1:\d+) \(.*\)", line)
        assert url is not None, line
        health = httpx2.get(f"{url[1]}/health")  # the line comes once it answers, not before
    assert health.status_code == 200
    assert line == f"{LISTENING}{url[1]} (2 workers; routes: gpt, limited; responses store: memory)"
    assert server.stdout == [line]
    printed = "\n".join(server.stdout + server.stderr)
    for secret in (KEY, OTHER_KEY, PROVIDER_KEY, hash_key(KEY)):
        assert secret not in printed


def test_one_worker_without_keys_and_a_sqlite_store(tmp_path: Path) -> None:
    cfg = {"models": [{"name": "m", "deployments": [{"provider": "mock", "model": "mock-1"}]}]}
    cfg["responses"] = {"store_path": str(tmp_path / "responses.db")}
    with cli_serving(_write(tmp_path, cfg), "--no-auth") as server:
        line = server.wait_line(LISTENING)
    assert line == f"{LISTENING}{server.url} (1 worker; routes: m; responses store: sqlite; no auth)"
    assert server.stderr == []  # one worker: nothing split, nothing to warn about


def test_a_port_already_taken_is_said_and_nothing_claims_to_listen(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with cli_serving(_write(tmp_path, config([])), port=port) as server:
            code = server.proc.wait(60)
    assert code != 0
    assert server.stdout == []
    assert f"polyroute serve: cannot listen on 127.0.0.1:{port}" in "\n".join(server.stderr)


def test_fewer_than_one_worker_is_refused(tmp_path: Path) -> None:
    with cli_serving(_write(tmp_path, config([])), "--workers", "0") as server:
        code = server.proc.wait(60)
    assert code == 2
    assert server.stdout == []
    assert server.stderr == ["--workers 0: serve needs at least 1 worker process"]


def test_many_routes_are_counted_past_the_first_six() -> None:
    cfg = load_config(
        {"models": [{"name": f"r{i}", "deployments": [{"provider": "mock", "model": "m"}]} for i in range(8)]}
    )
    line = listening_line(cfg, "http://127.0.0.1:4000", 3)
    assert line == (
        "polyroute serve: listening on http://127.0.0.1:4000 "
        "(3 workers; routes: r0, r1, r2, r3, r4, r5 and 2 more; responses store: memory)"
    )
