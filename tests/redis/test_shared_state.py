"""Routing state shared on Redis (#17), against real ``redis-server`` processes on loopback: several worker processes
with one router config keep one rpm limit, learn each other's 429 ``retry-after``, send one half-open probe between
them; a Redis killed mid-run costs no call, and sharing resumes when it is back."""

from __future__ import annotations

import gc
import json
import logging
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from polyroute import Router
from polyroute.errors import ConfigError
from polyroute.state.redis import keys_for
from tests.core.routing_helpers import call, dep, ok, status
from tests.emulators import Emulator, Reply, Request
from tests.emulators.openai_format import completion
from tests.redis.server import RedisServer, cluster_nodes, require_redis

Start = Callable[..., Emulator]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


def config(server_url: str, *deployments: dict[str, Any], **state: Any) -> dict[str, Any]:
    """One model ``m`` over ``deployments``, its state on Redis under a prefix of its own."""
    retry = state.pop("retry", {})
    return {
        "models": [{"name": "m", "deployments": list(deployments)}],
        "retry": retry,
        "state": {"backend": "redis", "url": server_url, "prefix": f"t-{uuid.uuid4().hex[:8]}:", **state},
    }


def run_fleet(router_config: dict[str, Any], calls: list[int], **spec: Any) -> list[list[str]]:
    """Start one worker process per entry of ``calls``, let them all go at once, and return what each was served
    (``spec``: more for each worker, as ``max_tokens``)."""
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.redis.worker", json.dumps({"config": router_config, "calls": n, **spec})],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for n in calls
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        results: list[list[str]] = []
        for worker in workers:
            out, _ = worker.communicate(timeout=120)
            assert worker.returncode == 0
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


# -- several processes ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_rpm_limit_holds_across_processes(emulator: Start, redis_server: RedisServer) -> None:
    limited = emulator(ok("limited"))
    other = emulator(ok("other"))
    cfg = config(redis_server.url, dep(limited, "limited", rpm=4), dep(other, "other"))
    served = [name for worker in run_fleet(cfg, [4, 4, 4]) for name in worker]
    assert sorted(served) == ["limited"] * 4 + ["other"] * 8
    assert len(limited.requests) == 4  # each process alone would have sent its full 4


@pytest.mark.slow
def test_retry_after_seen_by_one_process_keeps_the_others_off(emulator: Start, redis_server: RedisServer) -> None:
    flaky = emulator(status(429, "slow down", **{"retry-after": "30"}))
    other = emulator(ok("other"))
    cfg = config(redis_server.url, dep(flaky, "flaky"), dep(other, "other"))
    assert run_fleet(cfg, [1]) == [["other"]]
    assert len(flaky.requests) == 1
    assert run_fleet(cfg, [2, 2]) == [["other", "other"], ["other", "other"]]
    assert len(flaky.requests) == 1  # no other process tried it during its retry-after


@pytest.mark.slow
def test_only_one_process_probes_a_half_open_deployment(emulator: Start, redis_server: RedisServer) -> None:
    recovered = threading.Event()

    def down(request: Request) -> Reply:
        if not recovered.is_set():
            return Reply(status=500, body={"error": {"message": "boom", "type": "server_error", "code": None}})
        return Reply(body=completion("down", model="down"), first_byte_delay=3.0)  # the probe stays in flight

    down_emu = emulator(down)
    other = emulator(ok("other"))
    cfg = config(
        redis_server.url, dep(down_emu, "down"), dep(other, "other"), retry={"allowed_fails": 1, "cooldown": 1.0}
    )
    assert run_fleet(cfg, [1]) == [["other"]]  # its 500 opens the circuit for everyone, for 1 s
    opened = time.monotonic()
    recovered.set()
    before = len(down_emu.requests)
    workers = run_fleet_after(cfg, [1, 1, 1], not_before=opened + 1.2)
    assert sorted(name for w in workers for name in w) == ["down", "other", "other"]
    assert len(down_emu.requests) - before == 1


def run_fleet_after(router_config: dict[str, Any], calls: list[int], not_before: float) -> list[list[str]]:
    """:func:`run_fleet`, its workers let go no earlier than ``not_before`` (monotonic)."""
    delay = not_before - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    return run_fleet(router_config, calls)


# -- Redis down, slow, back -------------------------------------------------------------------------------------


def test_calls_go_on_while_redis_is_down_and_sharing_resumes(
    emulator: Start, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    limited = threading.Event()

    def flaky(request: Request) -> Reply:
        if limited.is_set():
            return status(429, "slow down", **{"retry-after": "30"})(request)
        return ok("flaky")(request)

    flaky_emu = emulator(flaky)
    other = emulator(ok("other"))
    cfg = config(redis_server.url, dep(flaky_emu, "flaky"), dep(other, "other"), reconnect=0.1, refresh=0.1)
    caplog.set_level(logging.WARNING, logger="polyroute.state")
    first = Router(cfg)
    assert call("sync", first)[1]["x-polyroute-deployment"] == "flaky"

    redis_server.stop()
    for _ in range(5):
        started = time.monotonic()
        assert call("sync", first)[1]["x-polyroute-deployment"] == "flaky"
        assert time.monotonic() - started < 1.0
    down = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(down) == 1  # logged once, not per call

    redis_server.start()
    deadline = time.monotonic() + 5
    while "reachable again" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "reachable again" in caplog.text

    limited.set()
    assert call("sync", first)[1]["x-polyroute-deployment"] == "other"
    first.close()  # its outcomes are sent
    seen = len(flaky_emu.requests)
    second = Router(cfg)  # another process's view: fresh local state
    assert call("sync", second)[1]["x-polyroute-deployment"] == "other"
    assert len(flaky_emu.requests) == seen
    second.close()


def test_a_hung_redis_costs_one_short_timeout(emulator: Start, redis_server: RedisServer) -> None:
    upstream = emulator(ok())
    router = Router(config(redis_server.url, dep(upstream, "d"), timeout=0.05, reconnect=5.0))
    call("sync", router)
    assert redis_server.process is not None
    redis_server.process.send_signal(signal.SIGSTOP)  # accepts connections, answers nothing
    try:
        durations: list[float] = []
        for _ in range(5):
            started = time.monotonic()
            call("sync", router)
            durations.append(time.monotonic() - started)
        assert max(durations) < 1.0
        assert sorted(durations)[2] < 0.3  # after the first timeout, calls no longer wait on Redis
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
        router.close()


# -- config and layout ------------------------------------------------------------------------------------------


def test_redis_backend_needs_a_url() -> None:
    with pytest.raises(ConfigError, match="backend 'redis' needs url"):
        Router({"state": {"backend": "redis"}})
    with pytest.raises(ConfigError, match="braces"):
        Router({"state": {"backend": "redis", "url": "redis://127.0.0.1:1/0", "prefix": "{x}"}})


def test_url_password_stays_out_of_reprs() -> None:
    router = Router({"state": {"backend": "redis", "url": "redis://:hunter2-secret@127.0.0.1:1/0"}})
    assert "hunter2" not in repr(router.config)
    assert "hunter2" not in repr(router._shared_state)


def test_import_polyroute_does_not_import_redis() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys, polyroute; polyroute.Router(); print('redis' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "False"


def test_one_deployments_keys_share_a_cluster_slot(emulator: Start, redis_server: RedisServer) -> None:
    from redis.cluster import key_slot

    upstream = emulator(ok())
    cfg = config(redis_server.url, dep(upstream, "a", rpm=100), dep(upstream, "b", rpm=100))
    router = Router(cfg)
    call("sync", router)
    router.close()
    prefix = cfg["state"]["prefix"]
    stored = redis_server.command("--scan", "--pattern", prefix + "*").split()
    assert len(stored) == 1  # only the deployment called has state: its hash (no call in flight, no probe)
    tag = stored[0][len(prefix) : stored[0].index("}") + 1]
    assert tag.startswith("{openai/a#")
    keys = keys_for(prefix, tag[1:-1])
    assert stored[0] in keys
    assert len({key_slot(key.encode()) for key in keys}) == 1
    other = keys_for(prefix, "openai/b#0")
    assert key_slot(other[0].encode()) != key_slot(keys[0].encode())  # another deployment: its own tag


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[RedisServer]]:
    require_redis()
    try:
        nodes = cluster_nodes(3)
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"cannot start a Redis Cluster on loopback: {exc}")
    yield nodes
    for node in nodes:
        node.cleanup()


@pytest.mark.slow
def test_rpm_limit_holds_on_a_redis_cluster(emulator: Start, cluster: list[RedisServer]) -> None:
    limited = emulator(ok("limited"))
    other = emulator(ok("other"))
    deployments = [dep(limited, f"limited-{i}", rpm=2) for i in range(4)]  # keys spread over the nodes' slots
    cfg = config(cluster[0].url, *deployments, dep(other, "other"), cluster=True, timeout=0.5)
    routers = [Router(cfg) for _ in range(3)]
    served = [call("sync", routers[i % 3])[1]["x-polyroute-deployment"] for i in range(12)]
    for router in routers:
        router.close()
    assert sorted(served) == sorted([f"limited-{i}" for i in range(4)] * 2 + ["other"] * 4)
    assert len(limited.requests) == 8


def test_latency_averages_of_other_processes_order_the_latency_strategy(
    emulator: Start, redis_server: RedisServer
) -> None:
    slow = emulator(lambda request: Reply(body=completion("slow"), first_byte_delay=0.3))
    fast = emulator(ok("fast"))
    cfg = config(redis_server.url, dep(slow, "slow"), dep(fast, "fast"), refresh=0.05)
    cfg["models"][0]["strategy"] = "latency"
    cfg["models"] += [
        {"name": "s", "deployments": [dep(slow, "slow")]},
        {"name": "f", "deployments": [dep(fast, "fast")]},
    ]
    measured = Router(cfg)
    call("sync", measured, model="s")
    call("sync", measured, model="f")
    measured.close()
    fresh = Router(cfg)  # has measured nothing itself: untried deployments would come in config order
    time.sleep(0.3)
    route = fresh.route("m")
    firsts = [fresh.order(route)[0].deployment.id for _ in range(40)]
    fresh.close()
    assert firsts.count("fast") >= 30  # the rest: the strategy's random exploration


def test_least_busy_counts_calls_in_flight_in_other_processes(emulator: Start, redis_server: RedisServer) -> None:
    release = threading.Event()
    busy = emulator(lambda request: (release.wait(10), Reply(body=completion("busy")))[1])
    idle = emulator(ok("idle"))
    cfg = config(redis_server.url, dep(busy, "busy"), dep(idle, "idle"), refresh=0.05)
    cfg["models"][0]["strategy"] = "least-busy"
    cfg["models"] += [{"name": "b", "deployments": [dep(busy, "busy")]}]
    holder = Router(cfg)
    calls = [threading.Thread(target=call, args=("sync", holder), kwargs={"model": "b"}) for _ in range(2)]
    for thread in calls:
        thread.start()
    try:
        deadline = time.monotonic() + 5
        while len(busy.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        other = Router(cfg)
        time.sleep(0.3)
        route = other.route("m")
        firsts = {other.order(route)[0].deployment.id for _ in range(20)}
        other.close()
    finally:
        release.set()
        for thread in calls:
            thread.join()
        holder.close()
    assert firsts == {"idle"}


def test_redis_backend_without_redis_py_is_a_config_error() -> None:
    script = (
        "import sys; sys.modules['redis'] = None\n"  # as if redis-py were not installed
        "from polyroute import Router\n"
        "from polyroute.errors import ConfigError\n"
        "try:\n"
        "    Router({'state': {'backend': 'redis', 'url': 'redis://127.0.0.1:1/0'}})\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "polyroute[redis]" in done.stdout


def test_a_router_dropped_without_close_takes_its_background_thread_along(redis_server: RedisServer) -> None:
    def state_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "polyroute-state"}

    before = state_threads()  # an earlier test's router may still be winding its thread down: not counted
    router = Router(config(redis_server.url, dep("http://127.0.0.1:9/v1", "d"), refresh=0.05))
    (mine,) = state_threads() - before
    del router
    gc.collect()
    mine.join(timeout=3)
    assert not mine.is_alive()


def test_tpm_limit_holds_across_routers(emulator: Start, redis_server: RedisServer) -> None:
    limited = emulator(ok("limited"))
    other = emulator(ok("other"))
    cfg = config(redis_server.url, dep(limited, "limited", tpm=300), dep(other, "other"))
    long = [{"role": "user", "content": "x" * 800}]  # ~200 tokens by the chars/4 estimate
    first, second = Router(cfg), Router(cfg)  # two processes' views
    assert call("sync", first, messages=long)[1]["x-polyroute-deployment"] == "limited"
    assert call("sync", second, messages=long)[1]["x-polyroute-deployment"] == "other"
    first.close()
    second.close()


def test_max_parallel_holds_across_routers(emulator: Start, redis_server: RedisServer) -> None:
    release = threading.Event()
    slow = emulator(lambda request: (release.wait(10), Reply(body=completion("slow")))[1])
    other = emulator(ok("other"))
    cfg = config(redis_server.url, dep(slow, "slow", max_parallel=1), dep(other, "other"))
    first, second = Router(cfg), Router(cfg)
    holding = threading.Thread(target=call, args=("sync", first))
    holding.start()
    try:
        deadline = time.monotonic() + 5
        while not slow.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        assert call("sync", second)[1]["x-polyroute-deployment"] == "other"
    finally:
        release.set()
        holding.join()
    first.close()  # the held call's end reaches Redis: the slot is free again
    assert call("sync", second)[1]["x-polyroute-deployment"] == "slow"
    second.close()


def test_a_fleet_wide_counter_reserves_within_a_limit_and_settles(redis_server: RedisServer) -> None:
    cfg = config(redis_server.url, dep("http://127.0.0.1:9/v1", "d"))
    one, two = Router(cfg).shared_state, Router(cfg).shared_state
    assert one is not None and two is not None
    assert one.add("budget:team", 6.0, limit=10.0, ttl=60) == 6.0
    assert two.add("budget:team", 6.0, limit=10.0) == -1.0  # refused: 12 > 10, nothing added
    assert two.add("budget:team", -2.5) == 3.5  # settled below the reservation
    assert two.add("budget:team", 6.0, limit=10.0) == 9.5
    assert 0 < int(redis_server.command("pttl", cfg["state"]["prefix"] + "{counter:budget:team}")) <= 60_000
    redis_server.stop()
    assert one.add("budget:team", 1.0, limit=10.0) is None  # unreachable: the caller's rule decides
    one.close()
    two.close()


def test_a_probe_whose_process_died_expires_and_another_process_probes(
    emulator: Start, redis_server: RedisServer
) -> None:
    down = emulator(status(500, "boom"))
    cfg = config(redis_server.url, dep(down, "down"), retry={"allowed_fails": 1, "cooldown": 0.3}, probe_timeout=0.6)
    dying, survivor = Router(cfg), Router(cfg)
    with pytest.raises(openai.APIStatusError, match="boom"):
        call("sync", dying, client={"max_retries": 0})
    dying.close()  # its failure reached Redis: the circuit is open for 0.3 s
    time.sleep(0.4)
    assert dying.try_acquire(dying.route("m").targets[0]) is None  # the probe, never finished: its process "died"
    target = survivor.route("m").targets[0]
    skip = survivor.try_acquire(target)
    assert skip is not None and "probe" in skip.reason
    time.sleep(0.7)
    assert survivor.try_acquire(target) is None  # the claim expired: this process probes now
    survivor.release(target)
    survivor.close()
