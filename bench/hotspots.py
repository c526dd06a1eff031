"""Where polyroute's time goes: cProfile over N calls through the router, against the bench mock.

    python bench/hotspots.py --scenario pass --calls 2000          # non-streaming pass-through, sync
    python bench/hotspots.py --scenario anth --stream --calls 100  # Anthropic-translated 200-chunk streams
    python bench/hotspots.py --scenario direct                      # the SDK alone, for comparison
    python bench/hotspots.py --scenario pass --responses            # client.responses.create instead of chat

Prints the functions with the most own time (µs per call) and, for routed scenarios, the time spent inside
``RouterTransport.handle_request`` minus the upstream connection pool's own time: polyroute's overhead per call.
Besides, it reports the process CPU per call of the routed client against the direct one, without the profiler
(CPU time is much less disturbed than wall time by other load on the machine).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import (  # noqa: E402
    OPENAI_MODEL,
    _sdk_call,
    _sdk_rcall,
    _sdk_rstream,
    _sdk_stream,
    guard_network,
    mock_upstream,
    router_config,
)


def cpu_per_call(fn: object, calls: int) -> float:
    """Median over 5 blocks of process CPU seconds per call."""
    blocks = []
    for _ in range(5):
        t0 = time.process_time()
        for _ in range(calls):
            fn()  # type: ignore[operator]
        blocks.append((time.process_time() - t0) / calls)
    return sorted(blocks)[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scenario", choices=("direct", "pass", "anth"), default="pass")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--responses", action="store_true", help="the Responses API instead of Chat Completions")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    guard_network()
    import openai

    from polyroute import Router

    with mock_upstream() as base:
        router = Router.from_config(router_config(base))
        direct = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)
        routed = router.openai_client()
        if args.responses:
            make = _sdk_rstream if args.stream else _sdk_rcall
        else:
            make = _sdk_stream if args.stream else _sdk_call
        model = "bench-claude" if args.scenario == "anth" else OPENAI_MODEL
        fn = make(direct if args.scenario == "direct" else routed, model)
        ref = make(direct, OPENAI_MODEL)
        for _ in range(50 if not args.stream else 5):
            fn()
            ref()
        n = max(10, args.calls // 10)
        cpu_ref, cpu_fn = cpu_per_call(ref, n), cpu_per_call(fn, n)
        print(
            f"process CPU per call: direct {cpu_ref * 1e6:.0f} µs, {args.scenario} {cpu_fn * 1e6:.0f} µs "
            f"({cpu_fn / cpu_ref:.2f}×, {(cpu_fn - cpu_ref) * 1e6:+.0f} µs)"
        )
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.calls):
            fn()
        profiler.disable()
        router.close()
    stats = pstats.Stats(profiler)
    raw = stats.stats  # type: ignore[attr-defined]
    per = 1e6 / args.calls

    def find(name: str, file_part: str) -> tuple[float, float]:
        for (file, _, func), (_, _, tt, ct, _) in raw.items():
            if func == name and file_part in file:
                return tt, ct
        return 0.0, 0.0

    total = sum(tt for (_, _, tt, _, _) in raw.values())
    print(f"profiled {args.calls} calls: {total * per:.0f} µs per call under cProfile (inflated; compare shares)")
    if args.scenario != "direct":
        _, outer = find("handle_request", "polyroute/transport.py")
        inner = 0.0
        for (file, _, func), (_, _, _, ct, _) in raw.items():
            # the upstream's own time: httpcore's pool (a non-streamed call reaches it without httpx's transport)
            if func == "handle_request" and "_sync/connection_pool.py" in file:
                inner += ct
        print(
            f"RouterTransport.handle_request: {outer * per:.0f} µs per call, of which httpcore's upstream pool ", end=""
        )
        print(f"{inner * per:.0f} µs: polyroute's own {(outer - inner) * per:.0f} µs (profiled)")
        if args.stream:
            stream_total = sum(
                ct for (file, _, func), (_, _, _, ct, _) in raw.items() if "polyroute" in file and func == "__iter__"
            )
            print(f"RouterStream.__iter__ (cumulative, incl. upstream reads): {stream_total * per:.0f} µs per stream")
    rows = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[: args.top]
    print(f"\n{'own µs/call':>11} {'cum µs/call':>11} {'calls/call':>10}  function")
    for (file, line, func), (_, nc, tt, ct, _) in rows:
        short = file.split("site-packages/")[-1].split("/src/")[-1]
        print(f"{tt * per:11.1f} {ct * per:11.1f} {nc / args.calls:10.1f}  {short}:{line}:{func}")
    print("\npolyroute functions by own time:")
    ours = [item for item in raw.items() if "/polyroute/" in item[0][0]]
    for (file, line, func), (_, nc, tt, ct, _) in sorted(ours, key=lambda i: i[1][2], reverse=True)[: args.top]:
        short = file.split("/src/")[-1]
        print(f"{tt * per:11.1f} {ct * per:11.1f} {nc / args.calls:10.1f}  {short}:{line}:{func}")


if __name__ == "__main__":
    main()
