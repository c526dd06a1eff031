"""``POST /v1/embeddings``: OpenAI's embeddings API, served through the one request loop.

Routing, failover, cooldowns, rpm / tpm, errors and headers are the chat loop's (:mod:`polyroute.transport`); this
module says how to read the request, what to route on, how each provider speaks it, and how a batch larger than a
provider takes is split into parts (run concurrently, each with failover) and merged back in input order.

Wire formats:

- OpenAI's (``openai``, ``azure``, ``mistral``, ``together``, ``fireworks``, ``ollama``, ``openai-compatible`` and
  the mock): ``{"model", "input": [...], "dimensions", "encoding_format"}`` → ``{"data": [{"embedding", "index"}],
  "usage"}`` (https://platform.openai.com/docs/api-reference/embeddings/create);
- Gemini's ``models/{model}:batchEmbedContents`` (``google/ai/generativelanguage/v1beta/generative_service.proto``):
  one ``EmbedContentRequest`` per input, with ``outputDimensionality``, ``taskType`` and ``title``; at most 100 per
  batch ("BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch").
- the clouds' own, one module each beside this one: Vertex AI's ``:predict`` (:mod:`polyroute.embeddings_vertex`),
  Cohere's ``/v2/embed`` (:mod:`polyroute.embeddings_cohere`), Bedrock's ``InvokeModel`` for Titan and
  Cohere v3 (:mod:`polyroute.embeddings_bedrock`).

``encoding_format: base64`` (the openai SDK's default) is little-endian float32, base64-encoded: what the SDK
decodes. OpenAI and Azure are asked for it as the caller asked (their strings pass through untouched); other
providers are asked for floats, which are encoded here.
"""

from __future__ import annotations

import base64
import re
import sys
from array import array
from collections.abc import Mapping, Sequence
from typing import Any, cast
from urllib.parse import quote

from polyroute.api import RawAnswer, StreamFormat, post_only, price, stream_error_event
from polyroute.errors import InvalidRequestError, UnsupportedFeatureError, UpstreamError, UpstreamStatusError
from polyroute.failover import Profile
from polyroute.providers import openai
from polyroute.providers._base import Target, UpstreamRequest, dumps, loads
from polyroute.validation import json_object

OPENAI_MAX_INPUTS = 2048
"""OpenAI's limit on inputs per request ("'$.input' ... maximum 2048")."""

GEMINI_MAX_INPUTS = 100
"""Gemini's ``batchEmbedContents`` limit (recorded: "at most 100 requests can be in one batch")."""

_BATCH_LIMITS: Mapping[str, int] = {
    "openai": OPENAI_MAX_INPUTS,
    "azure": OPENAI_MAX_INPUTS,
    "openai-compatible": OPENAI_MAX_INPUTS,
    "mock": OPENAI_MAX_INPUTS,
    "gemini": GEMINI_MAX_INPUTS,
    "cohere": 96,  # embeddings_cohere.MAX_TEXTS (not imported here: that module imports this one)
}
_DEFAULT_BATCH = 128
"""Vendors that document a token budget per request rather than a count (Mistral, Together, Fireworks, Ollama):
a moderate batch; a deployment's ``max_batch`` overrides any limit."""

_TOKEN_INPUTS = frozenset({"openai", "azure", "openai-compatible", "mock"})
"""Providers that take token arrays as ``input`` (others get text only: a token array is a 400 for them)."""

_BASE64_UPSTREAM = frozenset({"openai", "azure", "mock"})
"""Providers asked for base64 as the caller asked; others are asked for floats, encoded here."""

EMBEDDING_FIELDS = frozenset({"model", "input", "dimensions", "encoding_format", "user"})
"""OpenAI's embeddings request fields; any other body field (``extra_body``) is the provider's own."""

_GEMINI_FIELDS: Mapping[str, str] = {
    "task_type": "taskType",
    "taskType": "taskType",
    "title": "title",
    "output_dimensionality": "outputDimensionality",
    "outputDimensionality": "outputDimensionality",
}
"""Gemini ``EmbedContentRequest`` fields a caller (``extra_body``) or a deployment (``params``) may set."""


# -- the request ---------------------------------------------------------------------------------------------------


def parse_request(raw: bytes) -> dict[str, Any]:
    """The request body, validated and with ``input`` as a list (a lone string or token array becomes a list of
    one: the answer is the same list of one embedding, as OpenAI's).
    """
    body = json_object(raw, "'model' and 'input'")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("'model' is required and must be a non-empty string", param="model")
    body["input"] = _inputs(body.get("input"))
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise InvalidRequestError(
            f"'encoding_format' must be 'float' or 'base64', got {encoding!r}", param="encoding_format"
        )
    dimensions = body.get("dimensions")
    if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1):
        raise InvalidRequestError(f"'dimensions' must be a positive integer, got {dimensions!r}", param="dimensions")
    if body.pop("stream", None):  # a false one is dropped: OpenAI's embeddings API has no such field
        raise InvalidRequestError("embeddings do not stream; remove 'stream'", param="stream")
    return body


def _inputs(value: Any) -> list[str] | list[list[int]]:
    """``input`` as a list of strings or a list of token arrays; anything else is a 400 that says what to send."""
    what = "a string, an array of strings, an array of token ids or an array of token-id arrays"
    items: list[Any] = cast("list[Any]", value) if isinstance(value, list) else []
    single_tokens = bool(items) and all(_is_token(t) for t in items)
    if isinstance(value, str) or single_tokens:
        value = [value]
    if not isinstance(value, list) or not value:
        raise InvalidRequestError(f"'input' is required and must be {what}, not empty", param="input")
    items = cast("list[Any]", value)
    if all(isinstance(item, str) for item in items):
        for i, item in enumerate(items):
            if not item:
                raise InvalidRequestError(f"'input[{i}]' is an empty string; every input needs text", param="input")
        return cast("list[str]", items)
    for i, item in enumerate(items):
        if not isinstance(item, list) or not item or not all(_is_token(t) for t in cast("list[Any]", item)):
            kind = type(cast("object", item)).__name__
            raise InvalidRequestError(
                f"'input[{i}]' is {kind}; 'input' must be {what}, one kind for all items", param="input"
            )
    return cast("list[list[int]]", items)


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def routing_profile(body: Mapping[str, Any]) -> Profile:
    """What the failover plan routes on: the model, and the longest input as the prompt.

    A context window bounds each input of a batch, not their sum, so the longest one is checked against it; the
    tokens actually used (the answer's usage) are charged to the deployment's tpm when the call ends.
    """
    inputs: list[Any] = body["input"]
    longest = max(len(cast("Sequence[Any]", item)) * (1 if isinstance(item, str) else 4) for item in inputs)
    return Profile(body["model"], longest // 4 + 4, 0, (), False)


def batch_limit(target: Target) -> int:
    """Most inputs one upstream request to ``target`` takes: its ``max_batch``, else the provider's limit."""
    if target.spec.adapter == "bedrock":
        from polyroute import embeddings_bedrock

        return embeddings_bedrock.batch_limit(target)
    if target.spec.adapter == "vertex":
        from polyroute import embeddings_vertex

        return embeddings_vertex.batch_limit(target)
    return target.deployment.max_batch or _BATCH_LIMITS.get(target.provider, _DEFAULT_BATCH)


def split_request(body: dict[str, Any], limit: int) -> list[dict[str, Any]] | None:
    """``body`` as requests of at most ``limit`` inputs each, in order; None when it fits in one."""
    inputs: list[Any] = body["input"]
    if len(inputs) <= limit:
        return None
    return [{**body, "input": inputs[i : i + limit]} for i in range(0, len(inputs), limit)]


def merge_answers(answers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One embeddings answer from the answers to consecutive parts of a batch: items renumbered in order, usage
    and cost summed.
    """
    data: list[dict[str, Any]] = []
    prompt = total = 0
    cost: float | None = None
    for answer in answers:
        for item in answer["data"]:
            data.append({**item, "index": len(data)})
        usage: Mapping[str, Any] = answer.get("usage") or {}
        prompt += usage.get("prompt_tokens", 0)
        total += usage.get("total_tokens", 0)
        if usage.get("cost") is not None:
            cost = (cost or 0.0) + usage["cost"]
    merged_usage: dict[str, Any] = {"prompt_tokens": prompt, "total_tokens": total}
    if cost is not None:
        merged_usage["cost"] = round(cost, 10)
    return {"object": "list", "data": data, "model": answers[0].get("model"), "usage": merged_usage}


# -- vectors -----------------------------------------------------------------------------------------------------


def encode_base64(vector: Sequence[float]) -> str:
    """A vector as OpenAI's base64: little-endian float32 bytes (what the openai SDK decodes)."""
    packed = array("f", vector)
    if sys.byteorder == "big":  # pragma: no cover - the wire format is little-endian whatever the host
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def decode_base64(text: str) -> list[float]:
    """OpenAI's base64 embedding → floats."""
    packed = array("f")
    packed.frombytes(base64.b64decode(text))
    if sys.byteorder == "big":  # pragma: no cover
        packed.byteswap()
    return packed.tolist()


def as_requested(vector: Any, encoding: str) -> Any:
    """A vector in the caller's ``encoding_format``, whichever form the provider sent."""
    if encoding == "base64":
        return vector if isinstance(vector, str) else encode_base64(vector)
    return decode_base64(vector) if isinstance(vector, str) else vector


def _as_sent(data: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]], fields: int) -> bool:
    """Whether the upstream's answer (in input order) already is the caller's: vectors in the asked encoding, no
    field beyond OpenAI's four (``object``, ``data``, ``model``, ``usage``) and three per vector.
    """
    if fields != 4:
        return False
    return all(
        sent["embedding"] is ours["embedding"] and len(sent) == 3 for sent, ours in zip(data, items, strict=True)
    )


def text_inputs(body: Mapping[str, Any], target: Target, api: str) -> list[str]:
    """The request's inputs, which must be text for ``api`` (token arrays are a 400 that says what to do)."""
    inputs: list[Any] = body["input"]
    if not isinstance(inputs[0], str):
        raise UnsupportedFeatureError(
            f"{target.label} ({api}) takes text inputs only, not token arrays; send strings or route to an OpenAI "
            "deployment",
            param="input",
        )
    return cast("list[str]", inputs)


def native_fields(body: Mapping[str, Any], target: Target, fields: Mapping[str, str], api: str) -> dict[str, Any]:
    """The provider's own fields a deployment's ``params`` or the request's ``extra_body`` set, by native name
    (``fields`` maps each accepted name to it); any other is a 400 naming it, never dropped.
    """
    native: dict[str, Any] = {}
    for source, where in ((target.deployment.params, "its deployment params"), (body, "the request")):
        for name, value in source.items():
            if where == "the request" and name in EMBEDDING_FIELDS:
                continue
            found = fields.get(name)
            if found is None:
                known = ", ".join(sorted(set(fields.values())))
                raise UnsupportedFeatureError(
                    f"{target.label} ({api}) has no embeddings field {name!r} (from {where}); it takes {known}",
                    param=name,
                )
            native[found] = value
    return native


def estimate_tokens(inputs: Sequence[Any]) -> int:
    """About four characters a token (a token array counts its ids): for providers that report no usage."""
    return sum((len(item) + 3) // 4 if isinstance(item, str) else len(item) for item in inputs)


# -- OpenAI's wire format ----------------------------------------------------------------------------------------


class Unstreamed:
    """What an embeddings adapter says to the stream half of the adapter interface: embeddings never stream (the
    API refuses ``stream: true`` before any deployment is tried).
    """

    def stream_decoder(self) -> Any:
        """Never used: embeddings do not stream."""
        raise NotImplementedError

    def stream_translator(self, target: Target, body: Any) -> Any:
        """Never used: embeddings do not stream."""
        raise NotImplementedError


class OpenAIEmbeddings(Unstreamed):
    """OpenAI's embeddings wire format, for OpenAI and the vendors that copy it (and the mock)."""

    def build_request(self, body: Mapping[str, Any], target: Target) -> UpstreamRequest:
        """The ``/embeddings`` request for ``target``."""
        provider = target.provider
        inputs: list[Any] = body["input"]
        if provider not in _TOKEN_INPUTS and not isinstance(inputs[0], str):
            raise UnsupportedFeatureError(
                f"{target.label} ({provider}) takes text inputs only, not token arrays; send strings or route to an "
                "OpenAI deployment",
                param="input",
            )
        rejected = sorted(target.spec.quirks.unsupported & body.keys())
        if rejected:
            raise UnsupportedFeatureError(
                f"{target.label} does not support '{rejected[0]}'; remove it or route to a deployment that does",
                param=rejected[0],
            )
        out: dict[str, Any] = {k: v for k, v in body.items() if k != "encoding_format"}
        out["model"] = target.model
        encoding = body.get("encoding_format", "float")
        if encoding == "base64" and provider in _BASE64_UPSTREAM:
            out["encoding_format"] = "base64"
        dimensions = body.get("dimensions") or target.deployment.dimensions
        if dimensions is not None:
            out["dimensions"] = dimensions
        if provider == "mistral" and "dimensions" in out:
            # https://docs.mistral.ai/api/#tag/embeddings: Mistral names it output_dimension
            out["output_dimension"] = out.pop("dimensions")
        if target.deployment.params:
            out.update(target.deployment.params)
        url, headers = openai.endpoint(target, "/embeddings")
        return UpstreamRequest("POST", url, headers, dumps(out))

    def parse_response(self, content: bytes, target: Target, body: Mapping[str, Any]) -> dict[str, Any]:
        """The provider's answer in OpenAI's shape, vectors in the caller's encoding, usage present."""
        answer: dict[str, Any] = loads(content)
        data: list[dict[str, Any]] = answer["data"]
        if len(data) != len(body["input"]):
            raise unreadable(target, f"{len(data)} embeddings for {len(body['input'])} inputs")
        encoding = body.get("encoding_format", "float")
        in_order = all(item.get("index") == i for i, item in enumerate(data))
        if not in_order:
            data.sort(key=lambda item: item["index"])
        items = [
            {"object": "embedding", "index": i, "embedding": as_requested(item["embedding"], encoding)}
            for i, item in enumerate(data)
        ]
        usage: Mapping[str, Any] = answer.get("usage") or {}
        prompt = usage.get("prompt_tokens")
        exact = isinstance(prompt, int) and usage.get("total_tokens") == prompt
        if not isinstance(prompt, int):
            prompt = estimate_tokens(body["input"])
        parsed = {
            "object": "list",
            "data": items,
            "model": answer.get("model") or target.model,
            "usage": {"prompt_tokens": prompt, "total_tokens": usage.get("total_tokens") or prompt},
        }
        if exact and in_order and answer.get("object") == "list" and _as_sent(data, items, len(answer)):
            return RawAnswer(parsed, content)  # the upstream's bytes are the answer: no second encoding
        return parsed

    def classify_error(
        self, status: int, headers: Mapping[str, str], content: bytes, target: Target
    ) -> UpstreamStatusError:
        """OpenAI's error body, read by the chat adapter's reader."""
        return openai.classify_error(status, headers, content, target)


# -- Gemini ------------------------------------------------------------------------------------------------------


class GeminiEmbeddings(Unstreamed):
    """Gemini's ``batchEmbedContents``: one ``EmbedContentRequest`` per input."""

    def build_request(self, body: Mapping[str, Any], target: Target) -> UpstreamRequest:
        """The ``models/{model}:batchEmbedContents`` request for ``target``."""
        inputs = text_inputs(body, target, "Gemini")
        common = native_fields(body, target, _GEMINI_FIELDS, "Gemini")
        dimensions = body.get("dimensions") or target.deployment.dimensions
        if dimensions is not None:
            common["outputDimensionality"] = dimensions
        model = _gemini_model(target.model)
        requests = [{"model": model, "content": {"parts": [{"text": text}]}, **common} for text in inputs]
        base = target.api_base.rstrip("/")
        if not re.search(r"/v1(alpha|beta)?\d*$", base):
            base += "/v1beta"
        url = f"{base}/{quote(model, safe='/-._~')}:batchEmbedContents"
        headers = {"content-type": "application/json", "accept": "application/json", **target.auth_headers()}
        headers.update(target.deployment.headers)
        return UpstreamRequest("POST", url, headers, dumps({"requests": requests}))

    def parse_response(self, content: bytes, target: Target, body: Mapping[str, Any]) -> dict[str, Any]:
        """``{"embeddings": [{"values": […]}]}`` → OpenAI's answer; Gemini reports no token counts: estimated."""
        answer: dict[str, Any] = loads(content)
        embeddings: list[dict[str, Any]] = answer["embeddings"]
        inputs: list[Any] = body["input"]
        if len(embeddings) != len(inputs):
            raise unreadable(target, f"{len(embeddings)} embeddings for {len(inputs)} inputs")
        encoding = body.get("encoding_format", "float")
        prompt = estimate_tokens(inputs)
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": as_requested(item["values"], encoding)}
                for i, item in enumerate(embeddings)
            ],
            "model": target.model,
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
        }

    def classify_error(
        self, status: int, headers: Mapping[str, str], content: bytes, target: Target
    ) -> UpstreamStatusError:
        """Gemini's ``google.rpc.Status`` body, read by the chat adapter's reader."""
        from polyroute.providers import gemini

        return gemini.classify_error(status, headers, content, target)


def _gemini_model(model: str) -> str:
    return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"


def unreadable(target: Target, what: str) -> UpstreamStatusError:
    """A 502 for an upstream answer that does not fit the request (e.g. fewer vectors than inputs)."""
    return UpstreamStatusError(
        f"{target.label} returned {what}", provider=target.provider, deployment=target.label, status=502
    )


_OPENAI = OpenAIEmbeddings()
_GEMINI = GeminiEmbeddings()


# -- the Api -----------------------------------------------------------------------------------------------------


class _NoStream:
    """Embeddings never stream; the loop never asks (the request has no ``stream``)."""

    def encode(self, item: Any, target: Target) -> bytes:
        """Never called."""
        raise NotImplementedError

    def is_content(self, item: Any) -> bool:
        """Never called."""
        raise NotImplementedError

    def done(self) -> bytes:
        """Never called."""
        raise NotImplementedError

    def error(self, exc: UpstreamError) -> bytes:
        """Never called; an event like chat's if it were."""
        return stream_error_event(exc)


class EmbeddingsApi:
    """``POST /v1/embeddings``."""

    name = "embeddings"
    stream_format: StreamFormat = _NoStream()

    def local(
        self, method: str, path: str, transport: Any, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Any] | None:
        """Nothing is local; only POST is served (:func:`~polyroute.api.post_only`)."""
        if method != "POST":
            raise post_only(method, path)
        return None

    def parse(self, raw: bytes, transport: Any, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The validated request, for a route that serves embeddings (a chat route is a 400 that says so)."""
        body = parse_request(raw)
        transport.router.require_mode(body["model"], "embedding")
        return body

    def routing(self, body: dict[str, Any]) -> Profile:
        """The model, and the longest input as the prompt (:func:`routing_profile`)."""
        return routing_profile(body)

    def adapter(self, target: Target, body: dict[str, Any]) -> Any:
        """OpenAI's wire format, Gemini's, Vertex's ``:predict``, Cohere's ``/v2/embed`` or Bedrock's
        ``InvokeModel`` (Titan, Cohere v3); other providers have no embeddings API polyroute speaks.
        """
        match target.spec.adapter:
            case "openai" | "mock":
                return _OPENAI
            case "gemini":
                return _GEMINI
            case "vertex":
                from polyroute.embeddings_vertex import VERTEX

                return VERTEX
            case "cohere":
                from polyroute.embeddings_cohere import COHERE

                return COHERE
            case "bedrock":
                from polyroute.embeddings_bedrock import BEDROCK

                return BEDROCK
            case _:
                raise UnsupportedFeatureError(
                    f"{target.label}: polyroute does not speak {target.provider}'s embeddings API; route embeddings "
                    "to openai, azure, gemini, vertex, cohere, bedrock (Titan, Cohere v3), mistral, together, "
                    "fireworks, ollama or openai-compatible",
                    param="model",
                )

    def finish(self, answer: Any, target: Target) -> float | None:
        """Price the input tokens (embeddings have no output)."""
        return price(target, answer["usage"])

    def split(self, body: dict[str, Any], transport: Any) -> list[Any] | None:
        """Parts no larger than the smallest batch limit of any deployment the call may reach (its route's and
        its fallbacks'), so whichever serves a part takes it whole.
        """
        router = transport.router
        route = router.route(body["model"])
        targets = list(route.targets)
        for name in route.fallbacks:
            targets.extend(router.route(name).targets)
        return split_request(body, min(batch_limit(t) for t in targets))

    def merge(self, answers: list[Any]) -> Any:
        """The parts' answers as one, in input order."""
        return merge_answers(answers)


EMBEDDINGS = EmbeddingsApi()
