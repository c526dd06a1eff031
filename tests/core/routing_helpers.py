"""Shared pieces of the routing tests: routers over loopback emulators, and one call helper for sync and async."""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import openai

from polyroute import Router
from tests.emulators import Emulator, Reply, Request
from tests.emulators.openai_format import chunks, completion

KEY = "sk-routing-secret-0123456789abcdef"
MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "hi"}]
MODES = ["sync", "async"]


def dep(emu: Emulator | str, name: str, **extra: Any) -> dict[str, Any]:
    """An OpenAI deployment on an emulator (or a base URL), named ``name`` in headers and logs."""
    base = emu if isinstance(emu, str) else emu.url + "/v1"
    return {"provider": "openai", "model": name, "id": name, "api_base": base, "api_key": KEY, **extra}


def make_router(*deployments: dict[str, Any], retry: dict[str, Any] | None = None, **route: Any) -> Router:
    """A router with one model ``m`` over ``deployments`` (extra route fields: strategy, fallbacks, …)."""
    extra_models = route.pop("extra_models", [])
    config: dict[str, Any] = {"models": [{"name": "m", "deployments": list(deployments), **route}, *extra_models]}
    if retry is not None:
        config["retry"] = retry
    return Router(config)


def ok(text: str = "ok") -> Callable[[Request], Reply]:
    """A handler answering every call with ``text`` (streamed when asked)."""

    def handle(request: Request) -> Reply:
        body = json.loads(request.body)
        if body.get("stream"):
            return Reply.sse(chunks(list(text), model=body["model"]))
        return Reply(body=completion(text, model=body["model"]))

    return handle


def status(code: int, message: str = "upstream says no", **headers: str) -> Callable[[Request], Reply]:
    """A handler answering every call with an OpenAI error of status ``code``."""
    return lambda request: Reply(
        status=code, body={"error": {"message": message, "type": "x", "code": None}}, headers=dict(headers)
    )


def sequence(*replies: Callable[[Request], Reply]) -> Callable[[Request], Reply]:
    """A handler answering the n-th call with the n-th handler (the last one repeats)."""
    lock = threading.Lock()
    count = [0]

    def handle(request: Request) -> Reply:
        with lock:
            index = min(count[0], len(replies) - 1)
            count[0] += 1
        return replies[index](request)

    return handle


def call(mode: str, router: Router, *, client: dict[str, Any] | None = None, **kwargs: Any) -> tuple[Any, Any]:
    """One chat completion through the openai SDK, sync or async: ``(completion, response headers)``."""
    kwargs.setdefault("model", "m")
    kwargs.setdefault("messages", MESSAGES)
    options = client or {}
    if mode == "sync":
        raw = router.openai_client(**options).chat.completions.with_raw_response.create(**kwargs)
        return raw.parse(), raw.headers

    async def go() -> tuple[Any, Any]:
        try:
            raw = await router.async_openai_client(**options).chat.completions.with_raw_response.create(**kwargs)
            return raw.parse(), raw.headers
        finally:
            await router.aclose()

    return asyncio.run(go())


def stream_text(mode: str, router: Router, **kwargs: Any) -> tuple[str, Any]:
    """A streamed call through the SDK: ``(text received, headers)``; raises what the SDK raises, text so far in
    the exception's ``partial`` attribute."""
    kwargs.setdefault("model", "m")
    kwargs.setdefault("messages", MESSAGES)
    kwargs["stream"] = True
    received: list[str] = []

    def take(chunk: Any) -> None:
        if chunk.choices and chunk.choices[0].delta.content:
            received.append(chunk.choices[0].delta.content)

    try:
        if mode == "sync":
            raw = router.openai_client().chat.completions.with_raw_response.create(**kwargs)
            for chunk in raw.parse():
                take(chunk)
            return "".join(received), raw.headers

        async def go() -> Any:
            try:
                raw = await router.async_openai_client().chat.completions.with_raw_response.create(**kwargs)
                parsed = raw.parse()
                stream = await parsed if inspect.isawaitable(parsed) else parsed
                async with stream:
                    async for chunk in stream:
                        take(chunk)
                return raw.headers
            finally:
                await router.aclose()

        headers = asyncio.run(go())
        return "".join(received), headers
    except openai.APIError as exc:
        exc.partial = "".join(received)  # type: ignore[attr-defined]
        raise


def counted_chunks(pieces: int, sent: list[int]) -> Iterator[str]:
    """SSE chunks that record how many the emulator managed to send (to see upstream closed early)."""
    for i, event in enumerate(chunks([f"w{i}" for i in range(pieces)])):
        sent.append(i)
        yield event
