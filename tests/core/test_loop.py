"""The request loop's guarantees: every claimed deployment is released whatever ends its call, the router owns its
pools, streams commit on real content only, malformed upstream events, deadlines, retries of a lone deployment."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from typing import Any

import openai
import pytest

from polyroute import Router
from tests.core.routing_helpers import MESSAGES, call, dep, make_router, ok, status
from tests.emulators import Emulator, Reply, Request

Start = Callable[..., Emulator]


class Switch:
    """A handler whose behaviour the test changes between calls."""

    def __init__(self, handler: Callable[[Request], Reply]) -> None:
        self.handler = handler

    def __call__(self, request: Request) -> Reply:
        return self.handler(request)


def _open_circuit(emulator: Start, provider: str = "openai") -> tuple[Router, Switch, Any]:
    """A router with one deployment whose circuit is open, due for its half-open probe."""
    switch = Switch(status(500))
    emu = emulator(switch)
    deployment = dep(emu, "d") | {"provider": provider}
    router = make_router(deployment, retry={"allowed_fails": 1, "cooldown": 0.2, "same_deployment_retries": 0})
    state = router.state(router.route("m").targets[0])
    with pytest.raises(openai.InternalServerError):
        call("sync", router)
    assert state.circuit == "open"
    time.sleep(0.25)
    return router, switch, state


def _reachable_again(router: Router, switch: Switch, state: Any) -> None:
    switch.handler = ok("back")
    time.sleep(0.25)
    result, _ = call("sync", router)
    assert result.choices[0].message.content == "back"
    assert state.circuit == "closed"
    assert not state.probing
    assert state.in_flight == 0


def test_probe_refused_by_the_adapter_is_released(emulator: Start) -> None:
    router, switch, state = _open_circuit(emulator, provider="together")
    with pytest.raises(openai.BadRequestError):  # together cannot carry service_tier: refused before any call
        call("sync", router, service_tier="flex")
    assert not state.probing
    _reachable_again(router, switch, state)


def test_probe_cancelled_by_the_caller_is_released(emulator: Start) -> None:
    router, switch, state = _open_circuit(emulator)
    switch.handler = lambda request: Reply(hang=1.0)

    async def cancelled() -> None:
        client = router.async_openai_client()
        task = asyncio.ensure_future(client.chat.completions.create(model="m", messages=MESSAGES))  # type: ignore[arg-type]
        await asyncio.sleep(0.2)
        assert state.probing
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await router.aclose()

    asyncio.run(cancelled())
    assert not state.probing
    assert state.in_flight == 0
    _reachable_again(router, switch, state)


def test_probe_interrupted_by_keyboard_interrupt_is_released(emulator: Start) -> None:
    router, switch, state = _open_circuit(emulator)
    switch.handler = lambda request: Reply(hang=1.0)

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(KeyboardInterrupt):
            call("sync", router)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert not state.probing
    assert state.in_flight == 0
    _reachable_again(router, switch, state)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_probe_stream_closed_early_is_released(emulator: Start, mode: str) -> None:
    router, switch, state = _open_circuit(emulator)
    switch.handler = ok("a long answer, read only in part")

    if mode == "sync":
        with router.openai_client().chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream:  # type: ignore[arg-type]
            next(iter(stream))
    else:

        async def first_only() -> None:
            client = router.async_openai_client()
            stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
            async with stream:
                await stream.__aiter__().__anext__()
            await router.aclose()

        asyncio.run(first_only())
    assert not state.probing
    assert state.in_flight == 0
    _reachable_again(router, switch, state)
