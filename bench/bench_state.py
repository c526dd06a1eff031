"""Latency added per call by shared routing state on Redis (target: <= 0.3 ms at the median, one round trip).

Times what the transport asks of the router for one successful call (as ``bench_routing.py``: order the
deployments, claim the first, record the success), with ``state`` in memory and on a ``redis-server`` this script
starts on a free loopback port; then the same with budgets (route, tag, user and deployment ones: the call is
admitted, claimed, and settled as the transport's usage hooks do). Redis commands per call are counted with
``MONITOR`` (the commands clients send, not those scripts run): ``EVALSHA`` is what the caller waits for (the claim,
with a call's budget reservations riding on it), ``EVAL`` the outcomes, settles and refreshes the background thread
sends in pipelines (runs of them folded into one script). The single-call median is the issue's measure; the mean
over a round also carries the background thread's share (its CPU, and the GIL it holds now and then).
Run: ``uv run python bench/bench_state.py`` (needs ``redis-server``, Debian's package).
"""

from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from polyroute import Router
from polyroute.api import CHAT
from polyroute.failover import Attempts
from polyroute.providers._base import Target
from polyroute.usage import recorder

BODY: Any = {"model": "m", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
ANSWER: Any = {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20}}
HEADERS = {"x-polyroute-tags": "bench", "x-polyroute-user": "alice"}
BUDGETS: list[dict[str, Any]] = [
    {"name": "route", "scope": "route", "usd": 10**6},
    {"name": "tag", "scope": "tag", "tokens": 10**12},
    {"name": "user", "scope": "user", "usd": 10**6, "per": "month"},
    {"name": "deployment", "scope": "deployment", "usd": 10**6},
]
CALLS, ROUNDS = 2_000, 7


def router_for(state: dict[str, Any], budgets: bool = False) -> Router:
    deployments = [
        {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "id": f"d{i}",
            "api_key": "sk-bench-0000000000",
            "rpm": 10**7,
            "prices": {"input": 0.15, "output": 0.6},
        }
        for i in range(3)
    ]
    config: dict[str, Any] = {"models": [{"name": "m", "deployments": deployments}], "state": state}
    if budgets:
        config["budgets"] = BUDGETS
    return Router(config)


def one_call(router: Router) -> None:
    routing, call = recorder.begin(router, CHAT, BODY, HEADERS)
    attempts = Attempts(router, routing, 600.0, call)
    target = attempts.next()
    assert isinstance(target, Target)
    attempts.succeeded(target, used_tokens=10)
    if call is not None:
        call.finished(target, ANSWER, attempts, 0.0001)


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


def commands_per_call(router: Router, port: int, calls: int = 500) -> dict[str, float]:
    """Commands clients send per call (``MONITOR``, scripts' own commands left out), over ``calls`` calls."""
    import redis

    client = redis.Redis(port=port)
    seen: dict[str, int] = {}
    marker = "bench-state-end"
    with client.monitor() as monitor:
        done = threading.Event()

        def watch() -> None:
            for command in monitor.listen():
                if marker in command["command"]:
                    break
                if command.get("client_type") != "lua":
                    name = command["command"].split(" ", 1)[0].strip('"').upper()
                    seen[name] = seen.get(name, 0) + 1
            done.set()

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        time.sleep(0.2)
        for _ in range(calls):
            one_call(router)
        shared = router.shared_state
        assert shared is not None
        shared.close()  # sends the queued outcomes
        redis.Redis(port=port).echo(marker)
        done.wait(10)
    return {name: n / calls for name, n in seen.items() if name != "ECHO"}


def report(title: str, memory: Router, shared: Router, port: int) -> None:
    mem_rounds: list[float] = []
    redis_rounds: list[float] = []
    for _ in range(2):  # interleaved so machine drift hits both
        mem_rounds += per_call_us(memory)
        redis_rounds += per_call_us(shared)
    mem_single = single_calls_us(memory)
    redis_single = single_calls_us(shared)
    med_mem, med_redis = statistics.median(mem_rounds), statistics.median(redis_rounds)
    q = statistics.quantiles
    print(f"{title}")
    print(f"  per call, mean over a round of {CALLS} back-to-back calls, median of {len(mem_rounds)} rounds:")
    print(f"    memory  {med_mem:8.1f} µs")
    print(f"    redis   {med_redis:8.1f} µs   added {med_redis - med_mem:6.1f} µs")
    print(f"  single calls ({len(redis_single)}): median / p99")
    print(f"    memory  {statistics.median(mem_single):8.1f} / {q(mem_single, n=100)[98]:8.1f} µs")
    print(f"    redis   {statistics.median(redis_single):8.1f} / {q(redis_single, n=100)[98]:8.1f} µs", end="")
    print(f"   added {statistics.median(redis_single) - statistics.median(mem_single):6.1f} µs at the median")
    counted = commands_per_call(shared, port)
    print(f"  redis commands per call: {', '.join(f'{name} {n:.3f}' for name, n in sorted(counted.items()))}")
    print("    (EVALSHA: what the caller waits for; EVAL: outcomes and settles, HMGET: budget levels each refresh,")
    print("    both sent by the background thread in pipelines)")


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
        url = f"redis://127.0.0.1:{port}/0"
        for title, budgets in (("without budgets", False), ("with route, tag, user and deployment budgets", True)):
            memory = router_for({}, budgets)
            shared = router_for({"backend": "redis", "url": url}, budgets)
            one_call(shared)
            report(title, memory, shared, port)
            memory.close()
            shared.close()
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
