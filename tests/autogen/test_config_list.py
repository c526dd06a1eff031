"""config_list forms without ag2 installed: entry shape, deep copies, the model client's four methods."""

from __future__ import annotations

import copy
import json
import pickle
import subprocess
import sys
from typing import Any

import openai
import pytest

from polyroute import NoRouteError, Router
from polyroute_autogen import PolyrouteModelClient, config_list, model_client_config_list, openai_config
from polyroute_autogen.config import BASE_URL, shared_http_client

HI = [{"role": "user", "content": "Say hello."}]


def mock_router(**deployment: Any) -> Router:
    return Router(
        {"models": [{"name": "smart", "deployments": [{"provider": "mock", "model": "mock-1", **deployment}]}]}
    )


def test_import_loads_no_autogen_for_config_lists() -> None:
    code = "import sys, polyroute_autogen; print(sorted(m for m in sys.modules if m.startswith('autogen')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_entries_send_through_the_router() -> None:
    entries = config_list(mock_router(response="in-process"), ["smart"], temperature=0.1)
    (entry,) = entries
    assert entry["model"] == "smart" and entry["temperature"] == 0.1 and entry["max_retries"] == 0
    client = openai.OpenAI(**{k: v for k, v in entry.items() if k in ("api_key", "base_url", "http_client")})
    answer = client.chat.completions.create(model=entry["model"], messages=HI)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "in-process"


def test_entries_share_one_client_through_deep_copies() -> None:
    entries = config_list(mock_router(), ["smart", "mock/mock-small"])
    assert [e["model"] for e in entries] == ["smart", "mock/mock-small"]
    assert entries[0]["http_client"] is entries[1]["http_client"]
    copied = copy.deepcopy({"config_list": entries})
    assert copied["config_list"][0]["http_client"] is entries[0]["http_client"]
    with pytest.raises(TypeError, match="model_client_config_list"):
        pickle.dumps(entries[0]["http_client"])


def test_entries_attribute_calls_in_usage_through_deep_copies() -> None:
    router = mock_router()
    entries = config_list(router, ["smart", "mock/mock-small"], tags=["batch"], user="ops")
    assert [e["tags"] for e in entries] == [["batch"], ["batch"]]  # ag2's own filter key, as before
    for entry in copy.deepcopy(entries):  # what an agent does with its llm_config
        keys = ("api_key", "base_url", "http_client")
        client = openai.OpenAI(**{k: v for k, v in entry.items() if k in keys})
        client.chat.completions.create(model=entry["model"], messages=HI)  # type: ignore[arg-type]
    usage = router.usage()
    assert usage["tag"]["batch"]["calls"] == usage["user"]["ops"]["calls"] == 2


async def test_async_shared_client_attributes_calls() -> None:
    """The client :func:`openai_config` gives ag2 1.x (which calls the SDK asynchronously)."""
    router = mock_router()
    http_client = shared_http_client(router, asynchronous=True, tags=["async"], user="ops")
    client = openai.AsyncOpenAI(api_key="k", base_url=BASE_URL, http_client=http_client)
    await client.chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    assert router.usage()["tag"]["async"]["calls"] == router.usage()["user"]["ops"]["calls"] == 1


def test_model_client_attributes_calls() -> None:
    """``register_model_client(PolyrouteModelClient, router=router, tags=[...], user=...)``."""
    router = mock_router()
    client = PolyrouteModelClient({"model": "smart"}, router=router, tags=["registered"], user="ops")
    client.create({"messages": HI})
    assert router.usage()["tag"]["registered"]["calls"] == router.usage()["user"]["ops"]["calls"] == 1


def test_default_models_and_unknown_names() -> None:
    assert [e["model"] for e in config_list(mock_router())] == ["smart"]
    with pytest.raises(NoRouteError):
        config_list(mock_router(), ["nope"])
    with pytest.raises(ValueError, match="no model names"):
        config_list(Router())


def test_model_client_methods() -> None:
    entries = model_client_config_list(["smart"], tags=["fast"])
    assert json.loads(json.dumps(entries)) == [
        {"model": "smart", "model_client_cls": "PolyrouteModelClient", "tags": ["fast"]}
    ]
    client = PolyrouteModelClient(entries[0], router=mock_router(response="hi there"))
    response = client.create({"model": "smart", "messages": HI, "model_client_cls": "PolyrouteModelClient", "tags": []})
    assert client.message_retrieval(response) == ["hi there"]
    usage = PolyrouteModelClient.get_usage(response)
    assert usage["model"] == "mock-1" and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert client.cost(response) == usage["cost"] > 0


def test_model_client_returns_tool_call_messages() -> None:
    router = mock_router(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    client = PolyrouteModelClient({"model": "smart"}, router=router)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    (message,) = client.message_retrieval(client.create({"messages": HI, "tools": tools}))
    assert message.tool_calls[0].function.name == "get_weather"


def test_openai_config_needs_ag2_1x() -> None:
    try:
        import ag2.config  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"ag2 1\.x"):
            openai_config(mock_router(), "smart")
    else:  # pragma: no cover - the ag2 1.x environment has its own tests
        pytest.skip("ag2 1.x is installed here")


def test_model_client_takes_a_router_config() -> None:
    """``register_model_client(PolyrouteModelClient, config={...})``, as documented: ag2 passes the entry first."""
    config = {
        "models": [{"name": "smart", "deployments": [{"provider": "mock", "model": "mock-1", "response": "cfg"}]}]
    }
    client = PolyrouteModelClient({"model": "smart"}, config=config)
    assert client.message_retrieval(client.create({"messages": HI})) == ["cfg"]
    with pytest.raises(ValueError, match="either"):
        PolyrouteModelClient({"model": "smart"}, config=config, router=mock_router())


def test_entry_price_counts_the_routes_it_falls_back_to() -> None:
    """A call the fallback serves is priced by the same entry: a route whose fallback costs something else gets no
    ``price`` (ag2 would charge the fallback's tokens at the primary's price), one whose fallback costs the same does.
    """

    def router(fallback_model: str) -> Router:
        primary = {"provider": "mock", "model": "mock-1", "error": 503}
        fallback = {"provider": "mock", "model": fallback_model}
        models = [
            {"name": "smart", "fallbacks": ["local"], "deployments": [primary]},
            {"name": "local", "fallbacks": ["smart"], "deployments": [fallback]},  # a cycle ends
        ]
        return Router({"models": models})

    (entry,) = config_list(router("mock-small"), ["smart"])
    assert "price" not in entry
    (entry,) = config_list(router("mock-1"), ["smart"])
    assert entry["price"] == config_list(mock_router(), ["smart"])[0]["price"]
