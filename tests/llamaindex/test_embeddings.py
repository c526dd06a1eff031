"""``PolyrouteEmbedding``: LlamaIndex's embedding interface (sync, async, batches) on polyroute, and a
``VectorStoreIndex`` whose ``Settings.llm`` and ``Settings.embed_model`` both come from one router.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.base.embeddings.base import similarity

from llama_index.embeddings.polyroute import PolyrouteEmbedding
from llama_index.llms.polyroute import Polyroute
from polyroute import Router
from tests.emulators import Emulator, Reply, Request
from tests.emulators.embeddings_format import openai_handler, reader_handler, vector

Start = Callable[[Callable[[Request], Reply]], Emulator]
MOCK_EMBED = {"name": "embed", "deployments": [{"provider": "mock", "model": "mock-embed"}]}
DOCUMENTS = [
    "The Eiffel Tower in Paris was finished in 1889 and is 330 metres tall.",
    "Mount Fuji is the highest mountain in Japan, at 3776 metres.",
    "The Great Barrier Reef lies off the coast of Queensland in Australia.",
]


@pytest.fixture
def settings() -> Iterator[type[Settings]]:
    """LlamaIndex's global Settings, restored after the test."""
    saved = (Settings._llm, Settings._embed_model)  # pyright: ignore[reportPrivateUsage]
    yield Settings
    Settings._llm, Settings._embed_model = saved  # pyright: ignore[reportPrivateUsage]


def test_batches_sync_and_async_in_order(emulator: Start) -> None:
    emu = emulator(openai_handler())
    deployment = {"provider": "openai", "model": "text-embedding-3-small", "api_base": f"{emu.url}/v1", "api_key": "k"}
    router = Router({"models": [{"name": "embed", "deployments": [deployment]}]})
    model = PolyrouteEmbedding(model_name="embed", router=router, embed_batch_size=4, dimensions=8)
    texts = [f"note {i}" for i in range(10)]
    assert model.get_text_embedding_batch(texts) == [vector("text-embedding-3-small", t, 8) for t in texts]
    assert [len(r.json()["input"]) for r in emu.requests] == [4, 4, 2]  # LlamaIndex's own batches
    assert asyncio.run(model.aget_text_embedding_batch(texts)) == model.get_text_embedding_batch(texts)
    assert model.get_query_embedding("note 3") == vector("text-embedding-3-small", "note 3", 8)


def test_similar_texts_are_close_on_the_mock() -> None:
    model = PolyrouteEmbedding(model_name="embed", config={"models": [MOCK_EMBED]})
    query = model.get_query_embedding("how tall is the eiffel tower")
    scores = [similarity(query, v) for v in model.get_text_embedding_batch(DOCUMENTS)]
    assert scores.index(max(scores)) == 0


def test_pickle_and_deepcopy() -> None:
    import copy
    import pickle

    model = PolyrouteEmbedding(model_name="embed", config={"models": [MOCK_EMBED]}, dimensions=32)
    restored = pickle.loads(pickle.dumps(model))  # an ingestion pipeline's worker processes get it this way
    assert restored.get_query_embedding("hello") == model.get_query_embedding("hello")
    assert restored.dimensions == 32 and restored.router is not model.router
    assert copy.deepcopy(model).router is model.router


def test_unknown_or_chat_model_fails_at_construction() -> None:
    router = Router(
        {"models": [MOCK_EMBED, {"name": "chat", "deployments": [{"provider": "mock", "model": "mock-1"}]}]}
    )
    with pytest.raises(Exception, match="is a chat model"):
        PolyrouteEmbedding(model_name="chat", router=router)
    with pytest.raises(Exception, match="does not exist"):
        PolyrouteEmbedding(model_name="nope", router=router)


@pytest.mark.parametrize(
    ("question", "expected"),
    [("How tall is the Eiffel Tower in Paris?", "330 metres"), ("Where is the Great Barrier Reef?", "Queensland")],
)
def test_vector_store_index_answers_from_the_right_document(
    emulator: Start, settings: type[Settings], question: str, expected: str
) -> None:
    upstream = emulator(reader_handler())
    chat = {"provider": "openai", "model": "gpt-4o-mini", "api_base": f"{upstream.url}/v1", "api_key": "sk-emu-chat"}
    router = Router({"models": [MOCK_EMBED, {"name": "chat", "deployments": [chat]}]})
    settings.llm = Polyroute(model="chat", router=router)
    settings.embed_model = PolyrouteEmbedding(model_name="embed", router=router)
    index = VectorStoreIndex.from_documents([Document(text=text) for text in DOCUMENTS])
    answer = index.as_query_engine(similarity_top_k=1).query(question)
    assert expected in str(answer)
    assert len(upstream.requests) == 1


async def test_async_query_engine(emulator: Start, settings: type[Settings]) -> None:
    upstream = emulator(reader_handler())
    chat = {"provider": "openai", "model": "gpt-4o-mini", "api_base": f"{upstream.url}/v1", "api_key": "sk-emu-chat"}
    router = Router({"models": [MOCK_EMBED, {"name": "chat", "deployments": [chat]}]})
    settings.llm = Polyroute(model="chat", router=router)
    settings.embed_model = PolyrouteEmbedding(model_name="embed", router=router)
    index = VectorStoreIndex.from_documents([Document(text=text) for text in DOCUMENTS], use_async=True)
    answer = await index.as_query_engine(similarity_top_k=1).aquery("Which mountain is the highest in Japan?")
    assert "Fuji" in str(answer)


def test_tags_and_user_attribute_calls_in_usage_and_survive_copies() -> None:
    import copy
    import pickle

    model = PolyrouteEmbedding(model_name="embed", config={"models": [MOCK_EMBED]}, tags=["ingest"], user="indexer")
    model.get_text_embedding_batch(DOCUMENTS)
    assert asyncio.run(model.aget_query_embedding("hello"))
    usage = model.router.usage()
    assert usage["tag"]["ingest"]["calls"] == usage["user"]["indexer"]["calls"] == 2
    restored = pickle.loads(pickle.dumps(model))  # an ingestion pipeline's worker: a new router, its own usage
    restored.get_query_embedding("hello")
    assert restored.router.usage()["tag"]["ingest"]["calls"] == restored.router.usage()["user"]["indexer"]["calls"] == 1
    copy.deepcopy(model).get_query_embedding("hello")
    assert model.router.usage()["user"]["indexer"]["calls"] == 3
