"""Client-side rpm / tpm / max_parallel, upstream x-ratelimit-remaining-* headers, bounded waits, and many
concurrent async calls sharing cooldowns and limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import openai
import pytest

from tests.core.routing_helpers import MESSAGES, MODES, call, dep, make_router, ok, sequence, status
from tests.emulators import Emulator, Reply, Request
from tests.emulators.openai_format import completion

Start = Callable[..., Emulator]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


def test_rpm_limit_skips_to_the_next_deployment(emulator: Start, mode: str) -> None:
    limited = emulator(ok("limited"))
    other = emulator(ok("other"))
    router = make_router(dep(limited, "limited", rpm=2), dep(other, "other"))
    served = [call(mode, router)[1]["x-polyroute-deployment"] for _ in range(4)]
    assert served == ["limited", "limited", "other", "other"]


def test_all_at_limit_is_429_after_a_bounded_wait_and_called_once(emulator: Start, mode: str) -> None:
    limited = emulator(ok())
    router = make_router(dep(limited, "limited", rpm=1), retry={"limit_wait": 0.1})
    call(mode, router)
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as caught:
        call(mode, router, client={"max_retries": 2})
    assert time.monotonic() - started < 0.5
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60  # when the rpm window frees a slot
    assert "rpm limit" in str(caught.value.message)
    # says what happened ("no deployment ... is at its rate limit" said the opposite)
    # (openai 3.x gives the message alone; openai 2.x the whole body, so: the error's own message)
    assert caught.value.response.json()["error"]["message"].startswith(
        "every deployment of 'm' is at its rate limit: limited: "
    )
    assert len(limited.requests) == 1


def test_tpm_limit_counts_estimated_prompt_tokens(emulator: Start, mode: str) -> None:
    limited = emulator(ok("limited"))
    other = emulator(ok("other"))
    router = make_router(dep(limited, "limited", tpm=300), dep(other, "other"))
    long = [{"role": "user", "content": "x" * 800}]  # ~200 tokens by the chars/4 estimate
    assert call(mode, router, messages=long)[1]["x-polyroute-deployment"] == "limited"
    assert call(mode, router, messages=long)[1]["x-polyroute-deployment"] == "other"
    assert call(mode, router)[1]["x-polyroute-deployment"] == "limited"  # a short prompt still fits


def test_upstream_remaining_requests_zero_waits_for_reset(emulator: Start, mode: str) -> None:
    def handle(request: Request) -> Reply:
        return Reply(
            body=completion("ok"),
            headers={"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "200ms"},
        )

    upstream = emulator(handle)
    router = make_router(dep(upstream, "only"), retry={"limit_wait": 1.0})
    call(mode, router)
    started = time.monotonic()
    call(mode, router)  # waits for the reset instead of failing
    assert 0.15 < time.monotonic() - started < 0.9
    assert len(upstream.requests) == 2


def test_upstream_remaining_tokens_below_estimate_skips(emulator: Start, mode: str) -> None:
    low = emulator(lambda request: Reply(body=completion("ok"), headers={"x-ratelimit-remaining-tokens": "10"}))
    other = emulator(ok("other"))
    router = make_router(dep(low, "low"), dep(other, "other"))
    long = [{"role": "user", "content": "x" * 400}]
    assert call(mode, router, messages=long)[1]["x-polyroute-deployment"] == "low"
    assert call(mode, router, messages=long)[1]["x-polyroute-deployment"] == "other"


async def test_concurrent_calls_share_rpm(emulator: Start) -> None:
    limited = emulator(ok("limited"))
    other = emulator(ok("other"))
    router = make_router(dep(limited, "limited", rpm=3), dep(other, "other"))
    client = router.async_openai_client()
    results = await asyncio.gather(
        *(client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES) for _ in range(10))  # type: ignore[arg-type]
    )
    served = [r.headers["x-polyroute-deployment"] for r in results]
    assert served.count("limited") == 3
    assert len(limited.requests) == 3 and len(other.requests) == 7
    await router.aclose()


async def test_concurrent_calls_respect_max_parallel(emulator: Start) -> None:
    slow = emulator(lambda request: Reply(body=completion("slow"), first_byte_delay=0.2))
    other = emulator(ok("other"))
    router = make_router(dep(slow, "slow", max_parallel=2), dep(other, "other"))
    client = router.async_openai_client()
    results = await asyncio.gather(
        *(client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES) for _ in range(8))  # type: ignore[arg-type]
    )
    served = [r.headers["x-polyroute-deployment"] for r in results]
    assert served.count("slow") == 2
    assert router.state(router.route("m").targets[0]).in_flight == 0
    await router.aclose()


async def test_concurrent_calls_share_a_cooldown(emulator: Start) -> None:
    limited = emulator(sequence(status(429, "slow down", **{"retry-after": "10"}), ok("limited")))
    other = emulator(ok("other"))
    router = make_router(dep(limited, "limited"), dep(other, "other"))
    client = router.async_openai_client()
    first = await client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    assert first.headers["x-polyroute-deployment"] == "other"
    results = await asyncio.gather(
        *(client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES) for _ in range(10))  # type: ignore[arg-type]
    )
    assert {r.headers["x-polyroute-deployment"] for r in results} == {"other"}
    assert len(limited.requests) == 1
    await router.aclose()


async def test_half_open_lets_exactly_one_probe_through(emulator: Start) -> None:
    flaky = emulator(sequence(status(500), lambda request: Reply(body=completion("probe"), first_byte_delay=0.1)))
    other = emulator(ok("other"))
    router = make_router(dep(flaky, "flaky"), dep(other, "other"), retry={"allowed_fails": 1, "cooldown": 0.2})
    client = router.async_openai_client()
    await client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    await asyncio.sleep(0.25)
    results = await asyncio.gather(
        *(client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES) for _ in range(10))  # type: ignore[arg-type]
    )
    served = [r.headers["x-polyroute-deployment"] for r in results]
    assert served.count("flaky") == 1
    assert len(flaky.requests) == 2
    await router.aclose()
