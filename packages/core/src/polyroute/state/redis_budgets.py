"""Budgets on Redis: every process configured with the same ``state`` counts against the same budgets.

Each budget counter (a :class:`~polyroute.usage.budgets.Claim` key: budget, scope value, period) is two keys, all
under the one hash tag ``{budgets}`` so a call's claims share a Redis Cluster slot and one script reserves them all::

    <prefix>{budgets}:<claim key>     hash: spent, reserved
    <prefix>{budgets}:<claim key>:r   sorted set of reservations ("<id>|<n>|<amount>"), scored by lease expiry

Both expire when the claim's period ends. A reservation whose process died before settling leaves the count when its
lease (:data:`RESERVATION_LEASE`) ends, so a killed worker does not hold part of a budget until the period resets.

A call's reservation rides on its first deployment claim: :meth:`RedisState.acquire` runs the reservation and the claim
as one script (on a Redis Cluster, where the two are in different slots, two scripts in one pipeline), so a call with
budgets still makes one round trip on its path. Settles and deployment charges go to the background thread with the
calls' outcomes: a call counts as its reservation (its estimate) a few ms after it ended, as while it was in flight,
then as what it spent. Deployment budget levels are read from a copy the background refresh keeps. When Redis cannot
answer within ``state.timeout``, ``state.budgets_when_unreachable`` decides: ``open`` counts in this process (a
:class:`~polyroute.usage.budgets.MemoryBudgetStore`) until Redis answers again, ``closed`` refuses calls that need a
reservation (503 ``budget_store_unreachable``). Deployment budgets are checked by level and charged after the call, so
they count in this process while Redis is away, in either mode.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from polyroute.errors import BudgetStoreUnreachableError
from polyroute.state.redis import _RESERVE, RedisState  # pyright: ignore[reportPrivateUsage]
from polyroute.usage.budgets import Claim, MemoryBudgetStore, Reservation

_log = logging.getLogger("polyroute.state")

RESERVATION_LEASE = 900.0
"""Seconds a reservation counts unless settled: longer than any call, short enough that a dead process's
reservations do not hold a budget for long."""

_LEVEL_IDLE = 600.0
"""Seconds after which a deployment budget level nobody asked for is no longer refreshed (a past period's)."""

# KEYS: per claim its hash and its reservations. ARGV: per claim: reservation member ('' none), amount reserved,
# amount spent, expire-at (epoch ms). A reservation is released only while it is still there (its lease may have
# ended); spend is added in any case.
_SETTLE = """
for i = 1, #KEYS / 2 do
  local h, r = KEYS[2 * i - 1], KEYS[2 * i]
  local member, reserved, spent = ARGV[4 * i - 3], ARGV[4 * i - 2], tonumber(ARGV[4 * i - 1])
  if member ~= '' and redis.call('ZREM', r, member) == 1 then
    if tonumber(redis.call('HINCRBYFLOAT', h, 'reserved', -tonumber(reserved))) < 1e-9 then
      redis.call('HSET', h, 'reserved', 0)
    end
  end
  if spent ~= 0 then
    redis.call('HINCRBYFLOAT', h, 'spent', ARGV[4 * i - 1])
    redis.call('PEXPIREAT', h, ARGV[4 * i])
  end
end
return 0
"""


def budget_keys(prefix: str, key: str) -> tuple[str, str]:
    """The hash and the reservations of budget counter ``key`` (the one ``{budgets}`` tag: one Cluster slot)."""
    base = f"{prefix}{{budgets}}:{key}"
    return base, base + ":r"


class RedisBudgetStore:
    """:class:`~polyroute.usage.budgets.BudgetStore` on the connection of a :class:`RedisState`."""

    def __init__(
        self, state: RedisState, when_unreachable: Literal["open", "closed"] = "open", lease: float = RESERVATION_LEASE
    ) -> None:
        self._state = state
        self._prefix = state._settings.prefix  # pyright: ignore[reportPrivateUsage]
        self._closed = when_unreachable == "closed"
        self._lease = str(int(lease * 1000))
        self.local = MemoryBudgetStore()
        """Where budgets count while Redis is unreachable and they fail open."""
        self._held: dict[int, tuple[Sequence[Claim], str | None, float]] = {}
        """Reservations not yet settled, by ``id()`` of their claims (held here, so the id is not reused): their
        reservation id on Redis (None: reserved locally) and when (monotonic)."""
        self._lease_s = lease
        self._prune_at = 0.0
        self._lock = threading.Lock()
        self._alone = False
        """Budgets are counted locally and that was logged (reset when Redis answers)."""
        self._token = secrets.token_hex(4)
        self._ids = itertools.count(1)
        self._levels: dict[str, float] = {}
        """Deployment budget levels (spent + reserved) as the last background refresh read them, by budget key."""
        self._asked: dict[str, float] = {}
        """When each level was last asked for (monotonic): the refresh reads those asked for lately."""
        self._charged: dict[str, float] = {}
        """This process's charges queued and not yet taken to Redis, by budget key."""
        self._sent: dict[str, float] = {}
        """This process's charges sent since the last refresh read the levels, by budget key."""
        if state._budgets is None:  # pyright: ignore[reportPrivateUsage]
            state.carry(self)

    def __repr__(self) -> str:
        return f"RedisBudgetStore({self._state!r}, closed={self._closed})"

    def reserve(self, claims: Sequence[Claim]) -> Claim | None:
        """See :meth:`~polyroute.usage.budgets.BudgetStore.reserve`: a round trip of its own, used when the claims
        cannot ride on a deployment claim (see :meth:`reserve_args`).
        """
        _, args, reservation = self.reserve_args(claims)
        reply = self._script(_RESERVE, claims, args)
        if reply is not None:
            index = int(reply)
            if index:
                return claims[index - 1]
            self._hold(claims, reservation)
            return None
        if self._closed:
            reconnect = self._state._settings.reconnect  # pyright: ignore[reportPrivateUsage]
            budget = claims[0].budget
            raise BudgetStoreUnreachableError(
                f"budget {budget!r} cannot be checked: the budget store (Redis) is unreachable and "
                "state.budgets_when_unreachable is 'closed', so calls under it are refused until Redis answers. "
                "Retry shortly, or set it to 'open' to count budgets in each process while Redis is away.",
                budget=budget,
                resets_at=time.time() + reconnect,
                retry_after=reconnect,
            )
        refused = self.local.reserve(claims)
        if refused is None:
            self._hold(claims, None)
        return refused

    def reserve_args(self, claims: Sequence[Claim]) -> tuple[list[str], list[str], str]:
        """The keys and arguments of the reservation script for ``claims``, and the reservation's id: what
        :meth:`RedisState.acquire` sends with a call's first deployment claim, so reserving costs no round trip of
        its own. Tell :meth:`reserved` when it reserved them.
        """
        reservation = f"{os.getpid()}-{self._token}-{next(self._ids)}"
        args: list[str] = [self._lease, reservation]
        for claim in claims:
            args += (repr(claim.amount), repr(claim.limit), _ms(claim.resets_at))
        keys = [key for claim in claims for key in budget_keys(self._prefix, claim.key)]
        return keys, args, reservation

    def reserved(self, pending: Reservation, reservation: str) -> None:
        """A deployment claim reserved ``pending``'s claims on Redis as ``reservation`` (see :meth:`reserve_args`)."""
        pending.pending = False
        self._alone = False
        self._hold(pending.claims, reservation)

    def settle(self, claims: Sequence[Claim], actual: Sequence[float]) -> None:
        """See :meth:`~polyroute.usage.budgets.BudgetStore.settle`: sent by the background thread with the calls'
        outcomes (a few ms later, :data:`~polyroute.state.redis.BATCH_WINDOW`), not in the caller's thread. Until
        then the call counts as its reservation (its estimate) rather than what it spent, as while it was in flight:
        the reservation is never released early, and the difference shows up those ms later.
        """
        with self._lock:
            held = self._held.pop(id(claims), None)
        if held is not None and held[1] is None:
            self.local.settle(claims, actual)
            return
        member = held[1] if held is not None else None
        args: list[str] = []
        for index, (claim, spent) in enumerate(zip(claims, actual, strict=True), 1):
            args += (f"{member}|{index}|{claim.amount!r}" if member else "", repr(claim.amount), repr(spent))
            args.append(_ms(claim.resets_at))
        spend = [_amount(claim, spent) for claim, spent in zip(claims, actual, strict=True)]
        # Redis holds the reservation; unreachable, it cannot release it now (its lease will): count the spend here
        if not self._queue(claims, args, lost=lambda: self.local.charge(spend)):
            self.local.charge(spend)

    def charge(self, claims: Sequence[Claim]) -> None:
        """See :meth:`~polyroute.usage.budgets.BudgetStore.charge`: sent in the background as :meth:`settle`, and
        counted at once in this process's copy of the levels (:meth:`level`).
        """
        args: list[str] = []
        for claim in claims:
            args += ("", "0", repr(claim.amount), _ms(claim.resets_at))
        with self._lock:
            for claim in claims:
                self._charged[claim.key] = self._charged.get(claim.key, 0.0) + claim.amount

        def sent() -> None:
            with self._lock:
                for claim in claims:
                    self._charged[claim.key] = self._charged.get(claim.key, 0.0) - claim.amount
                    self._sent[claim.key] = self._sent.get(claim.key, 0.0) + claim.amount

        def lost() -> None:
            with self._lock:
                for claim in claims:
                    self._sent[claim.key] = self._sent.get(claim.key, 0.0) - claim.amount
            self.local.charge(claims)

        if not self._queue(claims, args, sent=sent, lost=lost):
            with self._lock:
                for claim in claims:
                    self._charged[claim.key] -= claim.amount
            self.local.charge(claims)

    def level(self, key: str) -> float:
        """See :meth:`~polyroute.usage.budgets.BudgetStore.level`: this process's copy, which the background
        refresh reads from Redis every ``state.refresh`` seconds (so other processes' spend shows up that late at
        most), plus what this process charged since. A level asked for the first time (once per process and
        period) is read at once, in a round trip of its own.
        """
        state = self._state
        if state._down_since is None:  # pyright: ignore[reportPrivateUsage]
            with self._lock:
                read = self._levels.get(key)
                self._asked[key] = time.monotonic()
            if read is None:
                read = self._read_level(key)
            if read is not None:
                with self._lock:
                    return read + self._sent.get(key, 0.0) + self._charged.get(key, 0.0)
        self._fell_back()
        return self.local.level(key)

    def watched(self) -> list[str]:
        """The Redis keys of the levels asked for lately, for the background refresh to read (and forget the rest)."""
        now = time.monotonic()
        with self._lock:
            for key in [k for k, at in self._asked.items() if now - at > _LEVEL_IDLE]:
                del self._asked[key]
                self._levels.pop(key, None)
            return [budget_keys(self._prefix, key)[0] for key in self._asked]

    def refreshed(self, keys: Sequence[str], replies: Sequence[Any]) -> None:
        """The background refresh read these levels (after sending the charges queued before it)."""
        skip = len(self._prefix) + len("{budgets}:")
        with self._lock:
            self._sent.clear()
            for key in [k for k, amount in self._charged.items() if abs(amount) < 1e-12]:
                del self._charged[key]
            for key, (spent, reserved) in zip(keys, replies, strict=True):
                self._levels[key[skip:]] = float(spent or 0) + float(reserved or 0)
        self._alone = False

    def spent(self, key: str) -> float | None:
        """See :meth:`~polyroute.usage.budgets.BudgetStore.spent`: read now (one round trip, on a refusal only)."""
        client = self._state._ready()  # pyright: ignore[reportPrivateUsage]
        if client is None:
            return self.local.spent(key)
        try:
            spent = client.hget(budget_keys(self._prefix, key)[0], "spent")
        except Exception as exc:  # a call never fails because Redis did
            self._state._went_down(exc)  # pyright: ignore[reportPrivateUsage]
            return None
        return float(spent or 0)

    def _read_level(self, key: str) -> float | None:
        """A level read now (one round trip), kept for the refresh to update; None when Redis did not answer."""
        client = self._state._ready()  # pyright: ignore[reportPrivateUsage]
        if client is None:
            return None
        try:
            spent, reserved = client.hmget(budget_keys(self._prefix, key)[0], "spent", "reserved")
        except Exception as exc:  # a call never fails because Redis did
            self._state._went_down(exc)  # pyright: ignore[reportPrivateUsage]
            return None
        self._alone = False
        read = float(spent or 0) + float(reserved or 0)
        with self._lock:
            self._levels[key] = read
            self._sent.pop(key, None)  # the read holds what was sent so far
        return read

    def _queue(
        self,
        claims: Sequence[Claim],
        args: Sequence[str],
        sent: Callable[[], None] | None = None,
        lost: Callable[[], None] | None = None,
    ) -> bool:
        """Queue the settle script over ``claims``' keys for the background thread; False when Redis is down."""
        keys = [key for claim in claims for key in budget_keys(self._prefix, claim.key)]
        if self._state.queue(_SETTLE, keys, args, sent=sent, lost=lost):
            return True
        self._fell_back()
        return False

    def _hold(self, claims: Sequence[Claim], reservation: str | None) -> None:
        """Remember a reservation until it settles; forget those never settled (a call abandoned unclosed) once
        their lease has ended on Redis too.
        """
        now = time.monotonic()
        with self._lock:
            self._held[id(claims)] = (claims, reservation, now)
            if now >= self._prune_at:
                self._prune_at = now + 60.0
                for key in [k for k, held in self._held.items() if now - held[2] > self._lease_s]:
                    del self._held[key]

    def _script(self, script: str, claims: Sequence[Claim], args: Sequence[str]) -> Any:
        """One script over ``claims``' keys: its reply, or None when Redis did not answer (logged once)."""
        state = self._state
        client = state._ready()  # pyright: ignore[reportPrivateUsage]
        if client is not None:
            keys = [key for claim in claims for key in budget_keys(self._prefix, claim.key)]
            try:
                reply = state._run(client, script, keys, args)  # pyright: ignore[reportPrivateUsage]
            except Exception as exc:  # a call never fails because Redis did
                state._went_down(exc)  # pyright: ignore[reportPrivateUsage]
            else:
                self._alone = False
                return reply
        self._fell_back()
        return None

    def _fell_back(self) -> None:
        with self._lock:
            if self._alone:
                return
            self._alone = True
        if self._closed:
            _log.warning("budgets on Redis unreachable: calls under a budget are refused until it answers (closed)")
        else:
            _log.warning("budgets on Redis unreachable: this process counts budgets on its own until it answers (open)")


def _ms(epoch: float) -> str:
    return str(int(epoch * 1000))


def _amount(claim: Claim, amount: float) -> Claim:
    return Claim(claim.key, claim.limit, amount, claim.resets_at, claim.budget)
