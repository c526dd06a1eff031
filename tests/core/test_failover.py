"""Failover against real loopback emulators: each status, resets, hangs, retry-after, circuit, budgets, fallbacks,
capability routing, and what the caller gets when everything fails. Every case runs sync and async."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import openai
import pytest

from polyroute import Router, _compat
from tests.core.routing_helpers import KEY, MESSAGES, MODES, call, dep, make_router, ok, sequence, status
from tests.emulators import Emulator, Reply, Request

Start = Callable[..., Emulator]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.mark.parametrize("code", [408, 409, 429, 500, 502, 503, 504, 529, 401, 403, 404])
def test_deployment_failure_moves_on(emulator: Start, mode: str, code: int) -> None:
    down = emulator(status(code))
    up = emulator(ok("second"))
    result, headers = call(mode, make_router(dep(down, "a"), dep(up, "b")))
    assert result.choices[0].message.content == "second"
    assert headers["x-polyroute-deployment"] == "b"
    assert headers["x-polyroute-attempts"] == "2"
    assert len(down.requests) == 1


@pytest.mark.parametrize(
    ("code", "error"),
    [(400, openai.BadRequestError), (413, openai.APIStatusError), (422, openai.UnprocessableEntityError)],
)
def test_request_errors_return_to_caller_once(emulator: Start, mode: str, code: int, error: type) -> None:
    bad = emulator(status(code, "your request is wrong"))
    up = emulator(ok())
    router = make_router(dep(bad, "a"), dep(up, "b"))
    with pytest.raises(error) as caught:
        call(mode, router, client={"max_retries": 2})
    assert caught.value.status_code == code
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(bad.requests) == 1  # the SDK did not retry
    assert up.requests == []


def test_connection_reset_and_refused_move_on(emulator: Start, mode: str) -> None:
    reset = emulator(lambda request: Reply(reset=True))
    up = emulator(ok("alive"))
    router = make_router(dep("http://127.0.0.1:9/v1", "refused"), dep(reset, "reset"), dep(up, "up"))
    result, headers = call(mode, router)
    assert result.choices[0].message.content == "alive"
    assert headers["x-polyroute-attempts"] == "3"


def test_hung_connection_times_out_and_moves_on(emulator: Start, mode: str) -> None:
    hung = emulator(lambda request: Reply(hang=2.0))
    up = emulator(ok("after hang"))
    router = make_router(dep(hung, "hung", timeout=0.2), dep(up, "up"))
    started = time.monotonic()
    result, _ = call(mode, router)
    assert result.choices[0].message.content == "after hang"
    assert time.monotonic() - started < 1.0


def test_everything_failing_is_one_error_listing_every_attempt(emulator: Start, mode: str) -> None:
    a = emulator(status(500, "boom"))
    b = emulator(lambda request: Reply(reset=True))
    c = emulator(status(503, "overloaded"))
    router = make_router(dep(a, "a"), dep(b, "b"), dep(c, "c"))
    with pytest.raises(openai.APIStatusError) as caught:
        call(mode, router, client={"max_retries": 2})
    error = caught.value
    assert error.status_code in (502, 503)
    assert error.response.headers["x-should-retry"] == "false"
    assert error.response.headers["x-polyroute-attempts"] == "3"
    message = str(error.message)
    for label in ("a: 500", "b could not be reached", "c: 503", "boom", "overloaded"):
        assert label in message
    assert "s)" in message  # elapsed per attempt
    assert [len(e.requests) for e in (a, b, c)] == [1, 1, 1]  # x-should-retry: false => the SDK called once
    assert KEY not in message


def test_all_rate_limited_is_429_called_once(emulator: Start, mode: str) -> None:
    a = emulator(status(429, "slow down"))
    b = emulator(status(429, "slow down too"))
    with pytest.raises(openai.RateLimitError) as caught:
        call(mode, make_router(dep(a, "a"), dep(b, "b")), client={"max_retries": 2})
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(a.requests) == len(b.requests) == 1


def test_lone_401_stays_401(emulator: Start, mode: str) -> None:
    a = emulator(status(401, "invalid api key"))
    with pytest.raises(openai.AuthenticationError):
        call(mode, make_router(dep(a, "a")), client={"max_retries": 2})
    assert len(a.requests) == 1


@pytest.mark.parametrize(
    "headers",
    [{"retry-after": "5"}, {"retry-after-ms": "5000"}, {"x-ratelimit-reset-requests": "5s"}],
    ids=["retry-after", "retry-after-ms", "x-ratelimit-reset"],
)
def test_retry_after_cools_the_deployment_down(emulator: Start, mode: str, headers: dict[str, str]) -> None:
    limited = emulator(status(429, "rate limited", **headers))
    up = emulator(ok())
    router = make_router(dep(limited, "limited"), dep(up, "up"))
    for _ in range(3):
        _, answer = call(mode, router)
        assert answer["x-polyroute-deployment"] == "up"
    assert len(limited.requests) == 1  # skipped while cooling down


def test_cooldown_ends_when_retry_after_passes(emulator: Start, mode: str) -> None:
    flaky = emulator(sequence(status(429, "wait", **{"retry-after-ms": "200"}), ok("back")))
    up = emulator(ok("other"))
    router = make_router(dep(flaky, "flaky"), dep(up, "up"))
    assert call(mode, router)[1]["x-polyroute-deployment"] == "up"
    assert call(mode, router)[1]["x-polyroute-deployment"] == "up"
    time.sleep(0.25)
    assert call(mode, router)[1]["x-polyroute-deployment"] == "flaky"


def test_circuit_opens_then_half_open_probe_closes_it(emulator: Start, mode: str) -> None:
    flaky = emulator(sequence(status(500), status(500), ok("recovered")))
    up = emulator(ok("other"))
    router = make_router(dep(flaky, "flaky"), dep(up, "up"), retry={"allowed_fails": 2, "cooldown": 0.5})
    state = router.state(router.route("m").targets[0])
    for _ in range(3):  # two failures open the circuit; then flaky is skipped
        assert call(mode, router)[1]["x-polyroute-deployment"] == "up"
    assert len(flaky.requests) == 2
    assert state.circuit == "open"
    time.sleep(max(state.open_until - time.monotonic(), 0) + 0.02)
    assert call(mode, router)[1]["x-polyroute-deployment"] == "flaky"  # the probe
    assert state.circuit == "closed"


def test_failed_probe_reopens_the_circuit(emulator: Start, mode: str) -> None:
    broken = emulator(status(500))
    up = emulator(ok())
    router = make_router(dep(broken, "broken"), dep(up, "up"), retry={"allowed_fails": 1, "cooldown": 0.2})
    call(mode, router)
    time.sleep(0.25)
    call(mode, router)  # probe fails, circuit open again
    call(mode, router)
    assert len(broken.requests) == 2
    assert router.state(router.route("m").targets[0]).circuit == "open"


def test_same_deployment_retries_with_backoff(emulator: Start, mode: str) -> None:
    flaky = emulator(sequence(status(503), status(503), ok("third time")))
    other = emulator(ok("other"))
    router = make_router(
        dep(flaky, "flaky"),
        dep(other, "other"),
        retry={"same_deployment_retries": 2, "backoff": 0.01, "max_backoff": 0.05, "allowed_fails": 5},
    )
    result, headers = call(mode, router)
    assert result.choices[0].message.content == "third time"
    assert headers["x-polyroute-attempts"] == "3"
    assert other.requests == []


def test_same_deployment_retry_is_not_used_for_its_bad_key(emulator: Start, mode: str) -> None:
    bad_key = emulator(status(401))
    other = emulator(ok())
    router = make_router(dep(bad_key, "bad"), dep(other, "other"), retry={"same_deployment_retries": 3})
    assert call(mode, router)[1]["x-polyroute-attempts"] == "2"
    assert len(bad_key.requests) == 1


def test_max_attempts_bounds_the_chain(emulator: Start, mode: str) -> None:
    emus = [emulator(status(500)) for _ in range(4)]
    router = make_router(*(dep(e, f"d{i}") for i, e in enumerate(emus)), retry={"max_attempts": 2})
    with pytest.raises(openai.InternalServerError) as caught:
        call(mode, router)
    assert "max_attempts=2" in str(caught.value.message)
    assert [len(e.requests) for e in emus] == [1, 1, 0, 0]


def test_deadline_bounds_all_attempts(emulator: Start, mode: str) -> None:
    hung = [emulator(lambda request: Reply(hang=2.0)) for _ in range(3)]
    router = make_router(*(dep(e, f"h{i}") for i, e in enumerate(hung)), retry={"deadline": 0.4})
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):  # every attempt timed out: the SDK's own timeout error
        call(mode, router)
    assert time.monotonic() - started < 1.2


def test_callers_timeout_is_the_budget(emulator: Start, mode: str) -> None:
    hung = [emulator(lambda request: Reply(hang=2.0)) for _ in range(3)]
    router = make_router(*(dep(e, f"h{i}") for i, e in enumerate(hung)))
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        call(mode, router, client={"timeout": 0.3})
    assert time.monotonic() - started < 1.0


def test_fallback_model_serves_when_all_deployments_fail(emulator: Start, mode: str) -> None:
    down = emulator(status(500))
    backup = emulator(ok("from backup"))
    router = make_router(
        dep(down, "down"),
        fallbacks=["backup"],
        extra_models=[{"name": "backup", "deployments": [dep(backup, "backup-dep")]}],
    )
    result, headers = call(mode, router)
    assert result.choices[0].message.content == "from backup"
    assert headers["x-polyroute-deployment"] == "backup-dep"


def _context_error(request: Request) -> Reply:
    return Reply(
        status=400,
        body={
            "error": {
                "message": "This model's maximum context length is 8192 tokens",
                "type": "invalid_request_error",
                "code": "context_length_exceeded",
            }
        },
    )


def test_context_length_error_goes_to_context_window_fallbacks(emulator: Start, mode: str) -> None:
    small = emulator(_context_error)
    small_too = emulator(ok("never"))
    big = emulator(ok("big window"))
    router = make_router(
        dep(small, "small"),
        dep(small_too, "small-too"),
        context_window_fallbacks=["big"],
        extra_models=[{"name": "big", "deployments": [dep(big, "big-dep")]}],
    )
    result, _ = call(mode, router)
    assert result.choices[0].message.content == "big window"
    assert small_too.requests == []


def test_context_length_error_without_fallbacks_is_a_400_naming_it(emulator: Start, mode: str) -> None:
    small = emulator(_context_error)
    other = emulator(ok())
    with pytest.raises(openai.BadRequestError) as caught:
        call(mode, make_router(dep(small, "small"), dep(other, "other")), client={"max_retries": 2})
    assert caught.value.code == "context_length_exceeded"
    assert "context_length_exceeded" in str(caught.value.message)
    assert len(small.requests) == 1


def test_prompt_too_long_for_a_window_skips_before_calling(emulator: Start, mode: str) -> None:
    tiny = emulator(ok("never"))
    big = emulator(ok("big window"))
    router = make_router(
        dep(tiny, "tiny", capabilities={"context_window": 50}),
        context_window_fallbacks=["big"],
        extra_models=[{"name": "big", "deployments": [dep(big, "big-dep")]}],
    )
    long = [{"role": "user", "content": "word " * 400}]
    result, headers = call(mode, router, messages=long)
    assert result.choices[0].message.content == "big window"
    assert headers["x-polyroute-attempts"] == "1"
    assert tiny.requests == []
    # a short prompt still fits
    assert call(mode, router)[1]["x-polyroute-deployment"] == "tiny"


def test_prompt_too_long_everywhere_is_context_length_400(emulator: Start, mode: str) -> None:
    tiny = emulator(ok())
    router = make_router(dep(tiny, "tiny", capabilities={"context_window": 50}))
    with pytest.raises(openai.BadRequestError) as caught:
        call(mode, router, messages=[{"role": "user", "content": "word " * 400}])
    assert caught.value.code == "context_length_exceeded"
    assert tiny.requests == []


def test_content_policy_refusal_goes_to_content_policy_fallbacks(emulator: Start, mode: str) -> None:
    strict = emulator(
        lambda request: Reply(
            status=400,
            body={"error": {"message": "flagged by content management policy", "code": "content_filter"}},
        )
    )
    lenient = emulator(ok("answered"))
    router = make_router(
        dep(strict, "strict"),
        content_policy_fallbacks=["lenient"],
        extra_models=[{"name": "lenient", "deployments": [dep(lenient, "lenient-dep")]}],
    )
    result, _ = call(mode, router)
    assert result.choices[0].message.content == "answered"
    # without content_policy_fallbacks the refusal reaches the caller
    alone = make_router(dep(strict, "strict"))
    with pytest.raises(openai.BadRequestError):
        call(mode, alone)


IMAGE_MESSAGES: list[dict[str, Any]] = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ],
    }
]
TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
]


def test_capability_routing_skips_deployments_that_cannot(emulator: Start, mode: str) -> None:
    blind = emulator(ok("blind"))
    seeing = emulator(ok("seeing"))
    router = make_router(dep(blind, "blind", capabilities={"vision": False}), dep(seeing, "seeing"))
    result, headers = call(mode, router, messages=IMAGE_MESSAGES)
    assert result.choices[0].message.content == "seeing"
    assert headers["x-polyroute-attempts"] == "1"
    assert blind.requests == []
    # a text-only request still goes first in order
    assert call(mode, router)[1]["x-polyroute-deployment"] == "blind"


def test_no_capable_deployment_is_a_400_listing_each(emulator: Start, mode: str) -> None:
    a = emulator(ok())
    b = emulator(ok())
    router = make_router(
        dep(a, "a", capabilities={"vision": False}), dep(b, "b", capabilities={"tools": False, "vision": False})
    )
    with pytest.raises(openai.BadRequestError) as caught:
        call(mode, router, messages=IMAGE_MESSAGES, tools=TOOLS)
    message = str(caught.value.message)
    assert "a: does not support vision" in message
    assert "b: does not support tools, vision" in message
    assert a.requests == [] and b.requests == []


def test_unknown_models_are_assumed_capable(emulator: Start, mode: str) -> None:
    up = emulator(ok("capable"))
    router = make_router(dep(up, "some-unknown-model-xyz"))
    request: dict[str, Any] = {
        "messages": IMAGE_MESSAGES,
        "tools": TOOLS,
        "reasoning_effort": "low",
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
    }
    result, _ = call(mode, router, **request)
    assert result.choices[0].message.content == "capable"


def test_a_log_record_per_attempt_without_secrets(emulator: Start, mode: str, caplog: pytest.LogCaptureFixture) -> None:
    down = emulator(status(500, f"leaky error mentioning {KEY}"))
    up = emulator(ok())
    caplog.set_level(logging.INFO, logger="polyroute")
    call(mode, make_router(dep(down, "a"), dep(up, "b")))
    attempts = [r for r in caplog.records if "attempt failed" in r.getMessage() or "served" in r.getMessage()]
    assert len(attempts) == 2
    assert "deployment=a" in attempts[0].getMessage()
    assert "deployment=b" in attempts[1].getMessage()
    assert all(KEY not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("lib_name", [lib.__name__ for lib in _compat.LIBS])
def test_plain_http_clients_get_failover_and_headers(emulator: Start, lib_name: str) -> None:
    down = emulator(status(503))
    up = emulator(ok("plain"))
    router = make_router(dep(down, "a"), dep(up, "b"))
    lib: Any = next(m for m in _compat.LIBS if m.__name__ == lib_name)
    body = {"model": "m", "messages": MESSAGES}
    with lib.Client(transport=router.transport(), base_url="http://x/v1") as client:
        response = client.post("/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["x-polyroute-deployment"] == "b"
    assert response.json()["choices"][0]["message"]["content"] == "plain"


@pytest.mark.parametrize("lib_name", [lib.__name__ for lib in _compat.LIBS])
async def test_plain_async_client_all_failing(emulator: Start, lib_name: str) -> None:
    down = emulator(status(500))
    router = make_router(dep(down, "a"))
    lib: Any = next(m for m in _compat.LIBS if m.__name__ == lib_name)
    async with lib.AsyncClient(transport=router.transport(), base_url="http://x/v1") as client:
        response = await client.post("/chat/completions", json={"model": "m", "messages": MESSAGES})
    await router.aclose()
    assert response.status_code == 500
    assert response.headers["x-should-retry"] == "false"
    assert response.json()["error"]["message"]


def test_router_repr_and_errors_hold_no_key(emulator: Start) -> None:
    router = Router({"models": [{"name": "m", "deployments": [dep("http://127.0.0.1:9/v1", "a")]}]})
    assert KEY not in repr(router) and KEY not in repr(router.route("m").targets)


def test_the_final_error_names_each_deployment_once_per_attempt(emulator: Any) -> None:
    down = emulator(status(503, "overloaded"))
    router = make_router(dep(down, "dep-a"), dep(down, "dep-b"), retry={"backoff": 0})
    with pytest.raises(openai.InternalServerError) as info:
        call("sync", router)
    message = str(info.value)
    assert message.count("dep-a") == 1 and message.count("dep-b") == 1, message
