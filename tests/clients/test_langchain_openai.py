"""langchain-openai's ``ChatOpenAI`` pointed at polyroute's transport, on Claude and Gemini routes.

``ChatOpenAI`` resends an assistant turn as ``{role, content, tool_calls}``: thinking blocks do not survive it.
``with_structured_output`` sends a strict ``response_format`` (``json_schema``) or forces a tool
(``function_calling``).
"""

from __future__ import annotations

from typing import Any

import pytest

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
    structured_upstream,
    tool_loop_upstream,
)
from tests.clients.matrix import get_weather as weather_of

langchain_openai = client_library("langchain_openai")

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage  # noqa: E402
from langchain_core.tools import tool  # noqa: E402


@tool
def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    return weather_of(city)


def chat_model(up: Upstream) -> Any:
    """``ChatOpenAI`` as FRAMEWORKS.md §5 says to point it at the transport."""
    return langchain_openai.ChatOpenAI(
        model=up.route,
        api_key="x",
        http_client=up.router.http_client(),
        http_async_client=up.router.http_client(asynchronous=True),
        max_retries=0,
        use_responses_api=False,
        stream_usage=True,
        reasoning_effort=up.effort,
    )


MODES = ["invoke", "stream"]
METHODS = ["json_schema", "function_calling"]
LANGCHAIN_DUMPS_PARSED_EVENTS = pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
"""langchain-openai ``model_dump()``s the SDK's json_schema stream events, whose ``parsed`` field is typed None: a
warning from the two libraries together, whatever the server (langchain_openai/chat_models/base.py, ``_stream``)."""


def ask(model: Any, messages: list[BaseMessage], mode: str) -> AIMessage:
    if mode == "invoke":
        return model.invoke(messages)
    chunks = list(model.stream(messages))
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert total.usage_metadata and total.usage_metadata["input_tokens"] == 10, "stream_usage: no usage chunk"
    return AIMessage(content=total.content, tool_calls=total.tool_calls, additional_kwargs=total.additional_kwargs)


async def aask(model: Any, messages: list[BaseMessage], mode: str) -> AIMessage:
    if mode == "invoke":
        return await model.ainvoke(messages)
    chunks = [chunk async for chunk in model.astream(messages)]
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert total.usage_metadata and total.usage_metadata["input_tokens"] == 10, "stream_usage: no usage chunk"
    return AIMessage(content=total.content, tool_calls=total.tool_calls, additional_kwargs=total.additional_kwargs)


@pytest.mark.parametrize("mode", MODES)
def test_tool_loop_sync(emulator: StartEmulator, provider: str, thinking: bool, mode: str) -> None:
    up = tool_loop_upstream(emulator, provider, thinking)
    model = chat_model(up).bind_tools([get_weather])
    messages: list[BaseMessage] = [HumanMessage(PROMPT)]
    for _ in range(4):
        ai = ask(model, messages, mode)
        messages.append(ai)
        if not ai.tool_calls:
            break
        messages += [get_weather.invoke(call) for call in ai.tool_calls]
    assert ai.text == FINAL_TEXT
    check_tool_loop(up)


@pytest.mark.parametrize("mode", MODES)
async def test_tool_loop_async(emulator: StartEmulator, provider: str, thinking: bool, mode: str) -> None:
    up = tool_loop_upstream(emulator, provider, thinking)
    model = chat_model(up).bind_tools([get_weather])
    messages: list[BaseMessage] = [HumanMessage(PROMPT)]
    for _ in range(4):
        ai = await aask(model, messages, mode)
        messages.append(ai)
        if not ai.tool_calls:
            break
        messages += [await get_weather.ainvoke(call) for call in ai.tool_calls]
    assert ai.text == FINAL_TEXT
    check_tool_loop(up)


@LANGCHAIN_DUMPS_PARSED_EVENTS
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
def test_structured_sync(emulator: StartEmulator, provider: str, thinking: bool, method: str, mode: str) -> None:
    up = structured_upstream(emulator, provider, thinking)
    structured = chat_model(up).with_structured_output(Forecast, method=method)
    if mode == "invoke":
        result = structured.invoke(STRUCTURED_PROMPT)
    else:
        result = list(structured.stream(STRUCTURED_PROMPT))[-1]
    check_forecast(result)
    check_structured(up)


@LANGCHAIN_DUMPS_PARSED_EVENTS
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
async def test_structured_async(emulator: StartEmulator, provider: str, thinking: bool, method: str, mode: str) -> None:
    up = structured_upstream(emulator, provider, thinking)
    structured = chat_model(up).with_structured_output(Forecast, method=method)
    if mode == "invoke":
        result = await structured.ainvoke(STRUCTURED_PROMPT)
    else:
        result = [chunk async for chunk in structured.astream(STRUCTURED_PROMPT)][-1]
    check_forecast(result)
    check_structured(up)
