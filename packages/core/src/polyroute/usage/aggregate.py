"""In-memory totals of usage records, by route, deployment, tag and user (:meth:`Router.usage`)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from polyroute.usage.record import UsageRecord

DIMENSIONS = ("route", "deployment", "tag", "user")


class Totals:
    """Sums over calls: counts, tokens, spend, latency."""

    __slots__ = (
        "cache_write_tokens",
        "cached_tokens",
        "calls",
        "cost",
        "errors",
        "failed_attempts",
        "failovers",
        "input_tokens",
        "latency_ms",
        "output_tokens",
        "reasoning_tokens",
    )

    def __init__(self) -> None:
        self.calls = 0
        self.errors = 0
        self.failed_attempts = 0
        self.failovers = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cached_tokens = 0
        self.cache_write_tokens = 0
        self.reasoning_tokens = 0
        self.cost = 0.0
        self.latency_ms = 0.0

    def add(self, record: UsageRecord) -> None:
        """Count one record (a failed attempt counts only as such)."""
        if record.kind == "attempt":
            self.failed_attempts += 1
            return
        tokens = (
            record.input_tokens,
            record.output_tokens,
            record.cached_tokens,
            record.cache_write_tokens,
            record.reasoning_tokens,
        )
        self.count_call(record.status, record.attempts, tokens, record.cost, record.latency_ms)

    def count_call(
        self, status: int, attempts: int, tokens: tuple[int, int, int, int, int], cost: float | None, latency_ms: float
    ) -> None:
        """Count one call: its status, attempts, tokens (input, output, cached, cache write, reasoning), cost."""
        self.calls += 1
        if status >= 400:
            self.errors += 1
        if attempts > 1:
            self.failovers += 1
        self.input_tokens += tokens[0]
        self.output_tokens += tokens[1]
        self.cached_tokens += tokens[2]
        self.cache_write_tokens += tokens[3]
        self.reasoning_tokens += tokens[4]
        if cost:
            self.cost += cost
        self.latency_ms += latency_ms

    def merge(self, other: Totals) -> None:
        """Add another's sums to these."""
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers, with the mean latency."""
        out: dict[str, Any] = {name: getattr(self, name) for name in self.__slots__ if name != "latency_ms"}
        out["cost"] = round(self.cost, 10)
        out["mean_latency_ms"] = round(self.latency_ms / self.calls, 3) if self.calls else None
        return out


class Aggregate:
    """Totals overall and per route, deployment, tag and user; thread-safe.

    A call is counted once, under its attribution (route, deployment, user, tags); the totals by each dimension are
    summed from those when read (:meth:`snapshot`), which is rare, rather than four times per call.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: dict[tuple[str, str | None, str | None, tuple[str, ...]], Totals] = {}

    def add(self, records: Iterable[UsageRecord]) -> None:
        """Count one call's records."""
        groups = self._groups
        with self._lock:
            for record in records:
                key = (record.route, record.deployment, record.user, record.tags)
                totals = groups.get(key)
                if totals is None:
                    totals = groups[key] = Totals()
                totals.add(record)

    def count_call(
        self,
        key: tuple[str, str | None, str | None, tuple[str, ...]],
        attempts: int,
        tokens: tuple[int, int, int, int, int],
        cost: float | None,
        latency_ms: float,
    ) -> None:
        """Count a call that answered, with no record made (nothing but these totals wants one): ``key`` is its
        (route, deployment, user, tags).
        """
        groups = self._groups
        with self._lock:
            totals = groups.get(key)
            if totals is None:
                totals = groups[key] = Totals()
            totals.count_call(200, attempts, tokens, cost, latency_ms)

    def snapshot(self) -> dict[str, Any]:
        """``{"total": {...}, "route": {name: {...}}, "deployment": …, "tag": …, "user": …}``."""
        total = Totals()
        by: dict[str, dict[str, Totals]] = {dimension: {} for dimension in DIMENSIONS}
        routes, deployments, tags, users = (by[d] for d in DIMENSIONS)
        with self._lock:
            for (route, deployment, user, call_tags), totals in self._groups.items():
                total.merge(totals)
                (routes.get(route) or _new(routes, route)).merge(totals)
                if deployment is not None:
                    (deployments.get(deployment) or _new(deployments, deployment)).merge(totals)
                if user is not None:
                    (users.get(user) or _new(users, user)).merge(totals)
                for tag in call_tags:
                    (tags.get(tag) or _new(tags, tag)).merge(totals)
        out: dict[str, Any] = {"total": total.to_dict()}
        for dimension, buckets in by.items():
            out[dimension] = {name: totals.to_dict() for name, totals in buckets.items()}
        return out

    def reset(self) -> None:
        """Start counting from zero."""
        with self._lock:
            self._groups = {}


def _new(buckets: dict[str, Totals], key: str) -> Totals:
    totals = buckets[key] = Totals()
    return totals
