"""polyroute embeddings for LangChain: ``POST /v1/embeddings`` through polyroute's transport, on the openai SDK.

Thin: routing, failover, batching (split into each provider's limit and merged in order) and the providers' wire
formats are polyroute's; this class builds the clients and turns answers into lists of floats.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings
from langchain_core.utils import secret_from_env
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator
from typing_extensions import Self

from polyroute import Router, RouterConfig


class PolyrouteEmbeddings(BaseModel, Embeddings):
    """An embedding model served by polyroute: one name, several provider deployments, failover in-process.

    Setup:
        Install ``langchain-polyroute`` and give the router a config whose model serves embeddings (a deployment of
        an embedding model: OpenAI, Azure, Gemini, Mistral, Together, Fireworks, Ollama, any OpenAI-compatible
        server, or the mock provider).

    Key init args:
        model:
            A model name from the router's config (e.g. ``"embed"``), or a direct ``"provider/model"``.
        dimensions:
            The vector size to ask for (models that take it).
        router:
            A ``polyroute.Router`` to share with chat models.
        config:
            A router config (dict, ``RouterConfig``, or file path) when no ``router`` is given.
        tags, user:
            Attribute every call in the router's usage records and budgets.

    Instantiate:
        .. code-block:: python

            from langchain_polyroute import PolyrouteEmbeddings

            embeddings = PolyrouteEmbeddings(model="embed", config="polyroute.yaml")

    Embed:
        .. code-block:: python

            vectors = embeddings.embed_documents(["first text", "second text"])
            query = embeddings.embed_query("what is in the first text?")
    """

    model: str
    """A model name of the router that serves embeddings."""
    dimensions: int | None = None
    """The vector size to ask for; the deployment's own when None."""
    router: Router | None = Field(default=None, exclude=True)
    """The router to send calls to; built from ``config`` (or the environment) when not given."""
    config: RouterConfig | dict[str, Any] | str | Path | None = Field(default=None, exclude=True, repr=False)
    """A router config (dict, ``RouterConfig`` or file path), used when ``router`` is not given."""
    timeout: float | None = None
    """Seconds for one call (all failover attempts included)."""
    max_retries: int = 0
    """SDK retries on top of polyroute's own failover (0: polyroute has already tried every deployment)."""
    tags: list[str] | None = None
    """Tags that attribute every call in the router's usage records and budgets."""
    user: str | None = None
    """The user every call is attributed to in usage records and budgets."""
    api_key: SecretStr | None = Field(default_factory=secret_from_env("POLYROUTE_API_KEY", default=None))
    """A key for the transport. polyroute never forwards it: provider keys belong in the router config."""

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True, protected_namespaces=())

    _client: Any = PrivateAttr(default=None)
    _async_client: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _build_clients(self) -> Self:
        router = self.router if self.router is not None else Router(self.config)
        router.require_mode(self.model, "embedding")  # a wrong or chat model name fails here, not on the first call
        options: dict[str, Any] = {
            "api_key": self.api_key.get_secret_value() if self.api_key else "polyroute",
            "max_retries": self.max_retries,
            "tags": self.tags,
            "user": self.user,
        }
        if self.timeout is not None:
            options["timeout"] = self.timeout
        self._client = router.openai_client(**options)
        self._async_client = router.async_openai_client(**options)
        return self

    def _params(self, texts: list[str]) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model, "input": texts}
        if self.dimensions is not None:
            params["dimensions"] = self.dimensions
        return params

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order (polyroute splits large batches and merges them back in order)."""
        if not texts:
            return []
        answer = self._client.embeddings.create(**self._params(texts))
        return [list(item.embedding) for item in answer.data]

    def embed_query(self, text: str) -> list[float]:
        """The vector of one text."""
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`."""
        if not texts:
            return []
        answer = await self._async_client.embeddings.create(**self._params(texts))
        return [list(item.embedding) for item in answer.data]

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`."""
        return (await self.aembed_documents([text]))[0]
