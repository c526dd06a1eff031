"""The router: model names → deployments, deployment health, and the clients built on its transport."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from polyroute import catalog
from polyroute.config import Deployment, ModelRoute, RouterConfig, load_config
from polyroute.errors import ConfigError, NoRouteError, UpstreamError, UpstreamStatusError
from polyroute.providers import PROVIDERS
from polyroute.providers._base import Target

if TYPE_CHECKING:
    import openai

    from polyroute.transport import RouterTransport

_BASE_URL = "http://polyroute.local/v1"


@dataclass(frozen=True, slots=True)
class Route:
    """A model name and its resolved deployments."""

    name: str
    config: ModelRoute
    targets: tuple[Target, ...]

    @property
    def fallbacks(self) -> list[str]:
        """Other model names to try when every deployment here failed."""
        return self.config.fallbacks


@dataclass(slots=True)
class _Health:
    consecutive_failures: int = 0
    cooldown_until: float = 0.0
    last_error: str = ""


class Router:
    """Routes OpenAI-format chat calls to provider deployments, in-process.

    ``Router()`` with no config routes ``"provider/model"`` and ``"provider:model"`` names directly, with keys
    from each provider's usual environment variable. ``Router.from_config(source)`` adds named models with
    ordered deployments and fallbacks.
    """

    def __init__(self, config: RouterConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None) -> None:
        self.config = load_config(config if config is not None else {})
        self._routes: dict[str, Route] = {route.name: self._build_route(route) for route in self.config.models}
        self._health: dict[str, _Health] = {}
        self._lock = threading.Lock()
        self._transport: RouterTransport | None = None

    @classmethod
    def from_config(cls, source: RouterConfig | Mapping[str, Any] | str | os.PathLike[str]) -> Router:
        """A router from a :class:`RouterConfig`, a dict, or a YAML / TOML / JSON file."""
        return cls(source)

    def __repr__(self) -> str:
        return f"Router(models={list(self._routes)!r})"

    # -- routes -------------------------------------------------------------------------------------------------

    def _build_route(self, route: ModelRoute) -> Route:
        return Route(route.name, route, tuple(self._target(route.name, d) for d in route.deployments))

    def _target(self, route: str, deployment: Deployment) -> Target:
        spec = PROVIDERS[deployment.provider]
        base = deployment.api_base or spec.default_base
        if base is None:
            raise ConfigError(
                f"model {route!r}: deployment {deployment.label} needs api_base (provider "
                f"{deployment.provider!r} has no default)"
            )
        if spec.key == "azure" and deployment.api_base is None:  # pragma: no cover - guarded above
            raise ConfigError("azure deployments need api_base")
        return Target(
            route=route,
            deployment=deployment,
            spec=spec,
            api_base=base,
            api_key=deployment.resolve_api_key(spec.key_envs),
            timeout=deployment.timeout or self.config.timeout,
            info=catalog.for_deployment(spec, deployment),
        )

    @property
    def model_names(self) -> list[str]:
        """The logical model names clients may ask for (direct ``provider/model`` names also work)."""
        return list(self._routes)

    def route(self, name: str) -> Route:
        """The route for a model name: a configured one, or a direct ``provider/model`` / ``provider:model``."""
        found = self._routes.get(name)
        if found is not None:
            return found
        provider, model = _split_direct(name)
        if provider is None or not self.config.direct_routes:
            known = ", ".join(self._routes) or "none configured"
            raise NoRouteError(
                f"The model {name!r} does not exist in this router. Known models: {known}; or name a deployment "
                f"directly as 'provider/model' (providers: {', '.join(sorted(PROVIDERS))})",
                param="model",
            )
        config = ModelRoute(name=name, deployments=[Deployment(provider=provider, model=model)])
        built = self._build_route(config)
        with self._lock:
            self._routes.setdefault(name, built)
        return built

    def model_info(self, name: str) -> catalog.ModelInfo:
        """What a model name can do, across its deployments: a capability any deployment has (the router sends
        a request only where it fits), the smallest known context window and output limit, the first known prices.
        """
        infos = [t.info for t in self.route(name).targets]
        windows = [i.context_window for i in infos if i.context_window]
        outputs = [i.max_output_tokens for i in infos if i.max_output_tokens]
        priced = next((i for i in infos if i.input_price is not None), infos[0])
        return catalog.ModelInfo(
            context_window=min(windows) if windows else None,
            max_output_tokens=min(outputs) if outputs else None,
            tools=any(i.tools for i in infos),
            vision=any(i.vision for i in infos),
            pdf=any(i.pdf for i in infos),
            audio=any(i.audio for i in infos),
            json_schema=any(i.json_schema for i in infos),
            reasoning=any(i.reasoning for i in infos),
            input_price=priced.input_price,
            output_price=priced.output_price,
            cache_read_price=priced.cache_read_price,
            cache_write_price=priced.cache_write_price,
            known=any(i.known for i in infos),
        )

    def order(self, route: Route, estimated_tokens: int = 0) -> list[Target]:
        """The route's deployments in the order to try them (``ordered``: as configured)."""
        return list(route.targets)

    # -- health -------------------------------------------------------------------------------------------------

    def unavailable(self, target: Target) -> str | None:
        """Why a deployment must be skipped now (cooling down), or None."""
        health = self._health.get(target.label)
        if health is None:
            return None
        remaining = health.cooldown_until - time.monotonic()
        if remaining > 0:
            return f"cooling down for {remaining:.1f}s after: {health.last_error}"
        return None

    def report_failure(self, target: Target, error: UpstreamError) -> None:
        """Count a failure; honour ``retry-after`` and open the circuit after ``allowed_fails`` in a row."""
        settings = self.config.retry
        with self._lock:
            health = self._health.setdefault(target.label, _Health())
            health.consecutive_failures += 1
            health.last_error = f"{error.status} {error.message[:120]}"
            cooldown = 0.0
            if error.retry_after is not None and isinstance(error, UpstreamStatusError):
                cooldown = min(error.retry_after, settings.max_retry_after)
            if health.consecutive_failures >= settings.allowed_fails:
                cooldown = max(cooldown, settings.cooldown)
            if cooldown:
                health.cooldown_until = max(health.cooldown_until, time.monotonic() + cooldown)

    def report_success(self, target: Target, elapsed: float) -> None:
        """A success closes the deployment's circuit."""
        health = self._health.get(target.label)
        if health is not None and health.consecutive_failures:
            with self._lock:
                health.consecutive_failures = 0
                health.cooldown_until = 0.0

    # -- clients ------------------------------------------------------------------------------------------------

    def transport(self) -> RouterTransport:
        """The in-process transport: give it to an ``httpx`` / ``httpx2`` client, sync or async."""
        if self._transport is None:
            from polyroute.transport import RouterTransport

            self._transport = RouterTransport(self)
        return self._transport

    def async_transport(self) -> RouterTransport:
        """The same transport, for async clients (one object serves both)."""
        return self.transport()

    def http_client(self, *, library: str | None = None, asynchronous: bool = False, **kwargs: Any) -> Any:
        """An ``httpx``/``httpx2`` client on the router's transport, of the family the openai SDK here uses."""
        lib = _client_library(library)
        cls = lib.AsyncClient if asynchronous else lib.Client
        return cls(transport=self.transport(), base_url=_BASE_URL, **kwargs)

    def openai_client(self, **kwargs: Any) -> openai.OpenAI:
        """An ``openai.OpenAI`` that talks to this router in-process; ``max_retries=0`` unless given."""
        import openai

        kwargs.setdefault("api_key", "polyroute")
        kwargs.setdefault("base_url", _BASE_URL)
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("http_client", self.http_client())
        return openai.OpenAI(**kwargs)

    def async_openai_client(self, **kwargs: Any) -> openai.AsyncOpenAI:
        """An ``openai.AsyncOpenAI`` that talks to this router in-process; ``max_retries=0`` unless given."""
        import openai

        kwargs.setdefault("api_key", "polyroute")
        kwargs.setdefault("base_url", _BASE_URL)
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("http_client", self.http_client(asynchronous=True))
        return openai.AsyncOpenAI(**kwargs)

    def close(self) -> None:
        """Close upstream connection pools."""
        if self._transport is not None:
            self._transport.close()


def _split_direct(name: str) -> tuple[str | None, str]:
    for sep in ("/", ":"):
        provider, found, model = name.partition(sep)
        if found and provider in PROVIDERS and model:
            return provider, model
    return None, name


def _client_library(library: str | None) -> Any:
    """The httpx family the installed openai SDK is built on (openai 3.x: httpx2; 2.x: httpx)."""
    from polyroute import _compat

    if library is None:
        try:
            import openai._base_client as base

            library = "httpx2" if hasattr(base, "httpx2") else "httpx"
        except ImportError:
            library = _compat.UPSTREAM.__name__
    for lib in _compat.LIBS:
        if lib.__name__ == library:
            return lib
    raise ConfigError(f"HTTP library {library!r} is not installed")
