"""Embeddings on Cohere: its v2 Embed API (``POST /v2/embed``).

https://docs.cohere.com/reference/embed; recorded in ``tests/fixtures/embeddings/pydantic-ai__TestCohere.*.yaml``::

    {"model": "embed-v4.0", "texts": ["…"], "input_type": "search_query", "embedding_types": ["float"],
     "output_dimension": 256, "truncate": "NONE"}
    → {"id", "embeddings": {"float": [[…]]}, "texts": […], "response_type": "embeddings_by_type",
       "meta": {"billed_units": {"input_tokens": 4}}}

``input_type`` is required by Cohere's v3 and newer models and has no OpenAI peer: a deployment's ``params`` or the
request's ``extra_body`` sets it, else documents are assumed (``search_document``, what an index is built from; a
retriever's queries are best sent with ``search_query``). ``dimensions`` is ``output_dimension``. Vectors are asked
as floats: the caller's ``encoding_format`` decides what it gets, so other ``embedding_types`` (int8, binary…) are
refused rather than quietly turned into floats. At most 96 texts per call (Cohere's limit), split by the Api.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from polyroute.embeddings import Unstreamed, as_requested, estimate_tokens, native_fields, text_inputs, unreadable
from polyroute.errors import UnsupportedFeatureError, UpstreamStatusError
from polyroute.providers import cohere
from polyroute.providers._base import Target, UpstreamRequest, dumps, loads

MAX_TEXTS = 96
"""Cohere's limit on texts per embed call."""

DEFAULT_INPUT_TYPE = "search_document"

_FIELDS: Mapping[str, str] = {
    "input_type": "input_type",
    "truncate": "truncate",
    "max_tokens": "max_tokens",
    "output_dimension": "output_dimension",
    "embedding_types": "embedding_types",
}
"""What a deployment's ``params`` or a request's ``extra_body`` may set."""


class CohereEmbeddings(Unstreamed):
    """Cohere's ``/v2/embed``."""

    def build_request(self, body: Mapping[str, Any], target: Target) -> UpstreamRequest:
        """The ``POST {base}/v2/embed`` request for ``target``."""
        texts = text_inputs(body, target, "Cohere")
        native: dict[str, Any] = {"model": target.model, "texts": texts, "input_type": DEFAULT_INPUT_TYPE}
        native |= native_fields(body, target, _FIELDS, "Cohere")
        kinds = native.get("embedding_types", ["float"])
        if kinds != ["float"]:
            raise UnsupportedFeatureError(
                f"{target.label} (Cohere): polyroute asks for float vectors only (embedding_types ['float']) and "
                f"returns them as the request's encoding_format asks, not {kinds!r}; remove embedding_types",
                param="embedding_types",
            )
        native["embedding_types"] = ["float"]
        dimensions = body.get("dimensions") or target.deployment.dimensions
        if dimensions is not None:
            native["output_dimension"] = dimensions
        headers = {"content-type": "application/json", "accept": "application/json", **target.auth_headers()}
        headers.update(target.deployment.headers)
        base = target.api_base.rstrip("/")
        url = base + ("/embed" if base.endswith("/v2") else "/v2/embed")
        return UpstreamRequest("POST", url, headers, dumps(native))

    def parse_response(self, content: bytes, target: Target, body: Mapping[str, Any]) -> dict[str, Any]:
        """``embeddings.float`` → OpenAI's answer; usage from ``meta.billed_units.input_tokens``."""
        answer: dict[str, Any] = loads(content)
        by_type: Mapping[str, Any] = answer.get("embeddings") or {}
        vectors: list[Any] = by_type.get("float") or []
        inputs: list[Any] = body["input"]
        if len(vectors) != len(inputs):
            raise unreadable(target, f"{len(vectors)} float embeddings for {len(inputs)} inputs")
        encoding = body.get("encoding_format", "float")
        meta: Mapping[str, Any] = answer.get("meta") or {}
        billed: Mapping[str, Any] = meta.get("billed_units") or {}
        prompt = billed.get("input_tokens")
        if not isinstance(prompt, int | float):
            prompt = estimate_tokens(inputs)
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": as_requested(vector, encoding)}
                for i, vector in enumerate(vectors)
            ],
            "model": target.model,
            "usage": {"prompt_tokens": int(prompt), "total_tokens": int(prompt)},
        }

    def classify_error(
        self, status: int, headers: Mapping[str, str], content: bytes, target: Target
    ) -> UpstreamStatusError:
        """Cohere's ``{"id", "message"}`` body, read by the chat adapter's reader."""
        return cohere.classify_error(status, headers, content, target)


COHERE = CohereEmbeddings()
