"""The routing decision per call, for a model with 5 deployments (target: <= 20 µs).

Measures what the transport asks of the sans-I/O core for one successful call: profile the request, order the
deployments by strategy, claim the first (capabilities, context window, circuit, limits), record the success
and free it. No I/O. Run: ``uv run python bench/bench_routing.py``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from polyroute import Router
from polyroute.failover import Attempts
from polyroute.providers._base import Target

BODY: Any = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France? Answer in one word."},
    ],
    "max_completion_tokens": 64,
}


def router_for(strategy: str) -> Router:
    deployments = [
        {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "id": f"d{i}",
            "api_key": "sk-bench-0000000000",
            "weight": i + 1,
            "rpm": 10_000_000,
            "tpm": 1_000_000_000,
            "prices": {"input": 0.1 * (i + 1), "output": 0.4},
        }
        for i in range(5)
    ]
    return Router({"models": [{"name": "m", "strategy": strategy, "deployments": deployments}]})


def one_call(router: Router) -> None:
    attempts = Attempts(router, BODY, 600.0)
    target = attempts.next()
    assert isinstance(target, Target)
    attempts.succeeded(target, used_tokens=40)


def measure(strategy: str, calls: int = 20_000, rounds: int = 7) -> float:
    router = router_for(strategy)
    for _ in range(2_000):
        one_call(router)
    per_call: list[float] = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            one_call(router)
        per_call.append((time.perf_counter() - started) / calls)
    return statistics.median(per_call) * 1e6


def main() -> None:
    import logging

    logging.getLogger("polyroute").setLevel(logging.WARNING)
    print("routing decision per call, 5 deployments (median of 7 rounds of 20,000 calls)")
    for strategy in ("ordered", "weighted", "least-busy", "latency", "cost"):
        micros = measure(strategy)
        verdict = "ok" if micros <= 20 else "OVER TARGET"
        print(f"  {strategy:<11} {micros:6.2f} µs  (target <= 20 µs: {verdict})")


if __name__ == "__main__":
    main()
