"""``polyroute serve``: the router as an HTTP endpoint, for tools that cannot take a transport (Claude Code, Aider,
Codex CLI, Node services, cURL).

A thin ASGI app (:class:`~polyroute.serve.app.ServeApp`) over the same transport in-process clients use, run by
uvicorn (``pip install "polyroute[serve]"``). ``import polyroute`` imports none of this; this package imports
uvicorn only in :func:`run`.
"""

from __future__ import annotations

import os
from typing import Any

from polyroute.router import Router
from polyroute.serve.app import ServeApp
from polyroute.serve.keys import hash_key, new_key

CONFIG_ENV = "POLYROUTE_SERVE_CONFIG"
"""The config path each worker process reads (uvicorn starts workers from an import string)."""
OPEN_ENV = "POLYROUTE_SERVE_OPEN"


def create_app(config: Any, *, open_access: bool = False) -> ServeApp:
    """An ASGI app serving a router built from ``config`` (a path, a dict, a ``RouterConfig`` or a ``Router``)."""
    router = config if isinstance(config, Router) else Router.from_config(config)
    return ServeApp(router, open_access=open_access)


def app_from_env() -> ServeApp:
    """The app of one worker process, from :data:`CONFIG_ENV` (uvicorn's ``factory``)."""
    return create_app(os.environ[CONFIG_ENV], open_access=os.environ.get(OPEN_ENV) == "1")


def run(config: str, *, host: str = "127.0.0.1", port: int = 4000, workers: int = 1, open_access: bool = False) -> None:
    """Serve ``config`` until interrupted (``polyroute serve``)."""
    try:
        import uvicorn
    except ImportError:
        raise SystemExit(
            'polyroute serve needs uvicorn: pip install "polyroute[serve]" '
            '(from a checkout: pip install "./packages/core[serve]")'
        ) from None
    create_app(config, open_access=open_access)  # fail here, once, on a bad config or missing keys
    os.environ[CONFIG_ENV] = os.path.abspath(config)
    os.environ[OPEN_ENV] = "1" if open_access else "0"
    uvicorn.run(
        "polyroute.serve:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )


__all__ = ["CONFIG_ENV", "ServeApp", "app_from_env", "create_app", "hash_key", "new_key", "run"]
