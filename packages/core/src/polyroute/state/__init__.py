"""Routing state shared between processes (``state:`` in the config).

Each process keeps its own :class:`~polyroute.health.DeploymentState` per deployment; that in-memory state is the
default and needs nothing here (:func:`open_shared_state` gives ``None``). With ``state: {backend: redis}`` a
:class:`SharedState` adds the fleet's view: the router asks it once per claim (:meth:`SharedState.acquire`, the
only call that may wait on the network; a call's budget reservation rides on its first claim) and tells it outcomes,
which it sends in the background. When the shared store cannot answer in time the process routes on its own state,
as with the default.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from polyroute.config import StateSettings
    from polyroute.health import DeploymentState, Unavailable
    from polyroute.usage.budgets import BudgetStore, Reservation


class SharedState(Protocol):
    """The fleet-wide part of routing state, beside each process's own :class:`DeploymentState`."""

    def register(self, state: DeploymentState, name: str) -> None:
        """Share ``state`` under ``name``: the same deployment has the same name in every process."""
        ...

    def unregister(self, state: DeploymentState) -> None:
        """Stop sharing ``state`` (its route was dropped)."""
        ...

    def acquire(
        self, state: DeploymentState, tokens: int, now: float, budget: Reservation | None = None
    ) -> Unavailable | None:
        """Claim a call fleet-wide (rpm/tpm, in flight, the half-open probe) or say why not; at most one round trip.

        A pending ``budget`` (see :meth:`takes_budgets`) is reserved first in the same round trip, all or nothing:
        when a budget is spent, nothing is claimed, ``budget.refused`` says which, and the answer is not None. When
        the claim is refused the budget stays reserved. When no script runs (Redis down) the budget is reserved on
        its own (:meth:`~polyroute.usage.budgets.Reservation.reserve_in`) before the claim is admitted.
        """
        ...

    def takes_budgets(self, store: BudgetStore) -> bool:
        """Whether ``store``'s reservations can ride on this state's claims now (the same connection, reachable)."""
        ...

    def release(self, state: DeploymentState, extra_tokens: int) -> None:
        """A claimed call ended (``extra_tokens``: used beyond the estimate)."""
        ...

    def failure(
        self,
        state: DeploymentState,
        reason: str,
        retry_after: float | None,
        counts: bool,
        allowed_fails: int,
        cooldown: float,
    ) -> None:
        """A failed call: a ``retry-after`` cooldown for all, and a count toward the shared circuit."""
        ...

    def success(self, state: DeploymentState, latency: float, release: bool, extra_tokens: int) -> None:
        """A successful call: closes the shared circuit, feeds the shared latency average."""
        ...

    def add(self, name: str, amount: float, limit: float | None = None, ttl: float | None = None) -> float | None:
        """Add ``amount`` to the fleet-wide counter ``name`` in one atomic step, unless that passes ``limit``.

        For budgets (reserve with a limit, settle with the difference and none): the new total, or ``-1.0`` when
        refused, or ``None`` when the shared store did not answer (the caller's fail-open or fail-closed rule
        decides). ``ttl`` (seconds) starts when the counter is created: a budget period.
        """
        ...

    def close(self) -> None:
        """Stop background work and drop connections (used again, it reconnects)."""
        ...


def open_shared_state(settings: StateSettings, lock: threading.Lock) -> SharedState | None:
    """The shared state ``settings`` ask for, or ``None`` for the in-memory default. ``lock`` guards the
    router's :class:`DeploymentState` objects, which background refreshes update.
    """
    if settings.backend == "memory":
        return None
    try:
        from polyroute.state.redis import RedisState
    except ImportError as exc:
        if exc.name is None or not exc.name.startswith("redis"):
            raise
        from polyroute.errors import ConfigError

        raise ConfigError("state: backend 'redis' needs redis-py: install the redis extra, polyroute[redis]") from None
    return RedisState(settings, lock)


def open_budget_store(shared: SharedState | None, settings: StateSettings) -> BudgetStore | None:
    """Budgets on the shared store when there is one (so a budget holds across processes), else None: the budgets'
    in-memory default.
    """
    if shared is None:
        return None
    from polyroute.state.redis import RedisState

    if not isinstance(shared, RedisState):
        return None
    from polyroute.state.redis_budgets import RedisBudgetStore

    return RedisBudgetStore(shared, settings.budgets_when_unreachable)
