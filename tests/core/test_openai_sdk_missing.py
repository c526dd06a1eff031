"""Without the openai SDK, asking the router for an openai client says what to install (docs/testing.md's
``[testing]`` extra alone once led to a bare ``No module named 'openai'``)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("method", ["openai_client", "async_openai_client"])
def test_missing_openai_sdk_names_the_extra(method: str) -> None:
    code = (
        "import sys; sys.modules['openai'] = None\n"  # the SDK not installed: its import fails
        "from polyroute import Router\n"
        "try:\n"
        f"    Router().{method}()\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert "pip install 'polyroute[openai]'" in out.stdout
