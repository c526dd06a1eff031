"""The router: model names → deployments, deployment health, and the clients built on its transport."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from polyroute import catalog
from polyroute._thinking import ThinkingStore
from polyroute.config import Deployment, ModelRoute, RouterConfig, load_config
from polyroute.errors import ConfigError, InvalidRequestError, NoRouteError, UpstreamError
from polyroute.health import DeploymentState, Unavailable
from polyroute.providers import PROVIDERS
from polyroute.providers._base import Target
from polyroute.state import SharedState, open_budget_store, open_shared_state

if TYPE_CHECKING:
    import openai

    from polyroute.transport import RouterTransport
    from polyroute.usage.budgets import BudgetStore, Reservation
    from polyroute.usage.recorder import Recorder

Mode = Literal["chat", "embedding"]
"""What a route serves: Chat Completions or embeddings."""

logger = logging.getLogger("polyroute")

_BASE_URL = "http://polyroute.local/v1"

EXPLORE = 0.1
"""How often the ``latency`` strategy tries a random deployment first, so a slow-then-recovered one is re-measured."""

MAX_DIRECT_ROUTES = 1024
"""Direct ``provider/model`` routes kept (least recently used dropped first): callers may send any name."""

_MISSING_KEY_HOLD = 3600.0
"""How long, within one call, a deployment without a key stays skipped (the next call reads the key again)."""


@dataclass(frozen=True)
class Route:
    """A model name and its resolved deployments."""

    name: str
    config: ModelRoute
    targets: tuple[Target, ...]

    @cached_property
    def inverse_weights(self) -> tuple[float, ...]:
        """``1 / weight`` per deployment (0 for weight 0), for the weighted draw."""
        return tuple(1.0 / t.deployment.weight if t.deployment.weight > 0 else 0.0 for t in self.targets)

    @property
    def fallbacks(self) -> list[str]:
        """Other model names to try when every deployment here failed."""
        return self.config.fallbacks

    @cached_property
    def mode(self) -> Mode | None:
        """What the route serves, ``chat`` or ``embedding``, as its deployments say (None: no one knows)."""
        modes: set[Mode] = {mode for mode in map(deployment_mode, self.targets) if mode is not None}
        return modes.pop() if len(modes) == 1 else None


class Router:
    """Routes OpenAI-format chat calls to provider deployments, in-process.

    ``Router()`` with no config routes ``"provider/model"`` and ``"provider:model"`` names directly, with keys
    from each provider's usual environment variable. ``Router.from_config(source)`` adds named models with
    ordered deployments and fallbacks.
    """

    def __init__(
        self,
        config: RouterConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        *,
        budget_store: BudgetStore | None = None,
    ) -> None:
        self.config = load_config(config if config is not None else {})
        self._lock = threading.Lock()
        self._shared_state: SharedState | None = open_shared_state(self.config.state, self._lock)
        """The fleet's view of each deployment (``state: {backend: redis}``); None: this process's state only."""
        if budget_store is None and self.config.budgets:
            budget_store = open_budget_store(self._shared_state, self.config.state)
        self.recorder: Recorder | None = _recorder(self.config, budget_store)
        """Usage records and budgets (None with ``usage.enabled: false`` and no budgets: nothing is recorded)."""
        self._states: dict[Target, DeploymentState] = {}
        self.thinking_store = ThinkingStore()
        """Thinking blocks and thought signatures by tool-call id, re-attached when a client drops them."""
        self._shared: dict[Hashable, tuple[DeploymentState, int]] = {}
        """One state per distinct deployment (see :func:`_identity`), with the number of targets using it."""
        self._rejected: dict[DeploymentState, tuple[str, float, str]] = {}
        """Deployments whose key got a 401: (key digest, until, reason); skipped while the key is unchanged."""
        self._routes: dict[str, Route] = {route.name: self._build_route(route) for route in self.config.models}
        for built in self._routes.values():
            _check_fallback_modes(built, self._routes)
            _check_vector_space(built, self._routes)
        self._direct: OrderedDict[str, Route] = OrderedDict()
        self._transport: RouterTransport | None = None
        budgets = self.recorder.budgets if self.recorder is not None else None
        if budgets is not None:
            for warning in budgets.unpriced(list(self._routes.values())):
                logger.warning("polyroute: %s", warning)

    @classmethod
    def from_config(cls, source: RouterConfig | Mapping[str, Any] | str | os.PathLike[str]) -> Router:
        """A router from a :class:`RouterConfig`, a dict, or a YAML / TOML / JSON file."""
        return cls(source)

    def __repr__(self) -> str:
        return f"Router(models={self.model_names!r})"

    # -- routes -------------------------------------------------------------------------------------------------

    def _build_route(self, route: ModelRoute) -> Route:
        built = Route(route.name, route, tuple(self._target(route.name, d) for d in route.deployments))
        _check_modes(built)
        for target in built.targets:
            _ = target.api_key  # resolved once now too, so redaction and the cassette guard know it before any call
        with self._lock:
            for target in built.targets:
                self._attach(target)
        return built

    def _attach(self, target: Target) -> None:
        """Give ``target`` the state of the same deployment under another name, or a new one (lock held)."""
        identity = _identity(target)
        found = self._shared.get(identity)
        state, users = found or (_new_state(target), 0)
        if found is None and self._shared_state is not None:
            self._shared_state.register(state, _shared_name(target, identity))
        self._shared[identity] = (state, users + 1)
        self._states[target] = state

    def _detach(self, target: Target) -> None:
        """``target``'s route was dropped: forget its state once no other route uses it (lock held)."""
        state = self._states.pop(target, None)
        identity = _identity(target)
        found = self._shared.get(identity)
        if state is None or found is None:
            return
        if found[1] <= 1:
            del self._shared[identity]
            self._rejected.pop(state, None)
            if self._shared_state is not None:
                self._shared_state.unregister(state)
        else:
            self._shared[identity] = (state, found[1] - 1)

    def _target(self, route: str, deployment: Deployment) -> Target:
        spec = PROVIDERS[deployment.provider]
        base = deployment.api_base or spec.default_base
        if base is None:
            raise ConfigError(
                f"model {route!r}: deployment {deployment.label} needs api_base (provider "
                f"{deployment.provider!r} has no default)"
            )
        return Target(
            route=route,
            deployment=deployment,
            spec=spec,
            api_base=base,
            timeout=deployment.timeout or self.config.timeout,
            info=catalog.for_deployment(spec, deployment),
            thinking_store=self.thinking_store,
        )

    @property
    def model_names(self) -> list[str]:
        """The logical model names clients may ask for (direct ``provider/model`` names also work)."""
        return [route.name for route in self.config.models]

    def route(self, name: str) -> Route:
        """The route for a model name: a configured one, or a direct ``provider/model`` / ``provider:model``."""
        found = self._routes.get(name)
        if found is not None:
            return found
        direct = self._direct
        found = direct.get(name)
        if found is not None:
            with contextlib.suppress(KeyError):  # dropped by another thread meanwhile: still good for this call
                direct.move_to_end(name)
            return found
        provider, model = _split_direct(name)
        if provider is None or not self.config.direct_routes:
            known = ", ".join(self.model_names) or "none configured"
            providers = ", ".join(sorted(PROVIDERS))
            named = next((name.partition(sep)[0] for sep in ("/", ":") if sep in name), None)
            if named is not None and self.config.direct_routes and named in PROVIDERS:
                hint = f"name the model after the provider: '{named}/<model>'"
            elif named is not None and self.config.direct_routes:  # it was meant as provider/model
                hint = f"{named!r} is not a provider polyroute knows (providers: {providers})"
            else:
                hint = f"or name a deployment directly as 'provider/model' (providers: {providers})"
            raise NoRouteError(
                f"The model {name!r} does not exist in this router. Known models: {known}; {hint}",
                param="model",
            )
        if PROVIDERS[provider].default_base is None:
            raise InvalidRequestError(
                f"the model {name!r} names provider {provider!r} directly, but {provider!r} needs an api_base: "
                f"configure a model with a {provider!r} deployment that sets api_base, and call it by that name",
                param="model",
                code="model_needs_config",
            )
        config = ModelRoute(name=name, deployments=[Deployment(provider=provider, model=model)])
        built = self._build_route(config)
        with self._lock:
            kept = direct.setdefault(name, built)
            dropped = [] if kept is built else list(built.targets)
            while len(direct) > MAX_DIRECT_ROUTES:
                dropped.extend(direct.popitem(last=False)[1].targets)
            for target in dropped:
                self._detach(target)
        return kept

    def reachable_targets(self, name: str) -> list[Target]:
        """The deployments a call to ``name`` may end at: its own, then those of every route it falls back to
        (``fallbacks``, ``context_window_fallbacks``, ``content_policy_fallbacks``), each route once.
        """
        seen: set[str] = set()
        pending = [name]
        targets: list[Target] = []
        while pending:
            route_name = pending.pop()
            if route_name in seen:
                continue
            seen.add(route_name)
            route = self.route(route_name)
            targets.extend(route.targets)
            config = route.config
            pending.extend([*config.fallbacks, *config.context_window_fallbacks, *config.content_policy_fallbacks])
        return targets

    def require_mode(self, name: str, mode: Mode) -> Route:
        """The route for ``name``, which must serve ``mode``: a chat call to an embedding route (or the reverse) is a
        400 that says which API to call.
        """
        route = self.route(name)
        if route.mode is None or route.mode == mode:
            return route
        labels = ", ".join(t.label for t in route.targets)
        if route.mode == "embedding":
            message = (
                f"the model {name!r} is an embedding model ({labels}): call POST /v1/embeddings "
                "(client.embeddings.create), not chat completions, or name a chat model"
            )
        else:
            message = (
                f"the model {name!r} is a chat model ({labels}) and makes no embeddings: call POST "
                "/v1/chat/completions with it, or name an embedding model (set mode: embedding on a deployment "
                "of a model that embeds)"
            )
        raise InvalidRequestError(message, param="model", code="wrong_model_mode")

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

    def order(self, route: Route, estimated_tokens: int = 0, output_tokens: int = 0) -> list[Target]:
        """The route's deployments in the order to try them, by the route's ``strategy``.

        ``ordered``: as configured. ``weighted``: a weighted random permutation (the first pick follows
        ``weight``; weight 0 only serves as a last resort). ``least-busy``: fewest calls in flight first.
        ``latency``: lowest moving average of time to first token first, untried deployments before all, and now
        and then (:data:`EXPLORE`) a random one first so a recovered deployment gets measured again. ``cost``:
        cheapest for this request's estimated tokens by catalog (or configured) prices; unpriced last.
        """
        targets = route.targets
        if len(targets) < 2:
            return list(targets)
        strategy = route.config.strategy
        if strategy == "ordered":
            return list(targets)
        if strategy == "weighted":
            # Efraimidis-Spirakis: sorting by u ** (1 / w) draws a weighted permutation without replacement.
            rand = random.random
            keyed = [(rand() ** inv if inv else -rand(), i) for i, inv in enumerate(route.inverse_weights)]
            keyed.sort(reverse=True)
            return [targets[i] for _, i in keyed]
        states = self._states
        if strategy == "least-busy":
            rand = random.random
            keyed_busy = [(states[t].in_flight + states[t].others_in_flight, rand(), i) for i, t in enumerate(targets)]
            keyed_busy.sort()
            return [targets[i] for _, _, i in keyed_busy]
        if strategy == "latency":
            keyed_latency = [(-1.0 if (lat := states[t].latency) is None else lat, i) for i, t in enumerate(targets)]
            keyed_latency.sort()
            ordered = [targets[i] for _, i in keyed_latency]
            if random.random() < EXPLORE:
                pick = ordered.pop(random.randrange(len(ordered)))
                ordered.insert(0, pick)
            return ordered
        # cost
        prompt = max(estimated_tokens, 1)
        output = max(output_tokens, 1)
        keyed_cost = [(_estimated_cost(t, prompt, output), i) for i, t in enumerate(targets)]
        keyed_cost.sort()
        return [targets[i] for _, i in keyed_cost]

    # -- health -------------------------------------------------------------------------------------------------

    def state(self, target: Target) -> DeploymentState:
        """The shared state of one deployment (circuit, cooldown, limits, load, latency).

        Deployments that are the same (provider, base URL, model, key source, headers) share one state, whichever
        routes name them. A target whose direct route was dropped meanwhile gets the live state of its deployment,
        or a fresh one that is not kept.
        """
        found = self._states.get(target)
        if found is None:
            shared = self._shared.get(_identity(target))
            return shared[0] if shared is not None else _new_state(target)
        return found

    @property
    def shared_state(self) -> SharedState | None:
        """The state shared with other processes (``state: {backend: redis}``), or None (this process only)."""
        return self._shared_state

    def unavailable(self, target: Target, tokens: int = 0) -> Unavailable | None:
        """Why a deployment must be skipped now (no key, key rejected, circuit open, cooling down, at a limit,
        busy), or None.
        """
        now = time.monotonic()
        return self._auth_problem(target, self.state(target), now) or self.state(target).unavailable(tokens, now)

    def _auth_problem(self, target: Target, state: DeploymentState, now: float) -> Unavailable | None:
        """No key for this call, or the same key that this deployment rejected with a 401 a moment ago."""
        missing = target.missing_key_error()
        if missing is not None:
            return Unavailable("auth", missing.message, now + _MISSING_KEY_HOLD)
        if self._rejected:
            rejected = self._rejected.get(state)
            if rejected is not None:
                digest, until, reason = rejected
                if now < until and digest == _key_digest(target.api_key):
                    return Unavailable("auth", reason, until)
        return None

    def try_acquire(
        self, target: Target, tokens: int = 0, now: float | None = None, budget: Reservation | None = None
    ) -> Unavailable | None:
        """Claim a deployment for a call (in flight, rate-limit tokens, half-open probe), or say why not.

        With shared state, this process's own state is checked first (no round trip when it already says no), then
        the fleet's claim decides (one round trip), then the claim is recorded here too, as the fallback's view.
        A pending ``budget`` reservation rides on that round trip (:meth:`SharedState.acquire`): when a budget is
        spent, nothing is claimed and ``budget.refused`` says which.
        """
        state = self.state(target)
        if now is None:
            now = time.monotonic()
        auth = self._auth_problem(target, state, now)
        if auth is not None:
            return auth
        shared = self._shared_state
        with self._lock:
            skip = state.unavailable(tokens, now)
            if skip is None and shared is None:
                state.acquire(tokens, now)
        if skip is not None or shared is None:
            return skip
        skip = shared.acquire(state, tokens, now, budget)
        if skip is None:
            with self._lock:
                state.acquire(tokens, now)
        return skip

    def release(self, target: Target, extra_tokens: int = 0) -> None:
        """A call claimed with :meth:`try_acquire` ended (``extra_tokens``: used beyond the estimate)."""
        state = self.state(target)
        with self._lock:
            state.release(extra_tokens, time.monotonic())
        if self._shared_state is not None:
            self._shared_state.release(state, extra_tokens)

    def report_failure(self, target: Target, error: UpstreamError, counts: bool = True) -> None:
        """Count a failure (toward the circuit when ``counts``); honour ``retry-after`` on rate limits.

        An auth failure never counts toward the circuit (an open circuit would answer 503 for a wrong key): a
        missing key is not the deployment's fault, and a rejected key (401) is remembered instead, so the
        deployment is skipped with its 401 while that same key is in use, for ``retry.cooldown`` seconds.
        """
        settings = self.config.retry
        retry_after = error.retry_after
        if retry_after is not None:
            retry_after = min(retry_after, settings.max_retry_after)
        state = self.state(target)
        if is_auth_failure(error):
            counts = False
            if error.code != "missing_api_key" and settings.cooldown > 0:
                reason = f"401 {error.message[:300]}"
                with self._lock:
                    self._rejected[state] = (_key_digest(target.api_key), time.monotonic() + settings.cooldown, reason)
        reason = f"{error.status} {error.message[:160]}"
        with self._lock:
            state.failure(reason, retry_after, counts, settings.allowed_fails, settings.cooldown, time.monotonic())
        if self._shared_state is not None:
            self._shared_state.failure(state, reason, retry_after, counts, settings.allowed_fails, settings.cooldown)

    def report_success(self, target: Target, elapsed: float, release: bool = False, extra_tokens: int = 0) -> None:
        """A success closes the deployment's circuit and feeds its latency average.

        ``release`` also ends the call (:meth:`release`, under the same lock).
        """
        state = self.state(target)
        now = time.monotonic()
        with self._lock:
            if self._rejected:
                self._rejected.pop(state, None)
            state.success(elapsed, now)
            if release:
                state.release(extra_tokens, now)
        if self._shared_state is not None:
            self._shared_state.success(state, elapsed, release, extra_tokens)

    def observe(self, target: Target, headers: Mapping[str, str]) -> None:
        """Upstream rate-limit headers of a response (``x-ratelimit-remaining-*``)."""
        if "x-ratelimit-remaining-requests" in headers or "x-ratelimit-remaining-tokens" in headers:
            state = self.state(target)
            with self._lock:
                state.observe(headers, time.monotonic())

    # -- usage --------------------------------------------------------------------------------------------------

    def usage(self) -> dict[str, Any]:
        """Totals since the router was built: ``{"total": {...}, "route": {name: {...}}, "deployment": …, "tag": …,
        "user": …}``, each with calls, errors, failovers, failed attempts, tokens, cost (USD) and mean latency.
        """
        recorder = self.recorder
        if recorder is None or recorder.aggregate is None:
            return {}
        return recorder.aggregate.snapshot()

    # -- clients ------------------------------------------------------------------------------------------------

    def transport(self) -> RouterTransport:
        """The in-process transport: give it to an ``httpx`` / ``httpx2`` client, sync or async.

        One per router, shared by every client on it; a client's ``close()`` does not close it (the upstream pools
        are the router's: :meth:`close`).
        """
        transport = self._transport
        if transport is None:
            from polyroute.transport import RouterTransport

            with self._lock:
                transport = self._transport
                if transport is None:
                    transport = self._transport = RouterTransport(self)
        return transport

    def async_transport(self) -> RouterTransport:
        """The same transport, for async clients (one object serves both)."""
        return self.transport()

    def http_client(
        self,
        *,
        library: str | None = None,
        asynchronous: bool = False,
        tags: list[str] | None = None,
        user: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """An ``httpx``/``httpx2`` client on the router's transport, of the family the openai SDK here uses;
        ``tags`` and ``user`` as for :meth:`openai_client` (for SDK clients built elsewhere, e.g. by ag2).
        """
        _attribution(kwargs, tags, user, key="headers")
        lib = _client_library(library)
        cls = lib.AsyncClient if asynchronous else lib.Client
        return cls(transport=self.transport().client_view(), base_url=_BASE_URL, **kwargs)

    def openai_client(self, *, tags: list[str] | None = None, user: str | None = None, **kwargs: Any) -> openai.OpenAI:
        """An ``openai.OpenAI`` that talks to this router in-process; ``max_retries=0`` unless given. ``tags`` and
        ``user`` attribute every call of this client in usage records and budgets.
        """
        try:
            import openai
        except ImportError as exc:
            raise ImportError(_NO_OPENAI) from exc

        _attribution(kwargs, tags, user)
        kwargs.setdefault("api_key", "polyroute")
        kwargs.setdefault("base_url", _BASE_URL)
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("http_client", self.http_client())
        return openai.OpenAI(**kwargs)

    def async_openai_client(
        self, *, tags: list[str] | None = None, user: str | None = None, **kwargs: Any
    ) -> openai.AsyncOpenAI:
        """An ``openai.AsyncOpenAI`` that talks to this router in-process; ``max_retries=0`` unless given; ``tags``
        and ``user`` as for :meth:`openai_client`.
        """
        try:
            import openai
        except ImportError as exc:
            raise ImportError(_NO_OPENAI) from exc

        _attribution(kwargs, tags, user)
        kwargs.setdefault("api_key", "polyroute")
        kwargs.setdefault("base_url", _BASE_URL)
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("http_client", self.http_client(asynchronous=True))
        return openai.AsyncOpenAI(**kwargs)

    def close(self) -> None:
        """Close the router's upstream connection pools and its shared-state connection (clients on it then open
        new ones if used again), and write the usage records still queued.
        """
        if self._transport is not None:
            self._transport.close_pools()
        if self._shared_state is not None:
            self._shared_state.close()
        if self.recorder is not None:
            self.recorder.flush()

    async def aclose(self) -> None:
        """:meth:`close`, and close the running event loop's async pool."""
        if self._transport is not None:
            await self._transport.aclose_pools()
        if self._shared_state is not None:
            self._shared_state.close()
        if self.recorder is not None:
            self.recorder.flush()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Router:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def deployment_mode(target: Target) -> Mode | None:
    """What a deployment serves: its ``mode``, else the catalog's word, else ``embedding`` when an unknown model's
    name says embed (``nomic-embed-text``), else None (either: the provider decides).
    """
    d = target.deployment
    if d.mode is not None:
        return d.mode
    if target.info.embedding:
        return "embedding"
    if target.info.known:
        return "chat"
    return "embedding" if "embed" in d.model.lower() else None


def _check_modes(route: Route) -> None:
    """A route serves chat or embeddings, not both: a call must not fail over from one kind of model to the other."""
    modes = {target.label: deployment_mode(target) for target in route.targets}
    if len({mode for mode in modes.values() if mode is not None}) > 1:
        listed = ", ".join(f"{label} ({mode})" for label, mode in modes.items() if mode is not None)
        raise ConfigError(
            f"model {route.name!r} mixes chat and embedding deployments: {listed}. A route serves one or the "
            "other; put them under two names (set mode: chat / mode: embedding on a deployment the catalog "
            "judges wrongly)"
        )


def _check_fallback_modes(route: Route, routes: Mapping[str, Route]) -> None:
    """A route's fallbacks serve what it serves: a chat call must not fall back to an embedding model."""
    for name in route.fallbacks:
        fallback = routes.get(name)
        if route.mode and fallback is not None and fallback.mode and fallback.mode != route.mode:
            raise ConfigError(
                f"model {route.name!r} serves {route.mode} but its fallback {name!r} serves {fallback.mode}: a "
                "fallback must serve the same API"
            )


def _vector_space(deployment: Deployment) -> tuple[str, int | None]:
    """The embedding model and vector size a deployment produces (Gemini's ``models/`` prefix aside)."""
    params = deployment.params
    size = deployment.dimensions or params.get("dimensions") or params.get("outputDimensionality")
    return deployment.model.removeprefix("models/"), size if isinstance(size, int) else None


def _check_vector_space(route: Route, routes: Mapping[str, Route]) -> None:
    """An embedding route's deployments and fallbacks must produce one vector space, unless the route allows mixing.

    Vectors from two embedding models, or of two sizes, are not comparable: an index built from one model's
    vectors searched with another's returns wrong neighbours without an error. Failing over between them would
    do exactly that, silently.
    """
    if route.mode != "embedding" or route.config.allow_mixed_vector_spaces:
        return
    spaces: dict[tuple[str, int | None], str] = {}
    for target in route.targets:
        spaces.setdefault(_vector_space(target.deployment), target.label)
    for name in route.fallbacks:
        fallback = routes.get(name)
        if fallback is not None:
            for target in fallback.targets:
                spaces.setdefault(_vector_space(target.deployment), f"{target.label} (fallback {name!r})")
        else:
            provider, model = _split_direct(name)
            if provider is not None:
                spaces.setdefault((model.removeprefix("models/"), None), f"{name} (fallback)")
    if len(spaces) > 1:
        listed = "; ".join(
            f"{label}: {model}" + (f" at {size} dimensions" if size else "") for (model, size), label in spaces.items()
        )
        raise ConfigError(
            f"embedding model {route.name!r} mixes vector spaces ({listed}). Vectors from different embedding models "
            "or sizes are not comparable: failing over between them would put vectors from one space into an index "
            "of another, and searches would return wrong neighbours without any error. Give every deployment and "
            "fallback the same model and dimensions, or set allow_mixed_vector_spaces: true on the route if each "
            "caller only compares vectors from one call"
        )


def _recorder(config: RouterConfig, store: BudgetStore | None) -> Recorder | None:
    """The router's usage recorder (imported here, not with ``polyroute``), or None when nothing is recorded."""
    settings = config.usage
    if not settings.enabled:
        if not config.budgets:
            return None
        settings = settings.model_copy(update={"aggregate": False, "ledger": None, "otel": False, "callback": None})
    from polyroute.usage.recorder import Recorder

    return Recorder(settings, config.budgets, store)


_NO_OPENAI = "openai_client() and async_openai_client() need the openai SDK: pip install 'polyroute[openai]'"
"""Said when the openai SDK is missing, instead of a bare ``No module named 'openai'``."""


def _attribution(
    kwargs: dict[str, Any], tags: list[str] | None, user: str | None, *, key: str = "default_headers"
) -> None:
    """A client's default tags and user, as headers on each of its requests (``kwargs[key]``)."""
    if not tags and not user:
        return
    from polyroute.usage.recorder import TAGS_HEADER, USER_HEADER

    headers = dict(kwargs.get(key) or {})
    if tags:
        headers[TAGS_HEADER] = ",".join(tags)
    if user:
        headers[USER_HEADER] = user
    kwargs[key] = headers


def is_auth_failure(error: UpstreamError) -> bool:
    """A 401: the deployment's key is missing or wrong (not the deployment being down)."""
    return error.status == 401 or error.code == "missing_api_key"


def _key_digest(key: str | None) -> str:
    """A short fingerprint of a key, to notice it changed without holding it."""
    return hashlib.blake2b((key or "").encode(), digest_size=16).hexdigest()


def _identity(target: Target) -> Hashable:
    """What makes two targets the same deployment, sharing one health state: provider, base URL, model, where the
    key comes from, version, headers and ``id`` (deployments labelled apart are kept apart); the first route's
    limits apply. A mock deployment is also its behaviour.
    """
    d = target.deployment
    source: Hashable = ("inline", _key_digest(d.api_key.get_secret_value())) if d.api_key else target.key_envs
    headers = tuple(sorted(d.headers.items())) if d.headers else ()
    behaviour = d.model_dump_json(include=_MOCK_BEHAVIOUR) if target.provider == "mock" else None
    # Bedrock and Vertex bases are templates ({region}, {location}): where the deployment runs, and as whom, tell
    # two regions of one model apart (a throttled us-east-1 must not cool down its us-west-2 failover).
    place = (
        d.aws_region,
        d.aws_profile,
        d.aws_access_key_id and _key_digest(d.aws_access_key_id.get_secret_value()),
        d.project,
        d.location,
        _key_digest(json.dumps(d.credentials, sort_keys=True)) if d.credentials else None,
    )
    return (target.provider, target.api_base, d.model, source, d.api_version, headers, d.id, behaviour, place)


_MOCK_BEHAVIOUR = {
    "response",
    "tool_calls",
    "error",
    "error_message",
    "fail_times",
    "retry_after",
    "latency",
    "chunk_delay",
    "chunk_size",
    "broken_stream",
    "params",
}


def _shared_name(target: Target, identity: Hashable) -> str:
    """The deployment's name in shared state: readable, and the same in every process with the same config."""
    digest = hashlib.blake2b(repr(identity).encode(), digest_size=6).hexdigest()
    return f"{target.provider}/{target.deployment.model}#{digest}"


def _new_state(target: Target) -> DeploymentState:
    d = target.deployment
    return DeploymentState(d.rpm, d.tpm, d.max_parallel, time.monotonic())


def _estimated_cost(target: Target, prompt: int, output: int) -> float:
    info = target.info
    if info.input_price is None or info.output_price is None:
        return float("inf")
    return prompt * info.input_price + output * info.output_price


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
