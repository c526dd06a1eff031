"""The router's usage recorder: one :class:`Call` per request, records out to the sinks.

The request path does as little as it can: it builds a record from counts it already has and adds it to the
in-memory totals (a dict update under a lock). The ledger, OpenTelemetry and the callback run on one background
thread that drains a queue every ``flush_interval``, so a call never waits on a disk or an exporter; a sink that
fails is logged (once) and never fails a call.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import itertools
import json
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from polyroute.errors import BudgetExceededError, PolyrouteError, UpstreamStatusError
from polyroute.usage.aggregate import Aggregate
from polyroute.usage.budgets import Budgets, BudgetStore, Reservation
from polyroute.usage.prices import cost as price_of
from polyroute.usage.prices import counts
from polyroute.usage.prices import warm as warm_prices
from polyroute.usage.record import UsageRecord

if TYPE_CHECKING:
    from polyroute.config import Budget, UsageSettings
    from polyroute.failover import Attempts, Profile
    from polyroute.providers._base import Target
    from polyroute.router import Router
    from polyroute.types.openai import Usage

logger = logging.getLogger("polyroute")

TAGS_HEADER = "x-polyroute-tags"
"""Comma-separated tags for a call (``extra_headers``, or a client's ``default_headers``)."""
USER_HEADER = "x-polyroute-user"
"""The caller's user when the body has no ``user`` (a client's default)."""

_ID_PREFIX = os.urandom(5).hex() + "-"
"""Call ids: random per process, then a counter (``next`` on a count is atomic; urandom per call is a syscall)."""
_ids = itertools.count(1)

Batch = tuple[list[UsageRecord], Any]

IDLE_EXIT = 30.0
"""Seconds without records after which the background thread ends."""
"""One call's records and the OpenTelemetry context it ran in (None without the OTel sink)."""


class Sink(Protocol):
    """A background sink: gets batches of calls' records, off the request path."""

    def write(self, batches: Sequence[Batch]) -> None:
        """Take these calls' records (raise to have the failure logged)."""
        ...

    def close(self) -> None:
        """Flush and let go of resources."""
        ...


class CallbackSink:
    """Calls a function with each record."""

    def __init__(self, function: Callable[[UsageRecord], Any]) -> None:
        self.function = function

    def write(self, batches: Sequence[Batch]) -> None:
        """Each record, in order."""
        for records, _ in batches:
            for record in records:
                self.function(record)

    def close(self) -> None:
        """Nothing to close."""


class Recorder:
    """Usage recording for one router (:attr:`Router.recorder`; None when ``usage.enabled`` is false)."""

    def __init__(
        self, settings: UsageSettings, budgets: Sequence[Budget] = (), budget_store: BudgetStore | None = None
    ) -> None:
        self.settings = settings
        self.aggregate = Aggregate() if settings.aggregate else None
        self.budgets = Budgets(budgets, budget_store) if budgets else None
        self.content = settings.content
        self.sinks: list[Sink] = []
        self.otel = False
        if settings.ledger is not None:
            from polyroute.usage.ledger import LedgerSink

            self.sinks.append(LedgerSink(settings.ledger))
        if settings.otel:
            from polyroute.usage.otel import OtelSink

            self.sinks.append(OtelSink())
            self.otel = True
        if settings.callback is not None:
            self.sinks.append(CallbackSink(_resolve(settings.callback)))
        self._queue: deque[Batch] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._done = threading.Condition()
        self._queued = 0
        self._written = 0
        self._failing: set[int] = set()
        self._thread: threading.Thread | None = None
        self._closed = False
        if self.sinks:
            _RECORDERS.add(self)
        self.totals_only = self.aggregate is not None and not self.sinks and self.budgets is None and not self.content
        """Nothing but the in-memory totals wants a call's record: a call that answers first time counts into them
        with no record made (a third of what recording costs a call)."""
        warm_prices()

    # -- the request path ---------------------------------------------------------------------------------------

    def begin(self, api: str, body: Any, headers: Mapping[str, str]) -> Call:
        """A call starts: its attribution, from the body (``user``, ``metadata``) and headers (tags, user)."""
        if not isinstance(body, dict):
            body = getattr(body, "body", None)  # an API's parsed request (a Responses call) around the caller's JSON
        fields: Mapping[str, Any] = cast("Mapping[str, Any]", body) if isinstance(body, dict) else {}
        # safety_identifier: Responses' newer name for user, the one sent upstream when both are set
        named = (fields.get("safety_identifier"), fields.get("user"))
        user = next((value for value in named if isinstance(value, str) and value), None)
        if user is None:
            # ``in`` first: an httpx Headers lookup scans every header, and most calls have neither
            user = (headers.get(USER_HEADER) or None) if USER_HEADER in headers else None
        raw_tags = headers.get(TAGS_HEADER) if TAGS_HEADER in headers else None
        tags = tuple(t for t in (part.strip() for part in raw_tags.split(",")) if t) if raw_tags else ()
        metadata = fields.get("metadata")
        meta: dict[str, str] | None = None
        if isinstance(metadata, dict) and metadata:
            meta = {str(k): str(v) for k, v in cast("dict[Any, Any]", metadata).items()}
        call = Call(self, api, user, tags, meta)
        if self.content:
            messages = fields.get("messages", fields.get("input"))
            call.prompt = json.dumps(messages, ensure_ascii=False, default=str)
        if self.otel:
            from opentelemetry import context  # pyright: ignore[reportMissingImports]

            call.parent = context.get_current()
        return call

    def emit(self, call: Call, records: list[UsageRecord]) -> None:
        """A call is over: totals now, the rest in the background."""
        aggregate = self.aggregate
        if aggregate is not None:
            aggregate.add(records)
        if self.sinks and not self._closed:
            with self._lock:  # the thread ends only under this lock, with the queue empty: no record is stranded
                self._queue.append((records, call.parent))
                self._queued += 1
                if self._thread is None:
                    self._start()

    def _forked(self) -> None:
        """In a forked child: no writer thread (the parent's did not survive the fork), fresh locks, none of the
        parent's queued records (they are the parent's to write), and sinks that open their own connections.
        """
        self._queue = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._done = threading.Condition()
        self._queued = self._written = 0
        self._thread = None
        for sink in self.sinks:
            forked = getattr(sink, "forked", None)
            if forked is not None:
                forked()

    # -- the background thread ----------------------------------------------------------------------------------

    def _start(self) -> None:
        """Start the writer thread (``_lock`` held)."""
        self._thread = threading.Thread(target=self._loop, name="polyroute-usage", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        """Drain every ``flush_interval``; after :data:`IDLE_EXIT` seconds with nothing to write the thread ends
        (the next record starts another), so a router left unclosed does not keep a thread and itself alive.
        """
        interval = self.settings.flush_interval
        idle_since = time.monotonic()
        while True:
            self._wake.wait(interval)
            self._wake.clear()
            if self._queue:
                self._drain()
                idle_since = time.monotonic()
            with self._lock:
                if not self._queue and (self._closed or time.monotonic() - idle_since >= IDLE_EXIT):
                    self._thread = None
                    return

    def _drain(self) -> None:
        queue = self._queue
        batches: list[Batch] = []
        while queue:
            batches.append(queue.popleft())
        if not batches:
            return
        for sink in self.sinks:
            try:
                sink.write(batches)
            except Exception:
                if id(sink) not in self._failing:
                    self._failing.add(id(sink))
                    logger.exception("polyroute usage sink %s failed; its records are dropped", type(sink).__name__)
        with self._done:
            self._written += len(batches)
            self._done.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record emitted so far reached the background sinks; False on timeout."""
        if not self.sinks or self._queued == self._written:
            return True
        target = self._queued
        deadline = time.monotonic() + timeout
        with self._done:
            while self._written < target:
                self._wake.set()
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._done.wait(min(left, 0.05))
        return True

    def close(self) -> None:
        """Flush, stop the thread, close the sinks (the ledger's connection). Records after this are not written."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(5.0)
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:
                logger.exception("polyroute usage sink %s failed to close", type(sink).__name__)


_F = TypeVar("_F", bound=Callable[..., Any])
_reported: set[str] = set()


def _safe(method: _F) -> _F:
    """A hook on the request path: a bug in recording is logged (once per hook) and never fails the call."""

    @functools.wraps(method)
    def hook(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except BudgetExceededError:
            raise
        except Exception:
            if method.__name__ not in _reported:
                _reported.add(method.__name__)
                logger.exception("polyroute usage: recording failed in %s; the call goes on", method.__name__)
            return None

    return cast("_F", hook)


class Call:
    """One request's usage: attribution, failed attempts so far, the budget reservation, and (a stream) the state
    until it closes.
    """

    __slots__ = (
        "_estimate",
        "_tried",
        "api",
        "attempts",
        "budget_refusal",
        "call_id",
        "ended",
        "metadata",
        "parent",
        "prompt",
        "recorder",
        "records",
        "reservation",
        "route",
        "started",
        "tags",
        "target",
        "ttft",
        "user",
        "wall",
    )

    def __init__(
        self, recorder: Recorder, api: str, user: str | None, tags: tuple[str, ...], metadata: dict[str, str] | None
    ) -> None:
        self.recorder = recorder
        self.api = api
        self.user = user
        self.tags = tags
        self.metadata = metadata
        self.started = time.monotonic()
        self.wall = time.time()
        self.call_id = f"{_ID_PREFIX}{next(_ids):x}"
        self.route = ""
        self.records: list[UsageRecord] = []
        self.reservation: Reservation | None = None
        self.budget_refusal: BudgetExceededError | None = None
        self.parent: Any = None
        self.prompt: str | None = None
        self.target: Target | None = None
        self.attempts = 0
        self.ttft: float | None = None
        self.ended = False
        self._estimate = (0, 0)
        """Prompt tokens and ``max_tokens`` of the request, for its budget claims."""
        self._tried: set[str] = set()
        """Routes whose budgets this call was admitted under, or refused by (a fallback never loops back)."""

    def admit(self, router: Router, request: Profile) -> Profile:
        """Check the budgets and reserve this call's estimate; a spent budget with a ``fallback`` sends the call
        to that model instead (the returned profile names it). Raises :class:`BudgetExceededError`.

        With budgets on the router's shared state (Redis), the reservation is only computed here: it rides on the
        call's first deployment claim (:attr:`pending`, :meth:`refused_at_claim`), so it costs no round trip.
        """
        budgets = self.recorder.budgets
        name = request.model
        self.route = name
        if budgets is None:
            return request
        self._estimate = (request.tokens, request.max_tokens)
        try:
            name = self._admit(router, budgets, name)
        except BudgetExceededError as exc:
            self._refused(exc)
            raise
        return request if name == request.model else replace(request, model=name)

    def _admit(self, router: Router, budgets: Budgets, name: str) -> str:
        """Admit the call under the budgets of route ``name``, following spent budgets' fallbacks: the route it
        goes to (:attr:`reservation` set).
        """
        tokens, max_tokens = self._estimate
        seen = self._tried
        shared = router.shared_state
        defer = shared is not None and shared.takes_budgets(budgets.store)
        while True:
            route = router.route(name)
            seen.add(name)
            admitted, reservation = budgets.admit(route, self.user, self.tags, tokens, max_tokens, defer=defer)
            if isinstance(admitted, str) and admitted in seen:  # fallbacks spent all round: refuse here
                admitted, reservation = budgets.admit(
                    route, self.user, self.tags, tokens, max_tokens, fallback=False, defer=defer
                )
            if not isinstance(admitted, str):
                self.reservation = reservation
                break
            logger.info("polyroute budget spent: model=%s -> fallback %s", name, admitted)
            name = admitted
        self.route = name
        return name

    @property
    def pending(self) -> Reservation | None:
        """The budget reservation waiting to ride on the call's next deployment claim, or None."""
        reservation = self.reservation
        return reservation if reservation is not None and reservation.pending else None

    def refused_at_claim(self, router: Router) -> str:
        """The :attr:`pending` reservation found a budget spent when a deployment was claimed (nothing was claimed).
        As when that happens before routing: the name of the budget's fallback route, whose budgets the call is now
        admitted under, or :class:`BudgetExceededError` raised (the transport answers and records it).
        """
        budgets = self.recorder.budgets
        reservation = self.reservation
        assert budgets is not None
        assert reservation is not None
        assert reservation.refused is not None
        self.reservation = None
        refused = reservation.refused
        name = budgets.refusal(self.route, refused)
        if name in self._tried:  # fallbacks spent all round: refuse here
            budgets.refusal(self.route, refused, fallback=False)
        logger.info("polyroute budget spent: model=%s -> fallback %s", self.route, name)
        return self._admit(router, budgets, name)

    def blocked(self, target: Target) -> str | None:
        """Why a deployment budget keeps ``target`` out of this call, or None."""
        budgets = self.recorder.budgets
        if budgets is None or self.reservation is None or not self.reservation.deployment_budgets:
            return None
        reason = budgets.blocked(target)
        if reason is not None:
            now = time.time()
            budget = next(b for b in budgets.budgets if reason.startswith(f"budget {b.name!r}"))
            from polyroute.usage.budgets import period

            end = period(budget.per, now)[1]
            self.budget_refusal = BudgetExceededError(
                f"{target.label}: {reason}", budget=budget.name, resets_at=end, retry_after=end - now
            )
        return reason

    def _refused(self, exc: BudgetExceededError) -> None:
        record = self._record("call", None, exc.status, exc.code, 0)
        self.recorder.emit(self, [record])

    def _record(self, kind: Any, target: Target | None, status: int, error: str | None, attempts: int) -> UsageRecord:
        return UsageRecord(
            time=self.wall,
            call_id=self.call_id,
            kind=kind,
            api=self.api,
            route=self.route,
            deployment=target.label if target is not None else None,
            provider=target.provider if target is not None else None,
            model=target.model if target is not None else None,
            status=status,
            error=error,
            attempts=attempts,
            latency_ms=(time.monotonic() - self.started) * 1000.0,
            user=self.user,
            tags=self.tags,
            metadata=self.metadata,
            prompt=self.prompt,
        )

    # -- outcomes -----------------------------------------------------------------------------------------------

    @_safe
    def attempt_failed(self, target: Target, error: PolyrouteError, elapsed: float, number: int) -> None:
        """One attempt failed (the call may go on elsewhere)."""
        status = error.status if isinstance(error, UpstreamStatusError) else getattr(error, "status", 502)
        record = self._record("attempt", target, status, error.code or error.error_type, number)
        record.time = time.time() - elapsed
        record.latency_ms = elapsed * 1000.0
        self.records.append(record)

    @_safe
    def finished(self, target: Target, answer: Any, attempts: Attempts, cost: float | None) -> None:
        """A non-streamed answer: the call is over."""
        usage = cast("Mapping[str, Any]", answer).get("usage") if isinstance(answer, dict) else None
        recorder = self.recorder
        if recorder.totals_only and not self.records:
            self.ended = True
            tokens = counts(cast("Usage", usage)) if usage else _NO_TOKENS
            latency = (time.monotonic() - self.started) * 1000.0
            key = (self.route, target.label, self.user, self.tags)
            cast("Aggregate", recorder.aggregate).count_call(key, attempts.count, tokens, cost, latency)
            return
        record = self._record("call", target, 200, None, attempts.count)
        if usage:
            _count(record, cast("Usage", usage))
        record.cost = cost
        if self.recorder.content:
            record.completion = _completion_text(answer)
        self._end(record)

    @_safe
    def committed(self, stream: Any, target: Target, attempts: Attempts) -> None:
        """A stream reached its first content: the time to first token; the record waits for :meth:`closed`."""
        self.ttft = time.monotonic() - self.started
        self.target = target
        self.attempts = attempts.count
        stream.usage = self

    @_safe
    def closed(self, stream: Any) -> None:
        """The stream closed (read to the end, or left early by the caller)."""
        if self.ended or self.target is None:
            return
        target = self.target
        # a chat translator's builder holds the finish reason and usage; another API's translator may say them
        # the same way, or not at all (then the record has no tokens)
        builder = getattr(stream.translator, "builder", None)
        failure: PolyrouteError | None = getattr(stream, "failure", None)
        if failure is not None:  # ended after the commit by an upstream failure (told the caller in-band)
            record = self._record("call", target, failure.status, failure.code or failure.error_type, self.attempts)
        else:
            record = self._record("call", target, 200, None, self.attempts)
            if builder is not None and getattr(builder, "finish_reason", True) is None:
                record.error = "incomplete"  # the caller left before the end
        record.ttft_ms = self.ttft * 1000.0 if self.ttft is not None else None
        record.streamed = True
        usage: Usage | None = getattr(builder, "usage", None)
        if not usage:
            # cut short: what the upstream counted so far (Anthropic's message_start has the prompt's tokens)
            so_far = getattr(stream.translator, "usage_so_far", None)
            usage = so_far() if so_far is not None else None
        if usage:
            _count(record, usage)
            found = usage.get("cost")
            record.cost = found if isinstance(found, float | int) else price_of(target, usage)
        self._end(record)

    @_safe
    def failed(self, error: PolyrouteError, attempts: Attempts | None) -> None:
        """The call ended in an error answer."""
        if self.ended:
            return
        count = attempts.count if attempts is not None else len(self.records)
        # no deployment on the call record: the failed attempts before it name theirs
        record = self._record("call", None, error.status, error.code or error.error_type, count)
        self._end(record)

    def _end(self, record: UsageRecord) -> None:
        self.ended = True
        records = self.records
        records.append(record)
        recorder = self.recorder
        if self.reservation is not None and recorder.budgets is not None:
            recorder.budgets.settle(
                self.reservation, record.deployment, record.cost, record.input_tokens + record.output_tokens
            )
            self.reservation = None
        recorder.emit(self, records)


_NO_TOKENS = (0, 0, 0, 0, 0)


def _count(record: UsageRecord, usage: Usage) -> None:
    (
        record.input_tokens,
        record.output_tokens,
        record.cached_tokens,
        record.cache_write_tokens,
        record.reasoning_tokens,
    ) = counts(usage)


def _completion_text(answer: Any) -> str | None:
    try:
        return answer["choices"][0]["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None


def _resolve(callback: Callable[..., Any] | str) -> Callable[..., Any]:
    if not isinstance(callback, str):
        return callback
    module, _, name = callback.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        from polyroute.errors import ConfigError

        raise ConfigError(f"usage.callback: cannot import {callback!r}: {exc}") from None


_RECORDERS: weakref.WeakSet[Recorder] = weakref.WeakSet()
"""Recorders with background sinks, flushed when the interpreter exits."""


def _after_fork_in_child() -> None:
    for recorder in list(_RECORDERS):
        recorder._forked()  # pyright: ignore[reportPrivateUsage]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _flush_all() -> None:  # pyright: ignore[reportUnusedFunction]
    for recorder in list(_RECORDERS):
        try:
            recorder.close()
        except Exception:  # pragma: no cover - exiting anyway
            logger.exception("polyroute usage: flushing at exit failed")


def begin(router: Router, api: Any, body: Any, headers: Mapping[str, str]) -> tuple[Profile, Call | None]:
    """The transport's hook where a request starts: what it routes on (a budget's fallback may change its model)
    and its :class:`Call`, or None when the router records nothing.
    """
    request: Profile = api.routing(body)
    recorder = router.recorder
    if recorder is None:
        return request, None
    call = recorder.begin(api.name, body, headers)
    return call.admit(router, request), call
