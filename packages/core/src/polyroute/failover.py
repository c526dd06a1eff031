"""Which deployment to try next, and what a failure means: the sans-I/O half of the request loop.

:class:`Attempts` is a small state machine per request. The transport asks it for the next :class:`Target`,
reports each failure or success, and sleeps when told to; sync and async loops share all of it. It never fails
over once a stream has committed (the transport does not ask it to).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from polyroute.errors import (
    AllTargetsFailedError,
    UnsupportedFeatureError,
    UpstreamError,
    UpstreamStatusError,
)

if TYPE_CHECKING:
    from polyroute.providers._base import Target
    from polyroute.router import Router

logger = logging.getLogger("polyroute")

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
DEPLOYMENT_STATUSES = frozenset({401, 403, 404})
"""A deployment's own key or model is wrong: another deployment may still serve the call."""


def fails_over(error: UpstreamError) -> bool:
    """Whether another deployment may succeed where this one failed (the request itself was fine)."""
    if isinstance(error, UpstreamStatusError):
        if error.code == "context_length_exceeded":
            return True  # a larger window elsewhere may fit; context_window_fallbacks are tried
        return error.status in RETRYABLE_STATUSES or error.status in DEPLOYMENT_STATUSES or error.status >= 500
    return error.retryable


@dataclass(slots=True)
class AttemptRecord:
    """One upstream try, for logs, headers and the final error."""

    deployment: str
    status: int | None
    reason: str
    elapsed: float


class Attempts:
    """The failover plan for one request: deployments of the model in strategy order, then its fallbacks."""

    def __init__(self, router: Router, model: str, estimated_tokens: int = 0) -> None:
        self.router = router
        self.model = model
        self.records: list[AttemptRecord] = []
        self.errors: list[UpstreamError] = []
        self.skipped: list[tuple[str, str]] = []
        self.started = time.monotonic()
        self._estimated_tokens = estimated_tokens
        self._targets: Iterator[Target] = self._plan()
        self._started_at = 0.0
        settings = router.config.retry
        self._max_attempts = settings.max_attempts
        self._deadline = self.started + settings.deadline if settings.deadline else None

    def _plan(self) -> Iterator[Target]:
        seen_models: set[str] = set()
        queue = [self.model]
        while queue:
            name = queue.pop(0)
            if name in seen_models:
                continue
            seen_models.add(name)
            route = self.router.route(name)
            yield from self.router.order(route, self._estimated_tokens)
            queue.extend(route.fallbacks)

    def next(self) -> Target | None:
        """The next deployment to call, or None when the plan is used up (or the budget is spent)."""
        if len(self.records) >= self._max_attempts:
            return None
        if self._deadline is not None and time.monotonic() >= self._deadline:
            return None
        for target in self._targets:
            reason = self.router.unavailable(target)
            if reason:
                self.skipped.append((target.label, reason))
                continue
            self._started_at = time.monotonic()
            return target
        return None

    def failed(self, target: Target, error: UpstreamError) -> bool:
        """Record a failure; True when the router should try the next deployment, False to answer now."""
        elapsed = time.monotonic() - self._started_at
        status = error.status if isinstance(error, UpstreamStatusError) else None
        self.records.append(AttemptRecord(target.label, status, error.message, elapsed))
        self.errors.append(error)
        self.router.report_failure(target, error)
        move_on = isinstance(error, UnsupportedFeatureError) or fails_over(error)
        logger.warning(
            "polyroute attempt failed: model=%s deployment=%s status=%s elapsed=%.3fs next=%s: %s",
            self.model,
            target.label,
            status if status is not None else type(error).__name__,
            elapsed,
            "fail over" if move_on else "return to caller",
            error.message,
        )
        return move_on

    def unsupported(self, target: Target, error: UnsupportedFeatureError) -> None:
        """The deployment cannot carry this request: skip it without counting an upstream attempt."""
        self.skipped.append((target.label, error.message))

    def succeeded(self, target: Target) -> None:
        """Record the success that ends the loop."""
        elapsed = time.monotonic() - self._started_at
        self.records.append(AttemptRecord(target.label, 200, "ok", elapsed))
        self.router.report_success(target, elapsed)
        logger.info(
            "polyroute served: model=%s deployment=%s attempts=%d elapsed=%.3fs",
            self.model,
            target.label,
            len(self.records),
            elapsed,
        )

    def backoff(self) -> float:
        """Seconds to wait before the next try: none after the first failure, then jittered exponential."""
        settings = self.router.config.retry
        failures = len(self.errors)
        if failures < 2 or settings.backoff == 0:
            return 0.0
        delay = min(settings.backoff * (2 ** (failures - 2)), settings.max_backoff)
        return delay * random.uniform(0.5, 1.0)

    def final_error(self) -> Exception:
        """What to answer once nothing is left to try."""
        if not self.errors:
            if self.skipped:
                lines = "; ".join(f"{label}: {reason}" for label, reason in self.skipped)
                all_unsupported = all("support" in reason for _, reason in self.skipped)
                if all_unsupported:
                    return UnsupportedFeatureError(f"no deployment of {self.model!r} can serve this request: {lines}")
                return AllTargetsFailedError(
                    f"no deployment of {self.model!r} is available: {lines}",
                    [UpstreamError(reason, deployment=label, status=503) for label, reason in self.skipped],
                )
            return AllTargetsFailedError(f"no deployment of {self.model!r} could be tried", [])
        last = self.errors[-1]
        if len(self.errors) == 1 and not fails_over(last):
            return last
        if not fails_over(last):
            return last
        lines = "; ".join(
            f"{r.deployment}: {r.status if r.status is not None else 'error'} {r.reason} ({r.elapsed:.2f}s)"
            for r in self.records
        )
        skipped = "".join(f"; {label}: skipped, {reason}" for label, reason in self.skipped)
        return AllTargetsFailedError(
            f"all {len(self.records)} attempts for {self.model!r} failed: {lines}{skipped}", self.errors
        )

    @property
    def count(self) -> int:
        """Upstream calls made so far."""
        return len(self.records)
