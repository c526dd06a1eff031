"""polyroute: multi-provider LLM routing for Python agents, in-process.

An OpenAI-compatible transport for ``httpx`` / ``httpx2`` clients: the openai SDK (or any framework built on it)
talks to it as to an OpenAI server; inside, each call is routed to a provider deployment, translated to the
provider's native API, sent, translated back (streams included), and failed over when a provider is down.

    >>> from polyroute import Router
    >>> router = Router.from_config({"models": [{"name": "demo", "deployments": [{"provider": "mock",
    ...                                                                        "model": "mock-1"}]}]})
    >>> client = router.openai_client()
"""

import logging

from polyroute.config import Capabilities, Deployment, ModelRoute, Prices, RetrySettings, RouterConfig
from polyroute.errors import (
    AllTargetsFailedError,
    ConfigError,
    InvalidRequestError,
    NoRouteError,
    PolyrouteError,
    StreamInterruptedError,
    UnsupportedFeatureError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from polyroute.router import Router

__version__ = "0.1.0"

# A library logs; the application decides where to: nothing is printed unless logging is configured.
logging.getLogger("polyroute").addHandler(logging.NullHandler())

__all__ = [
    "AllTargetsFailedError",
    "Capabilities",
    "ConfigError",
    "Deployment",
    "InvalidRequestError",
    "ModelRoute",
    "NoRouteError",
    "PolyrouteError",
    "Prices",
    "RetrySettings",
    "Router",
    "RouterConfig",
    "StreamInterruptedError",
    "UnsupportedFeatureError",
    "UpstreamConnectionError",
    "UpstreamError",
    "UpstreamStatusError",
    "UpstreamTimeout",
    "__version__",
]
