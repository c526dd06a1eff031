"""Where the Node clients live (``scripts/test.py``'s ``node-clients`` step installs them with npm), and how a test
asks for one: a skip in the workspace run, a failure where the client matrix must run every case."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.clients.matrix import MATRIX_ENV

ROOT = Path(__file__).resolve().parents[2]
NODE_CLIENTS = Path(os.environ.get("POLYROUTE_NODE_CLIENTS", ROOT / ".venvs" / "node-clients"))
"""An npm prefix holding ``openai`` and ``@anthropic-ai/claude-code`` (``npm install`` there)."""
INSTALL = f"cd {NODE_CLIENTS} && npm install openai@6 @anthropic-ai/claude-code (or run scripts/test.py node-clients)"


def require(path: Path, what: str) -> Path:
    """``path`` if it exists; else skip (fail under ``POLYROUTE_CLIENT_MATRIX=1``) saying how to install ``what``."""
    if shutil.which("node") is None:
        reason = "node is not installed (apt-get install nodejs npm)"
    elif not path.exists():
        reason = f"{what} is not installed in {NODE_CLIENTS}: {INSTALL}"
    else:
        return path
    if os.environ.get(MATRIX_ENV) == "1":
        pytest.fail(f"client matrix: {reason}")
    pytest.skip(reason)
