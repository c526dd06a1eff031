"""The SQLite ledger: no record lost or doubled under threads and async tasks, and a valid file after a SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from polyroute import Router
from polyroute.usage import ledger

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


def mock_router(path: Path, **usage: Any) -> Router:
    return Router(
        {
            "models": [{"name": "m", "deployments": [{"provider": "mock", "model": "mock-1"}]}],
            "usage": {"ledger": str(path), "flush_interval": 0.02, **usage},
        }
    )


def rows(path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT call_id, kind, status, input_tokens, cost, tags FROM usage").fetchall()
    finally:
        conn.close()


def test_threads_and_tasks_lose_and_double_nothing(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    router = mock_router(path)
    client = router.openai_client(tags=["threads"])

    def one(i: int) -> None:
        stream = i % 3 == 0
        if stream:
            for _ in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
                pass
        else:
            client.chat.completions.create(model="m", messages=MESSAGES)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(240)))

    async def tasks() -> None:
        aclient = router.async_openai_client(tags=["tasks"])
        await asyncio.gather(*(aclient.chat.completions.create(model="m", messages=MESSAGES) for _ in range(160)))
        await router.aclose()

    asyncio.run(tasks())
    router.close()
    found = rows(path)
    assert len(found) == 400
    assert len({r[0] for r in found}) == 400  # one record per call, none written twice
    assert all(r[1] == "call" and r[2] == 200 and r[3] > 0 and r[4] > 0 for r in found)
    assert sum(r[5] == '["threads"]' for r in found) == 240
    assert router.usage()["total"]["calls"] == 400


def test_reading_back_gives_the_records_written(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    router = mock_router(path)
    router.openai_client(user="u1").chat.completions.create(
        model="m", messages=MESSAGES, metadata={"k": "v"}, extra_headers={"x-polyroute-tags": "a,b"}
    )
    router.close()
    conn = ledger.connect(path)
    (record,) = list(ledger.read(conn))
    conn.close()
    assert (record.user, record.tags, record.metadata, record.streamed) == ("u1", ("a", "b"), {"k": "v"}, False)
    assert record.deployment == "mock/mock-1" and record.output_tokens > 0


def test_the_request_path_never_waits_on_the_disk(tmp_path: Path) -> None:
    """A ledger on a locked database: calls go on at full speed; the records are written once the lock goes."""
    path = tmp_path / "usage.db"
    router = mock_router(path)
    router.openai_client().chat.completions.create(model="m", messages=MESSAGES)
    router.close()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        client = router.openai_client()
        started = time.monotonic()
        for _ in range(20):
            client.chat.completions.create(model="m", messages=MESSAGES)
        assert time.monotonic() - started < 5.0
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    router.close()
    assert len(rows(path)) == 21


WRITER = textwrap.dedent(
    """
    import sys, threading
    from polyroute import Router
    router = Router({
        "models": [{"name": "m", "deployments": [{"provider": "mock", "model": "mock-1"}]}],
        "usage": {"ledger": sys.argv[1], "flush_interval": 0.001},
    })
    client = router.openai_client()
    def loop():
        while True:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    for _ in range(4):
        threading.Thread(target=loop, daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()
    """
)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_process_killed_mid_write_leaves_a_valid_ledger(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if path.exists():
                try:
                    if len(rows(path)) >= 200:
                        break
                except sqlite3.OperationalError:
                    pass
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # while its writer thread commits batches every millisecond
    finally:
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    conn = ledger.connect(path)
    records = list(ledger.read(conn))
    conn.close()
    assert len(records) >= 200
    assert all(r.kind == "call" and r.status == 200 and r.output_tokens > 0 for r in records)
    assert len({r.call_id for r in records}) == len(records)
