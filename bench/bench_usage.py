"""What recording usage costs: the same calls through routers with ``usage`` off, the in-memory totals (the
default), and the totals plus a SQLite ledger, against the bench mock.

    python bench/bench_usage.py                # 8 rounds of 300 sync calls per router, interleaved
    python bench/bench_usage.py --stream       # 200-chunk streams instead (fewer calls)

Reports, per router, the median wall time per call and the process CPU per call (steadier on a busy machine; it
includes the ledger's background thread), each as a ratio to ``usage`` off. The issue's target: ≤ 1.03× with the
totals and the ledger on. Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import OPENAI_MODEL, _sdk_call, _sdk_stream, guard_network, mock_upstream, router_config  # noqa: E402

PRICES = {"input": 2.5, "output": 10.0}
"""Priced, so every call computes its cost as a real one would (the mock model is in no catalog)."""


def routers(base: str, ledger: Path) -> dict[str, Any]:
    from polyroute import Router

    def config(usage: dict[str, Any]) -> dict[str, Any]:
        built = router_config(base)
        for model in built["models"]:
            for deployment in model["deployments"]:
                deployment["prices"] = PRICES
        built["usage"] = usage
        return built

    return {
        "usage off": Router(config({"enabled": False})),
        "totals": Router(config({})),
        "totals + ledger": Router(config({"ledger": str(ledger)})),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--calls", type=int, default=300, help="calls per router per round")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    guard_network()
    calls = max(5, args.calls // 20) if args.stream else args.calls
    with tempfile.TemporaryDirectory() as tmp, mock_upstream() as base:
        built = routers(base, Path(tmp) / "usage.db")
        make = _sdk_stream if args.stream else _sdk_call
        fns = {name: make(router.openai_client(tags=["bench"]), OPENAI_MODEL) for name, router in built.items()}
        for fn in fns.values():  # warm: connections, catalog, prices
            for _ in range(20):
                fn()
        wall: dict[str, list[float]] = {name: [] for name in fns}
        cpu: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(args.rounds):
            for name, fn in fns.items():
                t0, c0 = time.perf_counter(), time.process_time()
                for _ in range(calls):
                    fn()
                built[name].close()  # the ledger's queued records are written inside the measured block
                wall[name].append((time.perf_counter() - t0) / calls)
                cpu[name].append((time.process_time() - c0) / calls)
        base_wall = statistics.median(wall["usage off"])
        base_cpu = statistics.median(cpu["usage off"])
        kind = "200-chunk streams" if args.stream else "calls"
        print(f"{args.rounds} rounds × {calls} {kind} per router")
        print(f"{'router':18s} {'wall/call':>12s} {'ratio':>7s} {'CPU/call':>12s} {'ratio':>7s}")
        for name in fns:
            w, c = statistics.median(wall[name]), statistics.median(cpu[name])
            print(f"{name:18s} {w * 1e6:10.0f}µs {w / base_wall:6.3f}× {c * 1e6:10.0f}µs {c / base_cpu:6.3f}×")
        rows = built["totals + ledger"].usage()["total"]["calls"]
        print(f"ledger: {rows} calls recorded")


if __name__ == "__main__":
    main()
