"""ChatPolyroute end to end: real routers, loopback provider emulators, no patching.

Agent loops run through the Anthropic and Gemini emulators (which reject replayed thinking blocks and function calls
without the signatures they issued), failover through a failing deployment, and the rest through the scripted
OpenAI-format upstream.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import openai
import pytest
from langchain_core.load import dumpd, dumps, load
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from langchain_polyroute import ChatPolyroute
from polyroute import Router
from tests.emulators import Emulator
from tests.emulators import anthropic_format as claude
from tests.emulators import gemini_format as gemini
from tests.emulators.openai_format import handler as openai_handler
from tests.emulators.server import Handler
from tests.langchain import scripted

Start = Callable[[Handler], Emulator]
SECRET = "sk-do-not-leak-4f2b9c"


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"It is sunny in {city}."


@tool
def get_time(city: str) -> str:
    """The local time in a city."""
    return f"It is noon in {city}."


TOOLS = {"get_weather": get_weather, "get_time": get_time}


def openai_route(name: str, emu: Emulator, **deployment: Any) -> dict[str, Any]:
    return {
        "name": name,
        "deployments": [
            {"provider": "openai", "model": name, "api_base": f"{emu.url}/v1", "api_key": SECRET, **deployment}
        ],
    }


def ask(model: Any, messages: Sequence[BaseMessage] | str, stream: bool) -> AIMessage:
    if not stream:
        return model.invoke(messages)
    full: AIMessageChunk | None = None
    for chunk in model.stream(messages):
        full = chunk if full is None else full + chunk
    assert isinstance(full, AIMessageChunk)
    return full


async def aask(model: Any, messages: Sequence[BaseMessage] | str, stream: bool) -> AIMessage:
    if not stream:
        return await model.ainvoke(messages)
    full: AIMessageChunk | None = None
    async for chunk in model.astream(messages):
        full = chunk if full is None else full + chunk
    assert isinstance(full, AIMessageChunk)
    return full


def run_tools(ai: AIMessage) -> list[BaseMessage]:
    return [TOOLS[call["name"]].invoke(call) for call in ai.tool_calls]


# -- agent loops through native-format emulators ---------------------------------------------------------------


def claude_script() -> claude.Scripted:
    return claude.scripted(
        [
            claude.tool_use("get_weather", {"city": "Paris"}, thinking="First the weather."),
            claude.tool_use("get_time", {"city": "Paris"}, thinking="Now the time.", text="Checking the time."),
            claude.thinking("Both known.", "Sunny, and it is noon in Paris."),
        ]
    )


def claude_model(emu: Emulator) -> ChatPolyroute:
    deployment = {"provider": "anthropic", "model": "claude-sonnet-4-5", "api_base": emu.url, "api_key": SECRET}
    return ChatPolyroute(model="claude", config={"models": [{"name": "claude", "deployments": [deployment]}]})


def check_claude_loop(script: claude.Scripted, messages: list[BaseMessage]) -> None:
    first, second, final = messages[1], messages[3], messages[5]
    assert isinstance(first, AIMessage) and isinstance(second, AIMessage) and isinstance(final, AIMessage)
    assert [c["name"] for c in first.tool_calls] == ["get_weather"]
    assert [c["name"] for c in second.tool_calls] == ["get_time"]
    assert first.additional_kwargs["reasoning_content"] == "First the weather."
    assert any(b["type"] == "reasoning" for b in first.content_blocks)
    assert final.text == "Sunny, and it is noon in Paris."
    assert final.response_metadata["deployment"] == "anthropic/claude-sonnet-4-5"
    assert final.usage_metadata is not None and final.usage_metadata["input_tokens"] > 0
    # Each later request replays the earlier thinking blocks with the signatures the emulator issued.
    assert len(script.bodies) == 3
    replayed = [b for m in script.bodies[2]["messages"] if m["role"] == "assistant" for b in m["content"]]
    signatures = [b["signature"] for b in replayed if b["type"] == "thinking"]
    assert len(signatures) == 2 and set(signatures) <= script.signatures


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_agent_loop_through_anthropic(emulator: Start, stream: bool) -> None:
    script = claude_script()
    model = claude_model(emulator(script)).bind_tools([get_weather, get_time])
    messages: list[BaseMessage] = [HumanMessage("Weather and time in Paris?")]
    while True:
        ai = ask(model, messages, stream)
        messages.append(ai)
        if not ai.tool_calls:
            break
        messages += run_tools(ai)
    check_claude_loop(script, messages)


@pytest.mark.parametrize("stream", [False, True], ids=["ainvoke", "astream"])
async def test_agent_loop_through_anthropic_async(emulator: Start, stream: bool) -> None:
    script = claude_script()
    model = claude_model(emulator(script)).bind_tools([get_weather, get_time])
    messages: list[BaseMessage] = [HumanMessage("Weather and time in Paris?")]
    while True:
        ai = await aask(model, messages, stream)
        messages.append(ai)
        if not ai.tool_calls:
            break
        messages += [await TOOLS[call["name"]].ainvoke(call) for call in ai.tool_calls]
    check_claude_loop(script, messages)


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_gemini_thought_signatures_survive_the_loop(emulator: Start, stream: bool) -> None:
    call = {"name": "get_weather", "args": {"city": "Rome"}, "thoughtSignature": "c2lnLUE="}
    upstream = gemini.GeminiEmulator(
        gemini.response(None, calls=[call]),
        gemini.response("Sunny in Rome.", text_signature="dGV4dC1C"),
        gemini.response("You are welcome."),
    )
    emu = emulator(upstream)
    deployment = {"provider": "gemini", "model": "gemini-3-pro-preview", "api_base": emu.url, "api_key": SECRET}
    model = ChatPolyroute(model="g", config={"models": [{"name": "g", "deployments": [deployment]}]})
    tools_model = model.bind_tools([get_weather])
    messages: list[BaseMessage] = [HumanMessage("Weather in Rome?")]
    ai = ask(tools_model, messages, stream)
    assert ai.tool_calls[0]["args"] == {"city": "Rome"}
    assert ai.additional_kwargs["tool_calls"][0]["provider_specific_fields"] == {"thought_signature": "c2lnLUE="}
    messages += [ai, *run_tools(ai)]
    answer = ask(tools_model, messages, stream)
    assert answer.text == "Sunny in Rome."
    assert answer.additional_kwargs["provider_specific_fields"] == {"thought_signature": "dGV4dC1C"}
    messages += [answer, HumanMessage("Thanks!")]
    assert ask(tools_model, messages, stream).text == "You are welcome."
    replayed = [p for c in upstream.bodies[2]["contents"] if c["role"] == "model" for p in c["parts"]]
    assert [p.get("thoughtSignature") for p in replayed if "functionCall" in p] == ["c2lnLUE="]
    assert [p.get("thoughtSignature") for p in replayed if "text" in p] == ["dGV4dC1C"]


# -- failover -------------------------------------------------------------------------------------------------


def failover_model(emulator: Start) -> ChatPolyroute:
    down = emulator(claude.scripted([claude.overloaded()], repeat_last=True))
    up = emulator(scripted.handler())
    deployments = [
        {
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "api_base": down.url,
            "api_key": SECRET,
            "id": "claude",
        },
        {"provider": "openai", "model": "gpt-emu", "api_base": f"{up.url}/v1", "api_key": SECRET, "id": "backup"},
    ]
    config = {"models": [{"name": "smart", "deployments": deployments}], "retry": {"backoff": 0}}
    return ChatPolyroute(model="smart", config=config)


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_failover_is_visible_in_response_metadata(emulator: Start, stream: bool) -> None:
    ai = ask(failover_model(emulator), "Hello", stream)
    assert ai.text.startswith("Hello! You said: Hello")
    assert ai.response_metadata["deployment"] == "backup"
    assert ai.response_metadata["attempts"] == 2
    assert ai.response_metadata["model_name"] == "gpt-emu"


@pytest.mark.parametrize("stream", [False, True], ids=["ainvoke", "astream"])
async def test_failover_is_visible_in_response_metadata_async(emulator: Start, stream: bool) -> None:
    ai = await aask(failover_model(emulator), "Hello", stream)
    assert ai.response_metadata["deployment"] == "backup"
    assert ai.response_metadata["attempts"] == 2


# -- reasoning, usage, round-trip fields ---------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_reasoning_usage_and_round_trip(emulator: Start, stream: bool) -> None:
    emu = emulator(scripted.handler())
    # DeepSeek wants reasoning_content back within a tool loop, so polyroute forwards it: the emulator sees it.
    route = {"name": "ds", "deployments": [{"provider": "deepseek", "model": "deepseek-reasoner", "api_base": emu.url}]}
    route["deployments"][0]["api_key"] = SECRET
    model = ChatPolyroute(model="ds", config={"models": [route]}, reasoning_effort="high").bind_tools([get_weather])
    messages: list[BaseMessage] = [HumanMessage("Weather in 'Oslo'?")]
    ai = ask(model, messages, stream)
    assert ai.additional_kwargs["reasoning_content"] == "Let me think about 'Weather in 'Oslo'?'."
    assert ai.content_blocks[0] == {"type": "reasoning", "reasoning": ai.additional_kwargs["reasoning_content"]}
    assert ai.tool_calls[0]["args"] == {"city": "Oslo"}
    usage = ai.usage_metadata
    assert usage is not None
    assert usage["output_token_details"]["reasoning"] > 0
    assert usage["input_token_details"]["cache_read"] == usage["input_tokens"] // 2
    assert ai.response_metadata["finish_reason"] == "tool_calls"
    assert ai.response_metadata["cost"] > 0  # the catalog prices deepseek-reasoner
    messages += [ai, *run_tools(ai)]
    ask(model, messages, stream)
    sent = emu.requests[-1].json()["messages"][1]
    assert sent["reasoning_content"] == ai.additional_kwargs["reasoning_content"]


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_extra_response_fields_are_kept_and_sent_back(emulator: Start, stream: bool) -> None:
    """Fields outside OpenAI's schema (``thinking_blocks``, tool-call ``provider_specific_fields``) reach
    ``additional_kwargs`` and the next request the openai SDK sends to the transport."""
    emu = emulator(scripted.handler(thinking=True, signatures=True))
    model = ChatPolyroute(model="gpt-emu", config={"models": [openai_route("gpt-emu", emu)]}).bind_tools([get_weather])
    ai = ask(model, "Weather in 'Lima'?", stream)
    blocks = ai.additional_kwargs["thinking_blocks"]
    assert [b["type"] for b in blocks] == ["thinking"] and blocks[0]["signature"].startswith("sig-")
    call = ai.additional_kwargs["tool_calls"][0]
    assert call["provider_specific_fields"] == {"thought_signature": f"sig-{ai.tool_calls[0]['id']}"}
    history = [HumanMessage("Weather in 'Lima'?"), ai, *run_tools(ai)]
    request = ChatPolyroute(model="gpt-emu", config={"models": [openai_route("gpt-emu", emu)]})._request(
        history, None, stream
    )
    assistant = request["messages"][1]
    assert assistant["thinking_blocks"] == blocks
    assert assistant["tool_calls"][0]["provider_specific_fields"] == call["provider_specific_fields"]


def test_v1_output_round_trips(emulator: Start) -> None:
    emu = emulator(scripted.handler())
    route = openai_route("gpt-emu", emu)
    model = ChatPolyroute(model="gpt-emu", config={"models": [route]}, output_version="v1", reasoning_effort="low")
    ai = model.bind_tools([get_weather]).invoke("Weather in 'Quito'?")
    assert [b["type"] for b in ai.content] == ["reasoning", "tool_call"]  # type: ignore[index]
    final = model.bind_tools([get_weather]).invoke([HumanMessage("Weather in 'Quito'?"), ai, *run_tools(ai)])
    assert final.text == "The tool said: It is sunny in Quito."
    assistant = emu.requests[-1].json()["messages"][1]
    assert assistant["content"] is None and assistant["tool_calls"][0]["function"]["name"] == "get_weather"


# -- tools and structured output -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("any", "required"),
        (True, {"type": "function", "function": {"name": "get_weather"}}),
        ("get_weather", {"type": "function", "function": {"name": "get_weather"}}),
        ("auto", "auto"),
    ],
)
def test_tool_choice_on_the_wire(emulator: Start, choice: Any, sent: Any) -> None:
    emu = emulator(scripted.handler())
    model = ChatPolyroute(model="gpt-emu", config={"models": [openai_route("gpt-emu", emu)]})
    model.bind_tools([get_weather], tool_choice=choice).invoke("Weather in 'Bern'?")
    body = emu.requests[-1].json()
    assert body["tool_choice"] == sent
    assert body["tools"][0]["function"]["name"] == "get_weather"


class Person(BaseModel):
    """A person."""

    name: str
    age: int


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_structured_output(emulator: Start, method: Any, stream: bool) -> None:
    emu = emulator(scripted.handler())
    model = ChatPolyroute(model="gpt-emu", config={"models": [openai_route("gpt-emu", emu)]})
    structured = model.with_structured_output(Person, method=method)
    prompt = "'Ada' is 36 years old"
    result = list(structured.stream(prompt))[-1] if stream else structured.invoke(prompt)
    assert result == Person(name="Ada", age=36)
    body = emu.requests[-1].json()
    if method == "function_calling":
        assert body["tool_choice"] == {"type": "function", "function": {"name": "Person"}}
        assert body["tools"][0]["function"]["parameters"]["required"] == ["name", "age"]
    else:
        assert body["response_format"]["json_schema"]["name"] == "Person"
        assert body["response_format"]["json_schema"]["schema"]["required"] == ["name", "age"]


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_json_mode(emulator: Start, stream: bool) -> None:
    emu = emulator(scripted.handler())
    model = ChatPolyroute(model="gpt-emu", config={"models": [openai_route("gpt-emu", emu)]})
    structured = model.with_structured_output(method="json_mode")
    prompt = "A joke as JSON with keys 'setup' and 'punchline'."
    result = list(structured.stream(prompt))[-1] if stream else structured.invoke(prompt)
    assert set(result) == {"setup", "punchline"}
    assert emu.requests[-1].json()["response_format"] == {"type": "json_object"}


async def test_structured_output_include_raw_async(emulator: Start) -> None:
    emu = emulator(scripted.handler())
    model = ChatPolyroute(model="gpt-emu", config={"models": [openai_route("gpt-emu", emu)]})
    result = await model.with_structured_output(Person, method="json_schema", include_raw=True).ainvoke(
        "'Ada' is 36 years old"
    )
    assert result["parsed"] == Person(name="Ada", age=36)
    assert result["parsing_error"] is None
    assert isinstance(result["raw"], AIMessage)
    broken = await model.with_structured_output(Person, method="json_mode", include_raw=True).ainvoke("no keys")
    assert broken["parsed"] is None and broken["parsing_error"] is not None


# -- construction, identity, secrets ------------------------------------------------------------------------------


def test_router_config_path_and_environment(emulator: Start, tmp_path: Path) -> None:
    emu = emulator(scripted.handler())
    config = {"models": [openai_route("gpt-emu", emu)]}
    router = Router(config)
    shared = [ChatPolyroute(model="gpt-emu", router=router) for _ in range(2)]
    assert shared[0]._get_router() is shared[1]._get_router() is router
    path = tmp_path / "polyroute.json"
    path.write_text(json.dumps(config))
    from_file = ChatPolyroute(model_name="gpt-emu", config=path)
    assert from_file.invoke("hi").response_metadata["deployment"] == "openai/gpt-emu"
    from_env = ChatPolyroute(model="mock/mock-1")  # Router() routes "provider/model" names directly
    assert from_env.invoke("hi").response_metadata["model_name"] == "mock-1"


def test_secrets_stay_out_of_repr_serialization_and_errors(emulator: Start) -> None:
    emu = emulator(lambda request: claude.error(401, "authentication_error", "invalid x-api-key"))
    deployment = {"provider": "anthropic", "model": "claude-sonnet-4-5", "api_base": emu.url, "api_key": SECRET}
    model = ChatPolyroute(
        model="c", config={"models": [{"name": "c", "deployments": [deployment]}]}, api_key="pr-user-key-91"
    )
    surfaces = [repr(model), str(model), json.dumps(dumpd(model)), dumps(model), model.model_dump_json()]
    with pytest.raises(openai.AuthenticationError) as caught:
        model.invoke("hi")
    surfaces += [str(caught.value), repr(caught.value), json.dumps(caught.value.body)]
    for text in surfaces:
        assert SECRET not in text and "pr-user-key-91" not in text
    assert len(emu.requests) == 1  # max_retries=0: the SDK does not rerun polyroute's failover


@pytest.mark.filterwarnings("ignore:The function `load` is in beta")
def test_serialization_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "polyroute.json"
    path.write_text(json.dumps({"models": [{"name": "m", "deployments": [{"provider": "mock", "model": "mock-1"}]}]}))
    model = ChatPolyroute(model="m", config=path, temperature=0.5, api_key="pr-user-key-91")
    data = dumpd(model)
    assert data["kwargs"]["config"] == str(path)
    assert data["kwargs"]["api_key"] == {"lc": 1, "type": "secret", "id": ["POLYROUTE_API_KEY"]}
    monkeypatch.setenv("POLYROUTE_API_KEY", "pr-from-env")
    loaded = load(
        data, allowed_objects=[ChatPolyroute], valid_namespaces=["langchain_polyroute"], secrets_from_env=True
    )
    assert isinstance(loaded, ChatPolyroute)
    assert (loaded.model, loaded.temperature, loaded.config) == ("m", 0.5, str(path))
    assert loaded.api_key is not None and loaded.api_key.get_secret_value() == "pr-from-env"
    assert loaded.invoke("hi").response_metadata["deployment"] == "mock/mock-1"


def test_profile_and_tracing_params() -> None:
    deployment = {
        "provider": "mock",
        "model": "mock-1",
        "capabilities": {"context_window": 32000, "max_output_tokens": 4000, "vision": False},
    }
    model = ChatPolyroute(
        model="m", config={"models": [{"name": "m", "deployments": [deployment]}]}, temperature=0.2, max_tokens=50
    )
    assert model.profile is not None
    assert model.profile["max_input_tokens"] == 32000
    assert model.profile["max_output_tokens"] == 4000
    assert model.profile["image_inputs"] is False
    assert model.profile["tool_calling"] is True
    params = model._get_ls_params(stop=["x"], model="other")
    assert params == {
        "ls_provider": "polyroute",
        "ls_model_name": "other",
        "ls_model_type": "chat",
        "ls_temperature": 0.2,
        "ls_max_tokens": 50,
        "ls_stop": ["x"],
    }


def test_unknown_model_is_an_openai_not_found_error() -> None:
    model = ChatPolyroute(model="nope", config={"models": [], "direct_routes": False})
    with pytest.raises(openai.NotFoundError, match="nope"):
        model.invoke("hi")


def test_model_tags_attribute_its_calls_in_usage(emulator: Start) -> None:
    emu = emulator(openai_handler("tagged"))
    model = ChatPolyroute(model="m", config={"models": [openai_route("m", emu)]}, tags=["research-agent"])
    assert model.invoke("Hello").content == "tagged"
    router = model._get_router()
    assert router.usage()["tag"]["research-agent"]["calls"] == 1
