"""config_list entries through ag2 0.x's ``OpenAIWrapper``, ``LLMConfig`` and a ``ConversableAgent`` exchange.

ag2 0.x pins openai 2.x, which the main environment cannot hold: these tests run in their own environment
(``tests/autogen_ag2/run.sh``) and are skipped elsewhere.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

autogen = pytest.importorskip(
    "autogen.oai", reason="needs ag2 0.x (its own environment: tests/autogen_ag2/run.sh)", exc_type=ImportError
)

from autogen import ConversableAgent, LLMConfig, OpenAIWrapper  # noqa: E402

from polyroute import Router  # noqa: E402
from polyroute_autogen import PolyrouteModelClient, config_list, model_client_config_list  # noqa: E402
from tests.autogen import scripted  # noqa: E402
from tests.autogen.conftest import KEY, router_config  # noqa: E402
from tests.emulators import Emulator  # noqa: E402

pytestmark = pytest.mark.usefixtures("provider_key")

HI = [{"role": "user", "content": "Say hello."}]


def mock_router(**deployment: Any) -> Router:
    return Router(
        {"models": [{"name": "smart", "deployments": [{"provider": "mock", "model": "mock-1", **deployment}]}]}
    )


def get_weather(city: str) -> str:
    """The weather forecast for a city."""
    return f"{city}: sunny, 21 C"


def test_openai_wrapper_create() -> None:
    wrapper = OpenAIWrapper(config_list=config_list(mock_router(response="hello via ag2"), ["smart"]))
    response = wrapper.create(messages=HI)
    assert wrapper.extract_text_or_completion_object(response) == ["hello via ag2"]
    assert response.usage.total_tokens > 0


def test_entries_attribute_calls_in_usage() -> None:
    router = mock_router()
    entries = config_list(router, ["smart"], tags=["ag2"], user="ops")
    OpenAIWrapper(config_list=entries, cache_seed=None).create(messages=HI)
    assistant = ConversableAgent("assistant", llm_config=LLMConfig(*entries, cache_seed=None), human_input_mode="NEVER")
    assert assistant.generate_reply(messages=HI)
    usage = router.usage()
    assert usage["tag"]["ag2"]["calls"] == usage["user"]["ops"]["calls"] == 2


def test_entries_survive_deep_copies() -> None:
    entries = config_list(mock_router(), ["smart"])
    copied = copy.deepcopy({"config_list": entries})
    assert copied["config_list"][0]["http_client"] is entries[0]["http_client"]
    assert copied["config_list"][0] is not entries[0]


@pytest.mark.parametrize("upstream", ["openai", "anthropic"])
def test_conversable_agent_tool_exchange(emulator: Callable[..., Emulator], upstream: str) -> None:
    if upstream == "openai":
        emu = emulator(scripted.openai_handler)
        router = Router(router_config(emu))
    else:
        emu = emulator(scripted.anthropic_handler())
        router = Router(router_config(emu, "anthropic", "claude-sonnet-4-5"))
    assistant = ConversableAgent(
        "assistant",
        system_message="Use your tools.",
        llm_config={"config_list": config_list(router, ["smart"]), "cache_seed": None},
        human_input_mode="NEVER",
    )
    user = ConversableAgent(
        "user",
        llm_config=False,
        human_input_mode="NEVER",
        is_termination_msg=lambda m: "sunny in Paris" in (m.get("content") or ""),
    )
    assistant.register_for_llm(description="The weather forecast for a city.")(get_weather)
    user.register_for_execution()(get_weather)
    result = user.initiate_chat(assistant, message="What is the weather in Paris?", max_turns=3)
    contents = [m.get("content") for m in result.chat_history]
    assert contents[-1] == scripted.FINAL_TEXT
    tool_results = [m for m in result.chat_history if m.get("tool_responses")]
    assert tool_results and tool_results[0]["tool_responses"][0]["content"] == "Paris: sunny, 21 C"
    assert len(emu.requests) == 2
    assert KEY in json.dumps(emu.requests[0].headers)  # the router's key from the environment, not ag2's


def test_llm_config_entries() -> None:
    llm_config = LLMConfig(*config_list(mock_router(response="from LLMConfig"), ["smart"]))
    agent = ConversableAgent("assistant", llm_config=llm_config, human_input_mode="NEVER")
    reply = agent.generate_reply(messages=HI)
    assert reply == "from LLMConfig" or (isinstance(reply, dict) and reply["content"] == "from LLMConfig")


def test_model_client_form_is_json_safe() -> None:
    entries = model_client_config_list(["smart"])
    assert json.loads(json.dumps(entries)) == [{"model": "smart", "model_client_cls": "PolyrouteModelClient"}]
    agent = ConversableAgent("assistant", llm_config={"config_list": entries, "cache_seed": None})
    with pytest.raises(RuntimeError, match="PolyrouteModelClient"):
        agent.generate_reply(messages=HI)
    agent.register_model_client(PolyrouteModelClient, router=mock_router(response="from the model client"))
    reply = agent.generate_reply(messages=HI)
    assert reply == "from the model client" or (isinstance(reply, dict) and reply["content"] == "from the model client")
    usage = agent.client.total_usage_summary
    assert usage is not None and usage["total_cost"] > 0  # polyroute's usage.cost, priced from the catalog


def test_model_client_tool_call(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(scripted.openai_handler)
    wrapper = OpenAIWrapper(config_list=model_client_config_list(["smart"]))
    wrapper.register_model_client(PolyrouteModelClient, router=Router(router_config(emu)))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    response = wrapper.create(messages=HI, tools=tools)
    (message,) = wrapper.extract_text_or_completion_object(response)
    assert message.tool_calls[0].function.name == "get_weather"
    assert json.loads(message.tool_calls[0].function.arguments) == {"city": "Paris"}


def test_config_list_cost_is_polyroute_cost() -> None:
    """ag2 prices responses by model name from its own table (0 for a route name or mock-1); the entry's
    ``price`` comes from polyroute's catalog, so ag2's cost is the one polyroute put on ``usage.cost``.
    """
    wrapper = OpenAIWrapper(config_list=config_list(mock_router(response="priced"), ["smart"]), cache_seed=None)
    response = wrapper.create(messages=HI)
    polyroute_cost = (response.usage.model_extra or {})["cost"]
    assert polyroute_cost > 0
    assert response.cost == pytest.approx(polyroute_cost, rel=1e-9)
    assert wrapper.total_usage_summary is not None
    assert wrapper.total_usage_summary["total_cost"] == pytest.approx(polyroute_cost, rel=1e-9)


def test_agent_cost_through_llm_config() -> None:
    llm_config = LLMConfig(*config_list(mock_router(response="priced"), ["smart"]), cache_seed=None)
    agent = ConversableAgent("assistant", llm_config=llm_config, human_input_mode="NEVER")
    agent.generate_reply(messages=HI)
    assert agent.client is not None and agent.client.total_usage_summary is not None
    assert agent.client.total_usage_summary["total_cost"] > 0


def test_model_client_registered_with_a_router_config() -> None:
    """``register_model_client(PolyrouteModelClient, config=...)``: the documented keyword reaches the router."""
    config = {
        "models": [{"name": "smart", "deployments": [{"provider": "mock", "model": "mock-1", "response": "cfg"}]}]
    }
    wrapper = OpenAIWrapper(config_list=model_client_config_list(["smart"]), cache_seed=None)
    wrapper.register_model_client(PolyrouteModelClient, config=config)
    response = wrapper.create(messages=HI)
    assert wrapper.extract_text_or_completion_object(response) == ["cfg"]
    assert response.cost > 0


def test_entries_carry_a_legacy_httpx_client() -> None:
    """ag2 0.x's LLMConfig accepts only ``httpx.Client``, also beside openai 3.x (whose own family is httpx2)."""
    import httpx

    (entry,) = config_list(mock_router(), ["smart"])
    assert isinstance(entry["http_client"], httpx.Client)
    LLMConfig(entry)  # validates
