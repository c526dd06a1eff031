"""``polyroute serve``: the router as an HTTP endpoint, for tools that cannot take a transport (Claude Code, Aider,
Codex CLI, Node services, cURL).

A thin ASGI app (:class:`~polyroute.serve.app.ServeApp`) over the same transport in-process clients use, run by
uvicorn (``pip install "polyroute[serve]"``). ``import polyroute`` imports none of this; this package imports
uvicorn only in :func:`run`.
"""

from __future__ import annotations

import http.client
import os
import socket
import sys
import threading
import time
from typing import Any

from polyroute.router import Router
from polyroute.serve.app import ServeApp
from polyroute.serve.keys import hash_key, new_key
from polyroute.serve.startup import listening_line, worker_warnings

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
    """Serve ``config`` until interrupted (``polyroute serve``): a warning on stderr for each piece of state that
    ``workers`` processes would each keep apart (:func:`~polyroute.serve.startup.worker_warnings`), then one line on
    stdout once it answers (:func:`~polyroute.serve.startup.listening_line`).
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
    try:  # before the line below waits for /health: another server on the port must not answer it for us
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
            port = port or probe.getsockname()[1]  # --port 0: a free port, which the line can then name
    except OSError as exc:
        raise SystemExit(
            f"polyroute serve: cannot listen on {host}:{port}: {exc.strerror or exc} (choose another --port)"
        ) from None
    for warning in worker_warnings(settings, workers):
        print(f"polyroute serve: warning: {warning}", file=sys.stderr, flush=True)
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    _announce(host, port, listening_line(settings, url, workers, open_access=open_access))
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


def _announce(host: str, port: int, line: str, timeout: float = 120.0) -> None:
    """Print ``line`` once the server answers ``GET /health`` (uvicorn, quiet at log level warning, says nothing;
    with several workers the socket is bound in the parent and served by children, so asking it is the one way to
    know all of that went well, whatever the uvicorn version). Nothing is printed if it never answers: uvicorn has
    then said why.
    """
    probe = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)

    def wait() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            conn = http.client.HTTPConnection(probe, port, timeout=1)
            try:
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    print(line, flush=True)
                    return
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
            time.sleep(0.05)

    threading.Thread(target=wait, name="polyroute-serve-announce", daemon=True).start()


__all__ = ["CONFIG_ENV", "ServeApp", "app_from_env", "create_app", "hash_key", "new_key", "run"]
