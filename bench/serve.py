"""The ``polyroute serve`` row of the benchmark: what the HTTP hop costs over the in-process transport, throughput at
concurrency 64, a bounded load test, and the LiteLLM proxy on the same mock when it is installed.

Everything runs on 127.0.0.1: the mock upstream (``bench/mock_upstream.py``, its own process), the servers (their
own processes, started like users start them) and the clients (this process). Run it in the workspace
(``uv run --frozen python bench/serve.py``); ``--litellm PATH`` names the ``litellm`` command of a venv with
``litellm[proxy]`` installed (kept out of the workspace, e.g. ``.venvs/litellm-proxy/bin/litellm``).

Measures, for each server:
- latency: the median of sequential non-streamed calls (and of 200-chunk streams) through one keep-alive
  connection, against the same calls through the in-process transport: the difference is the server's cost;
- throughput: completed calls per second with 64 calls in flight (async httpx2), for ``--seconds``;
- load: ``--load-seconds`` at concurrency 64, counting errors and the server's RSS after warm-up and at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2

ROOT = Path(__file__).resolve().parent.parent
KEY = "pr-bench-key"
CHAT = {"model": "bench", "messages": [{"role": "user", "content": "Say hello."}]}
STREAM = {**CHAT, "stream": True}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def process(cmd: list[str], ready_url: str | None = None, env: dict[str, str] | None = None) -> Iterator[Any]:
    """A subprocess in its own process group, waited on until ``ready_url`` answers; killed (group) afterwards."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            if ready_url is not None:
                _wait_ready(proc, ready_url, log, cmd)
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Any, cmd: list[str]) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx2.get(url, timeout=1).status_code < 500:
                return
        except httpx2.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            raise RuntimeError(f"{cmd[:4]} did not start:\n{log.read().decode()[-3000:]}")
        time.sleep(0.2)


@contextlib.contextmanager
def mock_upstream() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--max-seconds", "900"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def router_config(upstream: str) -> dict[str, Any]:
    return {
        "models": [
            {
                "name": "bench",
                "deployments": [
                    {
                        "provider": "openai-compatible",
                        "model": "gpt-4o-mini",
                        "api_base": f"{upstream}/v1",
                        "api_key": "sk-bench",
                    }
                ],
            }
        ],
        "keys": [{"name": "bench", "sha256": hashlib.sha256(KEY.encode()).hexdigest()}],
    }


def rss_kb(pid: int) -> int:
    """Resident memory of a process and its children (workers), in kB."""
    total = 0
    for child in [pid, *_children(pid)]:
        with contextlib.suppress(OSError), open(f"/proc/{child}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                for child in f.read().split():
                    out += [int(child), *_children(int(child))]
    return out


# -- measurements ------------------------------------------------------------------------------------------------


def latency(client: httpx2.Client, url: str, body: dict[str, Any], n: int) -> float:
    """Median seconds of ``n`` sequential calls (a stream is read to its end)."""
    samples: list[float] = []
    for i in range(n + n // 5):
        started = time.perf_counter()
        if body.get("stream"):
            with client.stream("POST", url, json=body) as response:
                for _ in response.iter_bytes():
                    pass
                assert response.status_code == 200
        else:
            response = client.post(url, json=body)
            assert response.status_code == 200, response.text
        if i >= n // 5:  # the first fifth warms up
            samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def hold(
    url: str, headers: dict[str, str], concurrency: int, seconds: float, transport: Any = None, streams: bool = False
) -> dict[str, Any]:
    """``concurrency`` callers in a loop for ``seconds``: completed calls per second, errors, p50/p99 latency.
    ``streams``: every other caller reads 200-chunk streams to their end instead."""
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    kwargs: dict[str, Any] = {"transport": transport} if transport is not None else {"limits": limits}
    done: list[float] = []
    errors: list[str] = []
    async with httpx2.AsyncClient(headers=headers, timeout=60, **kwargs) as client:
        stop = time.monotonic() + seconds

        async def caller(stream: bool) -> None:
            while time.monotonic() < stop:
                started = time.perf_counter()
                try:
                    if stream:
                        async with client.stream("POST", url, json=STREAM) as response:
                            body = b"".join([chunk async for chunk in response.aiter_bytes()])
                        ok = response.status_code == 200 and body.endswith(b"data: [DONE]\n\n")
                        text = body[-200:].decode("utf-8", "replace")
                    else:
                        response = await client.post(url, json=CHAT)
                        ok, text = response.status_code == 200, response.text[:200]
                    if not ok:
                        errors.append(f"{response.status_code}: {text}")
                        continue
                except httpx2.HTTPError as exc:
                    errors.append(repr(exc))
                    continue
                done.append(time.perf_counter() - started)

        started = time.monotonic()
        await asyncio.gather(*(caller(streams and i % 2 == 1) for i in range(concurrency)))
        elapsed = time.monotonic() - started
    done.sort()
    return {
        "calls_per_s": round(len(done) / elapsed, 1),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "p50_ms": round(1000 * done[len(done) // 2], 2) if done else None,
        "p99_ms": round(1000 * done[int(len(done) * 0.99)], 2) if done else None,
    }


def serve_cmd(config: Path, port: int, workers: int, http: str, loop: str, python: str = sys.executable) -> list[str]:
    """``polyroute serve`` as users run it, uvicorn on the same app with a chosen parser / event loop, or another
    ASGI server (``http`` = ``granian`` / ``hypercorn``, from ``python``) on the same app."""
    if http == "granian":
        return [
            python, "-m", "granian", "--interface", "asgi", "--factory", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--loop", loop, "--log-level", "warning", "polyroute.serve:app_from_env",
        ]  # fmt: skip
    if http == "hypercorn":
        return [
            python, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--worker-class",
            loop, "--log-level", "warning", "polyroute.serve:app_from_env()",
        ]  # fmt: skip
    if http == "auto" and loop == "auto":
        return [sys.executable, "-m", "polyroute", "serve", str(config), "--port", str(port), "--workers", str(workers)]
    return [
        sys.executable, "-m", "uvicorn", "polyroute.serve:app_from_env", "--factory", "--port", str(port),
        "--workers", str(workers), "--http", http, "--loop", loop, "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip


def litellm_config(upstream: str, path: Path) -> None:
    path.write_text(
        json.dumps(
            {
                "model_list": [
                    {
                        "model_name": "bench",
                        "litellm_params": {
                            "model": "openai/gpt-4o-mini",
                            "api_base": f"{upstream}/v1",
                            "api_key": "sk-bench",
                        },
                    }
                ],
                "general_settings": {"master_key": KEY},
                "litellm_settings": {"telemetry": False},
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=300, help="sequential calls per latency median")
    parser.add_argument("--streams", type=int, default=30, help="sequential streams per median")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds per throughput run")
    parser.add_argument("--load-seconds", type=float, default=30.0, help="seconds of the load test")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--litellm", help="the litellm command of a litellm[proxy] venv, to bench its proxy alongside")
    parser.add_argument(
        "--litellm-workers",
        type=int,
        nargs="+",
        default=[1],
        help="LiteLLM proxy workers to bench (--num_workers 2 kept restarting dead workers, litellm 1.108.7)",
    )
    parser.add_argument(
        "--servers-python", help="a Python with polyroute, granian and hypercorn installed, to bench them on the app"
    )
    parser.add_argument("--load-only", action="store_true", help="only the load test")
    parser.add_argument("--out", type=Path, help="write the results as JSON here too")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # a killed run still stops its servers (finally blocks)

    from polyroute import Router

    results: dict[str, Any] = {}
    headers = {"authorization": f"Bearer {KEY}"}
    with mock_upstream() as upstream, tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "polyroute.json"
        config.write_text(json.dumps(router_config(upstream)))
        env = {**os.environ, "POLYROUTE_SERVE_CONFIG": str(config), "POLYROUTE_SERVE_OPEN": "0"}

        router = Router(router_config(upstream))
        variants = [("polyroute serve (uvicorn, httptools + uvloop)", "auto", "auto")]
        variants.append(("uvicorn h11 + asyncio", "h11", "asyncio"))
        if args.servers_python:
            variants.append(("granian + uvloop", "granian", "uvloop"))
            variants.append(("hypercorn + uvloop", "hypercorn", "uvloop"))
        if args.load_only:
            variants = []
        else:
            with httpx2.Client(transport=router.transport(), base_url="http://polyroute") as inproc:
                results["in-process"] = {
                    "call_ms": round(1000 * latency(inproc, "/v1/chat/completions", CHAT, args.calls), 3),
                    "stream_ms": round(1000 * latency(inproc, "/v1/chat/completions", STREAM, args.streams), 3),
                }
            results["in-process"]["c64"] = asyncio.run(
                hold("http://polyroute/v1/chat/completions", headers, 64, args.seconds, router.transport())
            )
            print("in-process", results["in-process"], flush=True)
        for label, http, loop in variants:
            for workers in args.workers if http == "auto" else [1]:
                port = free_port()
                base = f"http://127.0.0.1:{port}"
                name = f"{label}, {workers} worker{'s' if workers > 1 else ''}"
                python = args.servers_python if http in ("granian", "hypercorn") else sys.executable
                with process(serve_cmd(config, port, workers, http, loop, python), f"{base}/health", env):
                    row: dict[str, Any] = {}
                    if workers == 1:
                        with httpx2.Client(base_url=base, headers=headers) as client:
                            row["call_ms"] = round(1000 * latency(client, "/v1/chat/completions", CHAT, args.calls), 3)
                            row["stream_ms"] = round(
                                1000 * latency(client, "/v1/chat/completions", STREAM, args.streams), 3
                            )
                        row["added_call_ms"] = round(row["call_ms"] - results["in-process"]["call_ms"], 3)
                    row["c64"] = asyncio.run(hold(f"{base}/v1/chat/completions", headers, 64, args.seconds))
                    results[name] = row
                    print(name, row, flush=True)

        # the bounded load test: polyroute serve, 2 workers, concurrency 64 (half of it streams) for --load-seconds,
        # the server's RSS (parent and workers) sampled after a warm-up and after each sixth of the run
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with process(serve_cmd(config, port, 2, "auto", "auto"), f"{base}/health", env) as proc:
            url = f"{base}/v1/chat/completions"
            asyncio.run(hold(url, headers, 64, 5.0, streams=True))  # warm-up: pools, caches, arenas
            rss = [round(rss_kb(proc.pid) / 1024, 1)]
            calls = errors = 0
            first_error = None
            for _ in range(6):
                part = asyncio.run(hold(url, headers, 64, args.load_seconds / 6, streams=True))
                calls += round(part["calls_per_s"] * args.load_seconds / 6)
                errors += part["errors"]
                first_error = first_error or part["first_error"]
                rss.append(round(rss_kb(proc.pid) / 1024, 1))
            load = {"calls": calls, "errors": errors, "first_error": first_error, "rss_mb": rss}
            results[f"load test ({args.load_seconds:.0f} s, c64 half streams, 2 workers)"] = load
            print("load", load, flush=True)
        if args.load_only:
            print(json.dumps(results, indent=2))
            return

        if args.litellm:
            lconfig = Path(tmp) / "litellm.json"
            litellm_config(upstream, lconfig)
            lenv = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"}
            for workers in args.litellm_workers:
                port = free_port()
                base = f"http://127.0.0.1:{port}"
                cmd = [args.litellm, "--config", str(lconfig), "--host", "127.0.0.1", "--port", str(port)]
                cmd += ["--num_workers", str(workers)]
                with process(cmd, f"{base}/health/liveliness", lenv):
                    row = {}
                    if workers == 1:
                        with httpx2.Client(base_url=base, headers=headers, timeout=60) as client:
                            row["call_ms"] = round(1000 * latency(client, "/v1/chat/completions", CHAT, args.calls), 3)
                            row["stream_ms"] = round(
                                1000 * latency(client, "/v1/chat/completions", STREAM, args.streams), 3
                            )
                        row["added_call_ms"] = round(row["call_ms"] - results["in-process"]["call_ms"], 3)
                    row["c64"] = asyncio.run(hold(f"{base}/v1/chat/completions", headers, 64, args.seconds))
                    name = f"LiteLLM proxy, {workers} worker{'s' if workers > 1 else ''}"
                    results[name] = row
                    print(name, row, flush=True)
        router.close()
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
