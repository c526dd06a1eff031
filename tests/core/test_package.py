"""The package surface: exported names, wire types that match the openai SDK, a light import."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from typing_extensions import get_type_hints

import polyroute
from polyroute.types import openai as wire


def test_exported_members() -> None:
    assert sorted(polyroute.__all__) == sorted(
        [
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
    )
    for name in polyroute.__all__:
        assert getattr(polyroute, name) is not None


POLYROUTE_ONLY = {"reasoning_content", "thinking_blocks", "provider_specific_fields", "cost", "cache_creation_tokens"}


def _sdk_fields(model: Any) -> set[str]:
    return set(model.model_fields)


@pytest.mark.parametrize(
    ("ours", "sdk_path"),
    [
        (wire.ChatCompletion, "openai.types.chat.ChatCompletion"),
        (wire.Choice, "openai.types.chat.chat_completion.Choice"),
        (wire.ResponseMessage, "openai.types.chat.ChatCompletionMessage"),
        (wire.ChatCompletionChunk, "openai.types.chat.ChatCompletionChunk"),
        (wire.ChunkChoice, "openai.types.chat.chat_completion_chunk.Choice"),
        (wire.Delta, "openai.types.chat.chat_completion_chunk.ChoiceDelta"),
        (wire.Usage, "openai.types.CompletionUsage"),
        (wire.PromptTokensDetails, "openai.types.completion_usage.PromptTokensDetails"),
        (wire.CompletionTokensDetails, "openai.types.completion_usage.CompletionTokensDetails"),
    ],
)
def test_response_types_are_a_subset_of_the_sdk(ours: type, sdk_path: str) -> None:
    module_name, _, attr = sdk_path.rpartition(".")
    sdk = getattr(__import__(module_name, fromlist=[attr]), attr)
    extra = set(get_type_hints(ours)) - _sdk_fields(sdk) - POLYROUTE_ONLY
    assert not extra, f"{ours.__name__} has fields the openai SDK does not know: {extra}"


def test_request_fields_are_known_to_the_sdk() -> None:
    from openai.types.chat import completion_create_params

    sdk = set(get_type_hints(completion_create_params.CompletionCreateParamsStreaming))
    ours = set(get_type_hints(wire.ChatCompletionRequest))
    assert ours - sdk == set()


def test_import_is_light_and_offline() -> None:
    code = """
import socket, sys, time
def refuse(*a, **k): raise AssertionError("network access at import")
socket.socket.connect = refuse
socket.create_connection = refuse
t = time.perf_counter()
import polyroute
from polyroute import Router
elapsed = time.perf_counter() - t
heavy = [m for m in ("openai", "botocore", "google.auth", "anthropic", "langchain_core", "llama_index", "autogen_core",
                     "yaml", "genai_prices", "polyroute.providers.anthropic", "polyroute.providers.gemini",
                     "polyroute.transport", "polyroute.testing") if m in sys.modules]
import json; print(json.dumps({"heavy": heavy, "elapsed": elapsed}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result["heavy"] == []
