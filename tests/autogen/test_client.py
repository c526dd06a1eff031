"""PolyrouteChatCompletionClient on its own: create / create_stream usage, model_info, tokens, components."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_core import ComponentModel
from autogen_core.models import ChatCompletionClient, CreateResult, ModelFamily, UserMessage

from polyroute import Router
from polyroute_autogen import PolyrouteChatCompletionClient, PolyrouteClientConfig
from tests.autogen import scripted
from tests.autogen.conftest import KEY, KEY_ENV, router_config
from tests.emulators import Emulator
from tests.emulators.openai_format import handler

HI = [UserMessage(content="Say hello.", source="user")]


def mock_router(**deployment: Any) -> Router:
    return Router(
        {"models": [{"name": "smart", "deployments": [{"provider": "mock", "model": "mock-1", **deployment}]}]}
    )


async def test_create_and_usage(emulator: Callable[..., Emulator], provider_key: str) -> None:
    emu = emulator(handler("Hello there"))
    client = PolyrouteChatCompletionClient(model="smart", config=router_config(emu), temperature=0.2)
    result = await client.create(HI)
    assert result.content == "Hello there"
    assert result.finish_reason == "stop"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (10, 5)
    sent = emu.requests[0]
    assert sent.json()["model"] == "gpt-up" and sent.json()["temperature"] == 0.2
    assert sent.headers["authorization"] == f"Bearer {KEY}"  # the router's key from the environment
    assert "stream_options" not in sent.json()  # include_usage never leaks into non-stream requests
    await client.create(HI)
    assert client.total_usage().prompt_tokens == 20
    assert client.actual_usage().completion_tokens == 10
    await client.close()


async def test_create_stream_includes_usage_by_default(emulator: Callable[..., Emulator], provider_key: str) -> None:
    emu = emulator(handler("abcdefghij", pieces=5))
    client = PolyrouteChatCompletionClient(model="smart", config=router_config(emu))
    items = [item async for item in client.create_stream(HI)]
    *texts, result = items
    assert "".join(texts) == "abcdefghij"
    assert isinstance(result, CreateResult) and result.content == "abcdefghij"
    assert result.usage.prompt_tokens == 10 and result.usage.completion_tokens == 5
    assert client.total_usage().completion_tokens == 5
    await client.close()


async def test_create_stream_usage_can_be_turned_off(emulator: Callable[..., Emulator], provider_key: str) -> None:
    emu = emulator(handler("abcdefghij", pieces=5))
    client = PolyrouteChatCompletionClient(model="smart", config=router_config(emu))
    items = [item async for item in client.create_stream(HI, include_usage=False)]
    result = items[-1]
    assert isinstance(result, CreateResult) and result.content == "abcdefghij"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (0, 0)  # the router sent no usage chunk
    await client.close()


async def test_stream_with_tool_call(emulator: Callable[..., Emulator], provider_key: str) -> None:
    emu = emulator(scripted.openai_handler)
    client = PolyrouteChatCompletionClient(model="smart", config=router_config(emu))
    tool = {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    items = [item async for item in client.create_stream(HI, tools=[tool])]
    result = items[-1]
    assert isinstance(result, CreateResult) and result.finish_reason == "function_calls"
    assert isinstance(result.content, list)
    assert [(c.name, json.loads(c.arguments)) for c in result.content] == [("get_weather", {"city": "Paris"})]
    assert result.usage.prompt_tokens == 30
    await client.close()


async def test_mock_route_needs_no_model_info() -> None:
    client = PolyrouteChatCompletionClient(model="smart", router=mock_router(response="hi from mock"))
    assert isinstance(client, ChatCompletionClient)
    result = await client.create(HI)
    assert result.content == "hi from mock"
    await client.close()


def test_model_info_comes_from_the_route() -> None:
    small = Router({"models": [{"name": "small", "deployments": [{"provider": "mock", "model": "mock-small"}]}]})
    client = PolyrouteChatCompletionClient(model="small", router=small)
    assert client.model_info == {
        "vision": False,  # catalog row of mock-small
        "function_calling": True,
        "json_output": True,
        "structured_output": True,
        "family": ModelFamily.UNKNOWN,
        "multiple_system_messages": True,  # every provider takes several (Anthropic and Gemini merge them)
    }
    with pytest.warns(DeprecationWarning, match="capabilities is deprecated"):
        assert client.capabilities["vision"] is False  # type: ignore[index]


def test_model_info_from_deployment_capabilities_and_overrides() -> None:
    router = mock_router(capabilities={"tools": False, "json_schema": False})
    client = PolyrouteChatCompletionClient(model="smart", router=router)
    assert client.model_info["function_calling"] is False
    assert client.model_info["json_output"] is False and client.model_info["structured_output"] is False
    overridden = PolyrouteChatCompletionClient(model="smart", router=router, model_info={"function_calling": True})
    assert overridden.model_info["function_calling"] is True


async def test_capability_flags_gate_requests() -> None:
    client = PolyrouteChatCompletionClient(model="smart", router=mock_router(capabilities={"tools": False}))
    tool = {"name": "f", "parameters": {"type": "object", "properties": {}}}
    with pytest.raises(ValueError, match="function calling"):
        await client.create(HI, tools=[tool])


def test_family_from_deployment_models() -> None:
    router = Router(
        {
            "models": [
                {"name": "a", "deployments": [{"provider": "anthropic", "model": "claude-3-5-sonnet-20241022"}]},
                {"name": "b", "deployments": [{"provider": "openai", "model": "gpt-4o-mini"}]},
                {
                    "name": "mixed",
                    "deployments": [
                        {"provider": "anthropic", "model": "claude-3-5-sonnet-20241022"},
                        {"provider": "openai", "model": "gpt-4o"},
                    ],
                },
            ]
        }
    )
    family = {name: PolyrouteChatCompletionClient(model=name, router=router).model_info["family"] for name in "ab"}
    assert family == {"a": ModelFamily.CLAUDE_3_5_SONNET, "b": ModelFamily.GPT_4O}
    assert PolyrouteChatCompletionClient(model="mixed", router=router).model_info["family"] == ModelFamily.UNKNOWN


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("claude-sonnet-4-5", ModelFamily.CLAUDE_4_SONNET),
        ("claude-sonnet-4-20250514", ModelFamily.CLAUDE_4_SONNET),
        ("claude-opus-4-1-20250805", ModelFamily.CLAUDE_4_OPUS),
        ("claude-opus-4-5", ModelFamily.CLAUDE_4_OPUS),
        ("claude-haiku-4-5", ModelFamily.CLAUDE_3_5_HAIKU),  # AutoGen has no Claude 4 Haiku: the newest Haiku
        ("claude-3-7-sonnet-latest", ModelFamily.CLAUDE_3_7_SONNET),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", ModelFamily.CLAUDE_4_SONNET),
        ("gemini-2.5-pro", ModelFamily.GEMINI_2_5_PRO),
        ("gemini-2.5-flash-lite", ModelFamily.GEMINI_2_5_FLASH),
        ("gemini-3-pro-preview", ModelFamily.GEMINI_2_5_PRO),
        ("gpt-4.1-mini", ModelFamily.GPT_41),
        ("gpt-5.1", ModelFamily.GPT_5),
        ("mock-1", ModelFamily.UNKNOWN),
    ],
)
def test_family_of_current_model_ids(model: str, family: str) -> None:
    """New-style ids (``claude-sonnet-4-5``) get AutoGen's family, so its Claude / Gemini rules run."""
    provider = "anthropic" if "claude" in model else "gemini" if "gemini" in model else "openai"
    router = Router({"models": [{"name": "r", "deployments": [{"provider": provider, "model": model}]}]})
    client = PolyrouteChatCompletionClient(model="r", router=router)
    assert client.model_info["family"] == family
    assert ModelFamily.is_claude(family) == ("claude" in model and family != ModelFamily.UNKNOWN)


async def test_closing_one_client_leaves_the_shared_router_working(
    emulator: Callable[..., Emulator], provider_key: str
) -> None:
    """Two clients on one router: closing one must not close the router's pools under the other's stream."""
    emu = emulator(handler("abcdefghijklmnopqrst", pieces=10, chunk_delay=0.02))
    router = Router(router_config(emu))
    first = PolyrouteChatCompletionClient(model="smart", router=router)
    second = PolyrouteChatCompletionClient(model="smart", router=router)
    stream = first.create_stream(HI)
    assert await stream.__anext__() == "ab"  # a stream in flight
    await second.close()
    rest = [item async for item in stream]
    assert "".join(t for t in rest if isinstance(t, str)) == "cdefghijklmnopqrst"
    items = [item async for item in first.create_stream(HI)]  # and new calls still go through
    assert isinstance(items[-1], CreateResult) and items[-1].content == "abcdefghijklmnopqrst"
    await first.close()


@pytest.mark.parametrize(
    ("providers", "expected"),
    [(["anthropic"], True), (["gemini"], True), (["openai", "anthropic"], True), (["mistral"], False),
     (["anthropic", "mistral"], False)],
)  # fmt: skip
def test_multiple_system_messages_where_every_deployment_takes_them(providers: list[str], expected: bool) -> None:
    """Mistral answers 400 to a system message after an assistant turn: autogen-ext must merge or refuse first."""
    deployments = [{"provider": p, "model": f"{p}-model"} for p in providers]
    router = Router({"models": [{"name": "r", "deployments": deployments}]})
    assert PolyrouteChatCompletionClient(model="r", router=router).model_info["multiple_system_messages"] is expected


def test_unknown_model_fails_at_construction() -> None:
    with pytest.raises(Exception, match="does not exist"):
        PolyrouteChatCompletionClient(model="nope", router=mock_router())


def test_unknown_create_argument_is_rejected() -> None:
    with pytest.raises(TypeError, match="temprature"):
        PolyrouteChatCompletionClient(model="smart", router=mock_router(), temprature=0.1)


def test_count_and_remaining_tokens_offline() -> None:
    client = PolyrouteChatCompletionClient(model="smart", router=mock_router())
    short = client.count_tokens(HI)
    long = client.count_tokens([UserMessage(content="word " * 400, source="user")])
    assert 0 < short < long
    assert 400 <= long <= 800  # ~4 characters per token
    tool = {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    assert client.count_tokens(HI, tools=[tool]) > short
    assert client.remaining_tokens(HI) == 128000 - short  # mock-1's catalog context window


def test_remaining_tokens_unknown_window_is_explicit() -> None:
    router = Router({"models": [{"name": "x", "deployments": [{"provider": "mock", "model": "unlisted"}]}]})
    client = PolyrouteChatCompletionClient(model="x", router=router)
    with pytest.raises(ValueError, match="context_window"):
        client.remaining_tokens(HI)


def test_router_and_config_are_exclusive() -> None:
    with pytest.raises(ValueError, match="either"):
        PolyrouteChatCompletionClient(model="smart", router=mock_router(), config={"models": []})


# -- components ---------------------------------------------------------------------------------------------------


async def test_component_round_trip(emulator: Callable[..., Emulator], provider_key: str) -> None:
    emu = emulator(handler("reloaded"))
    client = PolyrouteChatCompletionClient(model="smart", config=router_config(emu), temperature=0.3, seed=7)
    dumped = client.dump_component()
    assert dumped.provider == "polyroute_autogen.PolyrouteChatCompletionClient"
    assert dumped.component_type == "model"
    text = dumped.model_dump_json()
    assert KEY not in text
    assert json.loads(text)["config"]["router"]["models"][0]["deployments"][0]["api_key_env"] == KEY_ENV

    loaded = ChatCompletionClient.load_component(ComponentModel.model_validate_json(text))
    assert isinstance(loaded, PolyrouteChatCompletionClient)
    assert loaded.dump_component().model_dump_json() == text
    result = await loaded.create(HI)
    assert result.content == "reloaded"
    assert emu.requests[0].json()["seed"] == 7
    assert emu.requests[0].headers["authorization"] == f"Bearer {KEY}"  # the key came from the environment
    await loaded.close()


async def test_tags_and_user_attribute_calls_and_round_trip_as_json() -> None:
    client = PolyrouteChatCompletionClient(model="smart", router=mock_router(), tags=["planner"], user="alice")
    await client.create(HI)
    assert isinstance([item async for item in client.create_stream(HI)][-1], CreateResult)
    usage = client.router.usage()
    assert usage["tag"]["planner"]["calls"] == usage["user"]["alice"]["calls"] == 2

    text = client.dump_component().model_dump_json()
    assert (json.loads(text)["config"]["tags"], json.loads(text)["config"]["user"]) == (["planner"], "alice")
    loaded = ChatCompletionClient.load_component(ComponentModel.model_validate_json(text))
    assert isinstance(loaded, PolyrouteChatCompletionClient)
    assert loaded.dump_component().model_dump_json() == text
    await loaded.create(HI)
    usage = loaded.router.usage()  # a new router from the dumped config: its own usage
    assert usage["tag"]["planner"]["calls"] == usage["user"]["alice"]["calls"] == 1
    await loaded.close()


def test_dump_drops_inline_secrets_and_says_so() -> None:
    secret = "sk-inline-secret-abcdef0123456789"
    router = Router(
        {
            "models": [
                {
                    "name": "smart",
                    "deployments": [
                        {
                            "provider": "openai",
                            "model": "gpt-4o",
                            "api_key": secret,
                            "headers": {"Authorization": f"Bearer {secret}", "x-trace": "on"},
                        }
                    ],
                }
            ]
        }
    )
    client = PolyrouteChatCompletionClient(model="smart", router=router)
    with pytest.warns(UserWarning, match=r"inline credentials are not saved.*api_key.*header Authorization") as caught:
        text = client.dump_component().model_dump_json()
    assert secret not in text and secret not in str(caught[0].message)
    assert secret not in repr(client)
    deployment = json.loads(text)["config"]["router"]["models"][0]["deployments"][0]
    assert "api_key" not in deployment
    assert deployment["headers"] == {"x-trace": "on"}


def test_env_router_dumps_no_config() -> None:
    client = PolyrouteChatCompletionClient(model="mock/mock-1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dumped = client.dump_component()
    config = PolyrouteClientConfig.model_validate(dumped.config)
    assert config.router is None and config.model == "mock/mock-1"
    loaded = PolyrouteChatCompletionClient.load_component(dumped)
    assert loaded.router.config.models == []  # Router() again: direct provider/model names


async def test_saved_assistant_agent_reloads(emulator: Callable[..., Emulator], provider_key: str) -> None:
    emu = emulator(handler("from the reloaded agent"))
    client = PolyrouteChatCompletionClient(model="smart", config=router_config(emu))
    agent = AssistantAgent("assistant", client, system_message="Be brief.")
    saved = json.dumps(agent.dump_component().model_dump(mode="json"))
    assert KEY not in saved

    reloaded = AssistantAgent.load_component(json.loads(saved))
    result = await reloaded.run(task="hello")
    assert result.messages[-1].content == "from the reloaded agent"  # type: ignore[union-attr]
    assert emu.requests[0].json()["messages"][0] == {"role": "system", "content": "Be brief."}
