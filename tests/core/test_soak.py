"""Fault-injection soak: many threads and async tasks through one router against loopback emulators that answer
429 with retry-after, 5xx, reset, hang, trickle, cut streams before and after their commit and send malformed
events, while callers cancel at random. Afterwards: every call ended within its deadline with a success or one
typed openai error, no upstream connection is left open, no slot or probe is held, and every deployment is
reachable again once its cooldown has passed."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import openai
import pytest

from polyroute import Router
from tests.core.routing_helpers import MESSAGES, dep
from tests.emulators import Emulator, Reply, Request
from tests.emulators.openai_format import chunks, completion

Start = Callable[..., Emulator]

pytestmark = pytest.mark.slow

CALL_LIMIT = 4.0
"""The caller's SDK timeout; every call must end within it (plus scheduling slack)."""
SLACK = 1.0
THREADS, CALLS_PER_THREAD = 8, 30
TASKS = 120
BAD_EVENT = "data: {this is not json\n\n"


class Chaos:
    """A handler that answers each request with a random fault, or well; ``calm`` makes it answer well."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.calm = False
        self.faults: Counter[str] = Counter()

    def __call__(self, request: Request) -> Reply:
        body = json.loads(request.body)
        stream = bool(body.get("stream"))
        with self.lock:
            fault = "ok" if self.calm else self.random.choice(FAULTS)
            self.faults[fault] += 1
        return BEHAVIOURS[fault](stream)


def _ok(stream: bool) -> Reply:
    if stream:
        return Reply.sse(chunks(["a ", "b ", "c"]), chunk_delay=0.01)
    return Reply(body=completion("fine"))


def _trickle(stream: bool) -> Reply:
    if stream:
        return Reply.sse([chunks(["late"])[0], *[": ping\n\n"] * 30, *chunks(["late"])[1:]], chunk_delay=0.05)
    data = json.dumps(completion("late")).encode()
    return Reply(chunks=[data[i : i + 10] for i in range(0, len(data), 10)], chunk_delay=0.05)


def _malformed(stream: bool, after_commit: bool) -> Reply:
    if not stream:
        return Reply(body=b"{not json", headers={"content-type": "application/json"})
    events = chunks(["one ", "two"])
    at = 2 if after_commit else 1
    return Reply.sse([*events[:at], BAD_EVENT, *events[at:]])


def _stall_after_commit(stream: bool) -> Reply:
    if not stream:
        return Reply(hang=0.8)
    events = chunks(["one ", "two"])

    def slow() -> Iterator[str]:
        yield from events[:2]
        time.sleep(0.8)
        yield from events[2:]

    return Reply.sse(slow())


BEHAVIOURS: dict[str, Callable[[bool], Reply]] = {
    "ok": _ok,
    "429": lambda stream: Reply(
        status=429,
        body={"error": {"message": "slow down", "type": "rate_limit_error", "code": None}},
        headers={"retry-after-ms": str(random.randint(50, 250))},
    ),
    "500": lambda stream: Reply(status=500, body={"error": {"message": "boom", "type": "server_error", "code": None}}),
    "503": lambda stream: Reply(status=503, body={"error": {"message": "busy", "type": "server_error", "code": None}}),
    "reset": lambda stream: Reply(reset=True),
    "hang": lambda stream: Reply(hang=0.8),
    "trickle": _trickle,
    "cut-before-commit": lambda stream: Reply.sse(chunks(["x", "y"]), cut_after=1) if stream else Reply(reset=True),
    "cut-after-commit": lambda stream: Reply.sse(chunks(["x", "y"]), cut_after=3) if stream else Reply(reset=True),
    "malformed-before-commit": lambda stream: _malformed(stream, after_commit=False),
    "malformed-after-commit": lambda stream: _malformed(stream, after_commit=True),
    "stall-after-commit": _stall_after_commit,
}
FAULTS = [*BEHAVIOURS, "ok", "ok", "ok", "ok"]


class Outcomes:
    """What each call ended with, and how long it took."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.kinds: Counter[str] = Counter()
        self.slowest = 0.0
        self.wrong: list[str] = []

    def record(self, kind: str, elapsed: float, error: BaseException | None = None) -> None:
        with self.lock:
            self.kinds[kind] += 1
            self.slowest = max(self.slowest, elapsed)
            if error is not None and not isinstance(error, openai.APIError):
                self.wrong.append(f"{type(error).__name__}: {error}")
            if isinstance(error, openai.APIStatusError) and "internal error" in str(error.message):
                self.wrong.append(f"polyroute bug: {error.message}")


def _router(emulators: list[Emulator]) -> Router:
    deployments = [dep(emu, f"d{i}", timeout=0.6, ttft_timeout=0.5) for i, emu in enumerate(emulators)]
    return Router(
        {
            "models": [{"name": "m", "deployments": deployments, "strategy": "least-busy"}],
            "retry": {
                "deadline": 2.5,
                "backoff": 0.02,
                "max_backoff": 0.3,
                "allowed_fails": 3,
                "cooldown": 0.3,
                "max_retry_after": 0.3,
                "limit_wait": 0.5,
            },
            "stream_idle_timeout": 0.3,
        }
    )


def _sync_caller(client: openai.OpenAI, outcomes: Outcomes, seed: int) -> None:
    rand = random.Random(seed)
    for _ in range(CALLS_PER_THREAD):
        started = time.monotonic()
        try:
            if rand.random() < 0.5:
                client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
                kind = "ok"
            else:
                leave_early = rand.random() < 0.2
                with client.chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream:  # type: ignore[arg-type]
                    for _chunk in stream:
                        if leave_early:
                            break
                kind = "left early" if leave_early else "ok"
            outcomes.record(kind, time.monotonic() - started)
        except Exception as exc:
            outcomes.record(type(exc).__name__, time.monotonic() - started, exc)


async def _async_caller(client: openai.AsyncOpenAI, outcomes: Outcomes, rand: random.Random) -> None:
    started = time.monotonic()
    stream_it = rand.random() < 0.5

    async def one() -> None:
        if stream_it:
            stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
            async with stream:
                async for _chunk in stream:
                    pass
        else:
            await client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]

    task = asyncio.ensure_future(one())
    cancel_after = rand.uniform(0.0, 1.0) if rand.random() < 0.2 else None
    try:
        if cancel_after is not None:
            done, _ = await asyncio.wait([task], timeout=cancel_after)
            if not done:
                task.cancel()
        await task
        outcomes.record("ok", time.monotonic() - started)
    except asyncio.CancelledError:
        outcomes.record("cancelled", time.monotonic() - started)
    except Exception as exc:
        outcomes.record(type(exc).__name__, time.monotonic() - started, exc)


def test_soak(emulator: Start) -> None:
    chaos = [Chaos(seed) for seed in range(3)]
    emulators = [emulator(c) for c in chaos]
    router = _router(emulators)
    outcomes = Outcomes()
    began = time.monotonic()

    client = router.openai_client(timeout=CALL_LIMIT)
    threads = [threading.Thread(target=_sync_caller, args=(client, outcomes, i)) for i in range(THREADS)]
    for thread in threads:
        thread.start()

    async def async_side() -> None:
        aclient = router.async_openai_client(timeout=CALL_LIMIT)
        rand = random.Random(99)
        gate = asyncio.Semaphore(24)

        async def gated() -> None:
            async with gate:
                await _async_caller(aclient, outcomes, rand)

        await asyncio.gather(*(gated() for _ in range(TASKS)))
        await router.aclose()

    asyncio.run(async_side())
    for thread in threads:
        thread.join(timeout=60)
    duration = time.monotonic() - began
    router.close()

    total = sum(outcomes.kinds.values())
    print(f"\nsoak: {total} calls in {duration:.1f}s; outcomes {dict(outcomes.kinds)}; slowest {outcomes.slowest:.2f}s")
    print(f"soak: upstream faults {dict(sum((c.faults for c in chaos), Counter()))}")
    assert total == THREADS * CALLS_PER_THREAD + TASKS
    assert not outcomes.wrong, outcomes.wrong[:5]
    assert outcomes.slowest <= CALL_LIMIT + SLACK
    assert outcomes.kinds["ok"] > total // 4

    # No upstream connection left open once the router's pools are closed.
    deadline = time.monotonic() + 3.0
    while any(e.open_connections for e in emulators) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [e.open_connections for e in emulators] == [0, 0, 0]

    # No slot or probe held.
    targets = router.route("m").targets
    states = [router.state(t) for t in targets]
    assert [s.in_flight for s in states] == [0, 0, 0]
    assert not any(s.probing for s in states)

    # Every deployment is reachable again once its cooldown passed.
    for c in chaos:
        c.calm = True
    time.sleep(0.4)
    assert [router.unavailable(t) for t in targets] == [None, None, None]
    served: set[str] = set()
    with router.openai_client() as calm:
        for _ in range(30):
            raw = calm.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
            served.add(raw.headers["x-polyroute-deployment"])
    assert served == {"d0", "d1", "d2"}
    assert all(s.circuit == "closed" for s in states)
    router.close()
