"""A router used before ``os.fork`` (multiprocessing's default on Linux, gunicorn and Celery prefork workers) works
in the child on its own: no pooled connection of its parent's, a deadline thread of its own, hedging threads of its
own. And a router used from many event loops keeps no pool for a loop that is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import sqlite3
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import openai
import pytest

from polyroute import Router
from tests.core.routing_helpers import call, dep, make_router, ok
from tests.emulators import Emulator, Reply, Request
from tests.emulators.openai_format import completion

Start = Callable[..., Emulator]

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")


def in_child(work: Callable[[], None], within: float = 15.0) -> tuple[int, str]:
    """Run ``work`` in a forked child: (its exit code, what it reported). 0: it returned; 1: it raised; -9: it was
    still running after ``within`` seconds (killed).
    """
    reading, writing = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+ warns that forking with threads may deadlock: the case under test
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's own coverage is not collected
        os.close(reading)
        code, report = 0, "ok"
        try:
            work()
        except BaseException as exc:
            code, report = 1, f"{type(exc).__name__}: {exc}"
        os.write(writing, report.encode()[:4000])
        os._exit(code)
    os.close(writing)
    deadline = time.monotonic() + within
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(reading)
            return -9, "still running"
        time.sleep(0.02)
    report = os.read(reading, 4000).decode()
    os.close(reading)
    return os.waitstatus_to_exitcode(status), report


def test_a_forked_child_opens_its_own_connections(emulator: Start) -> None:
    """A connection pooled before the fork is the parent's too: a child reusing it would read the parent's answers
    (and the parent the child's) when both call at once. (An async client in the child runs on a loop of its own,
    so it has a pool of its own already.)
    """
    emu = emulator(ok("hello"))
    router = make_router(dep(emu, "a"))
    call("sync", router)  # a kept-alive connection in the sync pool
    parents = {request.client for request in emu.requests}

    def child() -> None:
        result, _ = call("sync", router)
        assert result.choices[0].message.content == "hello"

    assert in_child(child) == (0, "ok")
    assert len(emu.requests) == 2
    assert emu.requests[-1].client not in parents


def _trickle(request: Request) -> Reply:
    body = json.dumps(completion("late")).encode()
    pieces = [body[i : i + 8] for i in range(0, len(body), 8)]  # ~25 pieces, 0.1 s apart: each read is quick
    return Reply(chunks=pieces, chunk_delay=0.1, headers={"content-type": "application/json"})


def test_a_forked_child_keeps_its_deadlines(emulator: Start) -> None:
    """The deadline thread started in the parent is gone in the child: the child starts its own, so a body that
    trickles in still ends at the deployment's timeout.
    """
    slow = emulator(_trickle)
    router = make_router(dep(slow, "slow", timeout=0.4), retry={"max_attempts": 1})
    with pytest.raises(openai.APITimeoutError):  # the parent's thread starts here
        call("sync", router, client={"max_retries": 0})

    def child() -> None:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            call("sync", router, client={"max_retries": 0})
        took = time.monotonic() - started
        assert took < 1.5, f"the child's call ended after {took:.1f}s, not at its 0.4 s timeout"

    assert in_child(child) == (0, "ok")


def test_a_forked_child_hedges_on_threads_of_its_own(emulator: Start) -> None:
    slow = emulator(lambda request: Reply(hang=0.4))
    fast = emulator(ok("fast"))
    router = make_router(dep(slow, "slow"), dep(fast, "fast"), hedge_after_ms=100)
    assert call("sync", router)[0].choices[0].message.content == "fast"  # the parent's hedging threads start
    time.sleep(0.8)  # and are idle: the child's executor would hand its work to them, gone in the child

    def child() -> None:
        result, headers = call("sync", router)
        assert (result.choices[0].message.content, headers["x-polyroute-deployment"]) == ("fast", "fast")

    assert in_child(child) == (0, "ok")


def _open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor, closed since
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts sockets in /proc")
def test_a_closed_event_loops_pool_is_not_kept(emulator: Start) -> None:
    """``asyncio.run`` per task (a sync view, a Celery task): each loop gets its own pool, and a pool holds its loop,
    so the router forgets the pools of closed loops instead of keeping every one and its sockets.
    """
    emu = emulator(ok("hi"))
    router = make_router(dep(emu, "a"))
    client = router.openai_client()  # another client stays open: the pools are not closed with the async ones
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])

    async def one() -> None:
        async with router.async_openai_client() as asynchronous:
            await asynchronous.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])

    asyncio.run(one())
    gc.collect()
    before = _open_sockets()
    for _ in range(30):
        asyncio.run(one())
    gc.collect()
    time.sleep(0.2)  # the emulator's side of each connection closes when it reads the end
    assert _open_sockets() - before < 8


def test_a_forked_child_writes_its_own_usage_records(tmp_path: Path) -> None:
    """The usage writer thread started in the parent is gone in the child: the child starts its own (on a SQLite
    connection of its own), so its calls reach the ledger, once each, and the parent's records are not written again.
    """
    path = tmp_path / "usage.db"
    router = Router(
        {
            "models": [{"name": "m", "deployments": [{"provider": "mock", "model": "mock-1"}]}],
            "usage": {"ledger": str(path), "flush_interval": 0.02},
        }
    )
    client = router.openai_client()
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "parent"}], user="parent")
    assert router.recorder is not None and router.recorder.flush(5.0)

    def child() -> None:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "child"}], user="child")
        assert router.recorder is not None
        assert router.recorder.flush(5.0), "the child's record was never written"

    assert in_child(child) == (0, "ok")
    router.close()
    conn = sqlite3.connect(path)
    try:
        users = sorted(user for (user,) in conn.execute("SELECT user FROM usage"))
    finally:
        conn.close()
    assert users == ["child", "parent"]
