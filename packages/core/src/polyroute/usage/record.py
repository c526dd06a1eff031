"""One usage record: what a call (or one failed attempt of it) was, did and cost."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Kind = Literal["call", "attempt"]


@dataclass(slots=True)
class UsageRecord:
    """A finished call (``kind="call"``), or one of its attempts that failed (``kind="attempt"``, marked so).

    A call that failed over twice then answered gives two ``attempt`` records and one ``call`` record with
    ``attempts=3``; spend and tokens are on the ``call`` record (a failed attempt has none). No prompt or completion
    text is kept unless ``usage.content`` is on.
    """

    time: float
    """Start, in seconds since the epoch (UTC)."""
    call_id: str
    kind: Kind
    api: str
    route: str
    """The model name the caller asked for (the route); after a budget fallback, the fallback's name."""
    deployment: str | None
    provider: str | None
    model: str | None
    """The upstream model."""
    status: int
    error: str | None = None
    """The error code (``rate_limit_exceeded``, ``budget_exceeded``…) or type, when the status is not 200."""
    attempts: int = 1
    """Upstream calls made (``call``); the attempt's number (``attempt``)."""
    latency_ms: float = 0.0
    """Until the answer was complete (a stream: until it closed)."""
    ttft_ms: float | None = None
    """Time to the first content (a stream's commit)."""
    input_tokens: int = 0
    """Prompt tokens, cached and cache-write tokens included (OpenAI's ``prompt_tokens``)."""
    output_tokens: int = 0
    """Completion tokens, reasoning included."""
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float | None = None
    """USD; None when no price source knows the model."""
    streamed: bool = False
    user: str | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, str] | None = None
    prompt: str | None = field(default=None, repr=False)
    completion: str | None = field(default=None, repr=False)

    @property
    def failed(self) -> bool:
        """Not answered: a failed attempt, or a call that ended in an error."""
        return self.status >= 400 or self.kind == "attempt"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = asdict(self)
        out["tags"] = list(self.tags)
        return out


COLUMNS: tuple[str, ...] = tuple(UsageRecord.__dataclass_fields__)
"""The record's fields in order (the ledger's columns)."""
