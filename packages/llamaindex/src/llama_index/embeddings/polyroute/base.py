"""polyroute embeddings for LlamaIndex: ``POST /v1/embeddings`` through polyroute's transport, on the openai SDK.

Thin: routing, failover, batching (split into each provider's limit, merged in order) and the providers' wire
formats are polyroute's; this class builds the clients and turns answers into lists of floats.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr

from llama_index.llms.polyroute._clients import RouterClients
from polyroute import Router, RouterConfig

if TYPE_CHECKING:
    import openai

DEFAULT_BATCH_SIZE = 100
"""Texts per call from LlamaIndex; polyroute splits a call further when a provider takes fewer."""


class PolyrouteEmbedding(RouterClients, BaseEmbedding):
    """A LlamaIndex embedding model served by a polyroute router: routing and failover in-process.

    .. code-block:: python

        from llama_index.core import Settings
        from llama_index.embeddings.polyroute import PolyrouteEmbedding
        from llama_index.llms.polyroute import Polyroute
        from polyroute import Router

        router = Router("polyroute.yaml")
        Settings.llm = Polyroute(model="smart", router=router)
        Settings.embed_model = PolyrouteEmbedding(model_name="embed", router=router)
    """

    dimensions: int | None = Field(default=None, gt=0, description="The vector size to ask for; unset: the model's.")
    timeout: float | None = Field(default=None, gt=0, description="Seconds for a whole call (all attempts).")
    max_retries: int = Field(
        default=0, ge=0, description="openai SDK retries; the router already fails over, so 0 by default."
    )
    tags: list[str] | None = Field(
        default=None, description="Tags that attribute every call in the router's usage records and budgets."
    )
    user: str | None = Field(
        default=None, description="The user every call is attributed to in usage records and budgets."
    )

    _router: Router = PrivateAttr()
    _config: Any = PrivateAttr(default=None)
    _client: openai.OpenAI | None = PrivateAttr(default=None)
    _aclient: openai.AsyncOpenAI | None = PrivateAttr(default=None)

    def __init__(
        self,
        model_name: str,
        router: Router | None = None,
        config: RouterConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        embed_batch_size: int = DEFAULT_BATCH_SIZE,
        **kwargs: Any,
    ) -> None:
        if router is not None and config is not None:
            raise ValueError("pass router= or config=, not both")
        super().__init__(model_name=model_name, embed_batch_size=embed_batch_size, **kwargs)
        self._router = router if router is not None else Router(config)
        self._config = config
        self._router.require_mode(model_name, "embedding")  # a wrong or chat model name fails here, not later

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex serializes this class under."""
        return "PolyrouteEmbedding"

    def _params(self, texts: list[str]) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model_name, "input": texts}
        if self.dimensions is not None:
            params["dimensions"] = self.dimensions
        return params

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        answer = self._sync_client.embeddings.create(**self._params(texts))
        return [list(item.embedding) for item in answer.data]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        answer = await self._async_client.embeddings.create(**self._params(texts))
        return [list(item.embedding) for item in answer.data]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aget_text_embeddings([text]))[0]

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._get_text_embedding(query)

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await self._aget_text_embedding(query)
