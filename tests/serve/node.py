"""Where the Node clients live (``scripts/test.py``'s ``node-clients`` step installs them with npm), and how a test
asks for one: a skip in the workspace run, a failure where the client matrix must run every case."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.clients.matrix import MATRIX_ENV

NODE_ENV = "POLYROUTE_NODE_CLIENTS"
NODE_CLIENTS = Path(os.environ.get(NODE_ENV) or "/nonexistent")
"""An npm prefix holding ``openai`` and ``@anthropic-ai/claude-code``, named by the environment only: the workspace
run must not read a prefix that the ``node-clients`` step of scripts/test.py is installing at the same time."""
INSTALL = (
    f"set {NODE_ENV} to an npm prefix where `npm install openai@6 @anthropic-ai/claude-code` ran "
    "(scripts/test.py node-clients does)"
)


def require(path: Path, what: str) -> Path:
    """``path`` if it exists; else skip (fail under ``POLYROUTE_CLIENT_MATRIX=1``) saying how to install ``what``."""
    if shutil.which("node") is None:
        reason = "node is not installed (apt-get install nodejs npm)"
    elif not os.environ.get(NODE_ENV):
        reason = f"{what}: {INSTALL}"
    elif not path.exists():
        reason = f"{what} is not installed in {NODE_CLIENTS}: {INSTALL}"
    else:
        return path
    if os.environ.get(MATRIX_ENV) == "1":
        pytest.fail(f"client matrix: {reason}")
    pytest.skip(reason)
