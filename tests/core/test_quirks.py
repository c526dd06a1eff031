"""Vendor differences are data (:class:`Quirks` rows), not ``if provider == ...`` in the adapters: a row that sets a
quirk gets the behaviour whatever its key."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import polyroute
from polyroute import Router
from polyroute.providers import PROVIDERS
from polyroute.providers import openai as adapter
from polyroute.providers._base import ProviderSpec, Quirks, Target

BODY: Any = {
    "model": "m",
    "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "", "reasoning_content": "thought", "tool_calls": []},
    ],
}


def with_spec(spec: ProviderSpec, **deployment: Any) -> Target:
    base = (
        Router(
            {
                "models": [
                    {"name": "m", "deployments": [{"provider": "openai", "model": "dep-1", "api_key": "k-0123456789"}]}
                ]
            }
        )
        .route("m")
        .targets[0]
    )
    return dataclasses.replace(base, spec=spec, api_base=deployment.get("api_base", "https://vendor.example/v1"))


def test_deployment_urls_are_a_quirk() -> None:
    spec = dataclasses.replace(
        PROVIDERS["openai"], key="my-azure-proxy", quirks=Quirks(deployment_urls=True, default_api_version="2025-01-01")
    )
    request = adapter.build_request(BODY, with_spec(spec, api_base="https://proxy.example"))
    assert request.url == "https://proxy.example/openai/deployments/dep-1/chat/completions?api-version=2025-01-01"
    plain = adapter.build_request(BODY, with_spec(PROVIDERS["openai"]))
    assert plain.url == "https://vendor.example/v1/chat/completions"


def test_reasoning_in_history_is_a_quirk() -> None:
    spec = dataclasses.replace(PROVIDERS["openai"], key="reasoner", quirks=Quirks(reasoning_in_history=True))
    kept = json.loads(adapter.build_request(BODY, with_spec(spec)).content)
    assert kept["messages"][1]["reasoning_content"] == "thought"
    dropped = json.loads(adapter.build_request(BODY, with_spec(PROVIDERS["openai"])).content)
    assert "reasoning_content" not in dropped["messages"][1]
    assert PROVIDERS["deepseek"].quirks.reasoning_in_history
    assert PROVIDERS["azure"].quirks.deployment_urls


def test_no_vendor_conditionals_in_providers() -> None:
    root = Path(polyroute.__file__).parent
    found = [
        f"{path.relative_to(root)}:{number}: {line.strip()}"
        for path in sorted(root.rglob("*.py"))
        if path.name != "transport.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"(spec\.key|\.provider)\s*(==|!=|in)\s*[\"'(]", line) and "mock" not in line
    ]
    assert not found, "vendor conditionals belong in Quirks:\n" + "\n".join(found)
