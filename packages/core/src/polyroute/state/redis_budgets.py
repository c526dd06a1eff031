"""Budgets on Redis: every process configured with the same ``state`` counts against the same budgets.

Each budget counter (a :class:`~polyroute.usage.budgets.Claim` key: budget, scope value, period) is two keys, all
under the one hash tag ``{budgets}`` so a call's claims share a Redis Cluster slot and one script reserves them all::

    <prefix>{budgets}:<claim key>     hash: spent, reserved
    <prefix>{budgets}:<claim key>:r   sorted set of reservations ("<id>|<n>|<amount>"), scored by lease expiry

Both expire when the claim's period ends. A reservation whose process died before settling leaves the count when its
lease (:data:`RESERVATION_LEASE`) ends, so a killed worker does not hold part of a budget until the period resets.

Reserve, settle and charge are one script each, one round trip, in the calling thread: a settled call's reservation
is free for the next call at once. When Redis cannot answer within ``state.timeout``, ``state.budgets_when_unreachable``
decides: ``open`` counts in this process (a :class:`~polyroute.usage.budgets.MemoryBudgetStore`) until Redis answers
again, ``closed`` refuses calls that need a reservation (503 ``budget_store_unreachable``). Deployment budgets are
checked by level and charged after the call, so they count in this process while Redis is away, in either mode.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import threading
import time
from collections.abc import Sequence
from typing import Any, Literal

from polyroute.errors import BudgetStoreUnreachableError
from polyroute.state.redis import RedisState
from polyroute.usage.budgets import Claim, MemoryBudgetStore

_log = logging.getLogger("polyroute.state")

RESERVATION_LEASE = 900.0
"""Seconds a reservation counts unless settled: longer than any call, short enough that a dead process's
reservations do not hold a budget for long."""

# KEYS: per claim its hash and its reservations. ARGV: lease ms, reservation id, then per claim: amount, limit,
# expire-at (epoch ms). Reply: 0 (all reserved) or the index (from 1) of the first claim that would pass its limit.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS / 2
for i = 1, n do
  local h, r = KEYS[2 * i - 1], KEYS[2 * i]
  local stale = redis.call('ZRANGEBYSCORE', r, '-inf', now)
  if #stale > 0 then
    local gone = 0
    for _, m in ipairs(stale) do gone = gone + (tonumber(string.match(m, '|([^|]*)$')) or 0) end
    redis.call('ZREMRANGEBYSCORE', r, '-inf', now)
    if tonumber(redis.call('HINCRBYFLOAT', h, 'reserved', -gone)) < 1e-9 then redis.call('HSET', h, 'reserved', 0) end
  end
  local f = redis.call('HMGET', h, 'spent', 'reserved')
  if (tonumber(f[1]) or 0) + (tonumber(f[2]) or 0) + tonumber(ARGV[3 * i]) > tonumber(ARGV[3 * i + 1]) then
    return i
  end
end
for i = 1, n do
  local h, r = KEYS[2 * i - 1], KEYS[2 * i]
  redis.call('HINCRBYFLOAT', h, 'reserved', ARGV[3 * i])
  redis.call('ZADD', r, now + tonumber(ARGV[1]), ARGV[2] .. '|' .. i .. '|' .. ARGV[3 * i])
  redis.call('PEXPIREAT', h, ARGV[3 * i + 2])
  redis.call('PEXPIREAT', r, ARGV[3 * i + 2])
end
return 0
"""

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

    def __repr__(self) -> str:
        return f"RedisBudgetStore({self._state!r}, closed={self._closed})"

    def reserve(self, claims: Sequence[Claim]) -> Claim | None:
        """See :meth:`~polyroute.usage.budgets.BudgetStore.reserve`."""
        reservation = f"{os.getpid()}-{self._token}-{next(self._ids)}"
        args: list[str] = [self._lease, reservation]
        for claim in claims:
            args += (repr(claim.amount), repr(claim.limit), _ms(claim.resets_at))
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

    def settle(self, claims: Sequence[Claim], actual: Sequence[float]) -> None:
        """See :meth:`~polyroute.usage.budgets.BudgetStore.settle`."""
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
        if self._script(_SETTLE, claims, args) is None:
            # Redis took the reservation and cannot release it now (its lease will); count the spend here meanwhile
            self.local.charge([_amount(claim, spent) for claim, spent in zip(claims, actual, strict=True)])

    def charge(self, claims: Sequence[Claim]) -> None:
        """See :meth:`~polyroute.usage.budgets.BudgetStore.charge`."""
        args: list[str] = []
        for claim in claims:
            args += ("", "0", repr(claim.amount), _ms(claim.resets_at))
        if self._script(_SETTLE, claims, args) is None:
            self.local.charge(claims)

    def level(self, key: str) -> float:
        """See :meth:`~polyroute.usage.budgets.BudgetStore.level`."""
        client = self._state._ready()  # pyright: ignore[reportPrivateUsage]
        if client is not None:
            try:
                spent, reserved = client.hmget(budget_keys(self._prefix, key)[0], "spent", "reserved")
            except Exception as exc:  # a call never fails because Redis did
                self._state._went_down(exc)  # pyright: ignore[reportPrivateUsage]
            else:
                self._alone = False
                return float(spent or 0) + float(reserved or 0)
        self._fell_back()
        return self.local.level(key)

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
