"""Budgets shared on Redis (#16, #17), against a real ``redis-server`` on loopback: a USD budget and a token budget
hold across worker processes; with Redis down, budgets fail open (count in each process) or closed (503 saying the
budget store is unreachable) as configured; with Redis back, processes share the budget again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import openai
import pytest

from polyroute import Router
from polyroute.state.redis import RedisState
from polyroute.state.redis_budgets import RedisBudgetStore, budget_keys
from polyroute.usage.budgets import Claim, period
from tests.emulators import Emulator, Reply, Request
from tests.emulators.openai_format import completion
from tests.redis.server import RedisServer, cluster_nodes, require_redis
from tests.redis.test_shared_state import run_fleet

Start = Callable[..., Emulator]
PRICES = {"input": 1000.0, "output": 1000.0}
"""$0.001 a token: each answer (10 + 10 tokens) costs $0.02; a call with max_tokens 10 is estimated below that."""
CALL_COST = 0.02
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


def answer(request: Request) -> Reply:
    usage = {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
    return Reply(body=completion("ok", model=request.json()["model"], usage=usage))


def budget_config(url: str, upstream: Emulator, budget: dict[str, Any], **state: Any) -> dict[str, Any]:
    """Model ``m`` on one priced deployment, one budget, state on Redis under a prefix of its own."""
    deployment = {
        "provider": "openai",
        "model": "gpt-4o",
        "id": "d",
        "api_base": upstream.url + "/v1",
        "api_key": "sk-budget-test-0123456789abcdef",
        "prices": PRICES,
    }
    return {
        "models": [{"name": "m", "deployments": [deployment]}],
        "budgets": [budget],
        "state": {"backend": "redis", "url": url, "prefix": f"t-{uuid.uuid4().hex[:8]}:", **state},
    }


def shared_level(server: RedisServer, cfg: dict[str, Any], budget: str) -> float:
    """Spent plus reserved on Redis for the ``all``-scope ``budget`` this day."""
    start = period("day", time.time())[0]
    key = budget_keys(cfg["state"]["prefix"], f"{budget}||{start:.0f}")[0]
    spent = server.command("hget", key, "spent").strip() or "0"
    reserved = server.command("hget", key, "reserved").strip() or "0"
    return float(spent) + float(reserved)


def settled(*routers: Router) -> None:
    """Send the routers' settles now: each goes to Redis from the background thread a few ms after its call."""
    for router in routers:
        assert isinstance(router.shared_state, RedisState)
        assert router.shared_state.flush(timeout=5)


def chat(router: Router) -> str:
    raw = router.openai_client().chat.completions.with_raw_response.create(model="m", messages=MESSAGES, max_tokens=10)
    return raw.headers["x-polyroute-deployment"]


def test_back_to_back_calls_are_not_refused_by_their_own_queued_settles(
    emulator: Start, redis_server: RedisServer
) -> None:
    """A budget with room for one estimate: each call reserves it and spends little, and the next call right after
    must not be refused because the previous call's settle was still waiting for the background thread.
    """
    upstream = emulator(answer)
    cfg = budget_config(redis_server.url, upstream, {"name": "tight", "tokens": 150, "per": "day"}, refresh=60)
    router = Router(cfg)
    create = router.openai_client().chat.completions.create
    try:
        # each call: an estimate of 104 tokens (a few of prompt, max_tokens 100), then 20 spent
        for _ in range(3):
            create(model="m", messages=MESSAGES, max_tokens=100)
    finally:
        router.close()
    assert len(upstream.requests) == 3
    assert shared_level(redis_server, cfg, "tight") == pytest.approx(60)


def test_a_budget_held_by_a_call_in_flight_says_so_on_redis_too(emulator: Start, redis_server: RedisServer) -> None:
    def slow(request: Request) -> Reply:
        reply = answer(request)
        reply.first_byte_delay = 0.5
        return reply

    cfg = budget_config(redis_server.url, emulator(slow), {"name": "pair", "tokens": 150, "per": "day"})
    router = Router(cfg)
    client = router.openai_client()
    try:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(client.chat.completions.create, model="m", messages=MESSAGES, max_tokens=100)
            time.sleep(0.2)
            with pytest.raises(openai.RateLimitError) as caught:
                client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=100)
            assert first.result().choices
    finally:
        router.close()
    assert "only once calls in flight end" in caught.value.message
    assert int(caught.value.response.headers["retry-after"]) <= 1


# -- several processes ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_usd_budget_holds_across_processes(emulator: Start, redis_server: RedisServer) -> None:
    upstream = emulator(answer)
    cfg = budget_config(redis_server.url, upstream, {"name": "team", "usd": 0.1, "per": "day"})
    served = [r for worker in run_fleet(cfg, [5, 5, 5], max_tokens=10) for r in worker]
    ok = served.count("d")
    assert set(served) <= {"d", "429"}
    # each process alone would spend its own $0.10 (5 calls each, 15 in all); together they pass $0.10 by no more
    # than the 3 calls in flight
    assert 5 <= ok <= 5 + 3
    assert len(upstream.requests) == ok
    assert ok * CALL_COST <= 0.1 + 3 * CALL_COST
    assert shared_level(redis_server, cfg, "team") == pytest.approx(ok * CALL_COST)  # all settled: nothing reserved


@pytest.mark.slow
def test_a_token_budget_holds_across_processes(emulator: Start, redis_server: RedisServer) -> None:
    upstream = emulator(answer)
    cfg = budget_config(redis_server.url, upstream, {"name": "tokens", "tokens": 100, "per": "day"})
    served = [r for worker in run_fleet(cfg, [4, 4, 4], max_tokens=10) for r in worker]
    ok = served.count("d")
    assert 5 <= ok <= 5 + 3  # 20 tokens a call: 5 fit; each process alone would have made 4 (12 in all)
    assert len(upstream.requests) == ok
    assert shared_level(redis_server, cfg, "tokens") == pytest.approx(ok * 20)


@pytest.mark.slow
def test_a_call_under_several_budgets_reserves_them_in_one_script_on_a_redis_cluster(emulator: Start) -> None:
    require_redis()
    try:
        nodes = cluster_nodes(3)
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"cannot start a Redis Cluster on loopback: {exc}")
    try:
        upstream = emulator(answer)
        cfg = budget_config(nodes[0].url, upstream, {"name": "all", "usd": 0.05}, cluster=True, timeout=0.5)
        cfg["budgets"].append({"name": "route-m", "scope": "route", "match": "m", "tokens": 1000})
        first, second = Router(cfg), Router(cfg)
        assert chat(first) == "d"
        assert chat(second) == "d"
        settled(second)
        with pytest.raises(openai.RateLimitError, match="'all'"):
            chat(first)  # the budgets' keys share one slot: one script reserves both (no CROSSSLOT, no fallback)
        assert all("up=True" in repr(r.shared_state) for r in (first, second))  # Redis never refused a script
        # the deployment's claim went in the same pipeline as the refused reservation (another slot, maybe another
        # node): the budget refused it, so its claim was given back
        settled(first)
        assert sum(busy_calls(node, cfg["state"]["prefix"]) for node in nodes) == 0
        assert len(upstream.requests) == 2
        first.close()
        second.close()
    finally:
        for node in nodes:
            node.cleanup()


# -- Redis down, back -------------------------------------------------------------------------------------------


def test_budgets_fail_open_while_redis_is_down_and_share_again_when_it_is_back(
    emulator: Start, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    upstream = emulator(answer)
    budget = {"name": "team", "usd": 0.05, "per": "day"}
    cfg = budget_config(redis_server.url, upstream, budget, reconnect=0.1, refresh=0.1)
    caplog.set_level(logging.WARNING, logger="polyroute.state")
    first, second = Router(cfg), Router(cfg)  # two processes' views
    assert chat(first) == "d"
    assert chat(second) == "d"  # $0.04 spent between them
    settled(second)
    with pytest.raises(openai.RateLimitError, match="'team'"):
        chat(first)  # $0.04 + the estimate would pass $0.05

    redis_server.stop()
    for _ in range(2):  # open: each process counts on its own from zero, and calls go on
        started = time.monotonic()
        assert chat(first) == "d"
        assert time.monotonic() - started < 1.0
    with pytest.raises(openai.RateLimitError, match="'team'"):
        chat(first)  # its own count holds it to the budget too
    fell_back = [r for r in caplog.records if "budgets on Redis unreachable" in r.getMessage()]
    assert len(fell_back) == 1 and "(open)" in fell_back[0].getMessage()  # logged once, not per call
    time.sleep(0.3)  # the second process's background refresh finds Redis down too

    redis_server.start()  # empty, as a restarted Redis without persistence
    _wait_for(caplog, "reachable again", times=2)  # both processes
    assert chat(first) == "d"
    assert chat(second) == "d"
    settled(first, second)
    with pytest.raises(openai.RateLimitError, match="'team'"):
        chat(second)  # sharing again: the first process's call counts for the second
    settled(second)
    assert shared_level(redis_server, cfg, "team") == pytest.approx(2 * CALL_COST)
    first.close()
    second.close()


def test_budgets_fail_closed_with_a_clear_error_while_redis_is_down(
    emulator: Start, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    upstream = emulator(answer)
    budget = {"name": "team", "usd": 1.0, "per": "day"}
    cfg = budget_config(redis_server.url, upstream, budget, reconnect=0.1, budgets_when_unreachable="closed")
    caplog.set_level(logging.WARNING, logger="polyroute.state")
    router = Router(cfg)
    assert chat(router) == "d"

    redis_server.stop()
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as caught:
            chat(router)
        error = caught.value
        assert error.status_code == 503 and error.code == "budget_store_unreachable"
        assert "'team'" in error.message and "budget store (Redis) is unreachable" in error.message
        assert "budgets_when_unreachable" in error.message
        assert int(error.response.headers["retry-after"]) >= 1
    assert len(upstream.requests) == 1  # refused before any upstream call
    assert router.state(router.route("m").targets[0]).in_flight == 0  # and before the deployment was claimed

    redis_server.start()
    _wait_for(caplog, "reachable again")
    assert chat(router) == "d"
    settled(router)
    assert shared_level(redis_server, cfg, "team") == pytest.approx(CALL_COST)
    router.close()


def _wait_for(caplog: pytest.LogCaptureFixture, text: str, times: int = 1) -> None:
    deadline = time.monotonic() + 5
    while caplog.text.count(text) < times and time.monotonic() < deadline:
        time.sleep(0.05)
    assert caplog.text.count(text) == times


# -- the store itself -------------------------------------------------------------------------------------------


def store_for(server: RedisServer, **options: Any) -> tuple[RedisBudgetStore, str]:
    cfg = budget_config(server.url, _NoUpstream(), {"name": "b", "usd": 1.0})
    router = Router(cfg)
    store = router.recorder.budgets.store if router.recorder and router.recorder.budgets else None
    assert isinstance(store, RedisBudgetStore)
    state = router.shared_state
    assert isinstance(state, RedisState)
    return RedisBudgetStore(state, **options), cfg["state"]["prefix"]


class _NoUpstream:
    url = "http://127.0.0.1:9"


def stored(server: RedisServer, prefix: str, key: str) -> float:
    """Spent plus reserved on Redis for budget counter ``key``."""
    counter = budget_keys(prefix, key)[0]
    return sum(float(server.command("hget", counter, field).strip() or 0) for field in ("spent", "reserved"))


def test_the_router_puts_budgets_on_redis_and_the_store_reserves_all_or_nothing(redis_server: RedisServer) -> None:
    store, prefix = store_for(redis_server)
    end = period("day", time.time())[1]
    a, b = Claim("a||1", 10.0, 6.0, end, "a"), Claim("b||1", 5.0, 6.0, end, "b")
    assert store.reserve([a, b]) == b  # b would pass its limit: nothing reserved, a neither
    assert stored(redis_server, prefix, "a||1") == 0.0
    small = [a, Claim("b||1", 5.0, 4.0, end, "b")]
    assert store.reserve(small) is None
    assert (stored(redis_server, prefix, "a||1"), stored(redis_server, prefix, "b||1")) == (6.0, 4.0)
    store.settle(small, [2.5, 2.5])  # the reservation released, the spend added (from the background thread)
    assert store._state.flush()  # pyright: ignore[reportPrivateUsage]
    assert (stored(redis_server, prefix, "a||1"), stored(redis_server, prefix, "b||1")) == (2.5, 2.5)
    ttl = int(redis_server.command("pttl", budget_keys(prefix, "a||1")[0]))
    assert 0 < ttl <= (end - time.time()) * 1000 + 1000  # the counter goes when its period ends
    midnight = datetime.fromtimestamp(end, timezone.utc)
    assert midnight.hour == 0 and midnight.minute == 0


def test_a_reservation_whose_process_died_leaves_the_budget_when_its_lease_ends(redis_server: RedisServer) -> None:
    store, _ = store_for(redis_server, lease=0.3)
    end = period("day", time.time())[1]
    claim = Claim("dead||1", 10.0, 8.0, end, "dead")
    assert store.reserve([claim]) is None  # never settled: its process "died" mid-call
    assert store.reserve([claim]) == claim
    time.sleep(0.4)
    assert store.reserve([claim]) is None  # the dead reservation's lease ended
    assert store.level("dead||1") == 8.0


# -- one round trip on the call's path --------------------------------------------------------------------------


HANDSHAKE = {"HELLO", "CLIENT", "PING"}
"""What a new connection may send before its first command."""


@contextlib.contextmanager
def monitored(server: RedisServer) -> Iterator[list[str]]:
    """The commands clients send to ``server`` meanwhile (``MONITOR``; not those scripts run inside)."""
    import redis

    seen: list[str] = []
    client = redis.Redis.from_url(server.url)
    monitor = client.monitor()
    connection = monitor.__enter__()
    done = threading.Event()
    marker = f"end-{uuid.uuid4().hex}"

    def watch() -> None:
        for command in connection.listen():
            if marker in command["command"]:
                break
            if command.get("client_type") != "lua":
                seen.append(command["command"].split(" ", 1)[0].strip('"').upper())
        done.set()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    time.sleep(0.1)  # MONITOR is on
    try:
        yield seen
    finally:
        redis.Redis.from_url(server.url).echo(marker)
        done.wait(5)
        monitor.__exit__(None, None, None)
        client.close()
    seen[:] = [c for c in seen if c != "ECHO"]


def commandstats(server: RedisServer) -> dict[str, int]:
    """Calls per command so far, from ``INFO commandstats``."""
    out = server.command("info", "commandstats")
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"cmdstat_([\w|]+):calls=(\d+)", out)}


def deployment(upstream: Emulator, name: str) -> dict[str, Any]:
    return {
        "provider": "openai",
        "model": "gpt-4o",
        "id": name,
        "api_base": upstream.url + "/v1",
        "api_key": "sk-budget-test-0123456789abcdef",
        "prices": PRICES,
    }


def test_a_call_under_route_tag_user_and_deployment_budgets_makes_one_round_trip(
    emulator: Start, redis_server: RedisServer
) -> None:
    upstream = emulator(answer)
    cfg = budget_config(redis_server.url, upstream, {"name": "route", "scope": "route", "usd": 100.0}, refresh=60)
    cfg["budgets"] += [
        {"name": "tag", "scope": "tag", "tokens": 10**6},
        {"name": "user", "scope": "user", "usd": 100.0, "per": "month"},
        {"name": "spend", "scope": "deployment", "usd": 100.0},
    ]
    router = Router(cfg)
    client = router.openai_client()

    def tagged_call() -> None:
        raw = client.chat.completions.with_raw_response.create(
            model="m", messages=MESSAGES, max_tokens=10, user="alice", extra_headers={"x-polyroute-tags": "team-a"}
        )
        assert raw.headers["x-polyroute-deployment"] == "d"

    tagged_call()  # the first call reads the deployment budget's level once (kept and refreshed in the background)
    assert isinstance(router.shared_state, RedisState)
    assert router.shared_state.flush()
    calls = 20
    with monitored(redis_server) as seen:
        for _ in range(calls):
            tagged_call()
        assert router.shared_state.flush(timeout=5)
    # what the caller waits for: one EVALSHA per call (the route, tag and user reservations and the deployment
    # claim in one script); settles, charges and the claims' ends are EVALs the background thread pipelines
    assert seen.count("EVALSHA") == calls
    assert set(seen) <= {"EVALSHA", "EVAL", *HANDSHAKE}
    assert 1 <= seen.count("EVAL") <= 3 * calls
    start = period("day", time.time())[0]
    for key in (f"route|m|{start:.0f}", f"spend|d|{start:.0f}"):
        assert stored(redis_server, cfg["state"]["prefix"], key) == pytest.approx((calls + 1) * CALL_COST)
    assert stored(redis_server, cfg["state"]["prefix"], f"tag|team-a|{start:.0f}") == (calls + 1) * 20
    router.close()


# -- a budget found spent when the deployment is claimed ----------------------------------------------------------


def busy_calls(server: RedisServer, prefix: str) -> int:
    """Calls in flight on Redis across every deployment under ``prefix``."""
    keys = server.command("--scan", "--pattern", prefix + "*:busy").split()
    return sum(int(server.command("zcard", key).strip() or 0) for key in keys)


def test_a_budget_spent_at_claim_time_sends_the_call_to_its_fallback_route(
    emulator: Start, redis_server: RedisServer
) -> None:
    upstream = emulator(answer)
    budget = {"name": "main", "scope": "route", "match": "m", "usd": 0.04, "fallback": "cheap"}
    cfg = budget_config(redis_server.url, upstream, budget)
    cfg["models"].append({"name": "cheap", "deployments": [deployment(upstream, "c")]})
    cfg["budgets"].append({"name": "cheap-tokens", "scope": "route", "match": "cheap", "tokens": 1000})
    first, second = Router(cfg), Router(cfg)
    assert chat(first) == "d"
    settled(first)
    assert chat(second) == "d"  # second's view: $0.02 spent, its estimate fits
    settled(second)
    for router in (first, second):  # $0.04 spent: each process finds it at its call's claim, one round trip
        assert chat(router) == "c"
    settled(first, second)
    prefix = cfg["state"]["prefix"]
    assert busy_calls(redis_server, prefix) == 0  # no claim left behind on "d"
    start = period("day", time.time())[0]
    assert stored(redis_server, prefix, f"main|m|{start:.0f}") == pytest.approx(2 * CALL_COST)
    assert stored(redis_server, prefix, f"cheap-tokens|cheap|{start:.0f}") == 2 * 20  # the fallback's own budget
    assert [r.json()["model"] for r in upstream.requests] == ["gpt-4o"] * 4
    first.close()
    second.close()


def test_a_budget_spent_at_claim_time_without_fallback_answers_429_and_claims_nothing(
    emulator: Start, redis_server: RedisServer
) -> None:
    upstream = emulator(answer)
    cfg = budget_config(redis_server.url, upstream, {"name": "team", "usd": 0.04, "per": "day"})
    first, second = Router(cfg), Router(cfg)
    assert chat(first) == "d"
    settled(first)
    assert chat(second) == "d"
    settled(second)
    before = commandstats(redis_server)
    with pytest.raises(openai.RateLimitError) as caught:
        chat(first)
    after = commandstats(redis_server)
    assert after["evalsha"] - before["evalsha"] == 1  # refused within the claim's one round trip
    error = caught.value
    assert error.code == "budget_exceeded"
    assert "budget 'team' ($0.04 per day for all calls) would be exceeded by this call" in error.message
    assert 0 < int(error.response.headers["retry-after"]) <= 86400
    settled(first)
    assert busy_calls(redis_server, cfg["state"]["prefix"]) == 0
    assert len(upstream.requests) == 2
    assert shared_level(redis_server, cfg, "team") == pytest.approx(2 * CALL_COST)  # nothing reserved
    first.close()
    second.close()


def test_deployment_budget_levels_of_other_processes_arrive_with_the_refresh(
    emulator: Start, redis_server: RedisServer
) -> None:
    upstream = emulator(answer)
    cfg = budget_config(
        redis_server.url, upstream, {"name": "d-spend", "scope": "deployment", "usd": 0.03}, refresh=0.1
    )
    cfg["models"][0]["deployments"].append(deployment(upstream, "e"))
    spender, other = Router(cfg), Router(cfg)
    assert chat(other) == "d"  # reads the level once ($0), then keeps a copy
    settled(other)
    assert chat(spender) == "d"  # reads $0.02 (the other process's call)
    assert chat(spender) == "e"  # $0.04 spent on "d": its own charge counts in its copy at once
    time.sleep(0.4)  # the other process's background refresh reads the level
    assert chat(other) == "e"
    spender.close()
    other.close()


def test_a_settle_that_cannot_reach_redis_counts_its_spend_in_this_process(redis_server: RedisServer) -> None:
    store, _ = store_for(redis_server)
    end = period("day", time.time())[1]
    claims = [Claim("lost||1", 10.0, 3.0, end, "lost")]
    assert store.reserve(claims) is None
    redis_server.stop()  # the process does not know yet: the settle is queued for the background thread
    store.settle(claims, [2.0])
    deadline = time.monotonic() + 5
    while store.local.level("lost||1") == 0.0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.local.level("lost||1") == 2.0  # its sending failed: the spend counts here (the reservation lapses)
    assert store.level("lost||1") == 2.0  # what the process goes by while Redis is away


def test_async_callers_reserve_with_the_claim_and_are_refused_the_same_way(
    emulator: Start, redis_server: RedisServer
) -> None:
    upstream = emulator(answer)
    cfg = budget_config(redis_server.url, upstream, {"name": "team", "usd": 0.05, "per": "day"})
    router = Router(cfg)
    client = router.async_openai_client()

    async def go() -> list[str]:
        served: list[str] = []
        for _ in range(3):
            try:
                raw = await client.chat.completions.with_raw_response.create(
                    model="m", messages=MESSAGES, max_tokens=10
                )
                served.append(raw.headers["x-polyroute-deployment"])
            except openai.RateLimitError as exc:
                served.append(str(exc.code))
            settled(router)
        return served

    with monitored(redis_server) as seen:
        served = asyncio.run(go())
    assert served == ["d", "d", "budget_exceeded"]  # $0.04 spent: the third call's estimate would pass $0.05
    assert seen.count("EVALSHA") == 3  # each call: one round trip, the refused one too
    router.close()
