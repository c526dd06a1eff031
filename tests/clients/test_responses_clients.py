"""Clients that speak the Responses API, on polyroute's ``/v1/responses``: openai-agents' default
``OpenAIResponsesModel``, langchain-openai's ``ChatOpenAI(use_responses_api=True)`` and pydantic-ai's
``OpenAIResponsesModel``, each on an OpenAI-format route (pass-through to the Responses emulator) and on routes to
the Claude and Gemini emulators (translated), with reasoning on and off.

These clients resend the whole conversation each turn (reasoning items with their ids and summaries, function calls,
outputs), and neither chains by ``previous_response_id`` by default.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from polyroute import Router
from tests.clients.matrix import (
    ANSWER,
    CITIES,
    EFFORT,
    FINAL_TEXT,
    KEY,
    MODELS,
    PROMPT,
    STRUCTURED_PROMPT,
    Forecast,
    StartEmulator,
    check_forecast,
    check_structured,
    check_tool_loop,
    client_library,
    structured_upstream,
    tool_loop_upstream,
)
from tests.clients.matrix import get_weather as weather_of
from tests.emulators import anthropic_format as claude
from tests.emulators import gemini_format as gemini
from tests.emulators import openai_format as oai


@pytest.fixture(params=["openai", "anthropic", "gemini"])
def route(request: pytest.FixtureRequest) -> str:
    """The route's provider: OpenAI's Responses API (pass-through), or Claude / Gemini (translated)."""
    return request.param


@dataclass
class Route:
    """A one-route router (``smart``) to an emulator, and the check of what the emulator received."""

    router: Router
    check: Callable[[], None]
    effort: str | None
    name: str = "smart"


def _router(provider: str, url: str) -> Router:
    if provider == "openai":
        deployment = {"provider": "openai", "model": "gpt-5-emu", "api_base": url + "/v1", "api_key": KEY}
    else:
        deployment = {"provider": provider, "model": MODELS[provider], "api_base": url, "api_key": KEY}
    return Router({"models": [{"name": "smart", "deployments": [deployment]}], "retry": {"backoff": 0}})


def loop_route(start: StartEmulator, provider: str, thinking: bool) -> Route:
    """get_weather(Paris), get_weather(Rome), then :data:`FINAL_TEXT`."""
    effort = EFFORT if thinking else None
    if provider == "openai":
        emu = oai.ResponsesEmulator(
            *[{"calls": [("get_weather", {"city": c})], "reasoning": f"{c}." if thinking else None} for c in CITIES],
            {"text": FINAL_TEXT},
        )
        url = start(emu).url

        def check() -> None:
            assert len(emu.bodies) == 3
            outputs = [i for i in emu.bodies[-1]["input"] if i.get("type") == "function_call_output"]
            assert [o["output"] for o in outputs] == [weather_of(c) for c in CITIES]

        return Route(_router("openai", url), check, effort)
    up = tool_loop_upstream(start, provider, thinking)
    return Route(up.router, lambda: check_tool_loop(up), effort)


def structured_route(start: StartEmulator, provider: str, thinking: bool, *, tool: bool = False) -> Route:
    """The model answers :data:`ANSWER` (on the OpenAI route: as JSON text, or through ``final_result``)."""
    effort = EFFORT if thinking else None
    if provider == "openai":
        turn = {"calls": [("final_result", ANSWER)]} if tool else {"text": json.dumps(ANSWER)}
        emu = oai.ResponsesEmulator(turn)
        return Route(_router("openai", start(emu).url), lambda: None, effort)
    up = structured_upstream(start, provider, thinking)
    return Route(up.router, lambda: check_structured(up), effort)


HANDOFF_TEXT = "Paris is sunny at 21 C."


def handoff_route(start: StartEmulator, provider: str) -> tuple[Route, Callable[[], list[Any]]]:
    """transfer_to_weather_agent, get_weather(Paris), then :data:`HANDOFF_TEXT`; and the bodies received."""
    transfer, lookup = ("transfer_to_weather_agent", {}), ("get_weather", {"city": "Paris"})
    if provider == "openai":
        emu: Any = oai.ResponsesEmulator({"calls": [transfer]}, {"calls": [lookup]}, {"text": HANDOFF_TEXT})
    elif provider == "anthropic":
        emu = claude.scripted([claude.tool_use(*transfer), claude.tool_use(*lookup), HANDOFF_TEXT])
    else:
        sig = "c2lnLXBhcmlz"
        emu = gemini.GeminiEmulator(
            gemini.response(None, calls=[{"name": transfer[0], "args": {}, "thoughtSignature": sig}]),
            gemini.response(None, calls=[{"name": lookup[0], "args": lookup[1], "thoughtSignature": sig + "x"}]),
            gemini.response(HANDOFF_TEXT),
        )
    url = start(emu).url
    return Route(_router(provider, url), lambda: None, None), lambda: emu.bodies


SCREEN_TEXT = "The screen shows one red pixel."
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
PNG = f"data:image/png;base64,{PNG_B64}"


def screenshot_route(start: StartEmulator, provider: str) -> Route:
    """screenshot(), whose output is an image, then :data:`SCREEN_TEXT`, on a translated route; the check that the
    upstream got the image as an image (Claude: an image block in the tool_result; Gemini 3: inline data inside the
    functionResponse)."""
    call = ("screenshot", {})
    if provider == "anthropic":
        emu: Any = claude.scripted([claude.tool_use(*call), SCREEN_TEXT])
    else:
        sig = "c2lnLXNjcmVlbg=="
        emu = gemini.GeminiEmulator(
            gemini.response(None, calls=[{"name": call[0], "args": {}, "thoughtSignature": sig}]),
            gemini.response(SCREEN_TEXT),
        )
    url = start(emu).url

    def check() -> None:
        last = emu.bodies[-1]
        if provider == "anthropic":
            image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}}
            assert last["messages"][-1]["content"][0]["content"] == [image]
        else:
            response = last["contents"][-1]["parts"][0]["functionResponse"]
            assert response["parts"] == [{"inlineData": {"mimeType": "image/png", "data": PNG_B64}}]

    return Route(_router(provider, url), check, None)


# -- openai-agents -----------------------------------------------------------------------------------------------


class TestOpenAIAgents:
    """``Agent`` with its default model class, ``OpenAIResponsesModel``."""

    @pytest.fixture(autouse=True)
    def _agents(self) -> None:
        self.agents = client_library("agents")
        self.agents.set_tracing_disabled(True)  # tracing would upload spans to OpenAI

    def agent(self, r: Route, **kwargs: Any) -> Any:
        from openai.types.shared import Reasoning

        agents = self.agents
        model = agents.OpenAIResponsesModel(model=r.name, openai_client=r.router.async_openai_client())
        settings = agents.ModelSettings(reasoning=Reasoning(effort=r.effort, summary="auto")) if r.effort else None
        return agents.Agent(
            name="forecaster",
            instructions="Answer briefly.",
            model=model,
            model_settings=settings or agents.ModelSettings(),
            **kwargs,
        )

    def weather_tool(self) -> Any:
        @self.agents.function_tool
        def get_weather(city: str) -> str:
            """Get the current weather for a city."""
            return weather_of(city)

        return get_weather

    async def run(self, streamed: bool, built: Any, prompt: str) -> Any:
        if not streamed:
            return (await self.agents.Runner.run(built, prompt)).final_output
        result = self.agents.Runner.run_streamed(built, prompt)
        async for _event in result.stream_events():
            pass
        return result.final_output

    @pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_streamed"])
    async def test_tool_loop(self, emulator: StartEmulator, route: str, thinking: bool, streamed: bool) -> None:
        r = loop_route(emulator, route, thinking)
        assert await self.run(streamed, self.agent(r, tools=[self.weather_tool()]), PROMPT) == FINAL_TEXT
        r.check()

    @pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_streamed"])
    async def test_output_type(self, emulator: StartEmulator, route: str, thinking: bool, streamed: bool) -> None:
        r = structured_route(emulator, route, thinking)
        check_forecast(await self.run(streamed, self.agent(r, output_type=Forecast), STRUCTURED_PROMPT))
        r.check()

    @pytest.mark.parametrize("route", ["anthropic", "gemini"])  # translated routes (OpenAI's takes the list as is)
    async def test_tool_output_image(self, emulator: StartEmulator, route: str) -> None:
        """A tool returning ``ToolOutputImage`` (a computer-use screenshot): the model gets an image, not its
        base64 as text."""
        agents = self.agents

        @agents.function_tool
        def screenshot() -> Any:
            """Take a screenshot of the screen."""
            return agents.ToolOutputImage(image_url=PNG)

        r = screenshot_route(emulator, route)
        assert await self.run(False, self.agent(r, tools=[screenshot]), "What is on the screen?") == SCREEN_TEXT
        r.check()

    async def test_handoff(self, emulator: StartEmulator, route: str) -> None:
        r, bodies = handoff_route(emulator, route)
        weather = self.agent(r, tools=[self.weather_tool()])
        weather.name = "weather_agent"
        triage = self.agent(r, handoffs=[weather])
        triage.name = "triage"
        result = await self.agents.Runner.run(triage, "What is the weather in Paris?")
        assert result.final_output == HANDOFF_TEXT
        assert result.last_agent.name == "weather_agent"
        assert len(bodies()) == 3


# -- langchain-openai ------------------------------------------------------------------------------------------------


class TestChatOpenAIResponses:
    """``ChatOpenAI(use_responses_api=True)`` on the transport."""

    def model(self, r: Route) -> Any:
        langchain_openai = client_library("langchain_openai")
        return langchain_openai.ChatOpenAI(
            model=r.name,
            api_key="x",
            http_client=r.router.http_client(),
            http_async_client=r.router.http_client(asynchronous=True),
            max_retries=0,
            use_responses_api=True,
            reasoning={"effort": r.effort, "summary": "auto"} if r.effort else None,
        )

    @pytest.mark.parametrize("mode", ["invoke", "stream"])
    def test_tool_loop(self, emulator: StartEmulator, route: str, thinking: bool, mode: str) -> None:
        from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
        from langchain_core.tools import tool

        @tool
        def get_weather(city: str) -> str:
            """Get the current weather for a city."""
            return weather_of(city)

        r = loop_route(emulator, route, thinking)
        model = self.model(r).bind_tools([get_weather])
        messages: list[BaseMessage] = [HumanMessage(PROMPT)]
        for _ in range(4):
            if mode == "invoke":
                ai = model.invoke(messages)
            else:
                chunks = list(model.stream(messages))
                ai = chunks[0]
                for chunk in chunks[1:]:
                    ai += chunk
                ai = AIMessage(content=ai.content, tool_calls=ai.tool_calls, additional_kwargs=ai.additional_kwargs)
            messages.append(ai)
            if not ai.tool_calls:
                break
            messages += [get_weather.invoke(call) for call in ai.tool_calls]
        assert ai.text == FINAL_TEXT
        r.check()

    async def test_structured(self, emulator: StartEmulator, route: str, thinking: bool) -> None:
        r = structured_route(emulator, route, thinking)
        structured = self.model(r).with_structured_output(Forecast, method="json_schema")
        check_forecast(await structured.ainvoke(STRUCTURED_PROMPT))
        r.check()


# -- pydantic-ai -------------------------------------------------------------------------------------------------------


class TestPydanticAIResponses:
    """pydantic-ai's ``OpenAIResponsesModel`` over an ``OpenAIProvider`` on polyroute's client."""

    def agent(self, r: Route, **kwargs: Any) -> Any:
        pydantic_ai = client_library("pydantic_ai")
        from pydantic_ai.models.openai import OpenAIResponsesModel, OpenAIResponsesModelSettings
        from pydantic_ai.providers.openai import OpenAIProvider

        model = OpenAIResponsesModel(r.name, provider=OpenAIProvider(openai_client=r.router.async_openai_client()))
        settings = (
            OpenAIResponsesModelSettings(openai_reasoning_effort=r.effort, openai_reasoning_summary="auto")  # type: ignore[typeddict-item]
            if r.effort
            else None
        )
        return pydantic_ai.Agent(model, instructions="Answer briefly.", model_settings=settings, **kwargs)

    @pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_stream"])
    async def test_tool_loop(self, emulator: StartEmulator, route: str, thinking: bool, streamed: bool) -> None:
        r = loop_route(emulator, route, thinking)
        built = self.agent(r, tools=[weather_of])
        if streamed:
            async with built.run_stream(PROMPT) as result:
                output = await result.get_output()
        else:
            output = (await built.run(PROMPT)).output
        assert output == FINAL_TEXT
        r.check()

    @pytest.mark.parametrize("output", ["tool", "native"])
    async def test_output(self, emulator: StartEmulator, route: str, thinking: bool, output: str) -> None:
        pydantic_ai = client_library("pydantic_ai")
        r = structured_route(emulator, route, thinking, tool=output == "tool")
        kind = pydantic_ai.NativeOutput(Forecast) if output == "native" else Forecast
        check_forecast((await self.agent(r, output_type=kind).run(STRUCTURED_PROMPT)).output)
        r.check()
