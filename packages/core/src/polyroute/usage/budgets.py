"""Budgets: USD or tokens per calendar period (UTC) for a route, deployment, tag, user, or everything.

Before a call, its estimate (prompt characters / 4 and the caller's ``max_tokens``, at the route's highest price) is
*reserved* against every budget it falls under, all or nothing; after it, the reservation is *settled* with what the
call really used. A call is refused when spent + reserved + its estimate would pass a limit, so spend passes a
budget by no more than the calls in flight when it was reached used beyond their estimates. Deployment budgets are
checked when a deployment is picked (a spent one is skipped, as at its rate limit) and charged after.

The counters live behind :class:`BudgetStore` (``reserve`` / ``settle`` / ``charge`` / ``level``), in memory here;
with ``state: {backend: redis}`` the router puts them on Redis (:mod:`polyroute.state.redis_budgets`), so a budget
holds across processes. There the reservation is made with the call's first deployment claim (one round trip for
both, ``pending`` until then), and a budget found spent at that point answers as it would before routing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Protocol

from polyroute.errors import BudgetExceededError

if TYPE_CHECKING:
    from polyroute.config import Budget
    from polyroute.providers._base import Target
    from polyroute.router import Route

DEFAULT_OUTPUT_ESTIMATE = 512
"""Output tokens assumed for the estimate when the caller sets no ``max_tokens``."""


@dataclass(frozen=True, slots=True)
class Claim:
    """An amount against one budget counter: ``key`` names the budget, its scope value and its period."""

    key: str
    limit: float
    amount: float
    resets_at: float
    """End of the period (epoch seconds): the counter may be dropped after it."""
    budget: str


class BudgetStore(Protocol):
    """Budget counters: spent and reserved amounts per key."""

    def reserve(self, claims: Sequence[Claim]) -> Claim | None:
        """Reserve every claim, all or nothing: the first one that would pass its limit (nothing reserved), or
        None (all reserved). A store that cannot answer and fails closed raises :class:`BudgetStoreUnreachableError`.
        """
        ...

    def settle(self, claims: Sequence[Claim], actual: Sequence[float]) -> None:
        """Release the reservations and add what was really spent, claim by claim."""
        ...

    def charge(self, claims: Sequence[Claim]) -> None:
        """Add spend that was not reserved (deployment budgets)."""
        ...

    def level(self, key: str) -> float:
        """Spent plus reserved for ``key`` (0 when unknown)."""
        ...

    def spent(self, key: str) -> float | None:
        """Spent for ``key``, reservations left out (None when it cannot be read now); asked when a call is refused,
        to tell a spent budget from one that calls in flight hold.
        """
        ...


class MemoryBudgetStore:
    """Counters in this process, under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, list[float]] = {}
        """key → [spent, reserved, resets_at]."""
        self._prune_at = 0.0

    def reserve(self, claims: Sequence[Claim]) -> Claim | None:
        """See :meth:`BudgetStore.reserve`."""
        with self._lock:
            counters = self._counters
            for claim in claims:
                counter = counters.get(claim.key)
                level = counter[0] + counter[1] if counter is not None else 0.0
                if level + claim.amount > claim.limit:
                    return claim
            for claim in claims:
                counter = counters.get(claim.key)
                if counter is None:
                    counter = counters[claim.key] = [0.0, 0.0, claim.resets_at]
                counter[1] += claim.amount
            self._prune()
        return None

    def settle(self, claims: Sequence[Claim], actual: Sequence[float]) -> None:
        """See :meth:`BudgetStore.settle`."""
        with self._lock:
            for claim, spent in zip(claims, actual, strict=True):
                counter = self._counters.get(claim.key)
                if counter is None:  # its period ended and was pruned
                    continue
                counter[1] = max(counter[1] - claim.amount, 0.0)
                counter[0] += spent

    def charge(self, claims: Sequence[Claim]) -> None:
        """See :meth:`BudgetStore.charge`."""
        with self._lock:
            for claim in claims:
                counter = self._counters.get(claim.key)
                if counter is None:
                    counter = self._counters[claim.key] = [0.0, 0.0, claim.resets_at]
                counter[0] += claim.amount

    def level(self, key: str) -> float:
        """See :meth:`BudgetStore.level`."""
        counter = self._counters.get(key)
        return counter[0] + counter[1] if counter is not None else 0.0

    def spent(self, key: str) -> float | None:
        """See :meth:`BudgetStore.spent`."""
        counter = self._counters.get(key)
        return counter[0] if counter is not None else 0.0

    def _prune(self) -> None:
        now = time.time()
        if now < self._prune_at:
            return
        self._prune_at = now + 60.0
        for key in [k for k, c in self._counters.items() if c[2] <= now and c[1] <= 0]:
            del self._counters[key]


def period(per: str, now: float) -> tuple[float, float]:
    """``(start, end)`` of the calendar period containing ``now`` (epoch seconds, UTC)."""
    if per == "minute":
        start = now - now % 60
        return start, start + 60
    if per == "hour":
        start = now - now % 3600
        return start, start + 3600
    if per == "day":
        start = now - now % 86400
        return start, start + 86400
    day = datetime.fromtimestamp(now, timezone.utc)
    first = datetime(day.year, day.month, 1, tzinfo=timezone.utc)
    following = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=timezone.utc)
    return first.timestamp(), following.timestamp()


@dataclass(slots=True)
class Reservation:
    """What one call holds: its claims (USD ones and token ones) until it settles."""

    claims: list[Claim]
    usd: list[bool]
    """Per claim: in USD (else tokens)."""
    deployment_budgets: list[Budget]
    pending: bool = False
    """The claims are not reserved yet: they ride on the call's first deployment claim (budgets on the router's
    shared state, see :meth:`polyroute.router.Router.try_acquire`), which reserves them or sets :attr:`refused`."""
    refused: Claim | None = None
    """The claim that a pending reservation found spent (nothing reserved, no deployment claimed)."""

    def reserve_in(self, store: BudgetStore) -> Claim | None:
        """Reserve the pending claims on their own: the refused claim (also set in :attr:`refused`), or None."""
        refused = store.reserve(self.claims)
        if refused is None:
            self.pending = False
        else:
            self.refused = refused
        return refused


class Budgets:
    """The configured budgets over one :class:`BudgetStore`."""

    def __init__(self, budgets: Sequence[Budget], store: BudgetStore | None = None) -> None:
        self.budgets = list(budgets)
        self.store: BudgetStore = store or MemoryBudgetStore()
        self._call_budgets = [b for b in self.budgets if b.scope != "deployment"]
        self._deployment_budgets = [b for b in self.budgets if b.scope == "deployment"]

    def _applies(self, budget: Budget, route: str, user: str | None, tags: Sequence[str]) -> list[str]:
        """The scope values of this call that ``budget`` counts ("" for ``all``); empty when it does not apply."""
        match budget.scope:
            case "all":
                return [""]
            case "route":
                values = [route]
            case "user":
                values = [user] if user else []
            case "tag":
                values = list(tags)
            case _:
                return []
        return [v for v in values if budget.match is None or v == budget.match]

    def admit(
        self,
        route: Route,
        user: str | None,
        tags: Sequence[str],
        prompt_tokens: int,
        max_tokens: int,
        fallback: bool = True,
        defer: bool = False,
    ) -> tuple[Route | str, Reservation | None]:
        """Reserve this call's estimate: ``(route, reservation)``, or ``(fallback name, None)`` when a budget that
        names a fallback is spent; raises :class:`BudgetExceededError` when one without a fallback is (or any,
        with ``fallback=False``). With ``defer``, the reservation is only computed (``pending``): the call's first
        deployment claim reserves it, and :meth:`refusal` answers if a budget is spent then.
        """
        now = time.time()
        output = max_tokens or DEFAULT_OUTPUT_ESTIMATE
        tokens = prompt_tokens + output
        usd_estimate: float | None = None
        claims: list[Claim] = []
        usd: list[bool] = []
        for budget in self._call_budgets:
            values = self._applies(budget, route.name, user, tags)
            if not values:
                continue
            start, end = period(budget.per, now)
            if budget.usd is not None:
                if usd_estimate is None:
                    usd_estimate = _estimate_usd(route.targets, prompt_tokens, output)
                amount, limit = usd_estimate, budget.usd
            else:
                amount, limit = float(tokens), float(budget.tokens or 0)
            for value in values:
                claims.append(Claim(f"{budget.name}|{value}|{start:.0f}", limit, amount, end, budget.name))
                usd.append(budget.usd is not None)
        deployment_budgets = self._deployment_budgets
        if not claims:
            return route, Reservation([], [], deployment_budgets) if deployment_budgets else None
        if defer:
            return route, Reservation(claims, usd, deployment_budgets, pending=True)
        refused = self.store.reserve(claims)
        if refused is None:
            return route, Reservation(claims, usd, deployment_budgets)
        return self.refusal(route.name, refused, fallback), None

    def refusal(self, route: str, refused: Claim, fallback: bool = True) -> str:
        """A call to ``route`` found the budget of ``refused`` spent: the name of the budget's fallback route, or
        :class:`BudgetExceededError` raised when it has none (or with ``fallback=False``).
        """
        budget = next(b for b in self._call_budgets if b.name == refused.budget)
        if fallback and budget.fallback is not None and budget.fallback != route:
            return budget.fallback
        spent = self.store.spent(refused.key)
        held = spent is not None and spent + refused.amount <= refused.limit
        raise _exceeded(budget, refused, time.time(), held)

    def unpriced(self, routes: Sequence[Route]) -> list[str]:
        """Warnings for USD budgets over deployments no source prices: their calls count $0, so the budget never
        holds them back.
        """
        from polyroute.usage.prices import is_priced

        warnings: list[str] = []
        for budget in self.budgets:
            if budget.usd is None:
                continue
            for route in routes:
                if budget.scope == "route" and budget.match is not None and budget.match != route.name:
                    continue
                for target in route.targets:
                    if budget.scope == "deployment" and budget.match is not None and budget.match != target.label:
                        continue
                    if not is_priced(target):
                        warnings.append(
                            f"budget {budget.name!r} counts USD, but {target.label} (model {route.name!r}) has no "
                            "known price: its calls count $0 against it. Set prices: {input: ..., output: ...} "
                            "(USD per million tokens) on the deployment, or use a tokens budget."
                        )
        return warnings

    def blocked(self, target: Target) -> str | None:
        """Why ``target`` may not be picked now (a deployment budget is spent), or None."""
        now = time.time()
        for budget in self._deployment_budgets:
            label = target.label
            if budget.match is not None and budget.match != label:
                continue
            start, end = period(budget.per, now)
            limit = budget.usd if budget.usd is not None else float(budget.tokens or 0)
            if self.store.level(f"{budget.name}|{label}|{start:.0f}") >= limit:
                unit = f"${limit:g}" if budget.usd is not None else f"{limit:.0f} tokens"
                return f"budget {budget.name!r} ({unit} per {budget.per}) is spent; it resets in {end - now:.0f}s"
        return None

    def settle(self, reservation: Reservation, deployment: str | None, cost: float | None, tokens: int) -> None:
        """The call is over: release its reservation and count what it used (a failed call used nothing)."""
        if reservation.claims and not reservation.pending:  # pending: never reserved (no deployment was claimed)
            actual = [(cost or 0.0) if is_usd else float(tokens) for is_usd in reservation.usd]
            self.store.settle(reservation.claims, actual)
        if deployment is None or not reservation.deployment_budgets or not (cost or tokens):
            return
        now = time.time()
        charges: list[Claim] = []
        for budget in reservation.deployment_budgets:
            if budget.match is not None and budget.match != deployment:
                continue
            start, end = period(budget.per, now)
            amount = (cost or 0.0) if budget.usd is not None else float(tokens)
            charges.append(Claim(f"{budget.name}|{deployment}|{start:.0f}", 0.0, amount, end, budget.name))
        if charges:
            self.store.charge(charges)


def _estimate_usd(targets: Sequence[Target], prompt: int, output: int) -> float:
    """The call at the route's dearest known price (a route with no known price costs 0 here)."""
    best = 0.0
    for target in targets:
        info = target.info
        if info.input_price is None or info.output_price is None:
            continue
        best = max(best, (prompt * info.input_price + output * info.output_price) / 1_000_000)
    return best


HELD_RETRY_AFTER = 1.0
"""Seconds to wait before retrying a call refused only because calls in flight reserved the rest of a budget."""


def _exceeded(budget: Budget, claim: Claim, now: float, held: bool = False) -> BudgetExceededError:
    limit = f"${budget.usd:g}" if budget.usd is not None else f"{budget.tokens} tokens"
    scope = "all calls" if budget.scope == "all" else f"{budget.scope} {claim.key.split('|')[1]!r}"
    resets = datetime.fromtimestamp(claim.resets_at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if budget.usd is not None:
        estimate = f"${claim.amount:.6g} (its prompt and max_tokens at the route's dearest price)"
    else:
        estimate = f"{claim.amount:.0f} tokens (its prompt and max_tokens)"
    if held:
        return BudgetExceededError(
            f"budget {budget.name!r} ({limit} per {budget.per} for {scope}) has room for this call's estimate of "
            f"{estimate} only once calls in flight end: they reserve the rest of it until they do. Retry in a "
            f"moment; a request without max_tokens is estimated at {DEFAULT_OUTPUT_ESTIMATE} output tokens, so "
            "setting max_tokens reserves less.",
            budget=budget.name,
            resets_at=claim.resets_at,
            retry_after=HELD_RETRY_AFTER,
        )
    return BudgetExceededError(
        f"budget {budget.name!r} ({limit} per {budget.per} for {scope}) would be exceeded by this call, which "
        f"reserves an estimate of {estimate} until it ends, with what is spent and what calls in flight reserved; "
        f"it resets at {resets}. A request without max_tokens is estimated at {DEFAULT_OUTPUT_ESTIMATE} output "
        "tokens: set max_tokens to reserve less, raise the budget, or wait.",
        budget=budget.name,
        resets_at=claim.resets_at,
        retry_after=claim.resets_at - now,
    )
