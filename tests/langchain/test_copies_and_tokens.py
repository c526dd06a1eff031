"""ChatPolyroute survives copy.deepcopy and pickle (sharing, not duplicating, its router), and counts tokens offline."""

from __future__ import annotations

import copy
import importlib.util
import pickle
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, trim_messages
from langchain_core.tools import tool

from langchain_polyroute import ChatPolyroute
from polyroute import Router

CONFIG: dict[str, Any] = {
    "models": [{"name": "smart", "deployments": [{"provider": "mock", "model": "mock-1", "response": "pong"}]}]
}


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return "sunny"


def test_deepcopy_of_a_dict_config_model_answers_and_shares_the_router() -> None:
    model = ChatPolyroute(model="smart", config=CONFIG, temperature=0.1)
    clone = copy.deepcopy(model)
    assert clone is not model and clone.temperature == 0.1
    assert clone._router is model._router  # one router: one set of pools, health and limits
    assert clone.config == model.config and clone.config is not model.config  # data is copied
    assert clone.invoke("ping").content == "pong"
    assert "".join(str(c.content) for c in clone.stream("ping")) == "pong"
    assert model.invoke("ping").content == "pong"


async def test_deepcopy_answers_async() -> None:
    clone = copy.deepcopy(ChatPolyroute(model="smart", router=Router(CONFIG)))
    assert (await clone.ainvoke("ping")).content == "pong"


@pytest.mark.parametrize("given", ["config", "router"])
def test_pickle_round_trip(given: str) -> None:
    kwargs: dict[str, Any] = {"config": CONFIG} if given == "config" else {"router": Router(CONFIG)}
    model = ChatPolyroute(model="smart", max_tokens=5, **kwargs)
    restored = pickle.loads(pickle.dumps(model))
    assert restored.max_tokens == 5
    assert restored.invoke("ping").content == "pong"


def test_tags_and_user_attribute_calls_in_usage_after_copies_and_pickles() -> None:
    model = ChatPolyroute(model="smart", router=Router(CONFIG), tags=["research"], user="alice")
    assert model.invoke("ping").content == "pong"
    assert copy.deepcopy(model).invoke("ping").content == "pong"
    usage = model._get_router().usage()
    assert usage["tag"]["research"]["calls"] == usage["user"]["alice"]["calls"] == 2
    restored = pickle.loads(pickle.dumps(model))  # a new router from the config: its own usage
    assert "".join(str(c.content) for c in restored.stream("ping")) == "pong"
    usage = restored._get_router().usage()
    assert usage["tag"]["research"]["calls"] == usage["user"]["alice"]["calls"] == 1


def test_token_counts_need_no_transformers_and_no_network() -> None:
    assert importlib.util.find_spec("transformers") is None  # LangChain's default counter would raise here
    model = ChatPolyroute(model="smart", config=CONFIG)
    assert model.get_num_tokens("") == 0
    assert model.get_num_tokens("word " * 100) == 125  # ~4 characters per token
    messages = [SystemMessage("be brief"), HumanMessage("hello " * 50), AIMessage("hi"), HumanMessage("weather?")]
    total = model.get_num_tokens_from_messages(messages)
    assert total > model.get_num_tokens("hello " * 50)
    assert model.get_num_tokens_from_messages(messages, tools=[get_weather]) > total
    count = model.get_num_tokens_from_messages
    budget = count(messages[:1]) + count(messages[2:])  # trim_messages counts the system message on its own
    assert budget < total
    trimmed = trim_messages(messages, max_tokens=budget, token_counter=model, strategy="last", include_system=True)
    assert [type(m) for m in trimmed] == [SystemMessage, AIMessage, HumanMessage]


def test_custom_token_counter_wins() -> None:
    model = ChatPolyroute(model="smart", config=CONFIG, custom_get_token_ids=lambda text: [1] * len(text.split()))
    assert model.get_num_tokens("one two three") == 3
