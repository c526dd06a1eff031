"""Routing strategies (ordered, weighted, least-busy, latency, cost) and the pure pieces under them: request
profiling, failure classification, backoff, token buckets, the circuit state machine."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from polyroute import Router, UpstreamConnectionError, UpstreamStatusError
from polyroute.failover import backoff, classify, fit_to_window, profile
from polyroute.health import DeploymentState, TokenBucket
from tests.core.routing_helpers import MESSAGES, MODES, call, dep, make_router, ok
from tests.emulators import Emulator, Reply
from tests.emulators.openai_format import completion

Start = Callable[..., Emulator]


def mock_router(strategy: str, *deployments: dict[str, Any]) -> Router:
    return Router({"models": [{"name": "m", "strategy": strategy, "deployments": list(deployments)}]})


def mock(name: str, **extra: Any) -> dict[str, Any]:
    return {"provider": "mock", "model": "mock-1", "id": name, **extra}


def test_ordered_keeps_configured_order() -> None:
    router = mock_router("ordered", mock("a"), mock("b"), mock("c"))
    route = router.route("m")
    assert [t.label for t in router.order(route)] == ["a", "b", "c"]


def test_weighted_first_pick_follows_weights() -> None:
    random.seed(1234)
    router = mock_router("weighted", mock("a", weight=3), mock("b", weight=1), mock("never", weight=0))
    route = router.route("m")
    firsts = Counter(router.order(route)[0].label for _ in range(20000))
    share = firsts["a"] / 20000
    # Binomial(20000, 0.75): sd ≈ 0.003; 5 sd bounds.
    assert 0.735 < share < 0.765
    assert firsts["never"] == 0
    assert all(router.order(route)[-1].label == "never" for _ in range(200))  # weight 0: last resort only


def test_weighted_spread_end_to_end(emulator: Start) -> None:
    random.seed(99)
    a = emulator(ok("a"))
    b = emulator(ok("b"))
    router = make_router(dep(a, "a", weight=4), dep(b, "b", weight=1), strategy="weighted")
    client = router.openai_client()
    for _ in range(200):
        client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    # Binomial(200, 0.8): mean 160, sd ≈ 5.7; 4 sd bounds.
    assert 137 <= len(a.requests) <= 183
    assert len(a.requests) + len(b.requests) == 200


async def test_least_busy_sends_concurrent_calls_apart(emulator: Start) -> None:
    slow = [emulator(lambda request: Reply(body=completion("x"), first_byte_delay=0.2)) for _ in range(3)]
    router = make_router(*(dep(e, f"d{i}") for i, e in enumerate(slow)), strategy="least-busy")
    client = router.async_openai_client()
    await asyncio.gather(*(client.chat.completions.create(model="m", messages=MESSAGES) for _ in range(6)))  # type: ignore[arg-type]
    assert [len(e.requests) for e in slow] == [2, 2, 2]
    await router.aclose()


@pytest.mark.parametrize("mode", MODES)
def test_latency_prefers_the_fast_deployment_but_explores(emulator: Start, mode: str) -> None:
    random.seed(7)
    slow = emulator(lambda request: Reply(body=completion("slow"), first_byte_delay=0.08))
    fast = emulator(ok("fast"))
    router = make_router(dep(slow, "slow"), dep(fast, "fast"), strategy="latency")
    served = Counter(call(mode, router)[1]["x-polyroute-deployment"] for _ in range(30))
    assert served["fast"] >= 22
    assert served["slow"] >= 1  # untried first, then explored now and then


def test_latency_explores_a_recovered_deployment() -> None:
    random.seed(3)
    router = mock_router("latency", mock("a"), mock("b"))
    a, b = router.route("m").targets
    router.report_success(a, 5.0)  # a looked slow once
    router.report_success(b, 0.1)
    firsts = Counter(router.order(router.route("m"))[0].label for _ in range(2000))
    assert firsts["b"] > 1700
    assert firsts["a"] > 40  # ~5%: a random pick first, half the time a


@pytest.mark.parametrize("mode", MODES)
def test_cost_picks_the_cheapest_for_the_request(emulator: Start, mode: str) -> None:
    pricey = emulator(ok("pricey"))
    cheap = emulator(ok("cheap"))
    unpriced = emulator(ok("unpriced"))
    router = make_router(
        dep(unpriced, "unpriced"),
        dep(pricey, "pricey", prices={"input": 10, "output": 30}),
        dep(cheap, "cheap", prices={"input": 0.1, "output": 0.4}),
        strategy="cost",
    )
    assert call(mode, router)[1]["x-polyroute-deployment"] == "cheap"
    assert [t.label for t in router.order(router.route("m"), 100, 100)] == ["cheap", "pricey", "unpriced"]


def test_cost_depends_on_prompt_versus_output_tokens() -> None:
    router = mock_router(
        "cost",
        mock("cheap-in", prices={"input": 0.1, "output": 10}),
        mock("cheap-out", prices={"input": 5, "output": 1}),
    )
    route = router.route("m")
    assert router.order(route, 100_000, 10)[0].label == "cheap-in"
    assert router.order(route, 10, 100_000)[0].label == "cheap-out"


# -- pure pieces --------------------------------------------------------------------------------------------------


def test_profile_estimates_tokens_and_needs() -> None:
    body: Any = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "x" * 400},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "u"}},
                    {"type": "file", "file": {"file_id": "f"}},
                    {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}},
                ],
            },
        ],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x"}},
        "reasoning_effort": "high",
        "max_completion_tokens": 50,
    }
    found = profile(body)
    assert set(found.needs) == {"tools", "vision", "pdf", "audio", "json_schema", "reasoning"}
    assert found.max_tokens == 50
    assert 100 < found.tokens < 3000
    plain = profile({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert plain.needs == () and plain.tokens < 10


def test_fit_to_window_drops_whole_turns_from_the_start() -> None:
    def user(n: int) -> Any:
        return {"role": "user", "content": "u" * n}

    call: Any = {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "function": {"arguments": "{}"}}]}
    messages: Any = [
        {"role": "system", "content": "rules"},
        user(400),
        call,
        {"role": "tool", "tool_call_id": "c", "content": "r" * 400},
        user(400),
        {"role": "assistant", "content": "a" * 400},
        user(40),
    ]
    body: Any = {"model": "m", "messages": messages, "max_completion_tokens": 50}
    assert fit_to_window(body, 10_000) is body  # it fits: as it is
    cut = fit_to_window(body, 320)["messages"]
    assert cut[0] == messages[0] and cut[1]["role"] == "user" and cut[1:] == messages[4:]  # no orphan tool result
    assert fit_to_window(body, 100)["messages"] == [messages[0], messages[-1]]  # at least the last user turn
    assert fit_to_window({"model": "m", "messages": [user(4000)]}, 100)["messages"] == [user(4000)]


@pytest.mark.parametrize(
    ("status", "code", "action"),
    [
        (429, None, "next"),
        (529, None, "next"),
        (500, None, "next"),
        (401, None, "next"),
        (404, None, "next"),
        (400, None, "return"),
        (413, None, "return"),
        (422, None, "return"),
        (400, "context_length_exceeded", "context"),
        (400, "content_filter", "content_policy"),
    ],
)
def test_classify(status: int, code: str | None, action: str) -> None:
    assert classify(UpstreamStatusError("x", status=status, code=code)) == action


def test_classify_connection_errors_move_on() -> None:
    assert classify(UpstreamConnectionError("reset")) == "next"


def test_backoff_is_jittered_exponential_and_capped() -> None:
    for retry in range(6):
        delay = backoff(retry, 0.1, 1.0)
        assert min(0.1 * 2**retry, 1.0) * 0.5 <= delay <= min(0.1 * 2**retry, 1.0)
    assert backoff(3, 0.0, 1.0) == 0.0


def test_token_bucket_refills() -> None:
    bucket = TokenBucket(60, 60.0, now=0.0)
    bucket.take(60, 0.0)
    assert bucket.wait(1, 0.0) == pytest.approx(1.0)
    assert bucket.wait(1, 1.0) == 0.0
    assert bucket.wait(1000, 1.0) == pytest.approx(59.0)  # never asks for more than the capacity


def test_circuit_state_machine() -> None:
    state = DeploymentState(None, None, None, now=0.0)
    state.failure("500 x", None, True, allowed_fails=2, cooldown=10.0, now=0.0)
    assert state.unavailable(0, 0.0) is None
    state.failure("500 x", None, True, allowed_fails=2, cooldown=10.0, now=1.0)
    skip = state.unavailable(0, 2.0)
    assert skip is not None and skip.kind == "circuit" and skip.ready_at == 11.0
    assert state.unavailable(0, 11.0) is None  # half-open: one probe may go
    state.acquire(0, 11.0)
    assert state.circuit == "half-open"
    probe_busy = state.unavailable(0, 11.0)
    assert probe_busy is not None and "probe" in probe_busy.reason
    state.release(0, 11.5)
    state.success(0.2, 11.5)
    assert state.circuit == "closed" and state.unavailable(0, 11.5) is None


def test_request_errors_do_not_count_toward_the_circuit() -> None:
    state = DeploymentState(None, None, None, now=0.0)
    for i in range(5):
        state.failure("400 bad", None, False, allowed_fails=1, cooldown=10.0, now=float(i))
    assert state.circuit == "closed" and state.unavailable(0, 5.0) is None


def test_upstream_headers_set_limits() -> None:
    state = DeploymentState(None, None, None, now=0.0)
    state.observe({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.5s"}, 0.0)
    skip = state.unavailable(0, 1.0)
    assert skip is not None and skip.kind == "limit" and skip.ready_at == 1.5
    assert state.unavailable(0, 1.6) is None
