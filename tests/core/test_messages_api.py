"""Anthropic's Messages API served in-process: the ``anthropic`` SDK on the router's transport, as the openai SDK."""

from __future__ import annotations

import anthropic
import httpx2
import pytest

from polyroute import Router


def test_the_anthropic_sdk_in_process_on_a_mock_route() -> None:
    router = Router(
        {
            "models": [
                {
                    "name": "smart",
                    "deployments": [
                        {"provider": "mock", "model": "mock-1", "tool_calls": [{"name": "add", "arguments": {"a": 1}}]}
                    ],
                }
            ]
        }
    )
    client = anthropic.Anthropic(
        api_key="unused", base_url="http://polyroute", http_client=httpx2.Client(transport=router.transport())
    )
    tool = {"name": "add", "input_schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}
    answer = client.messages.create(
        model="smart",
        max_tokens=50,
        messages=[{"role": "user", "content": "1 + 0?"}],
        tools=[tool],  # type: ignore[list-item]
    )
    assert answer.stop_reason == "tool_use"
    assert answer.content[0].type == "tool_use"
    assert answer.content[0].input == {"a": 1}
    with client.messages.stream(model="smart", max_tokens=50, messages=[{"role": "user", "content": "hi"}]) as stream:
        text = "".join(stream.text_stream)
    assert text.startswith("Hello from polyroute's mock provider")
    with pytest.raises(anthropic.NotFoundError, match="nope"):
        client.messages.create(model="nope", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    router.close()
