"""Latency added per call by shared routing state on Redis (target: <= 0.3 ms at the median, one round trip).

Times what the transport asks of the router for one successful call (as ``bench_routing.py``: order the
deployments, claim the first, record the success), with ``state`` in memory and on a ``redis-server`` this script
starts on a free loopback port, and counts the Redis commands per call from ``INFO commandstats``: ``evalsha`` is
the claim on the hot path, ``eval`` the outcomes and refreshes the background thread sends in pipelines (a run of
one deployment's successes folded into one script). The single-call median is the issue's measure; the mean over a
round also carries the background thread's share (its CPU, and the GIL it holds now and then).
Run: ``uv run python bench/bench_state.py`` (needs ``redis-server``, Debian's package).
"""

from __future__ import annotations

import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from polyroute import Router
from polyroute.failover import Attempts
from polyroute.providers._base import Target

BODY: Any = {"model": "m", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
CALLS, ROUNDS = 2_000, 7


def router_for(state: dict[str, Any]) -> Router:
    deployments = [
        {"provider": "openai", "model": "gpt-4o-mini", "id": f"d{i}", "api_key": "sk-bench-0000000000", "rpm": 10**7}
        for i in range(3)
    ]
    return Router({"models": [{"name": "m", "deployments": deployments}], "state": state})


def one_call(router: Router) -> None:
    attempts = Attempts(router, BODY, 600.0)
    target = attempts.next()
    assert isinstance(target, Target)
    attempts.succeeded(target, used_tokens=10)


def per_call_us(router: Router) -> list[float]:
    for _ in range(200):
        one_call(router)
    rounds: list[float] = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(CALLS):
            one_call(router)
        rounds.append((time.perf_counter() - started) / CALLS * 1e6)
    return rounds


def single_calls_us(router: Router, calls: int = 3_000) -> list[float]:
    """Each call timed on its own, for the median and p99 of one call (not of a round)."""
    times: list[float] = []
    for _ in range(calls):
        started = time.perf_counter()
        one_call(router)
        times.append((time.perf_counter() - started) * 1e6)
    return times


def commandstats(port: int) -> dict[str, int]:
    out = subprocess.run(
        ["redis-cli", "-p", str(port), "info", "commandstats"], capture_output=True, text=True, check=True
    ).stdout
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"cmdstat_(\w+):calls=(\d+)", out)}


def main() -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install -y redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)
        memory = router_for({})
        shared = router_for({"backend": "redis", "url": f"redis://127.0.0.1:{port}/0"})
        one_call(shared)
        mem_rounds, redis_rounds = [], []
        for _ in range(2):  # interleaved so machine drift hits both
            mem_rounds += per_call_us(memory)
            redis_rounds += per_call_us(shared)
        mem_single = single_calls_us(memory)
        before = commandstats(port)
        counted = 3_000
        redis_single = single_calls_us(shared, counted)
        shared.close()  # flushes the queued outcomes
        after = commandstats(port)
        hot = after.get("evalsha", 0) - before.get("evalsha", 0)
        background = after.get("eval", 0) - before.get("eval", 0)
        med_mem, med_redis = statistics.median(mem_rounds), statistics.median(redis_rounds)
        print(f"per call, mean over a round of {CALLS} back-to-back calls, median of {len(mem_rounds)} rounds:")
        print(f"  memory  {med_mem:8.1f} µs")
        print(f"  redis   {med_redis:8.1f} µs   added {med_redis - med_mem:6.1f} µs")
        q = statistics.quantiles
        print(f"single calls ({counted}): median / p99")
        print(f"  memory  {statistics.median(mem_single):8.1f} / {q(mem_single, n=100)[98]:8.1f} µs")
        print(f"  redis   {statistics.median(redis_single):8.1f} / {q(redis_single, n=100)[98]:8.1f} µs")
        print(
            f"redis commands per call: hot path evalsha {hot / counted:.2f}, "
            f"background eval {background / counted:.2f} (pipelined)"
        )
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
