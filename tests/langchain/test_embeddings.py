"""``PolyrouteEmbeddings``: LangChain's standard embeddings suites offline (the mock provider), and a retrieval
chain: an ``InMemoryVectorStore`` retriever over polyroute embeddings feeding ``ChatPolyroute``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from langchain_polyroute import ChatPolyroute, PolyrouteEmbeddings
from polyroute import Router
from tests.emulators import Emulator, Reply, Request
from tests.emulators.embeddings_format import gemini_handler, reader_handler

MOCK_EMBED = {"models": [{"name": "embed", "deployments": [{"provider": "mock", "model": "mock-embed"}]}]}
DOCUMENTS = [
    "The Eiffel Tower in Paris was finished in 1889 and is 330 metres tall.",
    "Mount Fuji is the highest mountain in Japan, at 3776 metres.",
    "The Great Barrier Reef lies off the coast of Queensland in Australia.",
]


class TestPolyrouteEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[PolyrouteEmbeddings]:
        return PolyrouteEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": "embed", "config": MOCK_EMBED}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"POLYROUTE_API_KEY": "pr-test-key"},
            {"model": "embed", "config": MOCK_EMBED},
            {"api_key": "pr-test-key"},
        )


class TestPolyrouteEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[PolyrouteEmbeddings]:
        return PolyrouteEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": "embed", "config": MOCK_EMBED}


def test_documents_keep_order_across_split_batches(emulator: Callable[[Callable[[Request], Reply]], Emulator]) -> None:
    emu = emulator(gemini_handler())
    deployment = {"provider": "gemini", "model": "gemini-embedding-001", "api_base": emu.url, "api_key": "g-k"}
    embeddings = PolyrouteEmbeddings(
        model="embed", dimensions=8, config={"models": [{"name": "embed", "deployments": [deployment]}]}
    )
    texts = [f"text {i}" for i in range(230)]
    vectors = embeddings.embed_documents(texts)
    assert len(emu.requests) == 3
    assert vectors[229] == embeddings.embed_query("text 229")
    assert vectors[0] != vectors[1]


async def test_async_matches_sync() -> None:
    embeddings = PolyrouteEmbeddings(model="embed", config=MOCK_EMBED)
    assert await embeddings.aembed_documents(DOCUMENTS) == embeddings.embed_documents(DOCUMENTS)
    assert await embeddings.aembed_documents([]) == []


def test_chat_route_is_refused() -> None:
    router = Router({"models": [{"name": "chat", "deployments": [{"provider": "mock", "model": "mock-1"}]}]})
    with pytest.raises(Exception, match="is a chat model"):
        PolyrouteEmbeddings(model="chat", router=router).embed_query("x")


@pytest.mark.parametrize(
    ("question", "expected"),
    [("How tall is the Eiffel Tower in Paris?", "330 metres"), ("Which is the highest mountain in Japan?", "Fuji")],
)
def test_retriever_feeds_chat_polyroute(
    emulator: Callable[[Callable[[Request], Reply]], Emulator], question: str, expected: str
) -> None:
    upstream = emulator(reader_handler())
    chat = {"provider": "openai", "model": "gpt-4o-mini", "api_base": f"{upstream.url}/v1", "api_key": "sk-emu-chat"}
    router = Router({"models": [*MOCK_EMBED["models"], {"name": "chat", "deployments": [chat]}]})
    store = InMemoryVectorStore.from_documents(
        [Document(page_content=text) for text in DOCUMENTS], PolyrouteEmbeddings(model="embed", router=router)
    )
    retriever = store.as_retriever(search_kwargs={"k": 1})
    prompt = ChatPromptTemplate.from_template(
        "Answer from the context.\n---------------------\n{context}\n---------------------\nQuestion: {question}"
    )
    chain = (
        {
            "context": retriever | (lambda docs: "\n".join(d.page_content for d in docs)),
            "question": RunnablePassthrough(),
        }
        | prompt
        | ChatPolyroute(model="chat", router=router)
        | StrOutputParser()
    )
    answer = chain.invoke(question)
    assert expected in answer
    assert len(upstream.requests) == 1


async def test_tags_and_user_attribute_calls_in_usage() -> None:
    router = Router(MOCK_EMBED)
    embeddings = PolyrouteEmbeddings(model="embed", router=router, tags=["ingest", "docs"], user="indexer")
    embeddings.embed_documents(DOCUMENTS)
    await embeddings.aembed_query("where is the reef?")
    usage = router.usage()
    assert usage["tag"]["ingest"]["calls"] == usage["tag"]["docs"]["calls"] == usage["user"]["indexer"]["calls"] == 2
