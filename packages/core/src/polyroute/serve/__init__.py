"""``polyroute serve``: the router as an HTTP endpoint, for tools that cannot take a transport (Claude Code, Aider,
Codex CLI, Node services, cURL).

A thin ASGI app (:class:`~polyroute.serve.app.ServeApp`) over the same transport in-process clients use, run by
uvicorn (``pip install "polyroute[serve]"``). ``import polyroute`` imports none of this; this package imports
uvicorn only in :func:`run`.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from polyroute.router import Router
from polyroute.serve.app import ServeApp
from polyroute.serve.keys import hash_key, new_key
from polyroute.serve.startup import worker_warnings

CONFIG_ENV = "POLYROUTE_SERVE_CONFIG"
"""The config path each worker process reads (uvicorn starts workers from an import string)."""
OPEN_ENV = "POLYROUTE_SERVE_OPEN"
WORKERS_ENV = "POLYROUTE_SERVE_WORKERS"
"""How many worker processes serve (each app says so in the errors that come from its state being its own)."""


def create_app(config: Any, *, open_access: bool = False, workers: int = 1) -> ServeApp:
    """An ASGI app serving a router built from ``config`` (a path, a dict, a ``RouterConfig`` or a ``Router``), as
    one of ``workers`` processes.
    """
    router = config if isinstance(config, Router) else Router.from_config(config)
    return ServeApp(router, open_access=open_access, workers=workers)


def app_from_env() -> ServeApp:
    """The app of one worker process, from :data:`CONFIG_ENV` (uvicorn's ``factory``)."""
    return create_app(
        os.environ[CONFIG_ENV],
        open_access=os.environ.get(OPEN_ENV) == "1",
        workers=int(os.environ.get(WORKERS_ENV) or 1),
    )


def run(config: str, *, host: str = "127.0.0.1", port: int = 4000, workers: int = 1, open_access: bool = False) -> None:
    """Serve ``config`` until interrupted (``polyroute serve``), after a warning on stderr for each piece of state
    that ``workers`` processes would each keep apart (:func:`~polyroute.serve.startup.worker_warnings`).
    """
    try:
        import uvicorn
    except ImportError:
        raise SystemExit(
            'polyroute serve needs uvicorn: pip install "polyroute[serve]" '
            '(from a checkout: pip install "./packages/core[serve]")'
        ) from None
    # fail here, once, on a bad config or missing keys
    checked = create_app(config, open_access=open_access, workers=workers)
    settings = checked.router.config
    checked.router.close()
    for warning in worker_warnings(settings, workers):
        print(f"polyroute serve: warning: {warning}", file=sys.stderr, flush=True)
    os.environ[CONFIG_ENV] = os.path.abspath(config)
    os.environ[OPEN_ENV] = "1" if open_access else "0"
    os.environ[WORKERS_ENV] = str(workers)
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
