"""The openai SDK's own helpers on Claude and Gemini routes: ``chat.completions.parse`` and ``.stream``.

Both helpers turn a pydantic model into a strict schema (``response_format`` json_schema, and ``strict`` tools via
``openai.pydantic_function_tool``). The tool loop resends each assistant turn as ``{role, content, tool_calls}``, as
hand-written agent loops do: no thinking blocks, no provider fields.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from tests.clients.matrix import (
    FINAL_TEXT,
    PROMPT,
    STRUCTURED_PROMPT,
    Forecast,
    StartEmulator,
    Upstream,
    check_forecast,
    check_structured,
    check_tool_loop,
    client_library,
    get_weather,
    structured_upstream,
    tool_loop_upstream,
)

openai = client_library("openai")


class GetWeather(BaseModel):
    """Get the current weather for a city."""

    city: str


HELPERS = ["parse", "stream"]


def options(up: Upstream) -> dict[str, Any]:
    return {"model": up.route, **({"reasoning_effort": up.effort} if up.effort else {})}


USAGE: dict[str, Any] = {"stream_options": {"include_usage": True}}


def checked_usage(completion: Any) -> Any:
    """A streamed completion that asked for usage carries the upstream's token counts."""
    assert completion.usage is not None and completion.usage.prompt_tokens == 10, completion.usage
    return completion


def replay(message: Any) -> list[dict[str, Any]]:
    """The assistant turn as a hand-written loop resends it, then each tool's result."""
    calls = message.tool_calls or []
    turn = {
        "role": "assistant",
        "content": message.content,
        "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
            for c in calls
        ],
    }
    results = [
        {"role": "tool", "tool_call_id": c.id, "content": get_weather(c.function.parsed_arguments.city)} for c in calls
    ]
    return [turn, *results]


@pytest.mark.parametrize("helper", HELPERS)
def test_tool_loop_sync(emulator: StartEmulator, provider: str, thinking: bool, helper: str) -> None:
    up = tool_loop_upstream(emulator, provider, thinking)
    client = up.router.openai_client()
    tools = [openai.pydantic_function_tool(GetWeather, name="get_weather")]
    messages: list[Any] = [{"role": "user", "content": PROMPT}]
    for _ in range(4):
        if helper == "stream":
            with client.chat.completions.stream(messages=messages, tools=tools, **options(up), **USAGE) as stream:
                for _event in stream:
                    pass
                message = checked_usage(stream.get_final_completion()).choices[0].message
        else:
            message = client.chat.completions.parse(messages=messages, tools=tools, **options(up)).choices[0].message
        if not message.tool_calls:
            break
        messages += replay(message)
    assert message.content == FINAL_TEXT
    check_tool_loop(up)


@pytest.mark.parametrize("helper", HELPERS)
async def test_tool_loop_async(emulator: StartEmulator, provider: str, thinking: bool, helper: str) -> None:
    up = tool_loop_upstream(emulator, provider, thinking)
    client = up.router.async_openai_client()
    tools = [openai.pydantic_function_tool(GetWeather, name="get_weather")]
    messages: list[Any] = [{"role": "user", "content": PROMPT}]
    for _ in range(4):
        if helper == "stream":
            async with client.chat.completions.stream(messages=messages, tools=tools, **options(up), **USAGE) as stream:
                async for _event in stream:
                    pass
                message = checked_usage(await stream.get_final_completion()).choices[0].message
        else:
            completion = await client.chat.completions.parse(messages=messages, tools=tools, **options(up))
            message = completion.choices[0].message
        if not message.tool_calls:
            break
        messages += replay(message)
    assert message.content == FINAL_TEXT
    check_tool_loop(up)


@pytest.mark.parametrize("helper", HELPERS)
def test_structured_sync(emulator: StartEmulator, provider: str, thinking: bool, helper: str) -> None:
    up = structured_upstream(emulator, provider, thinking)
    client = up.router.openai_client()
    messages = [{"role": "user", "content": STRUCTURED_PROMPT}]
    if helper == "stream":
        with client.chat.completions.stream(messages=messages, response_format=Forecast, **options(up)) as stream:
            for _event in stream:
                pass
            message = stream.get_final_completion().choices[0].message
    else:
        message = client.chat.completions.parse(messages=messages, response_format=Forecast, **options(up))
        message = message.choices[0].message
    check_forecast(message.parsed)
    check_structured(up)


@pytest.mark.parametrize("helper", HELPERS)
async def test_structured_async(emulator: StartEmulator, provider: str, thinking: bool, helper: str) -> None:
    up = structured_upstream(emulator, provider, thinking)
    client = up.router.async_openai_client()
    messages = [{"role": "user", "content": STRUCTURED_PROMPT}]
    if helper == "stream":
        async with client.chat.completions.stream(messages=messages, response_format=Forecast, **options(up)) as stream:
            async for _event in stream:
                pass
            message = (await stream.get_final_completion()).choices[0].message
    else:
        completion = await client.chat.completions.parse(messages=messages, response_format=Forecast, **options(up))
        message = completion.choices[0].message
    check_forecast(message.parsed)
    check_structured(up)
