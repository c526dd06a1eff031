"""OpenTelemetry GenAI spans and metrics for usage records (``opentelemetry-api`` only: ``polyroute[otel]``).

One ``CLIENT`` span per call, named ``chat {model}`` as the GenAI semantic conventions ask, child of whatever span
was current when the call began; under it one span per upstream attempt (failed ones with ``error.type``). Spans
are made on the recorder's background thread with the call's real start and end times. Metrics:
``gen_ai.client.token.usage`` (by ``gen_ai.token.type``) and ``gen_ai.client.operation.duration``, plus
``polyroute.cost`` in USD. Without an SDK configured the API's no-op tracer makes all of this nearly free.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from polyroute.usage.record import UsageRecord

_OPERATIONS = {"chat.completions": "chat", "responses": "chat", "embeddings": "embeddings"}
_SYSTEMS = {"gemini": "gcp.gemini", "vertex": "gcp.vertex_ai", "bedrock": "aws.bedrock", "azure": "azure.ai.openai"}


class OtelSink:
    """Spans and metrics through the global tracer and meter providers."""

    def __init__(self) -> None:
        try:
            from opentelemetry import metrics, trace  # pyright: ignore[reportMissingImports]
        except ImportError:
            from polyroute.errors import ConfigError

            raise ConfigError("usage.otel needs opentelemetry-api: pip install 'polyroute[otel]'") from None
        self._trace: Any = trace
        self.tracer: Any = trace.get_tracer("polyroute")
        meter: Any = metrics.get_meter("polyroute")
        self.tokens: Any = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens used per call"
        )
        self.duration: Any = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="GenAI operation duration"
        )
        self.cost: Any = meter.create_counter("polyroute.cost", unit="USD", description="Spend per call")

    def write(self, batches: Sequence[tuple[list[UsageRecord], Any]]) -> None:
        """A span tree per call, and its metrics."""
        for records, parent in batches:
            self._call(records, parent)

    def _call(self, records: list[UsageRecord], parent: Any) -> None:
        trace = self._trace
        call = records[-1]
        operation = _OPERATIONS.get(call.api, call.api)
        start = int(call.time * 1e9)
        end = start + int(call.latency_ms * 1e6)
        attributes = _attributes(call, operation)
        attributes["polyroute.attempts"] = call.attempts
        span = self.tracer.start_span(
            f"{operation} {call.route}",
            context=parent,
            kind=trace.SpanKind.CLIENT,
            attributes=attributes,
            start_time=start,
        )
        if call.status >= 400:
            span.set_status(trace.Status(trace.StatusCode.ERROR, call.error or str(call.status)))
        context = trace.set_span_in_context(span)
        for attempt in records[:-1]:
            begun = int(attempt.time * 1e9)
            child = self.tracer.start_span(
                f"{operation} {attempt.model or attempt.route}",
                context=context,
                kind=trace.SpanKind.CLIENT,
                attributes=_attributes(attempt, operation),
                start_time=begun,
            )
            child.set_status(trace.Status(trace.StatusCode.ERROR, attempt.error or str(attempt.status)))
            child.end(end_time=begun + int(attempt.latency_ms * 1e6))
        if call.deployment is not None:  # the attempt that answered
            begun = int(records[-2].time * 1e9 + records[-2].latency_ms * 1e6) if len(records) > 1 else start
            child = self.tracer.start_span(
                f"{operation} {call.model}",
                context=context,
                kind=trace.SpanKind.CLIENT,
                attributes=_attributes(call, operation),
                start_time=min(begun, end),
            )
            child.end(end_time=end)
        span.end(end_time=end)
        metric_attributes = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": _system(call.provider),
            "gen_ai.request.model": call.route,
        }
        if call.model is not None:
            metric_attributes["gen_ai.response.model"] = call.model
        if call.status >= 400:
            metric_attributes["error.type"] = call.error or str(call.status)
        self.duration.record(call.latency_ms / 1000.0, metric_attributes)
        if call.status < 400:
            self.tokens.record(call.input_tokens, {**metric_attributes, "gen_ai.token.type": "input"})
            self.tokens.record(call.output_tokens, {**metric_attributes, "gen_ai.token.type": "output"})
        if call.cost:
            self.cost.add(call.cost, metric_attributes)

    def close(self) -> None:
        """The providers belong to the application: nothing to close."""


def _system(provider: str | None) -> str:
    return _SYSTEMS.get(provider or "", provider or "polyroute")


def _attributes(record: UsageRecord, operation: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": _system(record.provider),
        "gen_ai.system": _system(record.provider),
        "gen_ai.request.model": record.route,
        "polyroute.call_id": record.call_id,
    }
    if record.model is not None:
        out["gen_ai.response.model"] = record.model
    if record.deployment is not None:
        out["polyroute.deployment"] = record.deployment
    if record.status >= 400 or record.kind == "attempt":
        out["error.type"] = record.error or str(record.status)
        out["http.response.status_code"] = record.status
    else:
        out["gen_ai.usage.input_tokens"] = record.input_tokens
        out["gen_ai.usage.output_tokens"] = record.output_tokens
        if record.cached_tokens:
            out["gen_ai.usage.cache_read.input_tokens"] = record.cached_tokens
        if record.cache_write_tokens:
            out["gen_ai.usage.cache_creation.input_tokens"] = record.cache_write_tokens
        if record.reasoning_tokens:
            out["gen_ai.usage.reasoning.output_tokens"] = record.reasoning_tokens
        if record.cost is not None:
            out["polyroute.cost_usd"] = record.cost
        if record.ttft_ms is not None:
            out["polyroute.ttft_ms"] = record.ttft_ms
    if record.user is not None:
        out["user.id"] = record.user
    if record.tags:
        out["polyroute.tags"] = list(record.tags)
    return out
