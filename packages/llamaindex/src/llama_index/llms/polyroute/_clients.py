"""What the LlamaIndex LLM and embedding model share: a live router (shared by deep copies, rebuilt from its
config when unpickled) and its openai clients, made on first use with the model's attribution and limits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llama_index.core.bridge.pydantic import BaseModel

if TYPE_CHECKING:
    import openai

    from polyroute import Router


class RouterClients:
    """A mixin for a LlamaIndex pydantic model with ``timeout``, ``max_retries``, ``tags`` and ``user`` fields and
    ``_router``, ``_config``, ``_client``, ``_aclient`` private attributes. Put it before the LlamaIndex base.
    """

    _router: Router
    _config: Any
    _client: openai.OpenAI | None
    _aclient: openai.AsyncOpenAI | None
    timeout: float | None
    max_retries: int
    tags: list[str] | None
    user: str | None

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Any:
        """A copy that shares the live router and its clients (pools, health, limits); data fields are copied."""
        memo = {} if memo is None else memo
        for live in (self._router, self._client, self._aclient):
            if live is not None:
                memo[id(live)] = live
        return super().__deepcopy__(memo)  # type: ignore[misc]

    def __getstate__(self) -> dict[Any, Any]:
        """Pickles (an ingestion pipeline's worker processes) carry the router's config, not the live router:
        unpickling builds a router from it (LlamaIndex unpickles through ``__init__``).
        """
        state = BaseModel.__getstate__(self)  # type: ignore[arg-type]
        config = self._config if self._config is not None else self._router.config
        return {**state, "__dict__": {**state["__dict__"], "config": config}, "__pydantic_private__": {}}

    @property
    def router(self) -> Router:
        """The router serving this model."""
        return self._router

    @property
    def _sync_client(self) -> openai.OpenAI:
        if self._client is None:
            self._client = self._router.openai_client(**self._client_kwargs())
        return self._client

    @property
    def _async_client(self) -> openai.AsyncOpenAI:
        if self._aclient is None:
            self._aclient = self._router.async_openai_client(**self._client_kwargs())
        return self._aclient

    def _client_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_retries": self.max_retries, "tags": self.tags, "user": self.user}
        if self.timeout is not None:
            kwargs["timeout"] = self.timeout
        return kwargs
