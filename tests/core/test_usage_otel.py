"""OpenTelemetry GenAI spans and metrics, checked with the SDK's in-memory exporter and reader."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra and opentelemetry-sdk (dev group) are not installed")

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from polyroute import Router
from tests.emulators import Emulator, Reply, Request
from tests.emulators.openai_format import chunks, completion
from tests.emulators.server import Handler

Start = Callable[[Handler], Emulator]
KEY = "sk-otel-test-0123456789abcdef"
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]

EXPORTER = InMemorySpanExporter()
READER = InMemoryMetricReader()


@pytest.fixture(scope="module", autouse=True)
def _providers() -> None:
    """The global providers can be set once per process: this module's, for all its tests."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))


@pytest.fixture(autouse=True)
def _clear() -> None:
    EXPORTER.clear()


def _ok(request: Request) -> Reply:
    body = request.json()
    usage = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    if body.get("stream"):
        return Reply.sse(chunks(["o", "k"], model=body["model"], usage=usage))
    return Reply(body=completion("ok", model=body["model"], usage=usage))


def _down(request: Request) -> Reply:
    return Reply(status=503, body={"error": {"message": "overloaded", "type": "server_error", "code": None}})


def _router(*deployments: dict[str, Any]) -> Router:
    return Router({"models": [{"name": "m", "deployments": list(deployments)}], "usage": {"otel": True}})


def _dep(emu: Emulator, name: str) -> dict[str, Any]:
    return {"provider": "openai", "model": "gpt-4o", "id": name, "api_base": emu.url + "/v1", "api_key": KEY}


@pytest.mark.parametrize("stream", [False, True])
def test_one_span_per_call_a_child_per_attempt(emulator: Start, stream: bool) -> None:
    router = _router(_dep(emulator(_down), "a"), _dep(emulator(_ok), "b"))
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("agent step") as outer:
        client = router.openai_client(tags=["otel"])
        if stream:
            list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
        else:
            client.chat.completions.create(model="m", messages=MESSAGES)
    router.close()
    spans = {s.name: s for s in EXPORTER.get_finished_spans() if s.name != "agent step"}
    call = spans["chat m"]
    assert call.kind == trace.SpanKind.CLIENT
    assert call.parent is not None and call.parent.span_id == outer.get_span_context().span_id
    attrs = dict(call.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "m" and attrs["gen_ai.response.model"] == "gpt-4o"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (12, 3)
    assert attrs["polyroute.attempts"] == 2 and attrs["polyroute.tags"] == ("otel",)
    assert attrs["polyroute.cost_usd"] > 0
    children = [
        s for s in EXPORTER.get_finished_spans() if s.parent is not None and s.parent.span_id == call.context.span_id
    ]
    assert len(children) == 2
    failed, answered = sorted(children, key=lambda s: s.start_time or 0)
    assert failed.status.status_code == trace.StatusCode.ERROR
    assert failed.attributes is not None and failed.attributes["polyroute.deployment"] == "a"
    assert failed.attributes["http.response.status_code"] == 503
    assert answered.attributes is not None and answered.attributes["polyroute.deployment"] == "b"
    assert (call.start_time or 0) <= (failed.start_time or 0) and (answered.end_time or 0) <= (call.end_time or 0)
    data = READER.get_metrics_data()
    assert data is not None
    tokens = [
        point
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "gen_ai.client.token.usage"
        for point in m.data.data_points  # type: ignore[union-attr]
    ]
    assert {p.attributes["gen_ai.token.type"] for p in tokens if p.attributes} == {"input", "output"}


def test_a_failed_call_is_an_error_span_and_metrics_are_recorded(emulator: Start) -> None:
    router = Router(
        {
            "models": [{"name": "m", "deployments": [_dep(emulator(_down), "a")]}],
            "usage": {"otel": True},
            "retry": {"last_resort_retries": 0},
        }
    )
    with pytest.raises(Exception, match="overloaded"):
        router.openai_client().chat.completions.create(model="m", messages=MESSAGES)
    router.close()
    (call,) = [s for s in EXPORTER.get_finished_spans() if s.parent is None or s.name == "chat m"][:1]
    assert call.status.status_code == trace.StatusCode.ERROR
    data = READER.get_metrics_data()
    assert data is not None
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert "gen_ai.client.operation.duration" in names
