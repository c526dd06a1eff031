"""Embeddings on AWS Bedrock through ``InvokeModel``: Amazon Titan text embeddings, and Cohere Embed v3.

Titan (https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html; recorded in
``tests/fixtures/embeddings/pydantic-ai__TestBedrock.test_titan_v2_with_dimensions.yaml``)::

    POST {base}/model/amazon.titan-embed-text-v2%3A0/invoke
    {"inputText": "…", "dimensions": 256, "normalize": true}
    → {"embedding": […], "embeddingsByType": {"float": […]}, "inputTextTokenCount": 4}

One text per call: a batch is split into parts of one by the Api (whatever the deployment's ``max_batch``), sent
concurrently within the deployment's limits. ``dimensions`` (v2: 256, 512 or 1024) and ``normalize`` (from a
deployment's ``params`` or the request's ``extra_body``) pass through.

Cohere Embed v3 (``cohere.embed-english-v3``, ``cohere.embed-multilingual-v3``; model-parameters-embed-v3): Cohere's
own body without ``model``, up to 96 texts per call, ``input_type`` as on Cohere's API (default ``search_document``)::

    {"texts": […], "input_type": "search_document", "truncate": "END"}
    → {"id", "embeddings": [[…]], "response_type": "embeddings_floats", "texts": […]}

Its answer carries no token count (Bedrock puts it in a header), so usage is estimated. Auth (SigV4 or a Bedrock
API key), region and errors are the Converse adapter's (:mod:`polyroute.providers.bedrock`). Other embedding
models on Bedrock (Titan multimodal, Cohere Embed v4) are refused with a 400 rather than sent a body they would not
take.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import quote

from polyroute.embeddings import Unstreamed, as_requested, estimate_tokens, native_fields, text_inputs, unreadable
from polyroute.errors import UnsupportedFeatureError, UpstreamStatusError
from polyroute.providers import bedrock
from polyroute.providers._base import Target, UpstreamRequest, dumps, loads

TITAN_TEXT = "amazon.titan-embed-text"
"""Model ids (foundation models, ``…:0`` versions, ARNs) of Titan text embeddings hold this."""

COHERE_V3 = ("cohere.embed-english-v3", "cohere.embed-multilingual-v3")
"""Cohere Embed v3 model ids on Bedrock (also inside ARNs and inference profile ids)."""

COHERE_MAX_TEXTS = 96
"""Bedrock's limit on texts per Cohere Embed call."""

_TITAN_FIELDS: Mapping[str, str] = {
    "normalize": "normalize",
    "dimensions": "dimensions",
    "embeddingTypes": "embeddingTypes",
}
_COHERE_FIELDS: Mapping[str, str] = {
    "input_type": "input_type",
    "truncate": "truncate",
    "embedding_types": "embedding_types",
}
"""What a deployment's ``params`` or a request's ``extra_body`` may set, per model family."""


def is_titan_text(model: str) -> bool:
    """Whether a Bedrock model id names a Titan text embeddings model."""
    return TITAN_TEXT in model


def is_cohere_v3(model: str) -> bool:
    """Whether a Bedrock model id names Cohere Embed v3."""
    return any(name in model for name in COHERE_V3)


def batch_limit(target: Target) -> int:
    """Texts per call: Cohere's 96 (or the deployment's ``max_batch``), Titan's one."""
    if is_cohere_v3(target.model):
        return target.deployment.max_batch or COHERE_MAX_TEXTS
    return 1


class BedrockEmbeddings(Unstreamed):
    """``InvokeModel`` bodies of Bedrock's text embedding models."""

    def build_request(self, body: Mapping[str, Any], target: Target) -> UpstreamRequest:
        """The ``POST /model/{modelId}/invoke`` request, signed."""
        if is_titan_text(target.model):
            native = _titan_body(body, target)
        elif is_cohere_v3(target.model):
            native = _cohere_body(body, target)
        else:
            raise UnsupportedFeatureError(
                f"{target.label}: polyroute speaks Bedrock's embeddings API for Amazon Titan text embeddings "
                f"(amazon.titan-embed-text-v2:0) and Cohere Embed v3 (cohere.embed-english-v3, "
                f"cohere.embed-multilingual-v3), not {target.model!r}; route embeddings to one of those or to the "
                "provider's own API",
                param="model",
            )
        base = target.api_base.rstrip("/")
        if "{region}" in base:
            base = base.replace("{region}", bedrock.region(target))
        url = f"{base}/model/{quote(target.model, safe='')}/invoke"
        content = dumps(native)
        headers = {"content-type": "application/json", "accept": "application/json", **target.deployment.headers}
        return UpstreamRequest("POST", url, bedrock.signed_headers(target, url, content, headers), content)

    def parse_response(self, content: bytes, target: Target, body: Mapping[str, Any]) -> dict[str, Any]:
        """Titan's ``embedding`` (usage from ``inputTextTokenCount``) or Cohere's ``embeddings`` → OpenAI's answer."""
        answer: dict[str, Any] = loads(content)
        inputs: list[Any] = body["input"]
        if is_cohere_v3(target.model):
            found: Any = answer.get("embeddings")
            by_type = isinstance(found, dict)  # embeddings_by_type when embedding_types was sent, else a list
            vectors: Any = cast("Mapping[str, Any]", found).get("float") if by_type else found
            count = None
        else:
            vectors = [answer.get("embedding")]
            count = answer.get("inputTextTokenCount")
        if not isinstance(vectors, list) or len(cast("list[Any]", vectors)) != len(inputs):
            raise unreadable(target, f"no float embedding for each of the {len(inputs)} inputs")
        encoding = body.get("encoding_format", "float")
        prompt = count if isinstance(count, int) else estimate_tokens(inputs)
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": as_requested(vector, encoding)}
                for i, vector in enumerate(cast("list[Any]", vectors))
            ],
            "model": target.model,
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
        }

    def classify_error(
        self, status: int, headers: Mapping[str, str], content: bytes, target: Target
    ) -> UpstreamStatusError:
        """AWS's JSON errors, read by the Converse adapter's reader."""
        return bedrock.classify_error(status, headers, content, target)


def _titan_body(body: Mapping[str, Any], target: Target) -> dict[str, Any]:
    (text,) = text_inputs(body, target, "Bedrock Titan")  # batch_limit: one text per part
    native: dict[str, Any] = {"inputText": text, **native_fields(body, target, _TITAN_FIELDS, "Bedrock Titan")}
    _floats_only(native.pop("embeddingTypes", ["float"]), "embeddingTypes", target)
    dimensions = body.get("dimensions") or target.deployment.dimensions
    if dimensions is not None:
        native["dimensions"] = dimensions
    return native


def _cohere_body(body: Mapping[str, Any], target: Target) -> dict[str, Any]:
    if body.get("dimensions") or target.deployment.dimensions:
        raise UnsupportedFeatureError(
            f"{target.label} (Cohere Embed v3 on Bedrock) has a fixed vector size and takes no 'dimensions'; remove it",
            param="dimensions",
        )
    texts = text_inputs(body, target, "Cohere on Bedrock")
    native: dict[str, Any] = {"texts": texts, "input_type": "search_document"}
    native |= native_fields(body, target, _COHERE_FIELDS, "Cohere on Bedrock")
    _floats_only(native.pop("embedding_types", ["float"]), "embedding_types", target)
    return native


def _floats_only(kinds: Any, param: str, target: Target) -> None:
    if kinds != ["float"]:
        raise UnsupportedFeatureError(
            f"{target.label} (Bedrock): polyroute asks for float vectors only and returns them as the request's "
            f"encoding_format asks, not {kinds!r}; remove {param}",
            param=param,
        )


BEDROCK = BedrockEmbeddings()
