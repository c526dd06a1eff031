"""Embeddings on Google Vertex AI: Google's text embedding models through the ``:predict`` method.

https://cloud.google.com/vertex-ai/generative-ai/docs/embeddings/get-text-embeddings and
``model-reference/text-embeddings-api``; recorded in ``tests/fixtures/embeddings/pydantic-ai__TestGoogle.
test_vertex_query.yaml``::

    POST {base}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:predict
    {"instances": [{"content": "…", "task_type": "RETRIEVAL_QUERY", "title": "…"}],
     "parameters": {"outputDimensionality": 256, "autoTruncate": false}}
    → {"predictions": [{"embeddings": {"values": […], "statistics": {"token_count": 4, "truncated": false}}}],
       "metadata": {"billableCharacterCount": 12}}

``gemini-embedding-2`` models take ``:embedContent`` instead, one text per call, on the v1beta1 surface (recorded in
``pydantic-ai__test_google_task_prefix_vertex.yaml``)::

    POST {base}/v1beta1/projects/{project}/locations/{location}/publishers/google/models/{model}:embedContent
    {"content": {"parts": [{"text": "task: question answering | query: …"}]}, "outputDimensionality": 256}
    → {"embedding": {"values": […]}, "usageMetadata": {"promptTokenCount": 11, "totalTokenCount": 11}}

They take no task type field: the task is a prefix of the text, as above, so ``task_type`` for them is a 400 that
says so.

Host, project, location and the bearer token are the chat adapter's (:mod:`polyroute.providers.vertex`). Limits per
request: ``gemini-embedding-001`` takes one instance ("supports one instance per request"), the other ``:predict``
models 250; a batch is split into parts of that size by the Api. Task types are Gemini's (``task_type`` in a
deployment's ``params`` or the request's ``extra_body``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from polyroute.embeddings import Unstreamed, as_requested, estimate_tokens, native_fields, text_inputs, unreadable
from polyroute.errors import UnsupportedFeatureError, UpstreamStatusError
from polyroute.providers import gemini, vertex
from polyroute.providers._base import Target, UpstreamRequest, dumps, loads

MAX_INSTANCES = 250
"""Vertex's text embedding models: at most 250 input texts per request."""

SINGLE_INSTANCE_MODELS = ("gemini-embedding-001",)
"""Models that take one instance per request on Vertex (its docs: "gemini-embedding-001 supports one instance per
request")."""

_INSTANCE_FIELDS: Mapping[str, str] = {"task_type": "task_type", "taskType": "task_type", "title": "title"}
_PARAMETER_FIELDS: Mapping[str, str] = {
    "output_dimensionality": "outputDimensionality",
    "outputDimensionality": "outputDimensionality",
    "auto_truncate": "autoTruncate",
    "autoTruncate": "autoTruncate",
}
_DIMENSIONALITY: Mapping[str, str] = {
    "output_dimensionality": "outputDimensionality",
    "outputDimensionality": "outputDimensionality",
}
_FIELDS: Mapping[str, str] = {**_INSTANCE_FIELDS, **_PARAMETER_FIELDS}
"""What a deployment's ``params`` or a request's ``extra_body`` may set: per-instance fields and ``parameters``."""


def model_id(target: Target) -> str:
    """The model id as the URL names it (a ``publishers/google/models/`` prefix aside)."""
    return target.model.rsplit("/", 1)[-1]


EMBED_CONTENT_MODELS = ("gemini-embedding-2",)
"""Models served by ``:embedContent`` (one text per call) rather than ``:predict``."""


def uses_embed_content(target: Target) -> bool:
    """Whether the deployment's model is called through ``:embedContent``."""
    return model_id(target).startswith(EMBED_CONTENT_MODELS)


def batch_limit(target: Target) -> int:
    """Inputs per call for the deployment's model: one for ``:embedContent`` (its body holds one text), else the
    deployment's ``max_batch`` or the model's documented limit.
    """
    if uses_embed_content(target):
        return 1
    if target.deployment.max_batch:
        return target.deployment.max_batch
    return 1 if model_id(target).startswith(SINGLE_INSTANCE_MODELS) else MAX_INSTANCES


class VertexEmbeddings(Unstreamed):
    """Vertex's ``:predict`` for Google's embedding models."""

    def build_request(self, body: Mapping[str, Any], target: Target) -> UpstreamRequest:
        """The ``publishers/google/models/{model}:predict`` request, with a bearer token."""
        if vertex.is_claude(target.model):
            raise UnsupportedFeatureError(
                f"{target.label}: Claude makes no embeddings; route embeddings to a Google embedding model on Vertex "
                "(gemini-embedding-001, text-embedding-005)",
                param="model",
            )
        texts = text_inputs(body, target, "Vertex AI")
        if uses_embed_content(target):
            return _embed_content_request(texts, body, target)
        given = native_fields(body, target, _FIELDS, "Vertex AI")
        extra = {k: v for k, v in given.items() if k in _INSTANCE_FIELDS.values()}
        parameters = {k: v for k, v in given.items() if k in _PARAMETER_FIELDS.values()}
        dimensions = body.get("dimensions") or target.deployment.dimensions
        if dimensions is not None:
            parameters["outputDimensionality"] = dimensions
        native: dict[str, Any] = {"instances": [{"content": text, **extra} for text in texts]}
        if parameters:
            native["parameters"] = parameters
        return _request(target, "v1", "predict", native)

    def parse_response(self, content: bytes, target: Target, body: Mapping[str, Any]) -> dict[str, Any]:
        """``predictions[].embeddings.values`` → OpenAI's answer; usage from each ``statistics.token_count``."""
        answer: dict[str, Any] = loads(content)
        inputs: list[Any] = body["input"]
        if uses_embed_content(target):
            return _from_embed_content(answer, target, body)
        predictions: list[dict[str, Any]] = answer.get("predictions") or []
        if len(predictions) != len(inputs):
            raise unreadable(target, f"{len(predictions)} embeddings for {len(inputs)} inputs")
        encoding = body.get("encoding_format", "float")
        data: list[dict[str, Any]] = []
        counts: list[Any] = []
        for i, prediction in enumerate(predictions):
            embedding: Mapping[str, Any] = prediction["embeddings"]
            data.append({"object": "embedding", "index": i, "embedding": as_requested(embedding["values"], encoding)})
            statistics: Mapping[str, Any] = embedding.get("statistics") or {}
            counts.append(statistics.get("token_count"))
        exact = all(isinstance(n, int | float) for n in counts)
        prompt = int(sum(counts)) if exact else estimate_tokens(inputs)
        return {
            "object": "list",
            "data": data,
            "model": model_id(target),
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
        }

    def classify_error(
        self, status: int, headers: Mapping[str, str], content: bytes, target: Target
    ) -> UpstreamStatusError:
        """Vertex's ``google.rpc.Status`` body, read by the Gemini reader."""
        return gemini.classify_error(status, headers, content, target)


def _request(target: Target, version: str, method: str, native: Mapping[str, Any]) -> UpstreamRequest:
    model = quote(model_id(target), safe="@-._~")
    url = f"{vertex.base_url(target)}/{version}/projects/{vertex.project(target)}/locations/{vertex.location(target)}"
    url += f"/publishers/google/models/{model}:{method}"
    headers = {
        "content-type": "application/json",
        "accept": "application/json",
        "authorization": f"Bearer {vertex.token(target)}",
    }
    headers.update(target.deployment.headers)
    return UpstreamRequest("POST", url, headers, dumps(native))


def _embed_content_request(texts: list[str], body: Mapping[str, Any], target: Target) -> UpstreamRequest:
    """``:embedContent`` for one text (:func:`batch_limit` makes every part of a batch one text for these models)."""
    for source in (target.deployment.params, body):
        task = next((name for name in _INSTANCE_FIELDS if name in source), None)
        if task is not None:
            raise UnsupportedFeatureError(
                f"{target.label} (Vertex AI {model_id(target)}) takes no {task!r}: put the task in the text as a "
                "prefix instead, e.g. 'task: question answering | query: …'",
                param=task,
            )
    given = native_fields(body, target, _DIMENSIONALITY, f"Vertex AI {model_id(target)}")
    (text,) = texts
    native: dict[str, Any] = {"content": {"parts": [{"text": text}]}, **given}
    dimensions = body.get("dimensions") or target.deployment.dimensions
    if dimensions is not None:
        native["outputDimensionality"] = dimensions
    return _request(target, "v1beta1", "embedContent", native)


def _from_embed_content(answer: Mapping[str, Any], target: Target, body: Mapping[str, Any]) -> dict[str, Any]:
    embedding: Mapping[str, Any] = answer.get("embedding") or {}
    values = embedding.get("values")
    if not isinstance(values, list):
        raise unreadable(target, "no embedding values")
    usage: Mapping[str, Any] = answer.get("usageMetadata") or {}
    count = usage.get("promptTokenCount")
    prompt = count if isinstance(count, int) else estimate_tokens(body["input"])
    vector = as_requested(values, body.get("encoding_format", "float"))
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": vector}],
        "model": model_id(target),
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }


VERTEX = VertexEmbeddings()
