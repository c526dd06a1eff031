"""AutoGen integration for polyroute: an AutoGen 0.4+ model client and config_lists for the older API.

    >>> from polyroute import Router
    >>> from polyroute_autogen import PolyrouteChatCompletionClient, config_list
    >>> router = Router({"models": [{"name": "demo", "deployments": [{"provider": "mock", "model": "mock-1"}]}]})
    >>> client = PolyrouteChatCompletionClient(model="demo", router=router)
    >>> [entry["model"] for entry in config_list(router, models=["demo"])]
    ['demo']

The config_list helpers import no AutoGen at all; the client (and autogen-core / autogen-ext with it) loads on
first use, so an ag2-only environment can use ``config_list`` without autogen-ext installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from polyroute_autogen.config import PolyrouteModelClient, config_list, model_client_config_list, openai_config

if TYPE_CHECKING:
    from polyroute_autogen.client import PolyrouteChatCompletionClient, PolyrouteClientConfig, dump_router_config

__version__ = "0.1.0"

__all__ = [
    "PolyrouteChatCompletionClient",
    "PolyrouteClientConfig",
    "PolyrouteModelClient",
    "__version__",
    "config_list",
    "dump_router_config",
    "model_client_config_list",
    "openai_config",
]

_LAZY = frozenset({"PolyrouteChatCompletionClient", "PolyrouteClientConfig", "dump_router_config"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from polyroute_autogen import client

        return getattr(client, name)
    raise AttributeError(f"module 'polyroute_autogen' has no attribute {name!r}")
