"""polyroute's one exception tree, and how each error is rendered as an OpenAI error body.

```
PolyrouteError
├── ConfigError                raised at construction: a bad config names the field and value
├── InvalidRequestError        → 400 invalid_request_error: the caller's request is malformed
├── NoRouteError               → 404: no model by that name
├── NotFoundPathError          → 404 unknown_url: polyroute serves no such path (or not that method)
├── ResourceNotFoundError      → 404: a served path names something not there (a stored response by id)
├── UnsupportedFeatureError    → 400: the request needs something a deployment cannot do
├── BudgetExceededError        → 429 budget_exceeded: a configured budget is spent until it resets
│   └── BudgetStoreUnreachableError → 503: a shared budget store (Redis) is down and budgets fail closed
├── ResponseStoreUnreachableError → 503: a stored response cannot be looked up (Redis is down)
├── UpstreamError              provider, status, request_id
│   ├── UpstreamConnectionError → 502
│   ├── UpstreamTimeout         → 504
│   ├── UpstreamStatusError     → the upstream status (529 → 503)
│   └── StreamInterruptedError  → an in-band error after bytes reached the caller
└── AllTargetsFailedError (ExceptionGroup) → best status, x-should-retry: false
```

Messages never carry API keys: :func:`redact` replaces every key the router has used (:func:`remember_secret`:
inline and environment keys, secret header values, whatever their shape) and anything shaped like a known
vendor's key; provider error messages are redacted when the error is built, bodies again when rendered.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from typing_extensions import TypedDict

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import ExceptionGroup  # pyright: ignore[reportMissingImports, reportUnknownVariableType]

_KEY_PATTERN = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|sk-ant-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|gsk_[A-Za-z0-9]{8,}|"
    r"AKIA[0-9A-Z]{12,}|(?i:bearer)\s+[A-Za-z0-9._\-]{8,})"
)


MIN_SECRET_LENGTH = 8
"""Shorter values (``ollama``, ``none``) are placeholders, not keys, and would match ordinary words."""

MAX_SECRETS = 256
"""Secrets remembered at most (the oldest are forgotten first): keys rotate, memory must not grow with them."""

_secrets: tuple[str, ...] = ()
"""Longest first, so a secret that contains another is removed whole; replaced whole, so readers need no lock."""
_remembered: dict[str, None] = {}
"""The same secrets in the order they were learnt, to forget the oldest."""
_secrets_lock = threading.Lock()


def remember_secret(value: str) -> None:
    """Add a key (or secret header value) to those :func:`redact` removes, whatever its shape."""
    global _secrets
    if len(value) < MIN_SECRET_LENGTH or value in _remembered:
        return
    with _secrets_lock:
        if value not in _remembered:
            _remembered[value] = None
            while len(_remembered) > MAX_SECRETS:
                del _remembered[next(iter(_remembered))]
            _secrets = tuple(sorted(_remembered, key=len, reverse=True))


_SECRET_HEADER = re.compile(r"key|token|secret|auth|cookie|passw|signature|credential", re.IGNORECASE)
"""Header names whose values are credentials (``Authorization``, ``api-key``, ``x-api-key``, ``X-Auth-Token``…)."""


def is_secret_header(name: str) -> bool:
    """Whether a header's value is a credential, to be kept out of reprs, errors and logs."""
    return _SECRET_HEADER.search(name) is not None


def known_secrets() -> tuple[str, ...]:
    """The secrets :func:`redact` removes (for tests and for guards that scan other outputs)."""
    return _secrets


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """Remove ``secrets``, every remembered secret and anything shaped like an API key from ``text``."""
    for secret in (*secrets, *_secrets) if secrets else _secrets:
        if len(secret) >= MIN_SECRET_LENGTH and secret in text:
            text = text.replace(secret, "[redacted]")
    return _KEY_PATTERN.sub("[redacted]", text)


class ErrorDetail(TypedDict):
    """The ``error`` object of an OpenAI error body."""

    message: str
    type: str
    param: str | None
    code: str | None


class PolyrouteError(Exception):
    """Base of every error polyroute raises."""

    status: int = 500
    error_type: str = "api_error"
    code: str | None = None
    param: str | None = None

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if param is not None:
            self.param = param

    def to_body(self) -> dict[str, ErrorDetail]:
        """The OpenAI-style error body: ``{"error": {"message", "type", "param", "code"}}``."""
        return {
            "error": {"message": redact(self.message), "type": self.error_type, "param": self.param, "code": self.code}
        }

    def headers(self) -> dict[str, str]:
        """Extra response headers for this error."""
        return {}


class ConfigError(PolyrouteError, ValueError):
    """The router's configuration is invalid; raised when the router is built."""


class InvalidRequestError(PolyrouteError):
    """The caller's request is malformed; nothing was sent upstream."""

    status = 400
    error_type = "invalid_request_error"


class NoRouteError(PolyrouteError):
    """No model of that name is configured."""

    status = 404
    error_type = "invalid_request_error"
    code = "model_not_found"


class NotFoundPathError(PolyrouteError):
    """The transport does not serve that path."""

    status = 404
    error_type = "invalid_request_error"
    code = "unknown_url"


class ResourceNotFoundError(PolyrouteError):
    """The path is served but names what is not there (``GET /v1/responses/{id}`` for an id never stored, deleted,
    or another key's): OpenAI's 404 for an unknown id has no code, unlike its ``unknown_url`` for a wrong path.
    """

    status = 404
    error_type = "invalid_request_error"


class UnsupportedFeatureError(PolyrouteError):
    """The request needs a feature the chosen deployment cannot carry; the message says what to change."""

    status = 400
    error_type = "invalid_request_error"
    code = "unsupported_feature"


class BudgetExceededError(PolyrouteError):
    """A configured budget (``budgets:``) would be passed by this call; it resets at ``resets_at`` (epoch s)."""

    status = 429
    error_type = "rate_limit_error"
    code = "budget_exceeded"

    def __init__(self, message: str, *, budget: str, resets_at: float, retry_after: float) -> None:
        super().__init__(message)
        self.budget = budget
        self.resets_at = resets_at
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        """``retry-after``: whole seconds until the budget's period resets."""
        return {"retry-after": str(max(int(self.retry_after + 0.999), 1))}


class BudgetStoreUnreachableError(BudgetExceededError):
    """A shared budget store cannot answer and its budgets fail closed (``state.budgets_when_unreachable``): the call
    is refused rather than let through unchecked.
    """

    status = 503
    error_type = "api_error"
    code = "budget_store_unreachable"


class ResponseStoreUnreachableError(PolyrouteError):
    """A stored response cannot be looked up: the shared store (Redis) does not answer. Retrying shortly may work."""

    status = 503
    error_type = "api_error"
    code = "response_store_unreachable"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        """When to retry (the store checks whether Redis is back at this pace)."""
        return {"retry-after": str(max(int(self.retry_after + 0.999), 1))}


class UpstreamError(PolyrouteError):
    """A provider call failed."""

    status = 502
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        deployment: str = "",
        status: int | None = None,
        error_type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message, code=code, param=param)
        self.provider = provider
        self.deployment = deployment
        if status is not None:
            self.status = status
        if error_type is not None:
            self.error_type = error_type
        self.request_id = request_id
        self.retry_after = retry_after
        if retryable is not None:
            self.retryable = retryable

    def __repr__(self) -> str:
        """Names the deployment and status; never a key."""
        return f"{type(self).__name__}(deployment={self.deployment!r}, status={self.status}, message={self.message!r})"


class UpstreamConnectionError(UpstreamError):
    """The provider could not be reached, or the connection broke."""

    status = 502
    error_type = "api_connection_error"


class UpstreamTimeout(UpstreamError):
    """The provider did not answer in time."""

    status = 504
    error_type = "timeout"


class UpstreamStatusError(UpstreamError):
    """The provider answered with an error status; ``status`` is the OpenAI-side status to report."""


class StreamInterruptedError(UpstreamError):
    """A stream broke after its first bytes reached the caller, so it cannot fail over."""


class AllTargetsFailedError(PolyrouteError, ExceptionGroup):  # type: ignore[misc]
    """Every deployment (and fallback) was tried and failed; carries each attempt's error."""

    def __new__(cls, message: str, errors: Sequence[UpstreamError]) -> AllTargetsFailedError:
        """An exception group of every attempt's error."""
        return super().__new__(cls, message, list(errors))

    def __init__(self, message: str, errors: Sequence[UpstreamError]) -> None:
        ExceptionGroup.__init__(self, message, list(errors))  # type: ignore[arg-type]
        self.errors: list[UpstreamError] = list(errors)
        self.status, self.error_type, self.code = _summarize(self.errors)
        self.refused = False
        """A deployment of the route refused the request itself (what it cannot take, said in the message): the
        answer is this error, never the client library's connection or timeout error, whatever the others did."""

    def derive(self, excs: Sequence[Exception]) -> AllTargetsFailedError:  # type: ignore[override]
        """Keep the class when ``except*`` splits the group."""
        derived = AllTargetsFailedError(self.message, [e for e in excs if isinstance(e, UpstreamError)])
        derived.refused = self.refused
        return derived

    def headers(self) -> dict[str, str]:
        """The router gave up: tell the SDK not to re-run the whole chain; when every deployment is rate-limited
        and each said when it frees up (its rpm / tpm window, an upstream ``retry-after``), ``retry-after`` is the
        soonest, in whole seconds, for callers that wait and retry themselves.
        """
        headers = {"x-should-retry": "false"}
        waits = [e.retry_after for e in self.errors if e.retry_after is not None]
        if self.status == 429 and waits and len(waits) == len(self.errors):
            headers["retry-after"] = str(max(int(min(waits) + 0.999), 1))
        return headers


def _summarize(errors: Sequence[UpstreamError]) -> tuple[int, str, str | None]:
    """The status that best describes a set of failures (a lone 401 stays 401; all 429 → 429; else 502/503)."""
    if not errors:
        return 503, "api_error", "no_deployment_available"
    statuses = {e.status for e in errors}
    if len(statuses) == 1:
        first = errors[-1]
        return first.status, first.error_type, first.code
    if all(e.status == 429 for e in errors):
        return 429, "rate_limit_error", "rate_limit_exceeded"
    if all(isinstance(e, UpstreamConnectionError | UpstreamTimeout) for e in errors):
        return 502, "api_connection_error", "upstream_unreachable"
    return 503, "api_error", "all_deployments_failed"


def error_body(message: str, error_type: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """A bare OpenAI error body."""
    return {"error": {"message": redact(message), "type": error_type, "param": param, "code": code}}


def status_error_type(status: int) -> str:
    """OpenAI's ``type`` for an HTTP status."""
    return _TYPE_BY_STATUS.get(status, "api_error" if status >= 500 else "invalid_request_error")


_TYPE_BY_STATUS: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
