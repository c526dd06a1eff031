"""A 100-input embeddings batch: the openai SDK against the bench mock directly, and through polyroute.

The SDK's default request (``encoding_format: base64``), 100 short texts, 1536-float vectors (an 820 KB answer).
Direct and routed calls alternate, sync then async; medians and the ratio to the direct call are printed as a
Markdown table. The mock runs in its own process (``mock_upstream.py``). Run:
``uv run python bench/bench_embeddings.py`` (``--calls N`` per client, default 200).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from run import guard_network, mock_upstream  # bench/ is not a package

MODEL = "text-embedding-3-small"
TEXTS = [f"passage {i}: a short document of about a dozen words to embed" for i in range(100)]


def _sync(base: str, calls: int) -> dict[str, float]:
    import openai

    from polyroute import Router

    router = Router({"models": [{"name": MODEL, "deployments": [_deployment(base)]}]})
    clients = {"direct": openai.OpenAI(base_url=f"{base}/v1", api_key="sk-bench", max_retries=0)}
    clients["polyroute"] = router.openai_client()
    times: dict[str, list[float]] = {name: [] for name in clients}
    for client in clients.values():
        assert len(client.embeddings.create(model=MODEL, input=TEXTS).data) == 100  # checked, and warm
    for _ in range(calls):
        for name, client in clients.items():
            started = time.perf_counter()
            client.embeddings.create(model=MODEL, input=TEXTS)
            times[name].append(time.perf_counter() - started)
    router.close()
    return {name: statistics.median(samples) for name, samples in times.items()}


async def _async(base: str, calls: int) -> dict[str, float]:
    import openai

    from polyroute import Router

    router = Router({"models": [{"name": MODEL, "deployments": [_deployment(base)]}]})
    clients = {"direct": openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="sk-bench", max_retries=0)}
    clients["polyroute"] = router.async_openai_client()
    times: dict[str, list[float]] = {name: [] for name in clients}
    for client in clients.values():
        assert len((await client.embeddings.create(model=MODEL, input=TEXTS)).data) == 100
    for _ in range(calls):
        for name, client in clients.items():
            started = time.perf_counter()
            await client.embeddings.create(model=MODEL, input=TEXTS)
            times[name].append(time.perf_counter() - started)
    await router.aclose()
    return {name: statistics.median(samples) for name, samples in times.items()}


def _deployment(base: str) -> dict[str, str]:
    return {"provider": "openai", "model": MODEL, "api_base": f"{base}/v1", "api_key": "sk-bench"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200, help="calls per client and mode")
    args = parser.parse_args()
    guard_network()
    with mock_upstream() as base:
        rows = {"sync": _sync(base, args.calls), "async": asyncio.run(_async(base, args.calls))}
    print("| 100-input embeddings batch | SDK direct | polyroute | ratio |")
    print("|---|---|---|---|")
    for mode, medians in rows.items():
        direct, routed = medians["direct"], medians["polyroute"]
        print(f"| {mode} | {direct * 1000:.2f} ms | {routed * 1000:.2f} ms | {routed / direct:.2f}× |")


if __name__ == "__main__":
    main()
