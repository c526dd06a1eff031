"""Per-deployment state the router shares between calls: circuit breaker, cooldowns, limits, load and latency.

Pure bookkeeping: every method takes ``now`` (``time.monotonic()``) and does no I/O, so the state machine is
tested without clocks or sockets. The :class:`~polyroute.router.Router` holds one :class:`DeploymentState` per
deployment and guards updates with its lock.

Circuit::

    closed --(allowed_fails consecutive failures)--> open --(cooldown elapsed)--> half-open
    half-open --(the one probe succeeds)--> closed;  half-open --(probe fails)--> open
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from polyroute.providers._base import parse_duration

SkipKind = Literal["circuit", "cooldown", "limit", "busy", "auth"]
"""Why a deployment is unavailable now: an open circuit, an upstream ``retry-after``, a rate limit, ``max_parallel``,
its key missing or rejected (``auth``, decided by the router)."""

LATENCY_ALPHA = 0.3
"""Weight of the newest sample in the latency moving average."""


@dataclass(slots=True)
class Unavailable:
    """A deployment skipped for now, and when it may be ready again (``ready_at``, monotonic seconds)."""

    kind: SkipKind
    reason: str
    ready_at: float


class TokenBucket:
    """A classic token bucket: ``capacity`` tokens, refilled at ``capacity / period`` per second."""

    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, capacity: float, period: float, now: float) -> None:
        self.capacity = capacity
        self.rate = capacity / period
        self.tokens = capacity
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def wait(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` tokens are there (0 when they are now). Asks at most for the capacity."""
        self._refill(now)
        amount = min(amount, self.capacity)
        if self.tokens >= amount:
            return 0.0
        return (amount - self.tokens) / self.rate

    def take(self, amount: float, now: float) -> None:
        """Spend tokens (may go negative when actual usage exceeds the estimate: the debt is repaid by waiting)."""
        self._refill(now)
        self.tokens -= amount


class DeploymentState:
    """What the router knows about one deployment right now."""

    __slots__ = (
        "circuit",
        "consecutive_failures",
        "cooldown_until",
        "in_flight",
        "last_error",
        "latency",
        "latency_at",
        "max_parallel",
        "open_until",
        "others_in_flight",
        "probing",
        "requests_left",
        "requests_reset_at",
        "rpm",
        "tokens_left",
        "tokens_reset_at",
        "tpm",
    )

    def __init__(self, rpm: int | None, tpm: int | None, max_parallel: int | None, now: float) -> None:
        self.circuit: Literal["closed", "open", "half-open"] = "closed"
        self.consecutive_failures = 0
        self.open_until = 0.0
        self.probing = False
        self.cooldown_until = 0.0
        self.last_error = ""
        self.in_flight = 0
        self.others_in_flight = 0
        """Calls in flight in other processes, as last read from the shared state (``least-busy`` counts them)."""
        self.max_parallel = max_parallel
        self.latency: float | None = None
        self.latency_at = 0.0
        self.rpm = TokenBucket(rpm, 60.0, now) if rpm else None
        self.tpm = TokenBucket(tpm, 60.0, now) if tpm else None
        self.requests_left: int | None = None
        self.requests_reset_at = 0.0
        self.tokens_left: int | None = None
        self.tokens_reset_at = 0.0

    # -- availability -------------------------------------------------------------------------------------------

    def unavailable(self, tokens: int, now: float) -> Unavailable | None:
        """Why this deployment cannot take a call of ``tokens`` estimated tokens now, or None if it can."""
        if self.circuit != "closed":
            if self.circuit == "open" and now < self.open_until:
                return Unavailable("circuit", f"circuit open after: {self.last_error}", self.open_until)
            if self.probing:
                return Unavailable("circuit", "circuit half-open, a probe call is in flight", now + 0.05)
        if now < self.cooldown_until:
            return Unavailable(
                "cooldown", f"rate limited upstream for {self.cooldown_until - now:.2f}s more", self.cooldown_until
            )
        if self.max_parallel is not None and self.in_flight >= self.max_parallel:
            return Unavailable(
                "busy", f"{self.in_flight} calls in flight (max_parallel {self.max_parallel})", now + 0.02
            )
        if self.rpm is not None:
            wait = self.rpm.wait(1, now)
            if wait:
                return Unavailable("limit", f"at its rpm limit ({self.rpm.capacity:g}/min)", now + wait)
        if self.tpm is not None and tokens:
            wait = self.tpm.wait(tokens, now)
            if wait:
                return Unavailable("limit", f"at its tpm limit ({self.tpm.capacity:g}/min)", now + wait)
        if self.requests_left is not None and self.requests_left <= 0 and now < self.requests_reset_at:
            return Unavailable("limit", "upstream reports 0 requests remaining", self.requests_reset_at)
        if self.tokens_left is not None and self.tokens_left < tokens and now < self.tokens_reset_at:
            return Unavailable(
                "limit", f"upstream reports {self.tokens_left} tokens remaining (need ~{tokens})", self.tokens_reset_at
            )
        return None

    def acquire(self, tokens: int, now: float) -> None:
        """A call starts: count it in flight, spend its rate-limit tokens, claim the half-open probe."""
        self.in_flight += 1
        # unavailable() refilled the buckets at this same ``now``
        if self.rpm is not None:
            self.rpm.tokens -= 1
        if self.tpm is not None and tokens:
            self.tpm.tokens -= tokens
        if self.requests_left is not None:
            self.requests_left -= 1
        if self.circuit == "open" and now >= self.open_until:
            self.circuit = "half-open"
        if self.circuit == "half-open":
            self.probing = True

    def release(self, extra_tokens: int, now: float) -> None:
        """A call ended; ``extra_tokens`` are used tokens beyond the estimate spent at :meth:`acquire`.

        A half-open probe that ends with no verdict (refused before it was sent, cancelled, interrupted) frees
        the probe too, so the next call probes again: otherwise the deployment would answer "probe in flight"
        forever. (A verdict, :meth:`success` or :meth:`failure`, has already cleared it.)
        """
        if self.in_flight > 0:
            self.in_flight -= 1
        if self.circuit == "half-open":
            self.probing = False
        if extra_tokens > 0 and self.tpm is not None:
            self.tpm.take(extra_tokens, now)

    # -- outcomes -----------------------------------------------------------------------------------------------

    def failure(
        self, reason: str, retry_after: float | None, counts: bool, allowed_fails: int, cooldown: float, now: float
    ) -> None:
        """A failed call: honour ``retry_after``; ``counts`` toward the circuit unless it was the request's fault."""
        self.last_error = reason
        self.probing = False
        if retry_after is not None and retry_after > 0:
            self.cooldown_until = max(self.cooldown_until, now + retry_after)
        if not counts:
            return
        self.consecutive_failures += 1
        # The latency strategy sees a failing deployment as slow (explored again now and then, not first).
        self.latency = min((self.latency or 0.5) * 2, 30.0)
        if cooldown > 0 and (self.circuit == "half-open" or self.consecutive_failures >= allowed_fails):
            self.circuit = "open"
            self.open_until = now + cooldown

    def success(self, latency: float, now: float) -> None:
        """A successful call (``latency``: to the first token for streams) closes the circuit."""
        self.consecutive_failures = 0
        self.probing = False
        self.circuit = "closed"
        self.latency = latency if self.latency is None else self.latency + LATENCY_ALPHA * (latency - self.latency)
        self.latency_at = now

    def observe(self, headers: Mapping[str, str], now: float) -> None:
        """Take in upstream ``x-ratelimit-remaining-*`` / ``x-ratelimit-reset-*`` headers (OpenAI, Groq, …)."""
        left = headers.get("x-ratelimit-remaining-requests")
        if left is not None:
            self.requests_left = _int(left)
            reset = parse_duration(headers.get("x-ratelimit-reset-requests") or "")
            self.requests_reset_at = now + (reset if reset is not None else 1.0)
        left = headers.get("x-ratelimit-remaining-tokens")
        if left is not None:
            self.tokens_left = _int(left)
            reset = parse_duration(headers.get("x-ratelimit-reset-tokens") or "")
            self.tokens_reset_at = now + (reset if reset is not None else 1.0)

    def describe(self) -> str:
        """A short status line for logs and errors."""
        return f"circuit={self.circuit} failures={self.consecutive_failures} in_flight={self.in_flight}"


def _int(value: str) -> int | None:
    try:
        return int(float(value))
    except ValueError:
        return None
