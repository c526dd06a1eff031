"""Which deployment to try next, and what a failure means: the sans-I/O half of the request loop.

:class:`Attempts` is a small state machine per request. The transport asks it for the next step (a
:class:`Target` to call, seconds to sleep, or None when nothing is left), reports each failure or success, and
does what it is told; sync and async loops share all of it. It never fails over once a stream has committed (the
transport does not ask it to).

The plan for a request: the model's deployments in strategy order, skipping those that cannot serve the request
(capabilities, context window) or are unavailable now (open circuit, ``retry-after`` cooldown, rpm / tpm,
``max_parallel``); then its ``fallbacks``. A context-length error jumps to ``context_window_fallbacks``, a
content-policy refusal to ``content_policy_fallbacks``. When only deployments at a limit are left, it waits for
the first to free up, at most ``retry.limit_wait`` in all.

A failure is one of (:func:`classify`):

- ``next``: the deployment failed (connection, timeout, 408, 409, 429, 5xx, 529; 401/403/404 = its own key or
  model): retry it (``retry.same_deployment_retries``; ``retry.last_resort_retries`` when it is the last one
  left; jittered exponential backoff or ``retry-after``) or try the next one;
- ``context`` / ``content_policy``: the request does not fit this model: its specific fallbacks, else return;
- ``return``: the request itself is wrong (400, 413, 422 …): answer the caller now.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

from polyroute.errors import (
    AllTargetsFailedError,
    PolyrouteError,
    UnsupportedFeatureError,
    UpstreamError,
    UpstreamStatusError,
    redact,
)

if TYPE_CHECKING:
    from polyroute.providers._base import Target
    from polyroute.router import Route, Router
    from polyroute.types.openai import ChatCompletionRequest, Message
    from polyroute.usage.recorder import Call

logger = logging.getLogger("polyroute")

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
DEPLOYMENT_STATUSES = frozenset({401, 403, 404})
"""A deployment's own key or model is wrong: another deployment may still serve the call."""

Action = Literal["next", "context", "content_policy", "return"]
Capability = Literal["tools", "vision", "pdf", "audio", "json_schema", "reasoning"]

FILE_CHARS = 3000
"""An image (or a file, or audio) counts as ~750 tokens in the prompt estimate (a tile or two at OpenAI's rates)."""
TOOL_CHARS = 400
MESSAGE_OVERHEAD = 4
_POLICY_CODES = frozenset({"content_filter", "content_policy_violation", "content_policy", "safety"})


# -- the request -------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Profile:
    """What a request needs from a deployment, estimated cheaply (characters / 4; no tokenizer): what
    :class:`Attempts` routes on.
    """

    model: str
    """The route the caller named (a budget's fallback may replace it)."""
    tokens: int
    """Estimated prompt tokens."""
    max_tokens: int
    """The caller's output limit (``max_completion_tokens`` / ``max_tokens``), 0 when not given."""
    needs: tuple[Capability, ...]
    stream: bool
    truncatable: bool = False
    """The input may be cut to fit a context window (Responses' ``truncation: "auto"``): a deployment whose window
    is too small still takes it (:func:`fit_to_window`)."""


def profile(body: ChatCompletionRequest) -> Profile:
    """One pass over the request: estimated prompt tokens and the capabilities it needs."""
    media: set[str] = set()
    messages = body["messages"]
    chars = 0
    for message in messages:
        chars += _message_chars(message, media)
    vision, pdf, audio = "image_url" in media, "file" in media, "input_audio" in media
    needs: list[Capability] = []
    tools = body.get("tools")
    if tools:
        needs.append("tools")
        chars += TOOL_CHARS * len(tools)
    if vision:
        needs.append("vision")
    if pdf:
        needs.append("pdf")
    if audio or body.get("audio") or "audio" in (body.get("modalities") or ()):
        needs.append("audio")
    response_format = body.get("response_format")
    if response_format and response_format.get("type") == "json_schema":
        needs.append("json_schema")
    if body.get("reasoning_effort") is not None:
        needs.append("reasoning")
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or 0
    tokens = chars // 4 + MESSAGE_OVERHEAD * len(messages)
    return Profile(body["model"], tokens, max_tokens, tuple(needs), bool(body.get("stream")))


def cannot_serve(target: Target, request: Profile) -> str | None:
    """Why ``target`` cannot take this request by its capabilities (catalog + deployment overrides), or None."""
    if not request.needs:
        return None
    info = target.info
    missing = [need for need in request.needs if not getattr(info, need)]
    if missing:
        return f"does not support {', '.join(missing)}"
    return None


def _message_chars(message: Message, media: set[str] | None = None) -> int:
    """The characters a message counts for in the estimate (an image, file or audio part: :data:`FILE_CHARS`); the
    kinds of media it carries are added to ``media``.
    """
    chars = 0
    content = message.get("content")
    if isinstance(content, str):
        chars += len(content)
    elif content:
        for part in content:
            kind = part.get("type")
            if kind == "text":
                chars += len(part.get("text") or "")
            elif kind in _MEDIA_PARTS:
                chars += FILE_CHARS
                if media is not None:
                    media.add(kind)
    calls = message.get("tool_calls")
    if calls:
        for call in calls:
            chars += len(call.get("function", {}).get("arguments") or "") + 20
    return chars


_MEDIA_PARTS = frozenset({"image_url", "file", "input_audio"})


def fit_to_window(body: ChatCompletionRequest, window: int) -> ChatCompletionRequest:
    """``body`` with its oldest turns dropped until the estimate (and the output asked for) fits ``window``: what
    Responses' ``truncation: "auto"`` asks of a deployment reached through chat, as OpenAI cuts from the beginning
    of the conversation. The leading system / developer messages (the instructions) stay; what is left starts at a
    user message, so no tool result loses its call; the last user turn always stays.
    """
    messages = body["messages"]
    head = 0
    while head < len(messages) and messages[head]["role"] in ("system", "developer"):
        head += 1
    sizes = [_message_chars(m) // 4 + MESSAGE_OVERHEAD for m in messages]
    tools = body.get("tools")
    budget = window - (body.get("max_completion_tokens") or body.get("max_tokens") or 0)
    budget -= sum(sizes[:head]) + (TOOL_CHARS * len(tools) // 4 if tools else 0)
    total = sum(sizes[head:])
    if total <= budget:
        return body
    start = dropped = 0
    for i in range(head, len(messages)):  # the earliest user turn from which the rest fits (else the last one)
        if messages[i]["role"] == "user":
            start = i
            if total - dropped <= budget:
                break
        dropped += sizes[i]
    if start <= head:  # nothing to drop before a user turn: as it is (the deployment says what is too long)
        return body
    logger.info(
        "polyroute truncation: model=%s dropped the %d oldest messages of %d to fit a context window of %d",
        body["model"],
        start - head,
        len(messages),
        window,
    )
    return cast("ChatCompletionRequest", {**body, "messages": [*messages[:head], *messages[start:]]})


def too_long(target: Target, request: Profile) -> str | None:
    """Why the estimated prompt (plus the requested output) does not fit ``target``'s context window, or None (a
    request that may be truncated fits: the deployment's adapter cuts it).
    """
    window = target.info.context_window
    if window is None or request.tokens + request.max_tokens <= window or request.truncatable:
        return None
    if request.max_tokens >= window:
        return f"max_tokens {request.max_tokens} alone fills its context window of {window}; ask for fewer"
    wanted = f"~{request.tokens} prompt tokens" + (f" + {request.max_tokens} output" if request.max_tokens else "")
    return f"{wanted} exceed its context window of {window} (context_length_exceeded)"


# -- failures ----------------------------------------------------------------------------------------------------


def is_content_policy(error: UpstreamError) -> bool:
    """Whether the provider refused the request on content policy."""
    if error.code in _POLICY_CODES or error.error_type in _POLICY_CODES:
        return True
    text = error.message.lower()
    return "content management policy" in text or "content_policy" in text or "content policy" in text


def classify(error: UpstreamError) -> Action:
    """What a failure means for the request (see the module docstring)."""
    if isinstance(error, UpstreamStatusError):
        if error.code == "context_length_exceeded":
            return "context"
        status = error.status
        if status in RETRYABLE_STATUSES or status >= 500 or status in DEPLOYMENT_STATUSES:
            return "next"
        if is_content_policy(error):
            return "content_policy"
        return "return"
    return "next" if error.retryable else "return"


def fails_over(error: UpstreamError) -> bool:
    """Whether another deployment may succeed where this one failed (the request itself was fine)."""
    return classify(error) == "next"


def _retry_same(error: UpstreamError) -> bool:
    """A transient failure worth retrying on the same deployment (not its key or model being wrong)."""
    if isinstance(error, UpstreamStatusError):
        return error.status in RETRYABLE_STATUSES or error.status >= 500
    return error.retryable


# -- the state machine -------------------------------------------------------------------------------------------


@dataclass(slots=True)
class AttemptRecord:
    """One upstream try, for logs, headers and the final error."""

    deployment: str
    status: int | None
    reason: str
    elapsed: float


@dataclass(slots=True)
class Skip:
    """A deployment not tried (or not tried again), and why."""

    deployment: str
    kind: str
    """``capability``, ``context``, ``circuit``, ``cooldown``, ``limit`` or ``busy``."""
    reason: str
    param: str | None = None
    """The request parameter that made the deployment unable to serve it, when one did."""
    code: str | None = None
    """The refusal's error code (``previous_response_not_found``…), when an adapter refused the request."""


def _line(deployment: str, reason: str, status: str = "") -> str:
    """``deployment: [status ]reason`` for the final error, naming the deployment once: adapter messages often
    start with its label already.
    """
    if reason.startswith(deployment):
        if not status:
            return reason  # "a could not be reached: …" reads as it is
        reason = reason[len(deployment) :].lstrip(": ")
    return f"{deployment}: {status}{reason}"


def _attempts(count: int) -> str:
    return "the only attempt" if count == 1 else f"all {count} attempts"


class Attempts:
    """The failover plan for one request: deployments of the model in strategy order, then its fallbacks."""

    __slots__ = (
        "_begun",
        "_deadline",
        "_deferred",
        "_max_attempts",
        "_models",
        "_queue",
        "_retries",
        "_retry",
        "_retry_wait",
        "_seen",
        "_waited",
        "call",
        "caller_timeout",
        "errors",
        "hedge_after",
        "model",
        "profile",
        "records",
        "route",
        "router",
        "skipped",
        "started",
    )

    def __init__(
        self, router: Router, request: Profile, caller_timeout: float | None = None, call: Call | None = None
    ) -> None:
        self.router = router
        self.call = call
        """The request's usage (records, budgets), or None when the router records nothing."""
        self.model = request.model
        self.route: Route = router.route(self.model)
        self.profile = request
        self.records: list[AttemptRecord] = []
        self.errors: list[UpstreamError] = []
        self.skipped: list[Skip] = []
        self.started = time.monotonic()
        self.caller_timeout = caller_timeout
        """The caller's own SDK timeout (seconds), if it set one."""
        settings = router.config.retry
        self._max_attempts = settings.max_attempts
        budget = settings.deadline
        if caller_timeout is not None and (budget is None or caller_timeout < budget):
            budget = caller_timeout
        self._deadline = self.started + budget if budget else None
        hedge = self.route.config.hedge_after_ms
        self.hedge_after = hedge / 1000.0 if hedge else None
        self._begun: dict[Target, float] = {}
        self._queue: list[Target] = self._ordered(self.route)
        self._models: list[str] = list(self.route.fallbacks)
        self._seen: set[str] = {self.model}
        self._deferred: list[tuple[Target, float]] = []
        self._waited = 0.0
        self._retry: Target | None = None
        self._retry_wait = 0.0
        self._retries: dict[Target, int] | None = None

    def _ordered(self, route: Route) -> list[Target]:
        ordered = self.router.order(route, self.profile.tokens, self.profile.max_tokens or 256)
        ordered.reverse()  # popped from the end
        return ordered

    # -- budget -------------------------------------------------------------------------------------------------

    def remaining(self) -> float | None:
        """Seconds left of the call's budget (``retry.deadline`` and the caller's own timeout), or None."""
        if self._deadline is None:
            return None
        return max(self._deadline - time.monotonic(), 0.0)

    def timeouts(self, target: Target) -> tuple[float, float | None]:
        """``(timeout, ttft)`` for a call to ``target``.

        Its ``timeout`` within the budget, and for streams its ``ttft_timeout`` (the time to the first content
        chunk), also within the budget.
        """
        timeout = target.timeout
        left = self.remaining()
        if left is not None and left < timeout:
            timeout = max(left, 0.001)
        ttft = target.deployment.ttft_timeout if self.profile.stream else None
        if ttft is not None and ttft > timeout:
            ttft = timeout
        return timeout, ttft

    # -- the plan -----------------------------------------------------------------------------------------------

    def next(self, wait: bool = True) -> Target | float | None:
        """The next deployment to call, seconds to wait first (only when ``wait``), or None when nothing is left.

        A returned :class:`Target` is claimed (in flight, rate-limit tokens spent): report its outcome with
        :meth:`failed`, :meth:`unsupported`, :meth:`succeeded` or :meth:`abandoned`.
        """
        if len(self.records) >= self._max_attempts:
            return None
        now = time.monotonic()
        if self._deadline is not None and now >= self._deadline:
            return None
        tokens = self.profile.tokens
        router = self.router
        if self._retry is not None:
            if self._retry_wait > 0 and wait:
                delay = self._retry_wait
                self._retry_wait = 0.0
                return self._bounded(delay, now)
            target, self._retry = self._retry, None
            skip = router.try_acquire(target, tokens, now)
            if skip is None:
                self._begun[target] = now
                return target
            self._defer(target, skip.kind, skip.reason, skip.ready_at)
        while True:
            if not self._queue and not self._advance():
                break
            target = self._queue.pop()
            if self.profile.needs:
                reason = cannot_serve(target, self.profile)
                if reason is not None:
                    self._skip(target, "capability", reason)
                    continue
            if target.info.context_window is not None:
                reason = too_long(target, self.profile)
                if reason is not None:
                    self._skip(target, "context", reason)
                    self._jump(self.router.route(target.route).config.context_window_fallbacks, drop=False)
                    continue
            if self.call is not None and (spent := self.call.blocked(target)) is not None:
                self._skip(target, "budget", spent)
                continue
            budget = self.call.pending if self.call is not None else None
            skip = router.try_acquire(target, tokens, now, budget)
            if skip is not None:
                if budget is not None and budget.refused is not None:
                    self._budget_spent()
                else:
                    self._defer(target, skip.kind, skip.reason, skip.ready_at)
                continue
            self._begun[target] = now
            return target
        if wait and self._deferred:
            return self._wait_for_deferred(now)
        return None

    def _bounded(self, delay: float, now: float) -> float:
        if self._deadline is not None:
            delay = min(delay, max(self._deadline - now, 0.0))
        return delay

    def _wait_for_deferred(self, now: float) -> float | None:
        """Everything left is at a limit or cooling down: wait for the first to free up, within budget."""
        ready = min(at for _, at in self._deferred)
        delay = max(ready - now, 0.0) + 0.005
        allowed = self.router.config.retry.limit_wait - self._waited
        if self._deadline is not None:
            allowed = min(allowed, self._deadline - now)
        if delay > allowed:
            return None
        self._waited += delay
        requeue = [target for target, _ in self._deferred]
        labels = {t.label for t in requeue}
        self.skipped = [s for s in self.skipped if s.deployment not in labels or s.kind in ("capability", "context")]
        self._deferred.clear()
        requeue.reverse()
        self._queue.extend(requeue)
        logger.debug("polyroute waiting %.3fs for a deployment of %s to free up", delay, self.model)
        return delay

    def _advance(self) -> bool:
        """Move to the next fallback model; False when there is none."""
        while self._models:
            name = self._models.pop(0)
            if name in self._seen:
                continue
            self._seen.add(name)
            route = self.router.route(name)
            self._queue = self._ordered(route)
            self._models.extend(route.fallbacks)
            logger.info("polyroute falling back: model=%s -> %s", self.model, name)
            return True
        return False

    def _budget_spent(self) -> None:
        """A budget was found spent as a deployment was claimed (its reservation rode on the claim; nothing was
        claimed): the plan starts over at the budget's fallback model, as if that had been the model asked for, or
        :class:`~polyroute.errors.BudgetExceededError` is raised.
        """
        assert self.call is not None
        name = self.call.refused_at_claim(self.router)
        self.model = name
        self.route = self.router.route(name)
        hedge = self.route.config.hedge_after_ms
        self.hedge_after = hedge / 1000.0 if hedge else None
        self._queue = self._ordered(self.route)
        self._models = list(self.route.fallbacks)
        self._seen = {name}
        self._deferred.clear()
        self.skipped.clear()
        self._retry = None

    def _jump(self, names: Sequence[str], drop: bool) -> bool:
        """Put specific fallbacks first (``drop``: abandon the current model's remaining deployments)."""
        fresh = [n for n in names if n not in self._seen]
        if not fresh:
            return False
        if drop:
            self._queue.clear()
        self._models[:0] = fresh
        return True

    def _skip(self, target: Target, kind: str, reason: str, param: str | None = None, code: str | None = None) -> None:
        self.skipped.append(Skip(target.label, kind, reason, param, code))
        logger.debug("polyroute skipped %s: %s", target.label, reason)

    def _defer(self, target: Target, kind: str, reason: str, ready_at: float) -> None:
        self._skip(target, kind, reason)
        self._deferred.append((target, ready_at))

    # -- outcomes -----------------------------------------------------------------------------------------------

    def _end(self, target: Target, status: int | None, reason: str) -> float:
        elapsed = time.monotonic() - self._begun.pop(target, self.started)
        self.records.append(AttemptRecord(target.label, status, reason, elapsed))
        return elapsed

    def failed(self, target: Target, error: UpstreamError) -> bool:
        """Record a failure; True when the loop should go on (next step), False to answer the caller now."""
        status = error.status if isinstance(error, UpstreamStatusError) else None
        elapsed = self._end(target, status, error.message)
        if self.call is not None:
            self.call.attempt_failed(target, error, elapsed, len(self.records))
        self.errors.append(error)
        action = classify(error)
        router = self.router
        router.release(target)
        router.report_failure(target, error, counts=action == "next")
        go_on = True
        what = "try next"
        if action == "return":
            go_on, what = False, "return to caller"
        elif action in ("context", "content_policy"):
            config = router.route(target.route).config
            names = config.context_window_fallbacks if action == "context" else config.content_policy_fallbacks
            go_on = self._jump(names, drop=True)
            what = f"{action} fallbacks {names}" if go_on else "return to caller"
        elif self._plan_retry(target, error):
            what = f"retry same deployment in {self._retry_wait:.3f}s"
        logger.warning(
            "polyroute attempt failed: model=%s deployment=%s status=%s elapsed=%.3fs next=%s: %s",
            self.model,
            target.label,
            status if status is not None else type(error).__name__,
            elapsed,
            what,
            redact(error.message),
        )
        return go_on

    def _plan_retry(self, target: Target, error: UpstreamError) -> bool:
        """Retry ``target`` after a transient failure: up to ``same_deployment_retries`` before moving on, or
        ``last_resort_retries`` when it is the only deployment tried and left (a lone deployment is then no less
        resilient than the bare SDK); after a jittered exponential backoff or the upstream's ``retry-after``,
        within the deadline.
        """
        settings = self.router.config.retry
        allowed = settings.same_deployment_retries
        alone = not self._queue and not self._models and not self._deferred
        if alone and all(record.deployment == target.label for record in self.records):
            allowed = max(allowed, settings.last_resort_retries)
        if not allowed or not _retry_same(error):
            return False
        retries = self._retries if self._retries is not None else {}
        self._retries = retries
        done = retries.get(target, 0)
        if done >= allowed or self.router.state(target).circuit != "closed":
            return False
        if error.retry_after is not None:
            if error.retry_after > settings.max_backoff:
                return False  # a long Retry-After: better served elsewhere now
            delay = error.retry_after + 0.01
        else:
            delay = backoff(done, settings.backoff, settings.max_backoff)
        if self._deadline is not None and time.monotonic() + delay >= self._deadline:
            return False  # no time left for another try
        retries[target] = done + 1
        self._retry = target
        self._retry_wait = delay
        return True

    def unsupported(self, target: Target, error: UnsupportedFeatureError) -> None:
        """The adapter cannot carry this request to ``target``: skip it without counting an upstream attempt."""
        self._begun.pop(target, None)
        self.router.release(target)
        self._skip(target, "capability", error.message, error.param, error.code)

    def abandoned(self, target: Target, release: bool = True) -> None:
        """A hedged call that lost the race (cancelled); ``release=False`` when it is still stopping (the caller
        releases the deployment with :meth:`Router.release` once it has).
        """
        self._end(target, None, "cancelled: another deployment answered first")
        if release:
            self.router.release(target)
        logger.info("polyroute hedge lost: model=%s deployment=%s cancelled", self.model, target.label)

    def succeeded(self, target: Target, streaming: bool = False, used_tokens: int = 0) -> float:
        """Record the success that ends the loop; returns the elapsed seconds (time to first token for streams).

        A non-streamed call frees the deployment here (``used_tokens`` beyond the estimate are charged to its
        tpm); a stream frees it when it closes.
        """
        elapsed = self._end(target, 200, "ok")
        extra = used_tokens - self.profile.tokens if used_tokens else 0
        self.router.report_success(target, elapsed, release=not streaming, extra_tokens=extra)
        logger.info(
            "polyroute served: model=%s deployment=%s attempts=%d elapsed=%.3fs",
            self.model,
            target.label,
            len(self.records),
            elapsed,
        )
        return elapsed

    # -- the answer ---------------------------------------------------------------------------------------------

    def final_error(self) -> PolyrouteError:
        """What to answer once nothing is left to try."""
        if self.errors:
            last = self.errors[-1]
            if classify(last) != "next":
                return last
            lines = "; ".join(
                _line(r.deployment, f"{r.reason} ({r.elapsed:.2f}s)", f"{r.status} " if r.status is not None else "")
                for r in self.records
            )
            skipped = "".join("; " + _line(s.deployment, s.reason, "skipped, ") for s in self.skipped)
            budget = self._budget_note()
            error = AllTargetsFailedError(
                f"{_attempts(len(self.records))} for {self.model!r} failed{budget}: {lines}{skipped}", self.errors
            )
            error.refused = any(s.kind in ("capability", "context") for s in self.skipped)
            return error
        lines = "; ".join(_line(s.deployment, s.reason) for s in self.skipped)
        kinds = {s.kind for s in self.skipped}
        if "budget" in kinds and kinds <= {"budget", "capability", "context"} and self.call is not None:
            refusal = self.call.budget_refusal
            if refusal is not None:
                return refusal
        if not kinds:
            return AllTargetsFailedError(f"no deployment of {self.model!r} could be tried{self._budget_note()}", [])
        if kinds <= {"capability", "context"} or kinds == {"capability", "auth"}:
            # Every deployment that could be called refused the request itself: a 400 that says why (the ones
            # without a key are named in it too), not the 401 of a route where no key was usable at all.
            if "context" in kinds:
                output = self.profile.max_tokens
                windows = [s for s in self.skipped if s.kind == "context"]
                if output and all(s.reason.startswith("max_tokens") for s in windows):
                    what, param = f"max_tokens {output} alone is more than", "max_tokens"
                else:
                    what, param = "the prompt (with the output asked for) is too long for", "messages"
                return UnsupportedFeatureError(
                    f"{what} every deployment of {self.model!r} takes: {lines}",
                    code="context_length_exceeded",
                    param=param,
                )
            refusals = [s for s in self.skipped if s.kind == "capability"]
            params = {s.param for s in refusals}
            codes = {s.code for s in refusals}
            return UnsupportedFeatureError(
                f"no deployment of {self.model!r} can serve this request: {lines}",
                param=params.pop() if len(params) == 1 else None,
                code=codes.pop() if len(codes) == 1 else None,
            )
        limited = kinds <= {"limit", "cooldown", "busy", "capability", "context"}
        status = 429 if limited else 503
        ready = [at for _, at in self._deferred]
        retry_after = max(min(ready) - time.monotonic(), 0.0) if ready else None
        errors = [
            UpstreamStatusError(
                s.reason,
                deployment=s.deployment,
                status=status,
                error_type="rate_limit_error" if limited else "api_error",
                code="rate_limit_exceeded" if limited else "deployment_unavailable",
                retry_after=retry_after,
            )
            if s.kind != "auth"  # its key is missing or was rejected: a 401, whatever else was skipped
            else UpstreamStatusError(
                s.reason,
                deployment=s.deployment,
                status=401,
                error_type="authentication_error",
                # Target.missing_key_error's wording; otherwise the key this deployment just had refused
                code="missing_api_key" if s.reason.startswith("no API key") else "invalid_api_key",
            )
            for s in self.skipped
            if s.kind not in ("capability", "context")
        ]
        if limited:
            summary = f"every deployment of {self.model!r} is at its rate limit"
        else:
            summary = f"no deployment of {self.model!r} is " + (
                "available" if kinds - {"auth"} else "usable (no valid API key)"
            )
        return AllTargetsFailedError(f"{summary}: {lines}", errors)

    def _budget_note(self) -> str:
        if self._deadline is not None and time.monotonic() >= self._deadline:
            return f" (time budget of {self._deadline - self.started:.2f}s spent)"
        if len(self.records) >= self._max_attempts:
            return f" (retry.max_attempts={self._max_attempts} reached)"
        return ""

    @property
    def count(self) -> int:
        """Upstream calls made so far."""
        return len(self.records)


def backoff(retry: int, first: float, cap: float) -> float:
    """Jittered exponential backoff: ``first * 2**retry`` capped at ``cap``, times a random 0.5-1.0."""
    if first <= 0:
        return 0.0
    return min(first * (2**retry), cap) * random.uniform(0.5, 1.0)
