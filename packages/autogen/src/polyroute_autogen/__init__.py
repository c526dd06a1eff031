"""AutoGen integration for polyroute: an AutoGen 0.4+ model client and config_lists for the older API.

>>> from polyroute import Router
>>> from polyroute_autogen import PolyrouteChatCompletionClient, config_list
>>> router = Router({"models": [{"name": "demo", "deployments": [{"provider": "mock", "model": "mock-1"}]}]})
>>> client = PolyrouteChatCompletionClient(model="demo", router=router)
>>> [entry["model"] for entry in config_list(router, models=["demo"])]
['demo']
"""

from polyroute_autogen.client import PolyrouteChatCompletionClient, PolyrouteClientConfig, dump_router_config
from polyroute_autogen.config import PolyrouteModelClient, config_list, model_client_config_list, openai_config

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
