"""config_lists for the older AutoGen API (``ag2`` 0.x, ``pyautogen`` 0.2: ``OpenAIWrapper``, ``llm_config``).

Three forms, none of which imports ag2:

- :func:`config_list`: one dict per model name with an ``http_client`` bound to the router's transport. Agents
  deep-copy their ``llm_config``; the client survives that by being shared, not copied.
- :func:`model_client_config_list` + :class:`PolyrouteModelClient`: JSON-safe entries
  (``{"model": ..., "model_client_cls": "PolyrouteModelClient"}``) for ``OAI_CONFIG_LIST`` files, activated with
  ``agent.register_model_client(PolyrouteModelClient, router=router)``.
- :func:`openai_config`: ag2 1.x's typed ``OpenAIConfig`` (the ``ag2`` module has no config_list).

One entry per model name is enough: failover happens inside the router, not across entries.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import os
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from polyroute import Router, RouterConfig

if TYPE_CHECKING:
    pass

__all__ = ["PolyrouteModelClient", "config_list", "model_client_config_list", "openai_config"]

BASE_URL = "http://polyroute.local/v1"
"""Where entries point: the host is never contacted (the transport answers in-process); the path is OpenAI's."""

_PLACEHOLDER_KEY = "polyroute"
"""The openai SDK insists on an api_key; the router never forwards it (provider keys come from its config)."""


def config_list(
    router: Router,
    models: Iterable[str] | None = None,
    *,
    library: str | None = None,
    tags: list[str] | None = None,
    user: str | None = None,
    **extra: Any,
) -> list[dict[str, Any]]:
    """A config_list for ag2 0.x / pyautogen 0.2: one entry per model name, sending through ``router`` in-process.

    Args:
        router: The router to send through.
        models: Model names (routes or direct ``provider/model``); default: every configured route.
        library: ``"httpx"`` or ``"httpx2"`` for the entries' client; default: legacy httpx when ag2 0.x is
            installed (its ``LLMConfig`` accepts nothing else), else the openai SDK's family (2.x: httpx, 3.x:
            httpx2).
        tags: Tags that attribute every call in the router's usage records and budgets; also the entries' ``tags``
            (ag2's ``filter_config`` key).
        user: The user every call is attributed to in usage records and budgets.
        **extra: Keys added to every entry (``price``, ``temperature``...).

    Each entry holds ``model``, a placeholder ``api_key``, ``base_url``, ``max_retries=0``, ``price`` (from
    polyroute's catalog, see :func:`route_price_per_1k`) and a sync ``http_client`` on the router's transport that
    deep copies to itself, so
    ``ConversableAgent(llm_config={"config_list": ...})`` works. ag2 0.14's ``LLMConfig(*entries)`` takes them
    too, but its ``model_dump_json()`` cannot serialize a client: use :func:`model_client_config_list` for configs
    saved as JSON.
    """
    names = list(models) if models is not None else router.model_names
    if not names:
        raise ValueError("no model names: pass models=[...] or configure routes in the router")
    for name in names:
        router.route(name)  # an unknown name fails here, not on the first call
    client = shared_http_client(router, library=library or _legacy_ag2_library(), tags=tags, user=user)
    entries: list[dict[str, Any]] = []
    for name in names:
        entry = {
            "model": name,
            "api_key": _PLACEHOLDER_KEY,
            "base_url": BASE_URL,
            "http_client": client,
            "max_retries": 0,  # the router retries and fails over; SDK retries would rerun the whole chain
        }
        price = route_price_per_1k(router, name)
        if price is not None:
            entry["price"] = price
        if tags:
            entry["tags"] = list(tags)
        entries.append({**entry, **extra})
    return entries


def route_price_per_1k(router: Router, model: str) -> list[float] | None:
    """ag2's ``price`` (USD per 1,000 prompt and completion tokens) from polyroute's catalog, when every deployment
    of the route has the same known price; else None.

    ag2 0.x prices an OpenAI response from its own table by the answering model's name and reports 0 for any
    name it lacks (every route name, most non-OpenAI models), whatever polyroute priced. An entry's ``price``
    replaces that table: ag2's cost then equals polyroute's ``usage.cost`` for calls without prompt caching
    (ag2 charges cached tokens at the full input price). Routes whose deployments differ in price get no entry
    price; :class:`PolyrouteModelClient` reports polyroute's own cost in every case. The routes it falls back to
    count too: a call one of them serves is priced by the same entry.
    """
    prices = {(t.info.input_price, t.info.output_price) for t in router.reachable_targets(model)}
    if len(prices) != 1:
        return None
    ((prompt, completion),) = prices
    if prompt is None or completion is None:
        return None
    return [prompt / 1000, completion / 1000]  # the catalog's prices are per million tokens


def _legacy_ag2_library() -> str | None:
    """``"httpx"`` when ag2 0.x is installed beside legacy httpx, else None (the openai SDK's own family).

    ag2 0.x's ``LLMConfig`` validates ``http_client`` as an ``httpx.Client`` whatever openai version is installed;
    openai 3.x (whose family is httpx2) takes a legacy ``httpx.Client`` too, so that one suits both.
    """
    for dist in ("ag2", "autogen"):
        try:
            major = importlib.metadata.version(dist).split(".", 1)[0]
        except importlib.metadata.PackageNotFoundError:
            continue
        if major == "0" and importlib.util.find_spec("httpx") is not None:
            return "httpx"
    return None


def shared_http_client(
    router: Router,
    *,
    library: str | None = None,
    asynchronous: bool = False,
    tags: list[str] | None = None,
    user: str | None = None,
) -> Any:
    """An ``httpx`` / ``httpx2`` client on the router's transport whose ``copy.deepcopy`` returns itself; its
    requests carry ``tags`` and ``user`` for usage records as the router's own clients do.

    ag2 agents deep-copy their ``llm_config``; a client holds locks and pools that cannot be copied, and a copy
    would not share the router's connections anyway.
    """
    # The router picks the family and the attribution headers; the shared class only changes how it is copied.
    model = router.http_client(library=library, asynchronous=asynchronous, tags=tags, user=user)
    return _shared_class(type(model))(transport=router.transport(), base_url=BASE_URL, headers=model.headers)


@functools.cache
def _shared_class(base: type[Any]) -> type[Any]:
    def __deepcopy__(self: Any, memo: dict[int, Any]) -> Any:
        return self

    def __reduce__(self: Any) -> Any:
        raise TypeError(
            "a polyroute http_client cannot be pickled or serialized: use model_client_config_list() for "
            "config_lists saved as JSON"
        )

    return type(f"Polyroute{base.__name__}", (base,), {"__deepcopy__": __deepcopy__, "__reduce__": __reduce__})


def model_client_config_list(models: Iterable[str], **extra: Any) -> list[dict[str, Any]]:
    """JSON-safe config_list entries served by :class:`PolyrouteModelClient` (``OAI_CONFIG_LIST``-friendly).

    ag2 leaves such entries inactive until ``agent.register_model_client(PolyrouteModelClient, router=router)``
    (or ``OpenAIWrapper.register_model_client``); calling before that raises ag2's ``RuntimeError``. Usage
    attribution goes there too (``register_model_client(..., tags=[...], user=...)``): entries stay plain data.
    """
    names = list(models)
    if not names:
        raise ValueError("no model names given")
    return [{"model": name, "model_client_cls": PolyrouteModelClient.__name__, **extra} for name in names]


class PolyrouteModelClient:
    """An ag2 ``ModelClient`` that sends through a polyroute :class:`~polyroute.Router` with the openai SDK.

    ag2 builds it as ``PolyrouteModelClient(entry, **kwargs)`` with the kwargs of ``register_model_client``:
    ``router=`` (a live router to share) or ``config=`` (a router config: ``RouterConfig``, dict, or a YAML /
    TOML / JSON path); with neither, ``Router()`` routes direct ``provider/model`` names with keys from the
    environment. Other kwargs go to :meth:`~polyroute.Router.openai_client` (``tags``, ``user``, ``timeout``...).
    """

    RESPONSE_USAGE_KEYS: ClassVar[list[str]] = ["prompt_tokens", "completion_tokens", "total_tokens", "cost", "model"]

    def __init__(
        self,
        entry: dict[str, Any],
        /,
        *,
        router: Router | None = None,
        config: RouterConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if router is not None and config is not None:
            raise ValueError("pass either router= or config=, not both")
        self.router = router if router is not None else Router(config)
        self.model: str = entry["model"]
        self.router.route(self.model)  # fail at registration on an unknown name
        self._client = self.router.openai_client(**kwargs)

    def __repr__(self) -> str:
        return f"PolyrouteModelClient(model={self.model!r}, router={self.router!r})"

    def create(self, params: dict[str, Any]) -> Any:
        """One chat completion: ``params`` are ag2's merged entry and call arguments; OpenAI's fields are sent."""
        allowed = _create_params()
        body = {k: v for k, v in params.items() if k in allowed}
        body.setdefault("model", self.model)
        if body.get("stream"):
            raise ValueError("PolyrouteModelClient does not stream; use config_list() entries for streaming")
        return self._client.chat.completions.create(**body)

    def message_retrieval(self, response: Any) -> list[Any]:
        """Text of each choice, or the message itself when it calls tools (what ag2's own OpenAI client does)."""
        return [
            choice.message if choice.message.tool_calls or choice.message.function_call else choice.message.content
            for choice in response.choices
        ]

    def cost(self, response: Any) -> float:
        """USD from polyroute's ``usage.cost`` (priced from the catalog / config), 0.0 when unpriced."""
        usage = getattr(response, "usage", None)
        value = getattr(usage, "cost", None) if usage is not None else None
        return float(value) if isinstance(value, int | float) else 0.0

    @staticmethod
    def get_usage(response: Any) -> dict[str, Any]:
        """``prompt_tokens``, ``completion_tokens``, ``total_tokens``, ``cost`` and ``model`` of a response."""
        usage = getattr(response, "usage", None)
        cost = getattr(usage, "cost", None) if usage is not None else None
        return {
            "prompt_tokens": getattr(usage, "prompt_tokens", 0) or 0,
            "completion_tokens": getattr(usage, "completion_tokens", 0) or 0,
            "total_tokens": getattr(usage, "total_tokens", 0) or 0,
            "cost": float(cost) if isinstance(cost, int | float) else 0.0,
            "model": response.model,
        }


@functools.cache
def _create_params() -> frozenset[str]:
    from openai.types.chat import completion_create_params

    return frozenset(completion_create_params.CompletionCreateParamsBase.__annotations__)


def openai_config(
    router: Router, model: str, *, tags: list[str] | None = None, user: str | None = None, **kwargs: Any
) -> Any:
    """ag2 1.x's ``OpenAIConfig`` for ``model``, sending through ``router`` in-process (needs ``ag2>=1``).

    ``kwargs`` go to ``OpenAIConfig`` (``temperature``, ``max_tokens``...). The ``http_client`` is an async
    client of the openai SDK's own family, as ag2 1.x calls the SDK asynchronously; ``tags`` and ``user``
    attribute its calls in the router's usage records and budgets.
    """
    config_cls = _ag2_openai_config()
    router.route(model)
    kwargs.setdefault("max_retries", 0)  # the router retries and fails over; SDK retries would rerun the chain
    return config_cls(
        model=model,
        api_key=_PLACEHOLDER_KEY,
        base_url=BASE_URL,
        http_client=shared_http_client(router, asynchronous=True, tags=tags, user=user),
        **kwargs,
    )


def _ag2_openai_config() -> type[Any]:
    try:
        module: ModuleType = importlib.import_module("ag2.config")
    except ImportError as exc:
        raise ImportError("openai_config() needs ag2 1.x: pip install 'ag2[openai]>=1'") from exc
    return module.OpenAIConfig
