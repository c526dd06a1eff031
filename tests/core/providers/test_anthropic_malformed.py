"""A malformed Anthropic stream event (a required object missing) is an upstream failure: before the commit the
router fails over; after it the caller's stream ends with the in-band error the SDK raises as ``openai.APIError``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest

from polyroute import Router
from tests.emulators import Emulator, Reply, openai_format
from tests.emulators import anthropic_format as claude
from tests.emulators.server import Handler

Start = Callable[[Handler], Emulator]
HI: Any = [{"role": "user", "content": "Hi"}]


def _broken_stream(after_text: bool) -> Handler:
    """A Claude stream whose content_block_delta lacks its ``delta``: at once, or after a first text delta."""
    good = claude.events(claude.message([claude.text("Hello there")]), pieces=2)
    bad = 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0}\n\n'
    head = good[:4] if after_text else good[:3]  # message_start, ping, content_block_start (+ one text delta)
    assert "content_block_start" in head[2]
    return lambda _request: Reply.sse([*head, bad])


def _router(*deployments: dict[str, Any]) -> Router:
    return Router({"models": [{"name": "m", "deployments": list(deployments)}], "retry": {"backoff": 0}})


def _claude(url: str) -> dict[str, Any]:
    return {"provider": "anthropic", "model": "claude-sonnet-4-5", "api_base": url, "api_key": "test-key-0"}


def test_missing_delta_before_the_commit_fails_over(emulator: Start) -> None:
    broken = emulator(_broken_stream(after_text=False))
    backup = emulator(openai_format.handler("from the backup"))
    other = {"provider": "openai", "model": "gpt-x", "api_base": backup.url + "/v1", "api_key": "test-key-1"}
    client = _router(_claude(broken.url), other).openai_client()
    text = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(model="m", messages=HI, stream=True)
        if chunk.choices
    )
    assert text == "from the backup"
    assert len(broken.requests) == 1


def test_missing_delta_after_the_commit_is_an_in_band_error(emulator: Start) -> None:
    broken = emulator(_broken_stream(after_text=True))
    client = _router(_claude(broken.url)).openai_client()
    received = ""
    with pytest.raises(openai.APIError) as info:
        for chunk in client.chat.completions.create(model="m", messages=HI, stream=True):
            if chunk.choices:
                received += chunk.choices[0].delta.content or ""
    assert (
        received
        == json.loads(claude.events(claude.message([claude.text("Hello there")]), pieces=2)[3].split("data: ")[1])[
            "delta"
        ]["text"]
    )
    assert "could not read" in str(info.value)
