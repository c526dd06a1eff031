"""Embeddings on the cloud providers' own APIs: Vertex AI's ``:predict``, Cohere's ``/v2/embed`` and Bedrock's
``InvokeModel`` (Titan, Cohere v3), end to end through the openai SDK to strict loopback emulators, and conformance with the recorded traffic in
tests/fixtures/embeddings.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest

from polyroute import Router
from polyroute.embeddings import EMBEDDINGS, parse_request
from polyroute.errors import UpstreamStatusError
from tests.corpus import FIXTURES, load_cassette
from tests.emulators import Emulator
from tests.emulators import bedrock_format as br
from tests.emulators import cohere_format as co
from tests.emulators import vertex_format as vx
from tests.emulators.embeddings_format import (
    bedrock_embed_handler,
    cohere_embed_handler,
    decode,
    titan_vector,
    vector,
    vertex_predict_handler,
)
from tests.emulators.server import Handler, Reply, Request

EMBEDDINGS_FIXTURES = FIXTURES / "embeddings"
Start = Callable[[Handler], Emulator]
TEXTS = ["The cat sat on the mat.", "Rain is expected in Paris tomorrow.", "Gradient descent minimises a loss."]


# -- Vertex AI ------------------------------------------------------------------------------------------------------


def start_vertex(emulator: Start, embeddings: Handler | None = None) -> tuple[vx.VertexEmulator, Emulator, Any]:
    handler = vx.VertexEmulator(embeddings=embeddings or vertex_predict_handler())
    emu = emulator(handler)
    handler.url = emu.url
    info, handler.public_key = vx.service_account(f"{emu.url}/token")
    return handler, emu, info


def vertex_deployment(emu: Emulator, info: Any, model: str = "gemini-embedding-001", **extra: Any) -> dict[str, Any]:
    base = {"provider": "vertex", "model": model, "api_base": emu.url, "credentials": info, "location": "us-east5"}
    return base | extra


def vertex_router(*deployments: dict[str, Any], **route: Any) -> Router:
    labelled = [{"id": f"d{i}", **d} for i, d in enumerate(deployments)]
    return Router({"models": [{"name": "vembed", "deployments": labelled, **route}], "retry": {"backoff": 0}})


def predict_calls(emu: Emulator) -> list[Request]:
    return [r for r in emu.requests if r.path.endswith(":predict")]


def test_vertex_recording_request_and_answer(emulator: Start) -> None:
    (recorded,) = load_cassette(EMBEDDINGS_FIXTURES / "pydantic-ai__TestGoogle.test_vertex_query.yaml")
    _, emu, info = start_vertex(emulator)
    instance = recorded.request_body["instances"][0]
    deployment = vertex_deployment(
        emu, info, project="pydantic-ai", location="global", params={"task_type": instance["task_type"]}
    )
    target = vertex_router(deployment).route("vembed").targets[0]
    body = parse_request(json.dumps({"model": "vembed", "input": instance["content"]}).encode())
    adapter = EMBEDDINGS.adapter(target, body)
    request = adapter.build_request(body, target)
    # the recording is of the v1beta1 surface; polyroute calls v1, as for chat (the same method and body)
    assert request.url == emu.url + recorded.uri.removeprefix("https://aiplatform.googleapis.com").replace(
        "/v1beta1/", "/v1/"
    )
    assert json.loads(request.content) == recorded.request_body
    assert request.headers["authorization"].startswith("Bearer ya29.emu-")
    answer = adapter.parse_response(recorded.body, target, {**body, "encoding_format": "float"})
    values = recorded.json()["predictions"][0]["embeddings"]["values"]
    assert answer["data"][0]["embedding"] == values and len(values) == 3072
    assert answer["usage"] == {"prompt_tokens": 4, "total_tokens": 4}  # statistics.token_count
    base64_answer = adapter.parse_response(recorded.body, target, body | {"encoding_format": "base64"})
    assert decode(base64_answer["data"][0]["embedding"]) == pytest.approx(values, rel=1e-6)


@pytest.mark.parametrize("encoding", ["base64", "float"])
def test_vertex_end_to_end_one_instance_per_call_in_order(emulator: Start, encoding: str) -> None:
    handler, emu, info = start_vertex(emulator)
    router = vertex_router(vertex_deployment(emu, info, params={"task_type": "RETRIEVAL_DOCUMENT"}))
    client = router.openai_client()
    kwargs: dict[str, Any] = {} if encoding == "base64" else {"encoding_format": "float"}  # the SDK's default: base64
    raw = client.embeddings.with_raw_response.create(model="vembed", input=TEXTS, dimensions=64, **kwargs)
    result = raw.parse()
    calls = predict_calls(emu)
    assert len(calls) == 3  # gemini-embedding-001 takes one instance per request on Vertex
    assert sorted(json.dumps(b) for b in handler.bodies) == sorted(
        json.dumps(
            {
                "instances": [{"content": t, "task_type": "RETRIEVAL_DOCUMENT"}],
                "parameters": {"outputDimensionality": 64},
            }
        )
        for t in TEXTS
    )
    assert [d.embedding for d in result.data] == [vector("gemini-embedding-001", t, 64) for t in TEXTS]
    assert [d.index for d in result.data] == [0, 1, 2]
    tokens = sum((len(t) + 3) // 4 for t in TEXTS)  # the emulator's statistics.token_count
    assert result.usage.prompt_tokens == tokens
    assert float(raw.headers["x-polyroute-cost"]) == pytest.approx(tokens * 0.15 / 1e6)
    assert handler.token_requests == 1


async def test_vertex_async_sdk(emulator: Start) -> None:
    handler, emu, info = start_vertex(emulator)
    router = vertex_router(vertex_deployment(emu, info, model="text-embedding-005"))
    result = await router.async_openai_client().embeddings.create(model="vembed", input=TEXTS)  # base64
    assert [d.embedding for d in result.data] == [vector("text-embedding-005", t, 768) for t in TEXTS]
    assert len(predict_calls(emu)) == 1 and handler.token_requests == 1


def test_vertex_text_embedding_005_batches_of_250(emulator: Start) -> None:
    _, emu, info = start_vertex(emulator)
    router = vertex_router(vertex_deployment(emu, info, model="text-embedding-005"))
    texts = [f"passage {i}" for i in range(300)]
    result = router.openai_client().embeddings.create(model="vembed", input=texts, encoding_format="float")
    assert sorted(len(r.json()["instances"]) for r in predict_calls(emu)) == [50, 250]
    assert [d.embedding for d in result.data] == [vector("text-embedding-005", t, 768) for t in texts]
    info = router.route("vembed").targets[0].info
    assert (info.known, info.embedding) == (True, True)  # catalog.json's row, not a guess from the name


def test_vertex_emulator_refuses_two_instances_for_gemini_embedding_001(emulator: Start) -> None:
    _, emu, info = start_vertex(emulator)
    client = vertex_router(vertex_deployment(emu, info, max_batch=2)).openai_client()
    with pytest.raises(openai.BadRequestError, match="supports up to 1 instance"):
        client.embeddings.create(model="vembed", input=TEXTS[:2])


def test_vertex_refuses_what_it_cannot_take(emulator: Start) -> None:
    _, emu, info = start_vertex(emulator)
    client = vertex_router(vertex_deployment(emu, info)).openai_client()
    with pytest.raises(openai.BadRequestError, match="takes text inputs only"):
        client.embeddings.create(model="vembed", input=[[1, 2, 3]])
    with pytest.raises(openai.BadRequestError, match="no embeddings field 'truncate'"):
        client.embeddings.create(model="vembed", input="x", extra_body={"truncate": True})
    claude = vertex_router(vertex_deployment(emu, info, model="claude-sonnet-4-5@20250929", mode="embedding"))
    with pytest.raises(openai.BadRequestError, match="Claude makes no embeddings"):
        claude.openai_client().embeddings.create(model="vembed", input="x")
    assert predict_calls(emu) == []


def test_vertex_failover_between_two_deployments_of_the_model(emulator: Start) -> None:
    def exhausted(request: Request) -> Reply:
        return vx.rpc_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for aiplatform.googleapis.com/online_prediction")

    _, down, down_info = start_vertex(emulator, exhausted)
    _, up, up_info = start_vertex(emulator)
    router = vertex_router(vertex_deployment(down, down_info), vertex_deployment(up, up_info))
    raw = router.openai_client().embeddings.with_raw_response.create(model="vembed", input="hello")
    assert raw.headers["x-polyroute-deployment"] == "d1"
    assert len(predict_calls(down)) == 1 and len(predict_calls(up)) == 1
    assert raw.parse().data[0].embedding == vector("gemini-embedding-001", "hello", 3072)


def test_vertex_gemini_embedding_2_recording_request_and_answer(emulator: Start) -> None:
    (recorded,) = load_cassette(EMBEDDINGS_FIXTURES / "pydantic-ai__test_google_task_prefix_vertex.yaml")
    _, emu, info = start_vertex(emulator)
    deployment = vertex_deployment(emu, info, model="gemini-embedding-2", project="pydantic-ai", location="global")
    target = vertex_router(deployment).route("vembed").targets[0]
    text = recorded.request_body["content"]["parts"][0]["text"]  # the task is a prefix of the text
    body = parse_request(json.dumps({"model": "vembed", "input": text}).encode())
    adapter = EMBEDDINGS.adapter(target, body)
    request = adapter.build_request(body, target)
    assert request.url == emu.url + recorded.uri.removeprefix("https://aiplatform.googleapis.com")  # v1beta1
    assert json.loads(request.content) == recorded.request_body
    answer = adapter.parse_response(recorded.body, target, {**body, "encoding_format": "float"})
    assert answer["data"][0]["embedding"] == recorded.json()["embedding"]["values"]
    assert answer["usage"] == {"prompt_tokens": 11, "total_tokens": 11}  # usageMetadata.promptTokenCount


def test_vertex_gemini_embedding_2_one_text_per_embed_content_call(emulator: Start) -> None:
    handler, emu, info = start_vertex(emulator)
    router = vertex_router(vertex_deployment(emu, info, model="gemini-embedding-2", max_batch=10))
    client = router.openai_client()
    result = client.embeddings.create(model="vembed", input=TEXTS, dimensions=256)  # base64, the SDK's default
    calls = [r for r in emu.requests if r.path.endswith(":embedContent")]
    assert len(calls) == 3 and all("/v1beta1/" in r.path for r in calls)
    assert sorted(json.dumps(b) for b in handler.bodies) == sorted(
        json.dumps({"content": {"parts": [{"text": t}]}, "outputDimensionality": 256}) for t in TEXTS
    )
    assert [d.embedding for d in result.data] == [vector("gemini-embedding-2", t, 256) for t in TEXTS]
    assert result.usage.prompt_tokens == sum((len(t) + 3) // 4 for t in TEXTS)
    with pytest.raises(openai.BadRequestError, match="put the task in the text as a prefix"):
        client.embeddings.create(model="vembed", input="x", extra_body={"task_type": "RETRIEVAL_QUERY"})
    assert len(handler.bodies) == 3


def test_gemini_api_fails_over_to_the_same_model_on_vertex(emulator: Start) -> None:
    down = emulator(
        lambda request: vx.rpc_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
    )
    _, emu, info = start_vertex(emulator)
    gemini = {"provider": "gemini", "model": "gemini-embedding-001", "api_base": down.url, "api_key": "g-emu-key"}
    router = vertex_router(gemini, vertex_deployment(emu, info))  # one vector space: accepted without opting in
    raw = router.openai_client().embeddings.with_raw_response.create(
        model="vembed", input=TEXTS[:2], dimensions=128, encoding_format="float"
    )
    assert {r.path for r in down.requests} == {"/v1beta/models/gemini-embedding-001:batchEmbedContents"}
    assert raw.headers["x-polyroute-deployment"] == "d1"
    assert [d.embedding for d in raw.parse().data] == [vector("gemini-embedding-001", t, 128) for t in TEXTS[:2]]


# -- Cohere ---------------------------------------------------------------------------------------------------------


def cohere_deployment(emu: Emulator, model: str = "embed-v4.0", **extra: Any) -> dict[str, Any]:
    return {"provider": "cohere", "model": model, "api_base": emu.url, "api_key": co.KEY} | extra


def cohere_router(*deployments: dict[str, Any]) -> Router:
    labelled = [{"id": f"c{i}", **d} for i, d in enumerate(deployments)]
    return Router({"models": [{"name": "cembed", "deployments": labelled}], "retry": {"backoff": 0}})


def test_cohere_recording_request_and_answer() -> None:
    (recorded,) = load_cassette(EMBEDDINGS_FIXTURES / "pydantic-ai__TestCohere.test_query.yaml")
    sent = recorded.request_body
    deployment = {
        "provider": "cohere",
        "model": sent["model"],
        "api_key": "k-recorded",
        "params": {"input_type": sent["input_type"], "truncate": sent["truncate"]},
    }
    target = Router({"models": [{"name": "r", "deployments": [deployment]}]}).route("r").targets[0]
    body = parse_request(json.dumps({"model": "r", "input": sent["texts"]}).encode())
    adapter = EMBEDDINGS.adapter(target, body)
    request = adapter.build_request(body, target)
    assert request.url == recorded.uri
    assert json.loads(request.content) == {k: v for k, v in sent.items() if v is not None}  # no nulls sent
    assert request.headers["authorization"] == "Bearer k-recorded"
    answer = adapter.parse_response(recorded.body, target, {**body, "encoding_format": "float"})
    assert answer["data"][0]["embedding"] == recorded.json()["embeddings"]["float"][0]
    assert len(answer["data"][0]["embedding"]) == 1536
    assert answer["usage"] == {"prompt_tokens": 4, "total_tokens": 4}  # meta.billed_units.input_tokens


def test_cohere_recorded_errors_and_int8_answer() -> None:
    (missing,) = load_cassette(EMBEDDINGS_FIXTURES / "pydantic-ai__TestCohere.test_embed_error.yaml")
    deployment = {"provider": "cohere", "model": "embed-english-light-v3.0", "api_key": "k-recorded"}
    target = Router({"models": [{"name": "r", "deployments": [deployment]}]}).route("r").targets[0]
    body = parse_request(b'{"model":"r","input":"foo bar"}')
    adapter = EMBEDDINGS.adapter(target, body)
    error = adapter.classify_error(missing.status, missing.headers, missing.body, target)
    assert (error.status, error.retryable) == (404, False)
    assert "model 'nonexistent' not found" in error.message
    # an int8 answer (recorded from Cohere's v1 endpoint) has no float vectors: a 502, never a misread vector
    (int8,) = load_cassette(
        EMBEDDINGS_FIXTURES / "langchain-cohere__test_langchain_cohere_embedding_query_int8_embedding_type.yaml"
    )
    with pytest.raises(UpstreamStatusError, match="0 float embeddings for 1 inputs") as caught:
        adapter.parse_response(int8.body, target, body)
    assert caught.value.status == 502


@pytest.mark.parametrize("encoding", ["base64", "float"])
def test_cohere_end_to_end_batches_of_96_in_order(emulator: Start, encoding: str) -> None:
    emu = emulator(cohere_embed_handler())
    router = cohere_router(cohere_deployment(emu, params={"input_type": "search_query"}))
    texts = [f"query {i} about topic {i % 5}" for i in range(200)]
    kwargs: dict[str, Any] = {} if encoding == "base64" else {"encoding_format": "float"}  # the SDK's default: base64
    raw = router.openai_client().embeddings.with_raw_response.create(
        model="cembed", input=texts, dimensions=256, **kwargs
    )
    result = raw.parse()
    bodies = [r.json() for r in emu.requests]
    assert sorted(len(b["texts"]) for b in bodies) == [8, 96, 96]
    assert {(b["input_type"], b["output_dimension"], tuple(b["embedding_types"])) for b in bodies} == {
        ("search_query", 256, ("float",))
    }
    assert [d.embedding for d in result.data] == [vector("embed-v4.0", t, 256) for t in texts]
    tokens = sum((len(t) + 3) // 4 for t in texts)  # the emulator's billed input_tokens
    assert result.usage.prompt_tokens == tokens
    assert float(raw.headers["x-polyroute-cost"]) == pytest.approx(tokens * 0.12 / 1e6)
    info = router.route("cembed").targets[0].info
    assert (info.known, info.embedding) == (True, True)


def test_cohere_default_input_type_and_extra_body(emulator: Start) -> None:
    emu = emulator(cohere_embed_handler())
    client = cohere_router(cohere_deployment(emu, model="embed-english-v3.0")).openai_client()
    client.embeddings.create(model="cembed", input="a document")
    client.embeddings.create(model="cembed", input="a query?", extra_body={"input_type": "search_query"})
    assert [r.json()["input_type"] for r in emu.requests] == ["search_document", "search_query"]


def test_cohere_refuses_what_it_cannot_take(emulator: Start) -> None:
    emu = emulator(cohere_embed_handler())
    client = cohere_router(cohere_deployment(emu, model="embed-english-v3.0")).openai_client()
    with pytest.raises(openai.BadRequestError, match="takes text inputs only"):
        client.embeddings.create(model="cembed", input=[[1, 2, 3]])
    with pytest.raises(openai.BadRequestError, match="float vectors only"):
        client.embeddings.create(model="cembed", input="x", extra_body={"embedding_types": ["int8"]})
    with pytest.raises(openai.BadRequestError, match="no embeddings field 'task_type'"):
        client.embeddings.create(model="cembed", input="x", extra_body={"task_type": "RETRIEVAL_QUERY"})
    assert emu.requests == []
    with pytest.raises(openai.BadRequestError, match=r"output_dimension is not supported for embed-english-v3\.0"):
        client.embeddings.create(model="cembed", input="x", dimensions=256)  # the emulator refuses, as Cohere does


def test_cohere_failover_between_two_deployments_of_the_model(emulator: Start) -> None:
    limited = emulator(
        lambda request: co.error(429, "You are using a Trial key, which is limited to 100 API calls / minute.")
    )
    up = emulator(cohere_embed_handler())
    router = cohere_router(cohere_deployment(limited), cohere_deployment(up))
    raw = router.openai_client().embeddings.with_raw_response.create(
        model="cembed", input=TEXTS, encoding_format="float"
    )
    assert raw.headers["x-polyroute-deployment"] == "c1"
    assert len(limited.requests) == 1 and len(up.requests) == 1
    assert [d.embedding for d in raw.parse().data] == [vector("embed-v4.0", t, 1536) for t in TEXTS]


# -- Bedrock Titan ----------------------------------------------------------------------------------------------------

TITAN = "amazon.titan-embed-text-v2:0"
SIGV4 = {
    "aws_access_key_id": br.ACCESS_KEY,
    "aws_secret_access_key": br.SECRET_KEY,
    "aws_session_token": br.SESSION_TOKEN,
    "aws_region": br.REGION,
}


def titan_deployment(emu: Emulator, model: str = TITAN, **extra: Any) -> dict[str, Any]:
    return {"provider": "bedrock", "model": model, "api_base": emu.url, **SIGV4} | extra


def titan_router(*deployments: dict[str, Any]) -> Router:
    labelled = [{"id": f"b{i}", **d} for i, d in enumerate(deployments)]
    return Router({"models": [{"name": "tembed", "deployments": labelled}], "retry": {"backoff": 0}})


def test_titan_recording_request_and_answer() -> None:
    (recorded,) = load_cassette(EMBEDDINGS_FIXTURES / "pydantic-ai__TestBedrock.test_titan_v2_with_dimensions.yaml")
    sent = recorded.request_body
    deployment = {"provider": "bedrock", "model": TITAN, **SIGV4, "params": {"normalize": sent["normalize"]}}
    target = Router({"models": [{"name": "r", "deployments": [deployment]}]}).route("r").targets[0]
    body = parse_request(json.dumps({"model": "r", "input": sent["inputText"], "dimensions": 256}).encode())
    adapter = EMBEDDINGS.adapter(target, body)
    request = adapter.build_request(body, target)
    assert request.url == recorded.uri  # model id escaped as botocore does: amazon.titan-embed-text-v2%3A0
    assert json.loads(request.content) == sent
    assert request.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={br.ACCESS_KEY}/")
    assert "/us-east-1/bedrock/aws4_request" in request.headers["authorization"]
    answer = adapter.parse_response(recorded.body, target, {**body, "encoding_format": "float"})
    assert answer["data"][0]["embedding"] == recorded.json()["embedding"]
    assert len(answer["data"][0]["embedding"]) == 256
    assert answer["usage"] == {"prompt_tokens": 4, "total_tokens": 4}  # inputTextTokenCount


@pytest.mark.parametrize("encoding", ["base64", "float"])
def test_titan_end_to_end_one_text_per_signed_call(emulator: Start, encoding: str) -> None:
    emu = emulator(bedrock_embed_handler())
    router = titan_router(titan_deployment(emu, max_batch=50))  # Titan takes one text per call whatever max_batch says
    kwargs: dict[str, Any] = {} if encoding == "base64" else {"encoding_format": "float"}  # the SDK's default: base64
    raw = router.openai_client().embeddings.with_raw_response.create(
        model="tembed", input=TEXTS, dimensions=512, **kwargs
    )
    result = raw.parse()
    assert sorted(json.dumps(r.json()) for r in emu.requests) == sorted(
        json.dumps({"inputText": t, "dimensions": 512}) for t in TEXTS
    )
    assert all(r.path == "/model/amazon.titan-embed-text-v2%3A0/invoke" for r in emu.requests)
    assert [d.embedding for d in result.data] == [titan_vector(TITAN, t, 512) for t in TEXTS]
    tokens = sum((len(t) + 3) // 4 for t in TEXTS)
    assert result.usage.prompt_tokens == tokens
    assert float(raw.headers["x-polyroute-cost"]) == pytest.approx(tokens * 0.02 / 1e6)
    info = router.route("tembed").targets[0].info
    assert (info.known, info.embedding) == (True, True)


def test_titan_with_a_bedrock_api_key(emulator: Start) -> None:
    emu = emulator(bedrock_embed_handler())
    deployment = {"provider": "bedrock", "model": TITAN, "api_base": emu.url, "api_key": br.API_KEY}
    router = titan_router(deployment | {"aws_region": br.REGION, "params": {"normalize": False}})
    result = router.openai_client().embeddings.create(model="tembed", input="hello", encoding_format="float")
    assert result.data[0].embedding == titan_vector(TITAN, "hello", 1024, normalize=False)
    assert emu.requests[0].headers["authorization"] == f"Bearer {br.API_KEY}"


def test_titan_refuses_what_it_cannot_take(emulator: Start) -> None:
    emu = emulator(bedrock_embed_handler())
    client = titan_router(titan_deployment(emu)).openai_client()
    with pytest.raises(openai.BadRequestError, match="takes text inputs only"):
        client.embeddings.create(model="tembed", input=[[1, 2, 3]])
    with pytest.raises(openai.BadRequestError, match="float vectors only"):
        client.embeddings.create(model="tembed", input="x", extra_body={"embeddingTypes": ["binary"]})
    cohere_v4 = titan_router(titan_deployment(emu, model="cohere.embed-v4:0"))
    with pytest.raises(openai.BadRequestError, match="Amazon Titan text embeddings"):
        cohere_v4.openai_client().embeddings.create(model="tembed", input="x")
    assert emu.requests == []
    with pytest.raises(openai.BadRequestError, match="100 is not a valid enum value"):
        client.embeddings.create(model="tembed", input="x", dimensions=100)  # the emulator refuses, as Bedrock does


def test_cohere_v3_on_bedrock_batches_of_96_signed(emulator: Start) -> None:
    emu = emulator(bedrock_embed_handler())
    model = "cohere.embed-english-v3"
    router = titan_router(titan_deployment(emu, model=model, params={"truncate": "END"}))
    texts = [f"document {i}" for i in range(100)]
    client = router.openai_client()
    result = client.embeddings.create(model="tembed", input=texts)  # base64, the SDK's default
    bodies = [r.json() for r in emu.requests]
    assert sorted(len(b["texts"]) for b in bodies) == [4, 96]
    assert all(set(b) == {"texts", "input_type", "truncate"} and b["input_type"] == "search_document" for b in bodies)
    assert all(r.path == "/model/cohere.embed-english-v3/invoke" for r in emu.requests)
    assert [d.embedding for d in result.data] == [vector(model, t, 1024) for t in texts]
    assert result.usage.prompt_tokens == sum((len(t) + 3) // 4 for t in texts)  # estimated: no count in the body
    with pytest.raises(openai.BadRequestError, match="takes no 'dimensions'"):
        client.embeddings.create(model="tembed", input="x", dimensions=256)
    info = router.route("tembed").targets[0].info
    assert (info.known, info.embedding) == (True, True)


def test_titan_failover_between_two_deployments_of_the_model(emulator: Start) -> None:
    throttled = emulator(lambda request: br.throttled())
    up = emulator(bedrock_embed_handler())
    router = titan_router(titan_deployment(throttled), titan_deployment(up))
    raw = router.openai_client().embeddings.with_raw_response.create(model="tembed", input="hello")
    assert raw.headers["x-polyroute-deployment"] == "b1"
    assert len(throttled.requests) == 1 and len(up.requests) == 1
    assert raw.parse().data[0].embedding == pytest.approx(titan_vector(TITAN, "hello", 1024), rel=1e-6)
