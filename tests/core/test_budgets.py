"""Budgets: reserved before a call, settled after, safe under threads and async tasks; a spent one answers 429
``budget_exceeded`` (or sends the call to a fallback model)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import openai
import pytest

from polyroute import ConfigError, Router
from polyroute.__main__ import main
from polyroute.usage.budgets import MemoryBudgetStore, period
from tests.emulators import Emulator, Reply, Request
from tests.emulators.openai_format import completion
from tests.emulators.server import Handler

Start = Callable[[Handler], Emulator]
KEY = "sk-budget-test-0123456789abcdef"
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
PRICES = {"input": 1000.0, "output": 1000.0}
"""$0.001 a token: each answer below (10 + 10 tokens) costs $0.02."""
CALL_COST = 0.02


def answer(delay: float = 0.0) -> Handler:
    def handle(request: Request) -> Reply:
        usage = {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
        return Reply(body=completion("ok", model=request.json()["model"], usage=usage), first_byte_delay=delay)

    return handle


def dep(emu: Emulator, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "openai",
        "model": "gpt-4o",
        "id": name,
        "api_base": emu.url + "/v1",
        "api_key": KEY,
        "prices": PRICES,
        **extra,
    }


def make(deployments: list[dict[str, Any]], budgets: list[dict[str, Any]], **config: Any) -> Router:
    return Router(
        {"models": [{"name": "m", "deployments": deployments}, *config.pop("models", [])], "budgets": budgets, **config}
    )


def spent(router: Router) -> float:
    return router.usage()["total"]["cost"]


# -- the answer when spent -------------------------------------------------------------------------------------


def test_a_token_budget_below_the_default_estimate_says_to_set_max_tokens(emulator: Start) -> None:
    """Without max_tokens a call reserves 512 output tokens: a small budget refuses it, and the 429 says so and how
    to reserve less (max_tokens), rather than only that the budget would be exceeded.
    """
    router = make([dep(emulator(answer()), "a")], [{"name": "small", "tokens": 300, "per": "day"}])
    client = router.openai_client()
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES)
    message = caught.value.message
    assert "estimate of 516 tokens" in message and "512 output tokens" in message and "set max_tokens" in message
    assert client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=10).choices


def test_a_usd_budget_over_an_unpriced_deployment_is_warned_about(
    tmp_path: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model no source prices costs $0: a USD budget never holds it back, so say so at build and in check."""
    config = {
        "models": [
            {"name": "custom", "deployments": [{"provider": "mock", "model": "my-custom-model"}]},
            {"name": "priced", "deployments": [{"provider": "mock", "model": "m2", "prices": PRICES}]},
        ],
        "budgets": [{"name": "tiny", "usd": 0.0001, "per": "day"}],
    }
    with caplog.at_level("WARNING", logger="polyroute"):
        Router(config)
    warned = [r.getMessage() for r in caplog.records if "budget 'tiny' counts USD" in r.getMessage()]
    assert len(warned) == 1 and "mock/my-custom-model" in warned[0] and "prices:" in warned[0]
    path = tmp_path / "polyroute.json"
    path.write_text(json.dumps(config))
    assert main(["check", str(path)]) == 0
    assert "budget 'tiny' counts USD, but mock/my-custom-model" in capsys.readouterr().err
    caplog.clear()
    with caplog.at_level("WARNING", logger="polyroute"):
        Router({**config, "budgets": [{"name": "t", "tokens": 100, "per": "day"}]})
    assert not [r for r in caplog.records if "counts USD" in r.getMessage()]


def test_a_budget_held_by_a_call_in_flight_says_so_and_to_retry_soon(emulator: Start) -> None:
    """Room for one estimate, two calls at once: the second is refused while the first holds its reservation, with
    a retry-after of a second (not the period's end) and a message that says calls in flight hold the budget.
    """
    router = make([dep(emulator(answer(delay=0.5)), "a")], [{"name": "pair", "tokens": 150, "per": "day"}])
    client = router.openai_client()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(client.chat.completions.create, model="m", messages=MESSAGES, max_tokens=100)
        time.sleep(0.2)  # the first call holds its 104-token estimate until its answer comes
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=100)
        assert first.result().choices
    error = caught.value
    assert "only once calls in flight end" in error.message
    assert int(error.response.headers["retry-after"]) <= 1
    assert client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=100).choices  # 20 spent + 104


def test_a_spent_budget_answers_429_budget_exceeded_with_its_name_and_reset(emulator: Start) -> None:
    router = make([dep(emulator(answer()), "a")], [{"name": "daily-cap", "usd": 0.05, "per": "day"}])
    client = router.openai_client()
    for _ in range(2):
        client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=10)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=10)
    error = caught.value
    assert error.code == "budget_exceeded" and error.status_code == 429
    assert "'daily-cap'" in error.message and "resets at" in error.message
    midnight = period("day", datetime.now(timezone.utc).timestamp())[1]
    assert datetime.fromtimestamp(midnight, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") in error.message
    retry_after = int(error.response.headers["retry-after"])
    assert 0 < retry_after <= 86400
    assert error.response.headers["x-should-retry"] == "false"
    assert spent(router) == pytest.approx(2 * CALL_COST)
    assert router.usage()["total"]["errors"] == 1  # the refusal is a record too


def test_a_budget_with_a_fallback_sends_calls_to_the_cheaper_model(emulator: Start) -> None:
    dear, cheap = emulator(answer()), emulator(answer())
    router = make(
        [dep(dear, "dear")],
        [{"name": "m-daily", "scope": "route", "match": "m", "usd": 0.03, "fallback": "cheap"}],
        models=[{"name": "cheap", "deployments": [dep(cheap, "cheap", prices={"input": 1, "output": 1})]}],
    )
    client = router.openai_client()
    served = [
        client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES, max_tokens=10).headers[
            "x-polyroute-deployment"
        ]
        for _ in range(4)
    ]
    assert served == ["dear", "cheap", "cheap", "cheap"]  # the second call's estimate would pass $0.03
    assert set(router.usage()["route"]) == {"m", "cheap"}
    assert len(dear.requests) == 1


def test_fallbacks_that_are_spent_too_refuse_rather_than_loop(emulator: Start) -> None:
    emu = emulator(answer())
    router = make(
        [dep(emu, "a")],
        [
            {"name": "m-cap", "scope": "route", "match": "m", "usd": 0.03, "fallback": "n"},
            {"name": "n-cap", "scope": "route", "match": "n", "usd": 0.03, "fallback": "m"},
        ],
        models=[{"name": "n", "deployments": [dep(emu, "b")]}],
    )
    client = router.openai_client()
    served = [
        client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES, max_tokens=10).headers[
            "x-polyroute-deployment"
        ]
        for _ in range(2)
    ]
    assert served == ["a", "b"]
    with pytest.raises(openai.RateLimitError, match="'n-cap'"):  # the last fallback's budget
        client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=10)
    assert spent(router) == pytest.approx(2 * CALL_COST)


def test_token_budgets_count_each_user_apart(emulator: Start) -> None:
    router = make([dep(emulator(answer()), "a")], [{"name": "per-user", "scope": "user", "tokens": 50, "per": "day"}])
    client = router.openai_client()
    for _ in range(2):  # 20 tokens each; the third's estimate (14) would pass 50
        client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=10, user="alice")
    with pytest.raises(openai.RateLimitError, match="user 'alice'"):
        client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=10, user="alice")
    client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=10, user="bob")
    # a call with no user is under no user budget
    client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=10)


def test_tag_budgets_apply_to_the_tagged_client_only(emulator: Start) -> None:
    router = make([dep(emulator(answer()), "a")], [{"name": "bots", "scope": "tag", "match": "bot", "usd": 0.03}])
    bot, person = router.openai_client(tags=["bot"]), router.openai_client(tags=["person"])
    bot.chat.completions.create(model="m", messages=MESSAGES, max_tokens=10)
    with pytest.raises(openai.RateLimitError, match="'bots'"):
        bot.chat.completions.create(model="m", messages=MESSAGES, max_tokens=10)
    for _ in range(3):
        person.chat.completions.create(model="m", messages=MESSAGES, max_tokens=10)


def test_a_spent_deployment_budget_skips_the_deployment(emulator: Start) -> None:
    a, b = emulator(answer()), emulator(answer())
    router = make(
        [dep(a, "a"), dep(b, "b")],
        [
            {"name": "a-cap", "scope": "deployment", "match": "a", "usd": 0.01},
            {"name": "b-cap", "scope": "deployment", "match": "b", "usd": 0.01},
        ],
    )
    client = router.openai_client()
    served = [
        client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES).headers["x-polyroute-deployment"]
        for _ in range(2)
    ]
    assert served == ["a", "b"]
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.code == "budget_exceeded" and "b-cap" in caught.value.message
    assert len(a.requests) == len(b.requests) == 1


# -- concurrency -----------------------------------------------------------------------------------------------


def test_threads_never_spend_past_a_usd_budget(emulator: Start) -> None:
    """With an estimate that covers each answer (max_tokens), spend never passes the budget at all, however many
    calls race for it; without reservations every call in flight would pass the check."""
    router = make([dep(emulator(answer(delay=0.05)), "a")], [{"name": "cap", "usd": 0.2}])
    client = router.openai_client()
    outcomes: list[str] = []
    lock = threading.Lock()

    def one(_: int) -> None:
        try:  # estimate: (4 prompt + 20 output tokens) x $0.001 = $0.024 >= the $0.02 answer
            client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=20)
            result = "ok"
        except openai.RateLimitError as exc:
            result = str(exc.code)
        with lock:
            outcomes.append(result)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(48)))
    assert spent(router) <= 0.2 + 1e-9
    assert outcomes.count("ok") >= 8  # at least 0.2 / 0.024 reserved in the first round
    assert set(outcomes) == {"ok", "budget_exceeded"}
    assert spent(router) == pytest.approx(outcomes.count("ok") * CALL_COST)


def test_async_tasks_pass_a_budget_by_no_more_than_the_calls_in_flight(emulator: Start) -> None:
    """Estimates below the real use (max_tokens=1, the answer has 10): the overshoot is bounded by what the calls
    in flight used beyond their estimates."""
    router = make([dep(emulator(answer(delay=0.05)), "a")], [{"name": "cap", "tokens": 50}])
    in_flight = 16

    async def go() -> list[str]:
        client = router.async_openai_client()

        async def one() -> str:
            try:
                await client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=1)
                return "ok"
            except openai.RateLimitError as exc:
                return str(exc.code)

        try:
            return list(await asyncio.gather(*(one() for _ in range(in_flight))))
        finally:
            await router.aclose()

    outcomes = asyncio.run(go())
    total = router.usage()["total"]
    used = total["input_tokens"] + total["output_tokens"]
    estimate = 4 + 1  # "hi" → ~0 prompt tokens + 4 per message; max_tokens=1
    assert outcomes.count("ok") == 50 // estimate  # all start together, reserved at the estimate: as many as fit
    assert used <= 50 + outcomes.count("ok") * (20 - estimate)
    assert used == outcomes.count("ok") * 20


# -- the pieces ------------------------------------------------------------------------------------------------


def test_periods_are_calendar_periods_in_utc() -> None:
    at = datetime(2026, 12, 31, 23, 59, 30, tzinfo=timezone.utc).timestamp()
    assert period("minute", at) == (at - 30, at + 30)
    assert period("hour", at)[1] == datetime(2027, 1, 1, tzinfo=timezone.utc).timestamp()
    assert period("day", at)[1] == datetime(2027, 1, 1, tzinfo=timezone.utc).timestamp()
    assert period("month", at) == (
        datetime(2026, 12, 1, tzinfo=timezone.utc).timestamp(),
        datetime(2027, 1, 1, tzinfo=timezone.utc).timestamp(),
    )


def test_the_store_reserves_all_or_nothing() -> None:
    from polyroute.usage.budgets import Claim

    store = MemoryBudgetStore()
    a = Claim("a", 10.0, 6.0, 1e12, "a")
    b = Claim("b", 5.0, 6.0, 1e12, "b")
    assert store.reserve([a, b]) is b
    assert store.level("a") == 0.0  # nothing held by the refused call
    assert store.reserve([a]) is None and store.level("a") == 6.0
    store.settle([a], [2.0])
    assert store.level("a") == 2.0


def test_a_custom_store_backs_the_budgets(emulator: Start) -> None:
    store = MemoryBudgetStore()
    router = Router(
        {
            "models": [{"name": "m", "deployments": [dep(emulator(answer()), "a")]}],
            "budgets": [{"name": "c", "usd": 1}],
        },
        budget_store=store,
    )
    router.openai_client().chat.completions.create(model="m", messages=MESSAGES, max_tokens=10)
    day = period("day", datetime.now(timezone.utc).timestamp())[0]
    assert store.level(f"c||{day:.0f}") == pytest.approx(CALL_COST)


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ({"name": "x", "usd": 1, "tokens": 5}, "exactly one of usd or tokens"),
        ({"name": "x"}, "exactly one of usd or tokens"),
        ({"name": "x", "usd": 1, "match": "m"}, "match needs a scope"),
        ({"name": "x", "usd": 1, "fallback": "nope"}, "fallback names 'nope'"),
        ({"name": "x", "usd": 1, "per": "week"}, r"budgets\[0\]\.per: Input should be 'minute'"),
    ],
)
def test_bad_budgets_are_config_errors(budget: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Router(
            {"models": [{"name": "m", "deployments": [{"provider": "mock", "model": "mock-1"}]}], "budgets": [budget]}
        )


def test_budgets_work_with_usage_off(emulator: Start) -> None:
    router = make([dep(emulator(answer()), "a")], [{"name": "cap", "usd": 0.03}], usage={"enabled": False})
    client = router.openai_client()
    client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=10)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=10)
    assert router.usage() == {}
