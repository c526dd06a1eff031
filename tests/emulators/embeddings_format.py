"""Embeddings emulators: OpenAI's ``POST /v1/embeddings`` (and Azure's deployment URL), Gemini's
``models/{model}:batchEmbedContents``, Vertex's ``:predict``, Cohere's ``/v2/embed`` and Bedrock's
``InvokeModel`` (Titan, Cohere v3), as strict as the real APIs.

OpenAI (https://platform.openai.com/docs/api-reference/embeddings/create, and the recordings in
``tests/fixtures/embeddings``): a bearer key; only ``model``, ``input``, ``dimensions``, ``encoding_format`` and
``user``; ``input`` a non-empty string, array of non-empty strings, token array or array of token arrays, at most
2048 items and 300,000 tokens per request; ``dimensions`` only on ``text-embedding-3-*``; base64 is little-endian
float32; an unknown model is a 404 ``model_not_found``. Compact JSON out.

Gemini (``generative_service.proto``; recordings ``pydantic-ai__TestGoogle.*``, ``vercel-ai__google-embedding-
batch-limit-error.json``): the key in ``x-goog-api-key`` only; the body has only ``requests``, each naming the
path's model, with ``content.parts[].text`` and optionally ``taskType``, ``title`` (only with
``RETRIEVAL_DOCUMENT``) and ``outputDimensionality``; at most 100 requests. Answers are pretty-printed JSON, as
Google's are.

Vectors are deterministic per (model, text): :func:`vector` lets a test check which input an answer row belongs to.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
from collections.abc import Mapping
from typing import Any

from tests.emulators.server import Reply, Request

OPENAI_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
GEMINI_DIMENSIONS = {"gemini-embedding-001": 3072, "text-embedding-004": 768}
_OPENAI_FIELDS = frozenset({"model", "input", "dimensions", "encoding_format", "user"})
_GEMINI_REQUEST_FIELDS = frozenset({"model", "content", "taskType", "title", "outputDimensionality"})
_TASK_TYPES = frozenset(
    {
        "TASK_TYPE_UNSPECIFIED",
        "RETRIEVAL_QUERY",
        "RETRIEVAL_DOCUMENT",
        "SEMANTIC_SIMILARITY",
        "CLASSIFICATION",
        "CLUSTERING",
        "QUESTION_ANSWERING",
        "FACT_VERIFICATION",
        "CODE_RETRIEVAL_QUERY",
    }
)
_GEMINI_PATH = re.compile(r"^/v1beta/(?P<model>models/[^:]+):batchEmbedContents$")


def vector(model: str, text: str, size: int) -> list[float]:
    """The emulator's embedding of ``text`` by ``model``: a fixed function of both (float32-exact values)."""
    digest = hashlib.sha256(f"{model}\0{text}".encode()).digest()
    values = [(digest[i % len(digest)] - 127.5) / 128.0 + i / (size * 8.0) for i in range(size)]
    return list(struct.unpack(f"<{size}f", struct.pack(f"<{size}f", *values)))


def decode(text: str) -> list[float]:
    """OpenAI's base64 vector (little-endian float32) → floats."""
    raw = base64.b64decode(text)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def _openai_error(status: int, message: str, code: str | None = None, param: str | None = None) -> Reply:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    body = json.dumps({"error": error}, separators=(",", ":")).encode()
    return Reply(status=status, body=body, headers={"content-type": "application/json"})


def openai_handler(*, azure: bool = False, model: str | None = None):
    """A handler for ``/v1/embeddings`` (or Azure's ``/openai/deployments/{model}/embeddings?api-version=…``, serving
    ``model``).
    """

    def handle(request: Request) -> Reply:
        if azure:
            match = re.fullmatch(r"/openai/deployments/(?P<deployment>[^/]+)/embeddings", request.path)
            if match is None or not request.query.get("api-version"):
                return _openai_error(404, "Resource not found")
            if not request.headers.get("api-key"):
                return _openai_error(401, "Access denied due to missing subscription key.")
            served = match["deployment"]
        else:
            if request.path != "/v1/embeddings":
                return _openai_error(404, f"Invalid URL (POST {request.path})")
            if not request.headers.get("authorization", "").startswith("Bearer "):
                return _openai_error(401, "You didn't provide an API key.")
            served = None
        body: dict[str, Any] = request.json()
        unknown = sorted(set(body) - _OPENAI_FIELDS)
        if unknown:
            return _openai_error(400, f"Unrecognized request argument supplied: {unknown[0]}")
        name = served or body.get("model")
        if served is None and name not in OPENAI_DIMENSIONS:
            return _openai_error(
                404, f"The model `{name}` does not exist or you do not have access to it.", "model_not_found"
            )
        name = model or name
        assert isinstance(name, str)
        texts = _openai_inputs(body.get("input"))
        if isinstance(texts, Reply):
            return texts
        dimensions = body.get("dimensions")
        if dimensions is not None and not name.startswith("text-embedding-3"):
            return _openai_error(400, "This model does not support specifying dimensions.", param="dimensions")
        size = dimensions or OPENAI_DIMENSIONS.get(name, 1536)
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            return _openai_error(400, f"'{encoding}' is not one of ['float', 'base64'] - 'encoding_format'")
        tokens = sum((len(t) + 3) // 4 if isinstance(t, str) else len(t) for t in texts)
        if tokens > 300_000:
            return Reply.json(
                {
                    "error": {
                        "message": f"Requested {tokens} tokens, max 300000 tokens per request",
                        "type": "max_tokens_per_request",
                        "param": None,
                        "code": "max_tokens_per_request",
                    }
                },
                status=400,
            )
        data: list[dict[str, Any]] = []
        for i, text in enumerate(texts):
            values = vector(name, text if isinstance(text, str) else json.dumps(text), size)
            embedding: Any = values
            if encoding == "base64":
                embedding = base64.b64encode(struct.pack(f"<{size}f", *values)).decode()
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        answer = {
            "object": "list",
            "data": data,
            "model": name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        headers = {"content-type": "application/json", "x-request-id": "req_emb"}
        return Reply(body=json.dumps(answer, separators=(",", ":")).encode(), headers=headers)

    return handle


def _openai_inputs(value: Any) -> list[Any] | Reply:
    invalid = _openai_error(
        400, "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."
    )
    if isinstance(value, str):
        return [value] if value else invalid
    if not isinstance(value, list) or not value:
        return invalid
    items: list[Any] = value
    if all(isinstance(t, int) for t in items):
        return [items]
    if len(items) > 2048:
        return invalid
    for item in items:
        if isinstance(item, str):
            if not item:
                return invalid
        elif not (isinstance(item, list) and item and all(isinstance(t, int) for t in item)):
            return invalid
    return items


def _gemini_error(status: int, rpc_status: str, message: str) -> Reply:
    body = json.dumps({"error": {"code": status, "message": message, "status": rpc_status}}, indent=2)
    return Reply(status=status, body=body, headers={"content-type": "application/json; charset=UTF-8"})


def gemini_handler():
    """A handler for ``POST /v1beta/models/{model}:batchEmbedContents``."""

    def handle(request: Request) -> Reply:
        match = _GEMINI_PATH.match(request.path)
        if match is None:
            return _gemini_error(404, "NOT_FOUND", f"Method not found: {request.path}")
        if "key" in request.query or not request.headers.get("x-goog-api-key"):
            return _gemini_error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established identity).",
            )
        model = match["model"]
        short = model.removeprefix("models/")
        if short not in GEMINI_DIMENSIONS:
            return _gemini_error(
                404,
                "NOT_FOUND",
                f"{model} is not found for API version v1beta, or is not supported for embedContent. Call ListModels "
                "to see the list of available models and their supported methods.",
            )
        body: dict[str, Any] = request.json()
        if set(body) != {"requests"}:
            extra = sorted(set(body) - {"requests"})
            return _gemini_error(
                400,
                "INVALID_ARGUMENT",
                f'Invalid JSON payload received. Unknown name "{extra[0] if extra else "requests"}"',
            )
        requests: list[Mapping[str, Any]] = body["requests"]
        if len(requests) > 100:
            return _gemini_error(
                400,
                "INVALID_ARGUMENT",
                "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n",
            )
        embeddings: list[dict[str, Any]] = []
        for i, item in enumerate(requests):
            problem = _gemini_request_problem(item, model, i)
            if problem:
                return _gemini_error(400, "INVALID_ARGUMENT", problem)
            text = "".join(part["text"] for part in item["content"]["parts"])
            size = item.get("outputDimensionality") or GEMINI_DIMENSIONS[short]
            embeddings.append({"values": vector(short, text, size)})
        return Reply(
            body=json.dumps({"embeddings": embeddings}, indent=2),
            headers={"content-type": "application/json; charset=UTF-8"},
        )

    return handle


def _gemini_request_problem(item: Mapping[str, Any], model: str, i: int) -> str | None:
    unknown = sorted(set(item) - _GEMINI_REQUEST_FIELDS)
    if unknown:
        return f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at 'requests[{i}]': Cannot find field."
    if item.get("model") != model:
        return f"* BatchEmbedContentsRequest.requests[{i}].model: The model in the request must match the batch model {model}\n"
    parts = (item.get("content") or {}).get("parts")
    if not parts or not all(isinstance(p, dict) and set(p) == {"text"} and p["text"] for p in parts):
        return f"* BatchEmbedContentsRequest.requests[{i}].content.parts: contents must not be empty\n"
    task = item.get("taskType")
    if task is not None and task not in _TASK_TYPES:
        return f"Invalid value at 'requests[{i}].task_type' (type.googleapis.com/google.ai.generativelanguage.v1beta.TaskType), \"{task}\""
    if item.get("title") and task != "RETRIEVAL_DOCUMENT":
        return f"* BatchEmbedContentsRequest.requests[{i}].title: title is only applicable when task_type is RETRIEVAL_DOCUMENT\n"
    size = item.get("outputDimensionality")
    if size is not None and (not isinstance(size, int) or size < 1):
        return f"* BatchEmbedContentsRequest.requests[{i}].output_dimensionality: must be positive\n"
    return None


VERTEX_DIMENSIONS = {"gemini-embedding-001": 3072, "text-embedding-005": 768, "text-multilingual-embedding-002": 768}
_VERTEX_INSTANCE_FIELDS = frozenset({"content", "task_type", "title"})
_VERTEX_PARAMETERS = frozenset({"autoTruncate", "outputDimensionality"})
_VERTEX_PATH = re.compile(
    r"^/v1(?:beta1)?/projects/[^/]+/locations/[^/]+/publishers/google/models/(?P<model>[^:/]+):predict$"
)
_VERTEX_EMBED_CONTENT_PATH = re.compile(
    r"^/v1beta1/projects/[^/]+/locations/[^/]+/publishers/google/models/(?P<model>[^:/]+):embedContent$"
)
EMBED_CONTENT_DIMENSIONS = {"gemini-embedding-2": 3072}


def vertex_predict_handler():
    """A handler for Vertex's ``publishers/google/models/{model}:predict`` with text embedding models (behind
    :class:`tests.emulators.vertex_format.VertexEmulator`, which checks the token, project and location).

    As documented (get-text-embeddings, text-embeddings-api) and recorded (``pydantic-ai__TestGoogle.
    test_vertex_query.yaml``): the body has ``instances`` and optionally ``parameters`` (``autoTruncate``,
    ``outputDimensionality``) and nothing else; each instance a non-empty ``content`` with optionally ``task_type``
    and ``title`` (only with ``RETRIEVAL_DOCUMENT``); ``gemini-embedding-001`` takes one instance per request, the
    others 250. Answers carry ``statistics.token_count`` per prediction and ``metadata.billableCharacterCount``.

    ``gemini-embedding-2`` answers ``:embedContent`` (v1beta1, as recorded in ``pydantic-ai__test_google_task_prefix_
    vertex.yaml``): ``content.parts[].text`` and optionally ``outputDimensionality``, nothing else (no task type:
    the task is a prefix of the text); ``embedding.values`` and ``usageMetadata`` back.
    """

    def handle(request: Request) -> Reply:
        embed_content = _VERTEX_EMBED_CONTENT_PATH.match(request.path)
        if embed_content is not None:
            return _vertex_embed_content(embed_content["model"], request.json())
        match = _VERTEX_PATH.match(request.path)
        if match is None:
            return _gemini_error(404, "NOT_FOUND", f"Method not found: {request.path}")
        model = match["model"]
        if model not in VERTEX_DIMENSIONS:
            return _gemini_error(
                404,
                "NOT_FOUND",
                f"Publisher Model `publishers/google/models/{model}` was not found or your project does not have "
                "access to it.",
            )
        body: dict[str, Any] = request.json()
        unknown = sorted(set(body) - {"instances", "parameters"})
        if unknown:
            return _gemini_error(
                400,
                "INVALID_ARGUMENT",
                f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.',
            )
        instances = body.get("instances")
        if not isinstance(instances, list) or not instances:
            return _gemini_error(400, "INVALID_ARGUMENT", "instances must be a non-empty list")
        limit = 1 if model == "gemini-embedding-001" else 250
        if len(instances) > limit:
            return _gemini_error(
                400,
                "INVALID_ARGUMENT",
                f"Unable to submit request because the model {model} supports up to {limit} instance(s) per "
                f"request, but {len(instances)} were given.",
            )
        parameters: Mapping[str, Any] = body.get("parameters") or {}
        unknown = sorted(set(parameters) - _VERTEX_PARAMETERS)
        if unknown:
            return _gemini_error(400, "INVALID_ARGUMENT", f'Invalid parameter "{unknown[0]}".')
        size = parameters.get("outputDimensionality") or VERTEX_DIMENSIONS[model]
        if not isinstance(size, int) or not 1 <= size <= VERTEX_DIMENSIONS[model]:
            return _gemini_error(
                400, "INVALID_ARGUMENT", f"outputDimensionality must be in [1, {VERTEX_DIMENSIONS[model]}]."
            )
        predictions: list[dict[str, Any]] = []
        characters = 0
        for i, instance in enumerate(instances):
            problem = _vertex_instance_problem(instance, i)
            if problem:
                return _gemini_error(400, "INVALID_ARGUMENT", problem)
            text: str = instance["content"]
            characters += len(text.replace(" ", ""))
            statistics = {"token_count": (len(text) + 3) // 4, "truncated": False}
            predictions.append({"embeddings": {"statistics": statistics, "values": vector(model, text, size)}})
        answer = {"predictions": predictions, "metadata": {"billableCharacterCount": characters}}
        return Reply(body=json.dumps(answer, indent=2), headers={"content-type": "application/json; charset=UTF-8"})

    return handle


def _vertex_embed_content(model: str, body: dict[str, Any]) -> Reply:
    if model not in EMBED_CONTENT_DIMENSIONS:
        return _gemini_error(
            404,
            "NOT_FOUND",
            f"Publisher Model `publishers/google/models/{model}` was not found or your project does not have access "
            "to it.",
        )
    unknown = sorted(set(body) - {"content", "outputDimensionality"})
    if unknown:
        return _gemini_error(
            400, "INVALID_ARGUMENT", f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.'
        )
    parts = (body.get("content") or {}).get("parts")
    if not parts or not all(isinstance(p, dict) and set(p) == {"text"} and p["text"] for p in parts):
        return _gemini_error(400, "INVALID_ARGUMENT", "content.parts must hold non-empty text parts")
    size = body.get("outputDimensionality") or EMBED_CONTENT_DIMENSIONS[model]
    if not isinstance(size, int) or not 1 <= size <= EMBED_CONTENT_DIMENSIONS[model]:
        return _gemini_error(
            400, "INVALID_ARGUMENT", f"outputDimensionality must be in [1, {EMBED_CONTENT_DIMENSIONS[model]}]."
        )
    text = "".join(part["text"] for part in parts)
    tokens = (len(text) + 3) // 4
    answer = {
        "embedding": {"values": vector(model, text, size)},
        "usageMetadata": {
            "promptTokenCount": tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}],
            "totalTokenCount": tokens,
        },
    }
    return Reply(body=json.dumps(answer, indent=2), headers={"content-type": "application/json; charset=UTF-8"})


def _vertex_instance_problem(instance: Any, i: int) -> str | None:
    if not isinstance(instance, dict):
        return f"instances[{i}] must be an object"
    item: dict[str, Any] = instance
    unknown = sorted(set(item) - _VERTEX_INSTANCE_FIELDS)
    if unknown:
        return f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at 'instances[{i}]': Cannot find field."
    if not isinstance(item.get("content"), str) or not item["content"]:
        return f"instances[{i}].content must be a non-empty string"
    task = item.get("task_type")
    if task is not None and task not in _TASK_TYPES:
        return f"instances[{i}].task_type: unsupported task type {task!r}"
    if item.get("title") and task != "RETRIEVAL_DOCUMENT":
        return f"instances[{i}].title is only valid with task_type RETRIEVAL_DOCUMENT"
    return None


COHERE_DIMENSIONS = {
    "embed-v4.0": 1536,
    "embed-english-v3.0": 1024,
    "embed-multilingual-v3.0": 1024,
    "embed-english-light-v3.0": 384,
    "embed-multilingual-light-v3.0": 384,
}
_COHERE_FIELDS = frozenset(
    {
        "model",
        "texts",
        "images",
        "inputs",
        "input_type",
        "embedding_types",
        "output_dimension",
        "max_tokens",
        "truncate",
    }
)
_COHERE_INPUT_TYPES = frozenset({"search_document", "search_query", "classification", "clustering", "image"})
_COHERE_TYPES = frozenset({"float", "int8", "uint8", "binary", "ubinary", "base64"})


def cohere_embed_handler():
    """A handler for Cohere's ``POST /v2/embed`` (https://docs.cohere.com/reference/embed; recordings
    ``pydantic-ai__TestCohere.*``, ``langchain-cohere__*embedding*``): the bearer key of
    :data:`tests.emulators.cohere_format.KEY`; only the v2 fields; ``model`` one it serves (else the recorded 404);
    ``texts`` 1 to 96 non-empty strings; ``input_type`` required (v3 and newer) and one of Cohere's; ``embedding_types``
    among Cohere's (default float); ``output_dimension`` only on ``embed-v4.0`` and one of 256, 512, 1024, 1536;
    ``truncate`` NONE, START or END. Answers ``embeddings_by_type`` with ``meta.billed_units.input_tokens``, compact.
    """
    from tests.emulators import cohere_format

    def invalid(message: str) -> Reply:
        return cohere_format.error(400, f"invalid request: {message}")

    def handle(request: Request) -> Reply:
        if request.method != "POST" or request.path != "/v2/embed":
            return cohere_format.error(404, f"{request.method} {request.path} not found")
        if request.headers.get("authorization") != f"Bearer {cohere_format.KEY}":
            return cohere_format.error(401, "invalid api token")
        body: dict[str, Any] = request.json()
        unknown = sorted(set(body) - _COHERE_FIELDS)
        if unknown:
            return invalid(f"unknown field(s) {', '.join(unknown)}")
        model = body.get("model")
        if model not in COHERE_DIMENSIONS:
            return cohere_format.error(
                404,
                f"model '{model}' not found, make sure the correct model ID was used and that you have access to the "
                "model.",
            )
        texts = body.get("texts")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
            return invalid("texts must be a non-empty list of non-empty strings")
        if len(texts) > 96:
            return invalid(f"texts can contain at most 96 items, got {len(texts)}")
        if body.get("input_type") not in _COHERE_INPUT_TYPES:
            return invalid(
                "input_type is required for embed models v3 and higher, and must be one of "
                + ", ".join(sorted(_COHERE_INPUT_TYPES))
            )
        kinds = body.get("embedding_types") or ["float"]
        if not set(kinds) <= _COHERE_TYPES:
            return invalid(f"embedding_types must be among {', '.join(sorted(_COHERE_TYPES))}")
        size = body.get("output_dimension")
        if size is not None:
            if model != "embed-v4.0":
                return invalid(f"output_dimension is not supported for {model}")
            if size not in (256, 512, 1024, 1536):
                return invalid("output_dimension must be one of 256, 512, 1024, 1536")
        if body.get("truncate") not in (None, "NONE", "START", "END"):
            return invalid("truncate must be one of NONE, START, END")
        size = size or COHERE_DIMENSIONS[model]
        floats = [vector(model, text, size) for text in texts]
        by_type: dict[str, Any] = {}
        for kind in kinds:
            if kind == "float":
                by_type["float"] = floats
            elif kind == "int8":
                by_type["int8"] = [[max(-128, min(127, round(v * 127))) for v in values] for values in floats]
            else:
                return invalid(f"the emulator does not produce {kind} embeddings")
        tokens = sum((len(t) + 3) // 4 for t in texts)
        answer = {
            "id": "emu-embed",
            "embeddings": by_type,
            "texts": texts,
            "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}},
            "response_type": "embeddings_by_type",
        }
        return Reply(
            body=json.dumps(answer, separators=(",", ":")).encode(),
            headers={"content-type": "application/json", "num_tokens": str(tokens)},
        )

    return handle


TITAN_DIMENSIONS = {"amazon.titan-embed-text-v2:0": 1024, "amazon.titan-embed-text-v1": 1536}
BEDROCK_COHERE_DIMENSIONS = {"cohere.embed-english-v3": 1024, "cohere.embed-multilingual-v3": 1024}
_BEDROCK_COHERE_FIELDS = frozenset({"texts", "images", "input_type", "truncate", "embedding_types"})
_TITAN_V2_FIELDS = frozenset({"inputText", "dimensions", "normalize", "embeddingTypes"})


def titan_vector(model: str, text: str, size: int, normalize: bool = True) -> list[float]:
    """The Titan emulator's vector: :func:`vector`, scaled to unit length when ``normalize`` (Titan v2's default)."""
    values = vector(model, text, size)
    if not normalize:
        return values
    norm = sum(v * v for v in values) ** 0.5
    return list(struct.unpack(f"<{size}f", struct.pack(f"<{size}f", *(v / norm for v in values))))


def bedrock_embed_handler():
    """A handler for Bedrock's ``POST /model/{modelId}/invoke`` with its text embedding models, SigV4 or the API key
    checked as for Converse (:func:`tests.emulators.bedrock_format.check_auth`); any key a model does not take is the
    ``ValidationException`` Bedrock sends ("Malformed input request: #: extraneous key […] is not permitted").

    - Titan (model-parameters-titan-embed-text; recording ``pydantic-ai__TestBedrock.test_titan_v2_with_dimensions.
      yaml``): one non-empty ``inputText``; v2 also ``dimensions`` (256, 512, 1024), ``normalize`` (default true)
      and ``embeddingTypes``, v1 nothing else. Answers ``embedding``, ``embeddingsByType`` (v2) and
      ``inputTextTokenCount``.
    - Cohere Embed v3 (model-parameters-embed-v3): ``texts`` (at most 96, each at most 2,048 characters),
      ``input_type`` required, ``truncate``, ``embedding_types``. Answers ``embeddings_floats`` (a list of vectors),
      or ``embeddings_by_type`` when ``embedding_types`` is sent; the token count only in the
      ``x-amzn-bedrock-input-token-count`` header.
    """
    from urllib.parse import unquote

    from tests.emulators import bedrock_format as br

    def malformed(problem: str) -> Reply:
        return br.invalid(f"Malformed input request: {problem}, please reformat your input and try again.")

    def handle(request: Request) -> Reply:
        match = re.fullmatch(r"/model/([^/]+)/invoke", request.path)
        if request.method != "POST" or match is None:
            return br.error(404, "UnknownOperationException", f"{request.method} {request.path}")
        problem = br.check_auth(request)
        if problem is not None:
            return problem
        model = unquote(match.group(1))
        if model not in TITAN_DIMENSIONS and model not in BEDROCK_COHERE_DIMENSIONS:
            return br.invalid("The provided model identifier is invalid.")
        try:
            body: dict[str, Any] = request.json()
        except ValueError:
            return br.error(400, "SerializationException", "Could not parse the request body as JSON")
        if model in BEDROCK_COHERE_DIMENSIONS:
            return _bedrock_cohere(model, body, malformed)
        allowed = _TITAN_V2_FIELDS if model.endswith("v2:0") else frozenset({"inputText"})
        extra = sorted(set(body) - allowed)
        if extra:
            return malformed(f"#: extraneous key [{extra[0]}] is not permitted")
        text = body.get("inputText")
        if not isinstance(text, str):
            return malformed("#: required key [inputText] not found")
        if not text:
            return malformed("#/inputText: expected minLength: 1, actual: 0")
        size = body.get("dimensions", TITAN_DIMENSIONS[model])
        if model.endswith("v2:0") and size not in (256, 512, 1024):
            return malformed(f"#/dimensions: {size} is not a valid enum value")
        normalize = body.get("normalize", True)
        if not isinstance(normalize, bool):
            return malformed(f"#/normalize: expected type: Boolean, found: {type(normalize).__name__}")
        if not set(body.get("embeddingTypes", ["float"])) <= {"float", "binary"}:
            return malformed("#/embeddingTypes: not a valid enum value")
        values = titan_vector(model, text, size, normalize)
        tokens = (len(text) + 3) // 4
        answer: dict[str, Any] = {"embedding": values, "inputTextTokenCount": tokens}
        if model.endswith("v2:0"):
            answer["embeddingsByType"] = {"float": values}
        headers = {"x-amzn-requestid": "emu-titan", "x-amzn-bedrock-input-token-count": str(tokens)}
        return Reply(body=answer, headers=headers)

    return handle


def _bedrock_cohere(model: str, body: dict[str, Any], malformed: Any) -> Reply:
    extra = sorted(set(body) - _BEDROCK_COHERE_FIELDS)
    if extra:
        return malformed(f"#: extraneous key [{extra[0]}] is not permitted")
    texts = body.get("texts")
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        return malformed("#: required key [texts] not found")
    if len(texts) > 96:
        return malformed(f"#/texts: expected maxItems: 96, actual: {len(texts)}")
    for i, text in enumerate(texts):
        if len(text) > 2048:
            return malformed(f"#/texts/{i}: expected maxLength: 2048, actual: {len(text)}")
    if "input_type" not in body:
        return malformed("#: required key [input_type] not found")
    if body["input_type"] not in _COHERE_INPUT_TYPES:
        return malformed(f"#/input_type: {body['input_type']} is not a valid enum value")
    if body.get("truncate", "NONE") not in ("NONE", "START", "END"):
        return malformed(f"#/truncate: {body['truncate']} is not a valid enum value")
    floats = [vector(model, text, BEDROCK_COHERE_DIMENSIONS[model]) for text in texts]
    kinds = body.get("embedding_types")
    if kinds is None:
        embeddings: Any = floats
        kind = "embeddings_floats"
    elif kinds == ["float"]:
        embeddings, kind = {"float": floats}, "embeddings_by_type"
    else:
        return malformed("#/embedding_types: the emulator produces float embeddings only")
    tokens = sum((len(t) + 3) // 4 for t in texts)
    answer = {"embeddings": embeddings, "id": "emu-bedrock-cohere", "response_type": kind, "texts": texts}
    headers = {"x-amzn-requestid": "emu-cohere", "x-amzn-bedrock-input-token-count": str(tokens)}
    return Reply(body=answer, headers=headers)


CONTEXT = re.compile(r"-{5,}\n(?P<context>.*?)\n-{5,}", re.S)
"""The retrieved context in a RAG prompt, between lines of dashes (LlamaIndex's default QA template's framing)."""


def reader_handler():
    """An OpenAI Chat Completions handler that answers from the prompt's context only: with the retrieved text
    between dashed lines of the last user message, or "I don't know." when there is none (a RAG pipeline's answer
    then shows which document retrieval found).
    """
    from tests.emulators.openai_format import completion

    def handle(request: Request) -> Reply:
        if not request.path.endswith("/chat/completions"):
            return _openai_error(404, f"Invalid URL (POST {request.path})")
        body = request.json()
        content = body["messages"][-1]["content"]
        prompt = content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)
        found = CONTEXT.search(prompt)
        answer = f"From the context: {found['context'].strip()}" if found else "I don't know."
        return Reply.json(completion(answer, model=body["model"]))

    return handle
