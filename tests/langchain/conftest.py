"""Fixtures for the LangChain wrapper's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.langchain import scripted


@pytest.fixture(autouse=True, scope="session")
def _stop_shared_upstream() -> Iterator[None]:
    yield
    scripted.stop_shared()
