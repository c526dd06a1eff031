"""The third-party client matrix: each client library built on the openai SDK, run against the emulators.

The libraries are not workspace dependencies (their pins conflict with it); ``scripts/test.py`` installs them in
their own environments (``.venvs/clients*``) and runs this directory there with ``POLYROUTE_CLIENT_MATRIX=1``, where a
skipped case is a failure. In the workspace run every module here skips, naming the missing library.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

from tests.clients.matrix import MATRIX_ENV


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if os.environ.get(MATRIX_ENV) == "1" and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped in the client-matrix environment, where every case must run: {report.longrepr}"


@pytest.fixture(params=["anthropic", "gemini"])
def provider(request: pytest.FixtureRequest) -> str:
    """The route's provider: the Anthropic or the Gemini emulator."""
    return request.param


@pytest.fixture(params=[False, True], ids=["plain", "thinking"])
def thinking(request: pytest.FixtureRequest) -> bool:
    """Whether the client sends ``reasoning_effort``."""
    return request.param
