"""``POST /v1/embeddings`` end to end: the openai SDK (sync and async, httpx and httpx2) through the router to strict
OpenAI, Azure and Gemini emulators on loopback and to the mock; batches split and merged in order; failover; modes
and vector spaces checked; conformance with the recorded embeddings traffic in tests/fixtures/embeddings.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import openai
import pytest

from polyroute import Router, _compat
from polyroute.__main__ import main
from polyroute.embeddings import EMBEDDINGS, decode_base64, encode_base64, parse_request
from polyroute.errors import ConfigError, InvalidRequestError
from tests.corpus import FIXTURES, load_cassette
from tests.emulators import Emulator, Reply, Request
from tests.emulators.embeddings_format import gemini_handler, openai_handler, vector

EMBEDDINGS_FIXTURES = FIXTURES / "embeddings"
LIBS = [lib.__name__ for lib in _compat.LIBS]
"""The HTTP libraries installed here (the CI environments have one or both)."""
Start = Callable[[Callable[[Request], Reply]], Emulator]
TEXTS = ["The cat sat on the mat.", "Rain is expected in Paris tomorrow.", "Gradient descent minimises a loss."]


def openai_route(
    emu: Emulator, name: str = "embed", model: str = "text-embedding-3-small", **extra: Any
) -> dict[str, Any]:
    deployment = {"provider": "openai", "model": model, "api_base": f"{emu.url}/v1", "api_key": "sk-emu-embeddings"}
    return {"name": name, "deployments": [{**deployment, **extra}]}


def gemini_route(emu: Emulator, name: str = "gembed", **extra: Any) -> dict[str, Any]:
    deployment = {"provider": "gemini", "model": "gemini-embedding-001", "api_base": emu.url, "api_key": "g-emu-key"}
    return {"name": name, "deployments": [{**deployment, **extra}]}


def client(router: Router, library: str | None = None) -> openai.OpenAI:
    """An openai client on the router, on ``library`` (default: the one the installed SDK uses)."""
    if library is None:
        return router.openai_client()
    return router.openai_client(http_client=router.http_client(library=library))


# -- the openai SDK, end to end -----------------------------------------------------------------------------------


@pytest.mark.parametrize("library", LIBS)
def test_sdk_default_base64_round_trips_exactly(emulator: Start, library: str) -> None:
    emu = emulator(openai_handler())
    router = Router({"models": [openai_route(emu)]})
    result = client(router, library).embeddings.create(model="embed", input=TEXTS)  # the SDK asks for base64
    assert emu.requests[0].json()["encoding_format"] == "base64"
    assert [d.index for d in result.data] == [0, 1, 2]
    for text, item in zip(TEXTS, result.data, strict=True):
        assert item.embedding == vector("text-embedding-3-small", text, 1536)  # float32-exact, as OpenAI's own
    assert result.usage.prompt_tokens == sum((len(t) + 3) // 4 for t in TEXTS)


def test_float_encoding_and_headers(emulator: Start) -> None:
    emu = emulator(openai_handler())
    router = Router({"models": [openai_route(emu)]})
    raw = client(router).embeddings.with_raw_response.create(
        model="embed", input="hello", encoding_format="float", dimensions=64
    )
    sent = emu.requests[0].json()
    assert sent == {"model": "text-embedding-3-small", "input": ["hello"], "dimensions": 64}
    assert raw.headers["x-polyroute-deployment"] == "openai/text-embedding-3-small"
    assert float(raw.headers["x-polyroute-cost"]) == pytest.approx(2 * 0.02 / 1e6)
    result = raw.parse()
    assert result.data[0].embedding == vector("text-embedding-3-small", "hello", 64)
    assert result.usage.model_extra == {"cost": pytest.approx(2 * 0.02 / 1e6)}


def test_async_sdk(emulator: Start) -> None:
    emu = emulator(openai_handler())
    router = Router({"models": [openai_route(emu)]})

    async def run() -> list[list[float]]:
        aclient = router.async_openai_client()
        result = await aclient.embeddings.create(model="embed", input=TEXTS)
        await aclient.close()
        return [d.embedding for d in result.data]

    assert asyncio.run(run()) == [vector("text-embedding-3-small", t, 1536) for t in TEXTS]


def test_token_arrays_reach_openai(emulator: Start) -> None:
    emu = emulator(openai_handler())
    router = Router({"models": [openai_route(emu)]})
    result = client(router).embeddings.create(model="embed", input=[[1, 2, 3], [4, 5]], encoding_format="float")
    assert emu.requests[0].json()["input"] == [[1, 2, 3], [4, 5]]
    assert len(result.data) == 2


# -- batches ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("asynchronous", [False, True])
def test_openai_batch_over_2048_is_split_and_kept_in_order(emulator: Start, asynchronous: bool) -> None:
    emu = emulator(openai_handler())
    router = Router({"models": [openai_route(emu)]})
    texts = [f"document number {i}" for i in range(2100)]
    if asynchronous:

        async def run() -> Any:
            aclient = router.async_openai_client()
            try:
                return await aclient.embeddings.create(model="embed", input=texts, dimensions=8)
            finally:
                await aclient.close()

        result = asyncio.run(run())
    else:
        result = client(router).embeddings.create(model="embed", input=texts, dimensions=8)
    assert sorted(len(r.json()["input"]) for r in emu.requests) == [52, 2048]
    assert [d.index for d in result.data] == list(range(2100))
    for i in (0, 2047, 2048, 2099):
        assert result.data[i].embedding == vector("text-embedding-3-small", texts[i], 8)
    assert result.usage.prompt_tokens == sum((len(t) + 3) // 4 for t in texts)
    totals = router.usage()["total"]  # each part is a call of its own in the usage records
    assert totals["calls"] == 2
    assert totals["input_tokens"] == result.usage.prompt_tokens


def test_gemini_batches_of_100_in_order(emulator: Start) -> None:
    emu = emulator(gemini_handler())
    router = Router({"models": [gemini_route(emu)]})
    texts = [f"passage {i} about topic {i % 7}" for i in range(250)]
    result = client(router).embeddings.create(model="gembed", input=texts, dimensions=16)
    assert sorted(len(r.json()["requests"]) for r in emu.requests) == [50, 100, 100]
    assert [d.embedding for d in result.data] == [vector("gemini-embedding-001", t, 16) for t in texts]


def test_split_takes_the_smallest_limit_of_route_and_fallbacks(emulator: Start) -> None:
    emu = emulator(openai_handler())
    config = {
        "models": [openai_route(emu, max_batch=5) | {"fallbacks": ["other"]}, openai_route(emu, "other", max_batch=3)]
    }
    router = Router(config)
    client(router).embeddings.create(model="embed", input=[f"t{i}" for i in range(7)])
    assert sorted(len(r.json()["input"]) for r in emu.requests) == [1, 3, 3]


# -- failover -----------------------------------------------------------------------------------------------------


def test_failover_between_embedding_deployments(emulator: Start) -> None:
    down = emulator(lambda request: Reply.json({"error": {"message": "overloaded", "type": "server_error"}}, 503))
    up = emulator(openai_handler())
    config = {
        "models": [
            {
                "name": "embed",
                "deployments": [
                    {
                        "provider": "openai",
                        "model": "text-embedding-3-small",
                        "api_base": f"{d.url}/v1",
                        "api_key": "k-1",
                    }
                    | ({"id": "first"} if d is down else {"id": "second"})
                    for d in (down, up)
                ],
            }
        ]
    }
    router = Router(config)
    raw = client(router).embeddings.with_raw_response.create(model="embed", input=TEXTS)
    assert raw.headers["x-polyroute-deployment"] == "second"
    assert raw.headers["x-polyroute-attempts"] == "2"
    assert len(down.requests) == 1
    assert raw.parse().data[2].embedding == vector("text-embedding-3-small", TEXTS[2], 1536)


def test_upstream_400_is_not_failed_over(emulator: Start) -> None:
    emu = emulator(openai_handler())
    other = emulator(openai_handler())
    config = {
        "models": [
            {
                "name": "embed",
                "deployments": [
                    {"provider": "openai", "model": "text-embedding-ada-002", "api_base": f"{e.url}/v1", "api_key": "k"}
                    | {"id": f"d{i}"}
                    for i, e in enumerate((emu, other))
                ],
            }
        ]
    }
    with pytest.raises(openai.BadRequestError, match="does not support specifying dimensions"):
        client(Router(config)).embeddings.create(model="embed", input="x", dimensions=8)
    assert other.requests == []


def test_unknown_model_404_from_recording_wording(emulator: Start) -> None:
    emu = emulator(openai_handler())
    router = Router({"models": [openai_route(emu, model="nonexistent")]})
    with pytest.raises(openai.NotFoundError, match="does not exist") as caught:
        client(router).embeddings.create(model="embed", input="x")
    assert caught.value.code == "model_not_found"


# -- providers ----------------------------------------------------------------------------------------------------


def test_azure_deployment_url_and_key(emulator: Start) -> None:
    emu = emulator(openai_handler(azure=True, model="text-embedding-3-small"))
    deployment = {"provider": "azure", "model": "my-embedder", "api_base": emu.url, "api_key": "az-emu-key-1"}
    router = Router({"models": [{"name": "embed", "deployments": [deployment]}]})
    result = client(router).embeddings.create(model="embed", input=["a", "b"])
    request = emu.requests[0]
    assert request.path == "/openai/deployments/my-embedder/embeddings"
    assert request.query["api-version"] == ["2024-10-21"]
    assert request.headers["api-key"] == "az-emu-key-1" and "authorization" not in request.headers
    assert result.data[1].embedding == vector("text-embedding-3-small", "b", 1536)


def test_gemini_task_type_from_params_and_extra_body(emulator: Start) -> None:
    emu = emulator(gemini_handler())
    router = Router({"models": [gemini_route(emu, params={"taskType": "RETRIEVAL_DOCUMENT"})]})
    c = client(router)
    c.embeddings.create(model="gembed", input=["doc"], extra_body={"title": "A title"})
    c.embeddings.create(model="gembed", input=["q"], extra_body={"task_type": "RETRIEVAL_QUERY"}, dimensions=8)
    first, second = (r.json()["requests"][0] for r in emu.requests)
    assert first == {
        "model": "models/gemini-embedding-001",
        "content": {"parts": [{"text": "doc"}]},
        "taskType": "RETRIEVAL_DOCUMENT",
        "title": "A title",
    }
    assert second["taskType"] == "RETRIEVAL_QUERY" and second["outputDimensionality"] == 8
    assert emu.requests[0].headers["x-goog-api-key"] == "g-emu-key" and not emu.requests[0].query


def test_gemini_refuses_what_it_cannot_take(emulator: Start) -> None:
    emu = emulator(gemini_handler())
    c = client(Router({"models": [gemini_route(emu)]}))
    with pytest.raises(openai.BadRequestError, match="takes text inputs only"):
        c.embeddings.create(model="gembed", input=[[1, 2, 3]])
    with pytest.raises(openai.BadRequestError, match="no embeddings field 'truncate'"):
        c.embeddings.create(model="gembed", input="x", extra_body={"truncate": True})
    assert emu.requests == []


def test_mistral_dimensions_is_output_dimension(emulator: Start) -> None:
    seen: list[dict[str, Any]] = []

    def handle(request: Request) -> Reply:
        seen.append(request.json())
        return Reply.json(json.loads((EMBEDDINGS_FIXTURES / "vercel-ai__mistral-embedding.json").read_text()))

    emu = emulator(handle)
    deployment = {"provider": "mistral", "model": "codestral-embed", "api_base": f"{emu.url}/v1", "api_key": "m-k"}
    c = client(Router({"models": [{"name": "embed", "deployments": [deployment]}]}))  # "embed" in the name: embedding
    result = c.embeddings.create(model="embed", input=["a", "b"], dimensions=5)
    assert seen == [{"model": "codestral-embed", "input": ["a", "b"], "output_dimension": 5}]  # floats asked
    assert result.data[1].embedding == pytest.approx(
        [-0.0535888671875, 0.019500732421875, 0.057464599609375, 0.0029582977294921875, 0.0467529296875]
    )
    assert result.usage.prompt_tokens == 16


@pytest.mark.parametrize("provider", ["together", "fireworks", "ollama", "openai-compatible"])
def test_openai_format_vendors_get_floats_and_the_sdk_its_base64(emulator: Start, provider: str) -> None:
    emu = emulator(openai_handler())
    deployment = {
        "provider": provider,
        "model": "text-embedding-3-small",
        "api_base": f"{emu.url}/v1",
        "api_key": "v-k",
    }
    c = client(Router({"models": [{"name": "embed", "deployments": [deployment | {"mode": "embedding"}]}]}))
    result = c.embeddings.create(model="embed", input=TEXTS)  # the SDK asks for base64
    assert "encoding_format" not in emu.requests[0].json()  # vendors are asked for floats, encoded by polyroute
    assert [d.embedding for d in result.data] == [vector("text-embedding-3-small", t, 1536) for t in TEXTS]
    if provider == "openai-compatible":
        assert len(c.embeddings.create(model="embed", input=[[1, 2]]).data) == 1
    else:
        with pytest.raises(openai.BadRequestError, match="takes text inputs only"):
            c.embeddings.create(model="embed", input=[[1, 2]])


def test_a_field_the_vendor_rejects_is_a_400_naming_it() -> None:
    deployment = {"provider": "mistral", "model": "mistral-embed", "api_base": "http://127.0.0.1:9/v1", "api_key": "m"}
    c = client(Router({"models": [{"name": "embed", "deployments": [deployment]}]}))
    with pytest.raises(openai.BadRequestError, match="does not support 'user'") as caught:
        c.embeddings.create(model="embed", input="x", user="u-1")
    assert caught.value.param == "user"


# -- the mock -----------------------------------------------------------------------------------------------------


def test_mock_vectors_are_deterministic_and_similar_for_similar_texts() -> None:
    router = Router({"models": [{"name": "embed", "deployments": [{"provider": "mock", "model": "mock-embed"}]}]})
    c = client(router)
    texts = ["the cat sat on the mat", "a cat sat on a mat", "quarterly revenue grew by ten percent"]
    a = [d.embedding for d in c.embeddings.create(model="embed", input=texts, encoding_format="float").data]
    b = [d.embedding for d in c.embeddings.create(model="embed", input=texts).data]  # base64 from the mock
    assert all(x == pytest.approx(y) for x, y in zip(a, b, strict=True))
    dot = [sum(x * y for x, y in zip(a[0], v, strict=True)) for v in a]
    assert dot[0] == pytest.approx(1.0) and dot[1] > 0.5 > dot[2]
    assert len(a[0]) == 256


# -- validation, modes and vector spaces ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "m"}, "'input' is required"),
        ({"model": "m", "input": []}, "'input' is required"),
        ({"model": "m", "input": ["ok", ""]}, "'input[1]' is an empty string"),
        ({"model": "m", "input": ["ok", 3]}, "one kind for all items"),
        ({"model": "m", "input": "x", "encoding_format": "int8"}, "'encoding_format' must be"),
        ({"model": "m", "input": "x", "dimensions": 0}, "'dimensions' must be a positive integer"),
        ({"input": "x"}, "'model' is required"),
        ({"model": "m", "input": "x", "stream": True}, "embeddings do not stream"),
    ],
)
def test_bad_requests_say_what_to_fix(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequestError, match=re.escape(message)):
        parse_request(json.dumps(body).encode())


def test_bad_request_is_a_400_through_the_sdk() -> None:
    router = Router({"models": [{"name": "embed", "deployments": [{"provider": "mock", "model": "mock-embed"}]}]})
    with pytest.raises(openai.BadRequestError, match="empty string") as caught:
        client(router).embeddings.create(model="embed", input=["a", ""])
    assert caught.value.param == "input"


def test_chat_and_embedding_routes_refuse_the_other_api() -> None:
    router = Router(
        {
            "models": [
                {"name": "embed", "deployments": [{"provider": "mock", "model": "mock-embed"}]},
                {"name": "chat", "deployments": [{"provider": "mock", "model": "mock-1"}]},
            ]
        }
    )
    c = client(router)
    with pytest.raises(openai.BadRequestError, match=r"is an embedding model.*POST /v1/embeddings") as caught:
        c.chat.completions.create(model="embed", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "wrong_model_mode"
    with pytest.raises(openai.BadRequestError, match=r"is an embedding model.*POST /v1/embeddings") as caught:
        c.responses.create(model="embed", input="hi")
    assert caught.value.code == "wrong_model_mode"
    with pytest.raises(openai.BadRequestError, match=r"is a chat model.*makes no embeddings"):
        c.embeddings.create(model="chat", input="hi")
    with pytest.raises(openai.BadRequestError, match="is a chat model"):
        c.embeddings.create(model="openai/gpt-4o-mini", input="hi")  # the catalog knows direct names too


def test_a_route_cannot_mix_chat_and_embedding_deployments() -> None:
    with pytest.raises(ConfigError, match="mixes chat and embedding deployments"):
        Router(
            {
                "models": [
                    {
                        "name": "both",
                        "deployments": [
                            {"provider": "mock", "model": "mock-embed"},
                            {"provider": "mock", "model": "mock-1"},
                        ],
                    }
                ]
            }
        )


def test_a_fallback_serves_the_same_api() -> None:
    with pytest.raises(ConfigError, match="its fallback 'embed' serves embedding"):
        Router(
            {
                "models": [
                    {"name": "chat", "deployments": [{"provider": "mock", "model": "mock-1"}], "fallbacks": ["embed"]},
                    {"name": "embed", "deployments": [{"provider": "mock", "model": "mock-embed"}]},
                ]
            }
        )


MIXED = {
    "models": [
        {
            "name": "embed",
            "deployments": [
                {"provider": "openai", "model": "text-embedding-3-small"},
                {"provider": "gemini", "model": "gemini-embedding-001"},
            ],
        }
    ]
}


def test_mixed_vector_spaces_are_refused_with_the_reason() -> None:
    with pytest.raises(ConfigError, match=r"mixes vector spaces.*not comparable.*allow_mixed_vector_spaces"):
        Router(MIXED)
    sizes = {
        "models": [
            {
                "name": "embed",
                "deployments": [
                    {"provider": "openai", "model": "text-embedding-3-small", "dimensions": 256},
                    {"provider": "azure", "model": "text-embedding-3-small", "api_base": "https://x.invalid"},
                ],
            }
        ]
    }
    with pytest.raises(ConfigError, match="at 256 dimensions"):
        Router(sizes)
    fallback = {
        "models": [
            {"name": "a", "deployments": [{"provider": "mock", "model": "mock-embed"}], "fallbacks": ["b"]},
            {"name": "b", "deployments": [{"provider": "mock", "model": "mock-embed-large"}]},
        ]
    }
    with pytest.raises(ConfigError, match="fallback 'b'"):
        Router(fallback)


def test_same_space_on_two_providers_and_opt_in_are_accepted() -> None:
    same = {
        "models": [
            {
                "name": "embed",
                "deployments": [
                    {"provider": "openai", "model": "text-embedding-3-small", "dimensions": 512},
                    {
                        "provider": "azure",
                        "model": "text-embedding-3-small",
                        "api_base": "https://x.invalid",
                        "dimensions": 512,
                    },
                ],
            }
        ]
    }
    assert Router(same).route("embed").mode == "embedding"
    allowed = {"models": [{**MIXED["models"][0], "allow_mixed_vector_spaces": True}]}
    assert Router(allowed).route("embed").mode == "embedding"


def test_polyroute_check_refuses_mixed_vector_spaces(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "polyroute.json"
    path.write_text(json.dumps(MIXED))
    assert main(["check", str(path)]) != 0
    assert "not comparable" in capsys.readouterr().err


# -- conformance with recorded traffic -----------------------------------------------------------------------------


def _target(provider: str, model: str, **extra: Any) -> Any:
    base = {"gemini": "https://generativelanguage.googleapis.com", "openai": "https://api.openai.com/v1"}[provider]
    deployment = {"provider": provider, "model": model, "api_base": base, "api_key": "k-recorded", **extra}
    return Router({"models": [{"name": "r", "deployments": [deployment]}]}).route("r").targets[0]


@pytest.mark.parametrize(
    "name", ["pydantic-ai__TestOpenAI.test_query.yaml", "pydantic-ai__TestOpenAI.test_instrumentation.yaml"]
)
def test_openai_recordings_request_and_base64_answer(name: str) -> None:
    (recorded,) = load_cassette(EMBEDDINGS_FIXTURES / name)
    body = parse_request(json.dumps({**recorded.request_body, "model": "r"}).encode())
    target = _target("openai", recorded.request_body["model"])
    adapter = EMBEDDINGS.adapter(target, body)
    request = adapter.build_request(body, target)
    assert request.url == recorded.uri
    assert json.loads(request.content) == recorded.request_body
    answer = adapter.parse_response(recorded.body, target, body)
    native = recorded.json()["data"][0]["embedding"]
    assert answer["data"][0]["embedding"] == native  # passed through untouched
    assert len(decode_base64(native)) == recorded.request_body.get("dimensions", 1536)
    assert encode_base64(decode_base64(native)) == native
    float_body = {**body, "encoding_format": "float"}
    assert adapter.parse_response(recorded.body, target, float_body)["data"][0]["embedding"] == decode_base64(native)
    assert answer["usage"] == recorded.json()["usage"]


def test_gemini_recording_request_and_answer() -> None:
    (recorded,) = load_cassette(EMBEDDINGS_FIXTURES / "pydantic-ai__TestGoogle.test_query_with_dimensions.yaml")
    item = recorded.request_body["requests"][0]
    body = parse_request(
        json.dumps(
            {"model": "r", "input": item["content"]["parts"][0]["text"], "dimensions": item["outputDimensionality"]}
        ).encode()
    )
    target = _target("gemini", "gemini-embedding-2-preview", params={"taskType": "RETRIEVAL_QUERY"})
    adapter = EMBEDDINGS.adapter(target, body)
    request = adapter.build_request(body, target)
    assert request.url == recorded.uri
    assert json.loads(request.content) == recorded.request_body
    answer = adapter.parse_response(recorded.body, target, {**body, "encoding_format": "float"})
    assert answer["data"][0]["embedding"] == recorded.json()["embeddings"][0]["values"]
    assert len(answer["data"][0]["embedding"]) == 768


@pytest.mark.parametrize(
    ("name", "provider", "status", "code", "phrase"),
    [
        ("pydantic-ai__TestOpenAI.test_embed_error.yaml", "openai", 404, "model_not_found", "does not exist"),
        ("pydantic-ai__TestGoogle.test_embed_error.yaml", "gemini", 404, "NOT_FOUND", "is not found"),
        ("vercel-ai__google-embedding-batch-limit-error.json", "gemini", 400, "INVALID_ARGUMENT", "at most 100"),
        ("vercel-ai__issue-10082-token-limit-error.json", "openai", 400, "max_tokens_per_request", "max 300000"),
    ],
)
def test_recorded_errors(name: str, provider: str, status: int, code: str, phrase: str) -> None:
    path = EMBEDDINGS_FIXTURES / name
    if path.suffix == ".json":
        content, recorded_status = path.read_bytes(), json.loads(path.read_bytes())["error"].get("code")
        recorded_status = recorded_status if isinstance(recorded_status, int) else status
    else:
        (recorded,) = load_cassette(path)
        content, recorded_status = recorded.body, recorded.status
    target = _target(provider, "m")
    body = parse_request(b'{"model":"r","input":"x"}')
    error = EMBEDDINGS.adapter(target, body).classify_error(recorded_status, {}, content, target)
    assert (error.status, error.code) == (status, code)
    assert phrase in error.message


def test_recorded_openai_float_answer_parses() -> None:
    content = (EMBEDDINGS_FIXTURES / "vercel-ai__openai-embedding.json").read_bytes()
    target = _target("openai", "text-embedding-3-small")
    body = parse_request(b'{"model":"r","input":["a","b"],"encoding_format":"float"}')
    answer = EMBEDDINGS.adapter(target, body).parse_response(content, target, body)
    assert [d["embedding"][0] for d in answer["data"]] == [0.0057293195, -0.037104916]
    assert answer["usage"] == {"prompt_tokens": 12, "total_tokens": 12}


# -- concurrency and limits ----------------------------------------------------------------------------------------


def _counting_handler(delay: float) -> tuple[Callable[[Request], Reply], list[int]]:
    """An OpenAI embeddings handler that takes ``delay`` seconds and records how many requests were in flight."""
    inner = openai_handler()
    lock = threading.Lock()
    state = {"now": 0}
    peaks: list[int] = []

    def handle(request: Request) -> Reply:
        with lock:
            state["now"] += 1
            peaks.append(state["now"])
        time.sleep(delay)
        with lock:
            state["now"] -= 1
        return inner(request)

    return handle, peaks


@pytest.mark.parametrize("asynchronous", [False, True])
def test_parts_run_concurrently(emulator: Start, asynchronous: bool) -> None:
    handle, peaks = _counting_handler(0.2)
    emu = emulator(handle)
    router = Router({"models": [openai_route(emu, max_batch=2)]})
    texts = [f"t{i}" for i in range(8)]
    if asynchronous:

        async def run() -> Any:
            aclient = router.async_openai_client()
            try:
                return await aclient.embeddings.create(model="embed", input=texts, dimensions=4)
            finally:
                await aclient.close()

        result = asyncio.run(run())
    else:
        result = client(router).embeddings.create(model="embed", input=texts, dimensions=4)
    assert max(peaks) == 4  # the 4 parts were in flight at once, not one after another
    assert [d.embedding for d in result.data] == [vector("text-embedding-3-small", t, 4) for t in texts]


def test_parts_stay_within_max_parallel(emulator: Start) -> None:
    handle, peaks = _counting_handler(0.05)
    emu = emulator(handle)
    router = Router({"models": [openai_route(emu, max_batch=2, max_parallel=2)]})
    texts = [f"t{i}" for i in range(10)]
    result = client(router).embeddings.create(model="embed", input=texts, dimensions=4)
    assert len(peaks) == 5 and max(peaks) <= 2
    assert [d.embedding for d in result.data] == [vector("text-embedding-3-small", t, 4) for t in texts]


def test_rpm_limit_moves_calls_to_the_next_deployment(emulator: Start) -> None:
    first, second = emulator(openai_handler()), emulator(openai_handler())
    deployments = [
        {"provider": "openai", "model": "text-embedding-3-small", "api_base": f"{e.url}/v1", "api_key": "k"}
        | {"id": f"d{i}", "rpm": 1}
        for i, e in enumerate((first, second))
    ]
    router = Router({"models": [{"name": "embed", "deployments": deployments}]})
    c = client(router)
    served = [
        c.embeddings.with_raw_response.create(model="embed", input="x").headers["x-polyroute-deployment"]
        for _ in range(2)
    ]
    assert served == ["d0", "d1"]


# -- an answer passed on as the upstream's bytes ------------------------------------------------------------------


def _pretty_answer(indexes: list[int], encoding: str) -> Callable[[Request], Reply]:
    """OpenAI's embeddings answer as OpenAI writes it (indented JSON), vectors at ``indexes`` in that order."""

    def handle(request: Request) -> Reply:
        body = request.json()
        texts = body["input"]
        data = []
        for i in indexes:
            values = vector(body["model"], texts[i], 8)
            data.append(
                {
                    "object": "embedding",
                    "index": i,
                    "embedding": encode_base64(values) if encoding == "base64" else values,
                }
            )
        answer = {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": 7, "total_tokens": 7},
        }
        return Reply(body=json.dumps(answer, indent=2).encode(), headers={"content-type": "application/json"})

    return handle


@pytest.mark.parametrize("encoding", ["base64", "float"])
def test_an_answer_already_as_asked_goes_on_as_sent_with_its_cost(emulator: Start, encoding: str) -> None:
    emu = emulator(_pretty_answer([0, 1, 2], encoding))
    router = Router({"models": [openai_route(emu)]})
    # base64: the SDK's default, which it decodes itself
    options: dict[str, Any] = {"encoding_format": "float"} if encoding == "float" else {}
    raw = client(router).embeddings.with_raw_response.create(model="embed", input=TEXTS[:3], dimensions=8, **options)
    body = json.loads(raw.content)
    assert body["usage"] == {"prompt_tokens": 7, "total_tokens": 7, "cost": pytest.approx(7 * 0.02 / 1e6)}
    assert float(raw.headers["x-polyroute-cost"]) == pytest.approx(7 * 0.02 / 1e6)
    expected = [vector("text-embedding-3-small", t, 8) for t in TEXTS[:3]]
    assert [d.embedding for d in raw.parse().data] == (
        expected if encoding == "float" else [pytest.approx(v) for v in expected]
    )


def test_an_answer_out_of_order_is_put_in_order(emulator: Start) -> None:
    emu = emulator(_pretty_answer([2, 0, 1], "base64"))
    router = Router({"models": [openai_route(emu)]})
    result = client(router).embeddings.create(model="embed", input=TEXTS[:3], dimensions=8)
    assert [d.index for d in result.data] == [0, 1, 2]
    assert [d.embedding for d in result.data] == [
        pytest.approx(vector("text-embedding-3-small", t, 8)) for t in TEXTS[:3]
    ]


def test_a_deployments_own_prices_price_its_embeddings(emulator: Start) -> None:
    """As for chat: the deployment's ``prices`` come before genai-prices and the catalog."""
    emu = emulator(openai_handler())
    router = Router({"models": [openai_route(emu, prices={"input": 1.0, "output": 1.0})]})
    raw = client(router).embeddings.with_raw_response.create(model="embed", input="hello", encoding_format="float")
    result = raw.parse()
    assert result.usage.model_extra == {"cost": pytest.approx(result.usage.prompt_tokens / 1e6)}
    assert float(raw.headers["x-polyroute-cost"]) == pytest.approx(result.usage.prompt_tokens / 1e6)
