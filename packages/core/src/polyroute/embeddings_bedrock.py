"""Embeddings on AWS Bedrock: Amazon Titan text embeddings through ``InvokeModel``.

https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html; recorded in
``tests/fixtures/embeddings/pydantic-ai__TestBedrock.test_titan_v2_with_dimensions.yaml``::

    POST {base}/model/amazon.titan-embed-text-v2%3A0/invoke
    {"inputText": "…", "dimensions": 256, "normalize": true}
    → {"embedding": […], "embeddingsByType": {"float": […]}, "inputTextTokenCount": 4}

One text per call: a batch is split into parts of one by the Api (whatever the deployment's ``max_batch``), sent
concurrently within the deployment's limits.
``dimensions`` (v2: 256, 512 or 1024) and ``normalize`` (from a deployment's ``params`` or the request's
``extra_body``) pass through; auth (SigV4 or a Bedrock API key), region and errors are the Converse adapter's
(:mod:`polyroute.providers.bedrock`). Other embedding models on Bedrock (Cohere's, Titan multimodal) are refused
with a 400 rather than sent a body they would not take.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from polyroute.embeddings import as_requested, estimate_tokens, native_fields, text_inputs, unreadable
from polyroute.errors import UnsupportedFeatureError, UpstreamStatusError
from polyroute.providers import bedrock
from polyroute.providers._base import Target, UpstreamRequest, dumps

TITAN_TEXT = "amazon.titan-embed-text"
"""Model ids (foundation models, ``…:0`` versions, inference profiles and ARNs) of Titan text embeddings hold this."""

_FIELDS: Mapping[str, str] = {"normalize": "normalize", "dimensions": "dimensions", "embeddingTypes": "embeddingTypes"}
"""What a deployment's ``params`` or a request's ``extra_body`` may set."""


def is_titan_text(model: str) -> bool:
    """Whether a Bedrock model id names a Titan text embeddings model."""
    return TITAN_TEXT in model


class TitanEmbeddings:
    """Titan text embeddings' ``InvokeModel`` body: one ``inputText`` per call."""

    def build_request(self, body: Mapping[str, Any], target: Target) -> UpstreamRequest:
        """The ``POST /model/{modelId}/invoke`` request, signed."""
        if not is_titan_text(target.model):
            raise UnsupportedFeatureError(
                f"{target.label}: polyroute speaks Bedrock's embeddings API for Amazon Titan text embeddings "
                f"(amazon.titan-embed-text-v2:0) only, not {target.model!r}; route embeddings to a Titan model or to "
                "the provider's own API",
                param="model",
            )
        texts = text_inputs(body, target, "Bedrock Titan")
        native: dict[str, Any] = {"inputText": texts[0]}
        native |= native_fields(body, target, _FIELDS, "Bedrock Titan")
        if native.get("embeddingTypes", ["float"]) != ["float"]:
            raise UnsupportedFeatureError(
                f"{target.label} (Bedrock Titan): polyroute asks for float vectors only and returns them as the "
                "request's encoding_format asks; remove embeddingTypes",
                param="embeddingTypes",
            )
        native.pop("embeddingTypes", None)
        dimensions = body.get("dimensions") or target.deployment.dimensions
        if dimensions is not None:
            native["dimensions"] = dimensions
        base = target.api_base.rstrip("/")
        if "{region}" in base:
            base = base.replace("{region}", bedrock.region(target))
        url = f"{base}/model/{quote(target.model, safe='')}/invoke"
        content = dumps(native)
        headers = {"content-type": "application/json", "accept": "application/json", **target.deployment.headers}
        return UpstreamRequest("POST", url, bedrock.signed_headers(target, url, content, headers), content)

    def parse_response(self, content: bytes, target: Target, body: Mapping[str, Any]) -> dict[str, Any]:
        """``embedding`` → OpenAI's answer; usage from ``inputTextTokenCount``."""
        answer: dict[str, Any] = json.loads(content)
        values = answer.get("embedding")
        if not isinstance(values, list):
            raise unreadable(target, "no float embedding")
        count = answer.get("inputTextTokenCount")
        prompt = count if isinstance(count, int) else estimate_tokens(body["input"])
        return {
            "object": "list",
            "data": [
                {
                    "object": "embedding",
                    "index": 0,
                    "embedding": as_requested(values, body.get("encoding_format", "float")),
                }
            ],
            "model": target.model,
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
        }

    def classify_error(
        self, status: int, headers: Mapping[str, str], content: bytes, target: Target
    ) -> UpstreamStatusError:
        """AWS's JSON errors, read by the Converse adapter's reader."""
        return bedrock.classify_error(status, headers, content, target)

    def stream_decoder(self) -> Any:
        """Never used: embeddings do not stream."""
        raise NotImplementedError

    def stream_translator(self, target: Target, body: Any) -> Any:
        """Never used: embeddings do not stream."""
        raise NotImplementedError


TITAN = TitanEmbeddings()
