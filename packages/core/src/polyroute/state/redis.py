"""Routing state on Redis, shared by every process configured with the same ``url`` and ``prefix``.

Keys of one deployment share a Redis Cluster slot through the hash tag ``{name}``::

    <prefix>{<name>}:s      hash: circuit, open_until, failures, last_error, cool_until, rpm, rpm_at, tpm, tpm_at,
                            latency
    <prefix>{<name>}:probe  the fleet's one half-open probe (SET NX PX: its call's id, expiring if its process dies)
    <prefix>{<name>}:busy   sorted set of calls in flight, scored by lease expiry (a dead process's calls expire)

Times are the Redis server's (``TIME`` inside the scripts, in ms), so hosts with skewed clocks agree. A claim is one
script, one round trip (:meth:`RedisState.acquire`), which also reserves the call's budgets when they are on this
connection (:mod:`polyroute.state.redis_budgets`); outcomes, budget settles and charges are queued and sent in order
by a background thread, which also refreshes local copies where staleness is harmless: the fleet's latency average,
its calls in flight, cooldowns or open circuits learned by other processes (held locally until they end, without
asking again), and deployment budget levels.

When Redis is slow or down, an operation gives up after ``timeout``; the process logs it once, routes on its own
state, and the background thread checks every ``reconnect`` seconds whether Redis answers again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import secrets
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError
from redis.retry import Retry

from polyroute.errors import redact
from polyroute.health import LATENCY_ALPHA, SkipKind, Unavailable
from polyroute.state.sentinel import is_sentinel_url, parse_sentinel_url

if TYPE_CHECKING:
    from polyroute.config import StateSettings
    from polyroute.health import DeploymentState
    from polyroute.state.redis_budgets import RedisBudgetStore
    from polyroute.usage.budgets import BudgetStore, Reservation

_log = logging.getLogger("polyroute.state")

IN_FLIGHT_LEASE = 60.0
"""Seconds a call counts as in flight unless its process renews it (each refresh): a dead process's calls expire."""

BATCH_WINDOW = 0.005
"""Seconds the background thread waits after the first queued outcome, to send it with those that follow."""

_FOLD_MAX = 256
"""Budget outcomes folded into one script at most (its keys and arguments grow with them)."""

KEY_TTL_MS = 86_400_000
"""A deployment's keys expire a day after their last claim or failure, so retired deployments leave nothing behind."""

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
"""Every script's clock: the Redis server's, in ms."""

# A claim: circuit, probe, cooldown, max_parallel, rpm, tpm, in that order (as DeploymentState.unavailable); rpm and
# tpm are token buckets refilled at their rate per minute.
# K: state hash, probe, busy. A: rpm, tpm, tokens, max_parallel, probe ms, call id, lease ms, key ttl ms.
# Reply: {0, probe?} admitted; {code, wait ms, detail} refused (codes in _REFUSED).
_CLAIM = """
local function refill(have, at, cap, now)
  have = tonumber(have) or cap
  at = tonumber(at) or now
  if now > at then have = math.min(cap, have + (now - at) * cap / 60000) end
  return have
end
local function claim(now, K, A)
  local h = K[1]
  local f = redis.call('HMGET', h, 'circuit', 'open_until', 'cool_until', 'rpm', 'rpm_at', 'tpm', 'tpm_at',
    'last_error')
  local half_open = false
  if f[1] == 'open' then
    local open_until = tonumber(f[2]) or 0
    if now < open_until then return {1, open_until - now, f[8] or ''} end
    half_open = true
    if redis.call('EXISTS', K[2]) == 1 then return {2, 50, ''} end
  end
  local cool = tonumber(f[3]) or 0
  if now < cool then return {3, cool - now, ''} end
  redis.call('ZREMRANGEBYSCORE', K[3], '-inf', now)
  local maxp = tonumber(A[4])
  if maxp > 0 then
    local n = redis.call('ZCARD', K[3])
    if n >= maxp then return {4, 20, tostring(n)} end
  end
  local rpm = tonumber(A[1])
  local rpm_have = 0
  if rpm > 0 then
    rpm_have = refill(f[4], f[5], rpm, now)
    if rpm_have < 1 then return {5, math.ceil((1 - rpm_have) * 60000 / rpm), ''} end
  end
  local tpm = tonumber(A[2])
  local tokens = tonumber(A[3])
  local tpm_have = 0
  if tpm > 0 then
    tpm_have = refill(f[6], f[7], tpm, now)
    local need = math.min(tokens, tpm)
    if tokens > 0 and tpm_have < need then return {6, math.ceil((need - tpm_have) * 60000 / tpm), ''} end
  end
  local probe = 0
  if half_open then
    if not redis.call('SET', K[2], A[6], 'NX', 'PX', A[5]) then return {2, 50, ''} end
    probe = 1
  end
  local at = string.format('%d', now)
  if rpm > 0 then redis.call('HSET', h, 'rpm', tostring(rpm_have - 1), 'rpm_at', at) end
  if tpm > 0 then redis.call('HSET', h, 'tpm', tostring(tpm_have - tokens), 'tpm_at', at) end
  redis.call('ZADD', K[3], string.format('%d', now + tonumber(A[7])), A[6])
  redis.call('PEXPIRE', h, A[8])
  redis.call('PEXPIRE', K[3], A[8])
  return {0, probe}
end
"""

# Budget reservations, all or nothing (see redis_budgets). K: per budget claim its hash and its reservations.
# A: lease ms, reservation id, then per claim: amount, limit, expire-at (epoch ms).
# Reply: 0 (all reserved) or the index (from 1) of the first claim that would pass its limit (nothing reserved).
_RESERVE_CLAIMS = """
local function reserve(now, K, A)
  local n = #K / 2
  for i = 1, n do
    local h, r = K[2 * i - 1], K[2 * i]
    local stale = redis.call('ZRANGEBYSCORE', r, '-inf', now)
    if #stale > 0 then
      local gone = 0
      for _, m in ipairs(stale) do gone = gone + (tonumber(string.match(m, '|([^|]*)$')) or 0) end
      redis.call('ZREMRANGEBYSCORE', r, '-inf', now)
      if tonumber(redis.call('HINCRBYFLOAT', h, 'reserved', -gone)) < 1e-9 then redis.call('HSET', h, 'reserved', 0) end
    end
    local f = redis.call('HMGET', h, 'spent', 'reserved')
    if (tonumber(f[1]) or 0) + (tonumber(f[2]) or 0) + tonumber(A[3 * i]) > tonumber(A[3 * i + 1]) then
      return i
    end
  end
  for i = 1, n do
    local h, r = K[2 * i - 1], K[2 * i]
    redis.call('HINCRBYFLOAT', h, 'reserved', A[3 * i])
    redis.call('ZADD', r, now + tonumber(A[1]), A[2] .. '|' .. i .. '|' .. A[3 * i])
    redis.call('PEXPIREAT', h, A[3 * i + 2])
    redis.call('PEXPIREAT', r, A[3 * i + 2])
  end
  return 0
end
"""

_ACQUIRE = _NOW + _CLAIM + "return claim(now, KEYS, ARGV)\n"
_RESERVE = _NOW + _RESERVE_CLAIMS + "return reserve(now, KEYS, ARGV)\n"

# A call's budget reservations, then its deployment claim, in one step (one round trip): KEYS: the claim's three,
# then the budgets' (two per claim); ARGV: the claim's eight, then the reservations'. Reply: {BUDGET_REFUSED, index
# of the claim refused} (nothing reserved, nothing claimed), else _ACQUIRE's (the budgets stay reserved either way).
_ACQUIRE_RESERVING = (
    _NOW
    + _CLAIM
    + _RESERVE_CLAIMS
    + """
local refused = reserve(now, {unpack(KEYS, 4)}, {unpack(ARGV, 9)})
if refused ~= 0 then return {7, refused} end
return claim(now, {KEYS[1], KEYS[2], KEYS[3]}, ARGV)
"""
)
_BUDGET_REFUSED = 7

# Calls that ended, folded: KEYS: state hash, probe, busy. ARGV: extra tokens (sum), probe id ('' if none), call ids.
_RELEASE = """
for i = 3, #ARGV do redis.call('ZREM', KEYS[3], ARGV[i]) end
local extra = tonumber(ARGV[1])
if extra > 0 and redis.call('HEXISTS', KEYS[1], 'tpm') == 1 then
  redis.call('HINCRBYFLOAT', KEYS[1], 'tpm', -extra)
end
if ARGV[2] ~= '' and redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
return 0
"""

# KEYS: state hash, probe. ARGV: retry-after ms, counts (1/0), allowed fails, cooldown ms, reason, probe id, ttl ms.
_FAILURE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = KEYS[1]
redis.call('HSET', h, 'last_error', ARGV[5])
local ra = tonumber(ARGV[1])
if ra > 0 then
  local cool = tonumber(redis.call('HGET', h, 'cool_until')) or 0
  if now + ra > cool then redis.call('HSET', h, 'cool_until', string.format('%d', now + ra)) end
end
if ARGV[6] ~= '' and redis.call('GET', KEYS[2]) == ARGV[6] then redis.call('DEL', KEYS[2]) end
if ARGV[2] == '1' then
  local fails = redis.call('HINCRBY', h, 'failures', 1)
  local lat = tonumber(redis.call('HGET', h, 'latency')) or 0.5
  redis.call('HSET', h, 'latency', tostring(math.min(lat * 2, 30)))
  local cooldown = tonumber(ARGV[4])
  if cooldown > 0 and (redis.call('HGET', h, 'circuit') == 'open' or fails >= tonumber(ARGV[3])) then
    redis.call('HSET', h, 'circuit', 'open', 'open_until', string.format('%d', now + cooldown))
  end
end
redis.call('PEXPIRE', h, ARGV[7])
return 0
"""

# Successes, folded in order: KEYS: state hash, probe, busy. ARGV: alpha, extra tokens (sum), then per success its
# latency (s) and its call id ('' unless the call ended with it).
_SUCCESS = """
local h = KEYS[1]
redis.call('HSET', h, 'failures', 0, 'circuit', 'closed')
redis.call('DEL', KEYS[2])
local alpha = tonumber(ARGV[1])
local lat = tonumber(redis.call('HGET', h, 'latency'))
for i = 3, #ARGV, 2 do
  local x = tonumber(ARGV[i])
  if lat then lat = lat + alpha * (x - lat) else lat = x end
  if ARGV[i + 1] ~= '' then redis.call('ZREM', KEYS[3], ARGV[i + 1]) end
end
redis.call('HSET', h, 'latency', tostring(lat))
local extra = tonumber(ARGV[2])
if extra > 0 and redis.call('HEXISTS', h, 'tpm') == 1 then redis.call('HINCRBYFLOAT', h, 'tpm', -extra) end
return 0
"""

# KEYS: state hash, busy. ARGV: lease ms, then this process's calls in flight (their leases renewed).
# Reply: latency ('' unknown), calls in flight fleet-wide, ms of cooldown left, ms of open circuit left, last error.
_REFRESH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = string.format('%d', now + tonumber(ARGV[1]))
for i = 2, #ARGV do redis.call('ZADD', KEYS[2], 'XX', until_ms, ARGV[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local f = redis.call('HMGET', KEYS[1], 'latency', 'cool_until', 'circuit', 'open_until', 'last_error')
local cool = math.max(0, (tonumber(f[2]) or 0) - now)
local open = 0
if f[3] == 'open' then open = math.max(0, (tonumber(f[4]) or 0) - now) end
return {f[1] or '', redis.call('ZCARD', KEYS[2]), cool, open, f[5] or ''}
"""

# KEYS: counter. ARGV: amount, limit ('' none), ttl ms ('' none). Reply: the new total, or -1 when refused.
_ADD = """
local amount = tonumber(ARGV[1])
if ARGV[2] ~= '' and amount > 0 then
  local total = tonumber(redis.call('GET', KEYS[1])) or 0
  if total + amount > tonumber(ARGV[2]) then return '-1' end
end
local total = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
if ARGV[3] ~= '' and redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return total
"""

_REFUSED: dict[int, tuple[SkipKind, str]] = {
    1: ("circuit", "circuit open fleet-wide after: {detail}"),
    2: ("circuit", "circuit half-open, another process's probe call is in flight"),
    3: ("cooldown", "rate limited upstream (seen by another process) for {wait:.2f}s more"),
    4: ("busy", "{detail} calls in flight fleet-wide (max_parallel {max_parallel})"),
    5: ("limit", "at its rpm limit fleet-wide ({rpm:g}/min)"),
    6: ("limit", "at its tpm limit fleet-wide ({tpm:g}/min)"),
}
_HELD = frozenset({1, 3, 5, 6})
"""Refusals that hold until their wait ends whatever else happens: the process skips without asking Redis again."""


@dataclass(eq=False)
class _Entry:
    """One shared deployment as this process sees it."""

    name: str
    keys: tuple[str, str, str]
    calls: deque[str] = field(default_factory=deque[str])
    """This process's calls in flight there (ids in the busy set); any one is released when a call ends."""
    probe: str | None = None
    """The id of this process's half-open probe call, while it holds the fleet's probe."""
    hold: Unavailable | None = None
    """A refusal learned from the fleet, honoured until its ``ready_at`` without a round trip."""


@dataclass(eq=False, slots=True)
class _Outcome:
    """A call's outcome waiting for the background thread."""

    kind: Literal["release", "success", "failure", "script"]
    entry: _Entry | None
    """The deployment (None for a ``script``: budgets' settles and charges)."""
    call: str = ""
    extra_tokens: int = 0
    probe: str = ""
    latency: float = 0.0
    args: Sequence[str] = ()
    """The failure script's arguments, or a ``script``'s."""
    script: str = ""
    keys: Sequence[str] = ()
    """A ``script``'s keys."""
    sent: Callable[[], None] | None = None
    """Called when the background thread takes it to send."""
    lost: Callable[[], None] | None = None
    """Called when it could not be sent (Redis went down): the caller's fallback counts it."""

    def folds_with(self, other: _Outcome) -> bool:
        """Whether ``other`` can go in the same script as this one (same deployment, success or release; the same
        ``script``: those take any number of keys and arguments, in runs).
        """
        if self.kind == "script":
            return other.kind == "script" and other.script is self.script
        return self.kind == other.kind and self.entry is other.entry and self.kind != "failure"


def _folded(run: list[_Outcome]) -> tuple[str, Sequence[str], Sequence[str]]:
    """One script for a run of outcomes that fold together (see :meth:`_Outcome.folds_with`)."""
    first = run[0]
    if first.entry is None:
        return first.script, [k for o in run for k in o.keys], [a for o in run for a in o.args]
    keys = first.entry.keys
    extra = str(sum(o.extra_tokens for o in run))
    if first.kind == "failure":
        return _FAILURE, keys[:2], first.args
    if first.kind == "release":
        probe = next((o.probe for o in reversed(run) if o.probe), "")
        return _RELEASE, keys, (extra, probe, *(o.call for o in run if o.call))
    samples = [value for o in run for value in (repr(o.latency), o.call)]
    return _SUCCESS, keys, (repr(LATENCY_ALPHA), extra, *samples)


def keys_for(prefix: str, name: str) -> tuple[str, str, str]:
    """The keys of deployment ``name``: one hash tag, so one Redis Cluster slot (tests check the layout)."""
    tag = "{" + name.replace("{", "(").replace("}", ")") + "}"
    return (f"{prefix}{tag}:s", f"{prefix}{tag}:probe", f"{prefix}{tag}:busy")


def counter_key(prefix: str, name: str) -> str:
    """The key of the counter ``name`` (its own hash tag: counters spread over a Cluster's slots)."""
    return f"{prefix}{{counter:{name.replace('{', '(').replace('}', ')')}}}"


class RedisState:
    """:class:`~polyroute.state.SharedState` on Redis (or Valkey, or a Redis Cluster)."""

    def __init__(self, settings: StateSettings, lock: threading.Lock) -> None:
        self._settings = settings
        self._router_lock = lock
        self._entries: dict[DeploymentState, _Entry] = {}
        self._budgets: RedisBudgetStore | None = None
        """The budget store on this connection, if any (its reservations ride on claims)."""
        self._reset()

    def __repr__(self) -> str:
        return f"RedisState(prefix={self._settings.prefix!r}, up={self._down_since is None})"

    def _reset(self) -> None:
        """Per-process parts (a forked child starts its own connection and thread, and owns no calls)."""
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._client: Any = None
        self._queue: deque[_Outcome] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._down_since: float | None = None
        self._sending = False
        """The background thread is sending outcomes it took from the queue."""
        self._last_refresh = 0.0
        self._ids = 0
        self._process = f"{os.getpid()}-{secrets.token_hex(4)}"
        for entry in self._entries.values():
            entry.calls.clear()
            entry.probe = None

    # -- SharedState --------------------------------------------------------------------------------------------

    def register(self, state: DeploymentState, name: str) -> None:  # noqa: D102 (the protocol's docstring)
        self._entries[state] = _Entry(name, keys_for(self._settings.prefix, name))
        self._ready()  # the background refresh starts now, so the first order() already sees the fleet's view

    def unregister(self, state: DeploymentState) -> None:  # noqa: D102
        self._entries.pop(state, None)

    def acquire(  # noqa: D102
        self, state: DeploymentState, tokens: int, now: float, budget: Reservation | None = None
    ) -> Unavailable | None:
        riding = budget if budget is not None and budget.pending and self._budgets is not None else None
        entry = self._entries.get(state)
        if entry is None:
            return self._reserve_apart(riding, now)
        hold = entry.hold
        if hold is not None:
            if now < hold.ready_at:
                return hold  # the budget claims stay pending: nothing was claimed
            entry.hold = None
        client = self._ready()
        if client is None:
            return self._reserve_apart(riding, now)
        with self._lock:
            self._ids += 1
            call = f"{self._process}-{self._ids}"
        rpm = state.rpm.capacity if state.rpm else 0
        tpm = state.tpm.capacity if state.tpm else 0
        args = (
            f"{rpm:g}",
            f"{tpm:g}",
            str(tokens),
            str(state.max_parallel or 0),
            str(int(self._settings.probe_timeout * 1000)),
            call,
            str(int(IN_FLIGHT_LEASE * 1000)),
            str(KEY_TTL_MS),
        )
        try:
            if riding is None:
                reply = self._run(client, _ACQUIRE, entry.keys, args)
            else:
                refused, reply = self._acquire_reserving(client, entry, args, riding)
                if refused and (self._queue or self._sending) and self.flush(self._settings.timeout * 4):
                    # This process's own settles were still queued: the reservations they free may be what the
                    # budget refused for. Send them and ask once more (a second round trip on this path only).
                    refused, reply = self._acquire_reserving(client, entry, args, riding)
                if refused:
                    return _budget_refused(riding, refused, now)
        except Exception as exc:  # a call never fails because Redis did
            self._went_down(exc)
            return self._reserve_apart(riding, now)
        code = int(reply[0])
        if code == 0:
            entry.calls.append(call)
            if int(reply[1]):
                entry.probe = call
            return None
        wait = int(reply[1]) / 1000
        detail = reply[2].decode() if isinstance(reply[2], bytes) else str(reply[2])
        kind, template = _REFUSED[code]
        reason = template.format(detail=detail, wait=wait, max_parallel=state.max_parallel, rpm=rpm, tpm=tpm)
        skip = Unavailable(kind, reason, now + wait)
        if code in _HELD:
            entry.hold = skip
        return skip

    def _acquire_reserving(
        self, client: Any, entry: _Entry, args: Sequence[str], budget: Reservation
    ) -> tuple[int, Any]:
        """The budget reservations and the claim in one round trip: ``(index of the budget claim refused, or 0;
        the claim's reply)``. One script on a single Redis; on a Cluster (budget keys and the deployment's keys
        are in different slots) the two scripts in one pipeline, which writes to every node before it reads.
        """
        store = self._budgets
        assert store is not None
        keys, reserve_args, member = store.reserve_args(budget.claims)
        if not self._settings.cluster:
            reply = self._run(client, _ACQUIRE_RESERVING, (*entry.keys, *keys), (*args, *reserve_args))
            if int(reply[0]) == _BUDGET_REFUSED:
                return int(reply[1]), None
            store.reserved(budget, member)
            return 0, reply
        reserved, reply = self._pipelined(client, ((_RESERVE, keys, reserve_args), (_ACQUIRE, entry.keys, args)))
        refused = int(reserved)
        if not refused:
            store.reserved(budget, member)
        elif int(reply[0]) == 0:  # the budget refused what the claim admitted: give its claim back (rpm stays spent)
            call = args[5]
            self._send(_Outcome("release", entry, call, probe=call if int(reply[1]) else ""))
        return refused, reply

    def _pipelined(self, client: Any, scripts: Sequence[tuple[str, Sequence[str], Sequence[str]]]) -> list[Any]:
        """Scripts in one pipeline (one round trip); a script the server does not know yet is sent again in full."""
        pipe = client.pipeline(transaction=False)
        for script, keys, args in scripts:
            pipe.execute_command("EVALSHA", _sha1(script), len(keys), *keys, *args)
        replies: list[Any] = pipe.execute(raise_on_error=False)
        for index, reply in enumerate(replies):
            if isinstance(reply, NoScriptError):
                script, keys, args = scripts[index]
                replies[index] = client.eval(script, len(keys), *keys, *args)
            elif isinstance(reply, Exception):
                raise reply
        return replies

    def _reserve_apart(self, budget: Reservation | None, now: float) -> Unavailable | None:
        """No script ran: reserve pending budget claims on their own (Redis down: in this process, or refused when
        budgets fail closed), so a deployment is never claimed without them.
        """
        if budget is None:
            return None
        assert self._budgets is not None
        refused = budget.reserve_in(self._budgets)
        return None if refused is None else _budget_refused(budget, 0, now)

    def release(self, state: DeploymentState, extra_tokens: int) -> None:  # noqa: D102
        entry = self._entries.get(state)
        if entry is None or self._down_since is not None:
            return
        call = _pop(entry.calls)
        probe, entry.probe = entry.probe, None
        if call or probe or extra_tokens > 0:
            self._send(_Outcome("release", entry, call, max(extra_tokens, 0), probe or ""))

    def failure(  # noqa: D102
        self,
        state: DeploymentState,
        reason: str,
        retry_after: float | None,
        counts: bool,
        allowed_fails: int,
        cooldown: float,
    ) -> None:
        entry = self._entries.get(state)
        if entry is None or self._down_since is not None:
            return
        probe, entry.probe = entry.probe, None
        args = (
            str(int((retry_after or 0) * 1000)),
            "1" if counts else "0",
            str(allowed_fails),
            str(int(cooldown * 1000)),
            reason,
            probe or "",
            str(KEY_TTL_MS),
        )
        self._send(_Outcome("failure", entry, args=args))

    def success(self, state: DeploymentState, latency: float, release: bool, extra_tokens: int) -> None:  # noqa: D102
        entry = self._entries.get(state)
        if entry is None or self._down_since is not None:
            return
        entry.probe = None
        call = _pop(entry.calls) if release else ""
        self._send(_Outcome("success", entry, call, max(extra_tokens, 0), latency=latency))

    def takes_budgets(self, store: BudgetStore) -> bool:  # noqa: D102
        return store is self._budgets and self._down_since is None

    def carry(self, store: RedisBudgetStore) -> None:
        """Let ``store``'s reservations ride on this state's claims, and refresh its levels in the background."""
        self._budgets = store

    def queue(
        self,
        script: str,
        keys: Sequence[str],
        args: Sequence[str],
        sent: Callable[[], None] | None = None,
        lost: Callable[[], None] | None = None,
    ) -> bool:
        """Send ``script`` with the outcomes, in the background (runs of it fold into one: it must take any number of
        key and argument groups). False when Redis is unreachable now: the caller counts on its own; ``lost`` is
        called if Redis goes down before it is sent, ``sent`` when it is taken to be sent.
        """
        if self._ready() is None:
            return False
        self._send(_Outcome("script", None, args=args, script=script, keys=keys, sent=sent, lost=lost))
        return True

    def add(self, name: str, amount: float, limit: float | None = None, ttl: float | None = None) -> float | None:  # noqa: D102
        client = self._ready()
        if client is None:
            return None
        key = counter_key(self._settings.prefix, name)
        args = (repr(amount), "" if limit is None else repr(limit), "" if ttl is None else str(int(ttl * 1000)))
        try:
            return float(self._run(client, _ADD, (key,), args))
        except Exception as exc:
            self._went_down(exc)
            return None

    def flush(self, timeout: float = 1.0) -> bool:
        """Wait until the outcomes queued so far (budget settles among them) are sent; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue or self._sending:
            if self._thread is None or self._down_since is not None or time.monotonic() >= deadline:
                return False
            self._wake.set()
            time.sleep(0.001)
        return True

    def close(self) -> None:
        """Send what is queued, stop the background thread, drop the connection (used again, it reconnects)."""
        thread = self._thread
        if thread is None or self._pid != os.getpid():
            return
        self._stop.set()
        self._wake.set()
        thread.join(timeout=max(1.0, self._settings.timeout * 4))
        with self._lock:
            self._thread = None
            self._stop = threading.Event()
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    # -- connection ---------------------------------------------------------------------------------------------

    def _ready(self) -> Any:
        """The client, with the background thread running; None while Redis is unreachable."""
        if self._pid != os.getpid():
            self._reset()
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=_background,
                        args=(weakref.ref(self), self._wake, self._stop),
                        name="polyroute-state",
                        daemon=True,
                    )
                    self._thread.start()
        if self._down_since is not None:
            return None
        client = self._client
        if client is None:
            try:
                client = self._connect()
            except Exception as exc:
                self._went_down(exc)
                return None
        return client

    def _connect(self) -> Any:
        with self._lock:
            if self._client is not None:
                return self._client
            settings = self._settings
            assert settings.url is not None  # StateSettings checks it
            url = settings.url.get_secret_value()
            # No retries: a slow or absent Redis must cost one short timeout, then the process goes on alone.
            options: dict[str, Any] = {
                "socket_timeout": settings.timeout,
                "socket_connect_timeout": settings.timeout,
                "retry": Retry(NoBackoff(), 0),
            }
            if settings.cluster:
                from redis.cluster import RedisCluster

                self._client = RedisCluster.from_url(url, **options)  # pyright: ignore[reportUnknownMemberType]
            elif is_sentinel_url(url):
                self._client = _sentinel_client(url, options)
            else:
                self._client = redis.Redis.from_url(url, **options)  # pyright: ignore[reportUnknownMemberType]
            return self._client

    def _run(self, client: Any, script: str, keys: Sequence[str], args: Sequence[str]) -> Any:
        """One script, one round trip (EVALSHA; EVAL once after the server started without it)."""
        try:
            return client.evalsha(_sha1(script), len(keys), *keys, *args)
        except NoScriptError:
            return client.eval(script, len(keys), *keys, *args)

    def _send(self, outcome: _Outcome) -> None:
        """Queue an outcome for the background thread (the caller does not wait on Redis)."""
        if self._pid != os.getpid() or self._thread is None:
            self._ready()
        self._queue.append(outcome)
        if not self._wake.is_set():
            self._wake.set()

    def _went_down(self, exc: BaseException) -> None:
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
            for entry in self._entries.values():
                entry.calls.clear()
                entry.probe = None
        _lose(self._queue)
        _log.warning(
            "shared routing state on Redis unreachable (%s: %s); this process routes on its own state until it answers",
            type(exc).__name__,
            self._scrub(str(exc))[:200],
        )

    def _scrub(self, text: str) -> str:
        """``text`` without the URL's password (redis-py's messages name hosts, not credentials, but be sure)."""
        assert self._settings.url is not None
        url = self._settings.url.get_secret_value()
        password = urlsplit(url).password
        if password:
            text = text.replace(password, "[redacted]")
        return redact(text.replace(url, "[redis url]"))

    # -- background ---------------------------------------------------------------------------------------------

    def _background_step(self) -> bool:
        """One turn of the background thread after its wait: send outcomes, refresh, or check a down Redis.
        False once the thread should end.
        """
        stop = self._stop.is_set()
        if self._down_since is not None:
            if not stop:
                self._try_reconnect()
            return not stop
        try:
            self._flush()
            now = time.monotonic()
            if now - self._last_refresh >= self._settings.refresh:
                self._last_refresh = now
                self._refresh()
        except Exception as exc:
            self._went_down(exc)
        return not stop

    def _try_reconnect(self) -> None:
        try:
            client = self._connect()
            client.ping()
        except Exception:
            return
        with self._lock:
            self._down_since = None
        _log.warning("shared routing state on Redis reachable again; sharing resumed")

    def _flush(self) -> None:
        """Send queued outcomes in order, in one pipeline; a run of successes or releases of one deployment is
        folded into one script (the bench's sequential calls: one script per batch, not per call).
        """
        queue = self._queue
        if not queue:
            return
        self._sending = True
        try:
            self._send_queued(queue)
        finally:
            self._sending = False

    def _send_queued(self, queue: deque[_Outcome]) -> None:
        """Consecutive outcomes that fold go as one script; budget scripts (settles, charges: additions, in any
        order) are gathered from the whole batch into one script each, sent after the deployments' outcomes.
        """
        client = self._client or self._connect()
        pipe = client.pipeline(transaction=False)
        run: list[_Outcome] = []
        budget_runs: dict[str, list[_Outcome]] = {}
        taken: deque[_Outcome] = deque()
        while queue or run:
            outcome = queue.popleft() if queue else None
            if outcome is not None:
                if outcome.sent is not None:
                    outcome.sent()
                taken.append(outcome)
                if outcome.entry is None:
                    budget_runs.setdefault(outcome.script, []).append(outcome)
                    continue
            if run and (outcome is None or not run[0].folds_with(outcome)):
                script, keys, args = _folded(run)
                pipe.execute_command("EVAL", script, len(keys), *keys, *args)  # a cluster pipeline has no .eval()
                run = []
            if outcome is not None:
                run.append(outcome)
        for budget_run in budget_runs.values():
            for start in range(0, len(budget_run), _FOLD_MAX):
                script, keys, args = _folded(budget_run[start : start + _FOLD_MAX])
                pipe.execute_command("EVAL", script, len(keys), *keys, *args)
        try:
            pipe.execute()
        except BaseException:
            _lose(taken)
            raise

    def _refresh(self) -> None:
        """Read the fleet's latency, calls in flight and holds into local copies, and the budget levels the budget
        store watches (one pipeline).
        """
        entries = list(self._entries.items())
        budgets = self._budgets
        levels = budgets.watched() if budgets is not None else []
        if not entries and not levels:
            return
        client = self._client or self._connect()
        pipe = client.pipeline(transaction=False)
        lease = str(int(IN_FLIGHT_LEASE * 1000))
        for _, entry in entries:
            pipe.execute_command("EVAL", _REFRESH, 2, entry.keys[0], entry.keys[2], lease, *list(entry.calls))
        for key in levels:
            pipe.execute_command("HMGET", key, "spent", "reserved")
        replies = pipe.execute()
        if levels:
            assert budgets is not None
            budgets.refreshed(levels, replies[len(entries) :])
            replies = replies[: len(entries)]
        now = time.monotonic()
        with self._router_lock:
            for (state, entry), reply in zip(entries, replies, strict=True):
                latency, busy, cool, open_, last_error = reply
                if latency:
                    state.latency = float(latency)
                state.others_in_flight = max(0, int(busy) - len(entry.calls))
                hold = entry.hold
                if int(open_) > 0:
                    error = last_error.decode() if isinstance(last_error, bytes) else str(last_error)
                    reason = _REFUSED[1][1].format(detail=error)
                    entry.hold = Unavailable("circuit", reason, now + int(open_) / 1000)
                elif int(cool) > 0 and (hold is None or hold.ready_at < now + int(cool) / 1000):
                    wait = int(cool) / 1000
                    entry.hold = Unavailable("cooldown", _REFUSED[3][1].format(wait=wait), now + wait)


def _background(ref: weakref.ReferenceType[RedisState], wake: threading.Event, stop: threading.Event) -> None:
    """The background thread: holds its :class:`RedisState` only while working, so a router dropped without
    ``close()`` takes its thread with it.
    """
    while True:
        state = ref()
        if state is None:
            return
        settings, down = state._settings, state._down_since is not None  # pyright: ignore[reportPrivateUsage]
        del state
        if wake.wait(settings.reconnect if down else settings.refresh) and not stop.is_set():
            stop.wait(BATCH_WINDOW)  # let outcomes gather: one pipeline for many calls, less GIL contention
        wake.clear()
        state = ref()
        if state is None or not state._background_step():  # pyright: ignore[reportPrivateUsage]
            return
        del state


def _lose(outcomes: deque[_Outcome]) -> None:
    """Outcomes that will not reach Redis: those with a fallback (budgets' spend) count on their own."""
    while outcomes:
        try:
            outcome = outcomes.popleft()
        except IndexError:  # another thread emptied it meanwhile
            return
        if outcome.lost is not None:
            try:
                outcome.lost()
            except Exception:  # pragma: no cover - a local count does not fail
                _log.exception("polyroute: counting a lost budget outcome locally failed")


def _budget_refused(budget: Reservation, index: int, now: float) -> Unavailable:
    """The answer to a claim whose budget reservation was refused (``index`` from 1; 0: already set by the store)."""
    if index:
        budget.refused = budget.claims[index - 1]
    refused = budget.refused
    assert refused is not None
    return Unavailable("limit", f"budget {refused.budget!r} would be exceeded", now)


def _sentinel_client(url: str, options: dict[str, Any]) -> Any:
    """The master named by a ``redis+sentinel://`` URL, found through its sentinels on each new connection (so after
    a failover the next connection goes to the new master). Closing the client closes the sentinels' connections too.
    """
    from redis.sentinel import Sentinel

    parsed = parse_sentinel_url(url)
    sentinel = Sentinel(parsed.sentinels, sentinel_kwargs=dict(options))  # the same short timeouts, no retries
    master = sentinel.master_for(  # pyright: ignore[reportUnknownMemberType]
        parsed.service, db=parsed.db, username=parsed.username, password=parsed.password, **options
    )
    close = master.close

    def close_both() -> None:
        try:
            close()
        finally:
            sentinel.close()

    master.close = close_both
    return master


@functools.cache
def _sha1(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()


def _pop(calls: deque[str]) -> str:
    try:
        return calls.popleft()
    except IndexError:
        return ""
