"""Usage records, prices and sinks: real calls through the openai SDK to loopback emulators of each wire format.

Token counts come from recorded provider answers (``tests/fixtures``, copies from the shared corpus): Anthropic's
prompt-cache run (cache reads and writes), OpenAI's prompt-cache run (``cached_tokens``, ``cache_write_tokens``) and
a thinking run (``reasoning_tokens``), Gemini's reasoning run (``thoughtsTokenCount``). Each is answered once whole
and once streamed: the two records must agree on every count and on the cost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from polyroute import Router
from polyroute.usage import UsageRecord
from tests.emulators import Emulator, Reply, Request
from tests.emulators import anthropic_format as claude
from tests.emulators import gemini_format as gemini
from tests.emulators.openai_format import chunks, completion
from tests.emulators.server import Handler

Start = Callable[[Handler], Emulator]
KEY = "sk-usage-test-0123456789abcdef"
FIXTURES = Path(__file__).parent.parent / "fixtures"
MESSAGES = [{"role": "user", "content": "hi"}]


# -- recorded usage --------------------------------------------------------------------------------------------


def _yaml_usages(path: Path) -> list[dict[str, Any]]:
    """Every ``usage`` object in a cassette's response bodies, in order."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("usage"), dict):
                found.append(node["usage"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for item in yaml.safe_load(path.read_text())["interactions"]:
        walk(item["response"])
    return found


def anthropic_cache_usage() -> dict[str, Any]:
    (usage,) = [
        u
        for u in _yaml_usages(FIXTURES / "anthropic" / "pydantic-ai__test_anthropic_cache_real_api.yaml")
        if u.get("cache_read_input_tokens") and u.get("cache_creation_input_tokens")
    ][:1]
    return usage


def openai_usage(name: str, key: str) -> dict[str, Any]:
    path = FIXTURES / "openai_compatible" / name
    for usage in _yaml_usages(path):
        details = {**(usage.get("prompt_tokens_details") or {}), **(usage.get("completion_tokens_details") or {})}
        if details.get(key):
            return usage
    raise AssertionError(f"no usage with {key} in {name}")


def gemini_reasoning_usage() -> dict[str, Any]:
    return json.loads((FIXTURES / "gemini" / "vercel-ai__google-reasoning.json").read_text())["usageMetadata"]


# -- routers and calls -----------------------------------------------------------------------------------------


class Collected:
    """A usage callback that keeps every record (the sink runs on the recorder's thread)."""

    def __init__(self) -> None:
        self.records: list[UsageRecord] = []
        self.lock = threading.Lock()

    def __call__(self, record: UsageRecord) -> None:
        with self.lock:
            self.records.append(record)

    def calls(self) -> list[UsageRecord]:
        return [r for r in self.records if r.kind == "call"]


def router(deployments: list[dict[str, Any]], **config: Any) -> tuple[Router, Collected]:
    collected = Collected()
    usage = {"callback": collected, "flush_interval": 0.05, **config.pop("usage", {})}
    built = Router({"models": [{"name": "m", "deployments": deployments}], "usage": usage, **config})
    return built, collected


def run(mode: str, r: Router, *, stream: bool = False, client: dict[str, Any] | None = None, **kwargs: Any) -> str:
    """One call through the SDK (streams read to the end); the text answered."""
    kwargs = {"model": "m", "messages": MESSAGES, **kwargs}
    options = client or {}
    if mode == "sync":
        c = r.openai_client(**options)
        if not stream:
            return c.chat.completions.create(**kwargs).choices[0].message.content or ""
        return "".join(
            ch.choices[0].delta.content or "" for ch in c.chat.completions.create(stream=True, **kwargs) if ch.choices
        )

    async def go() -> str:
        c = r.async_openai_client(**options)
        try:
            if not stream:
                return (await c.chat.completions.create(**kwargs)).choices[0].message.content or ""
            out = []
            async for ch in await c.chat.completions.create(stream=True, **kwargs):
                if ch.choices:
                    out.append(ch.choices[0].delta.content or "")
            return "".join(out)
        finally:
            await r.aclose()

    return asyncio.run(go())


def both(mode: str, r: Router, collected: Collected) -> tuple[UsageRecord, UsageRecord]:
    """The same answer whole and streamed: their two call records."""
    run(mode, r)
    run(mode, r, stream=True)
    r.close()
    whole, streamed = collected.calls()
    return whole, streamed


COUNTS = ("input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens", "reasoning_tokens", "cost")


def assert_same_usage(whole: UsageRecord, streamed: UsageRecord) -> None:
    assert not whole.streamed and streamed.streamed
    assert {k: getattr(whole, k) for k in COUNTS} == {k: getattr(streamed, k) for k in COUNTS}
    assert whole.cost is not None and whole.cost > 0
    assert whole.ttft_ms is None and streamed.ttft_ms is not None and 0 < streamed.ttft_ms <= streamed.latency_ms


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


# -- records from each wire format -----------------------------------------------------------------------------


def test_anthropic_cache_reads_and_writes_cost_the_same_streamed(emulator: Start, mode: str) -> None:
    usage = anthropic_cache_usage()
    emu = emulator(claude.scripted([claude.thinking("Let me see.", "Cached answer.")], repeat_last=True, usage=usage))
    deployment = {"provider": "anthropic", "model": "claude-sonnet-4-5", "api_base": emu.url, "api_key": KEY}
    r, collected = router([deployment])
    whole, streamed = both(mode, r, collected)
    assert_same_usage(whole, streamed)
    read, write = usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"]
    assert whole.input_tokens == usage["input_tokens"] + read + write
    assert (whole.cached_tokens, whole.cache_write_tokens, whole.output_tokens) == (read, write, usage["output_tokens"])
    assert (whole.deployment, whole.provider, whole.model, whole.route) == (
        "anthropic/claude-sonnet-4-5",
        "anthropic",
        "claude-sonnet-4-5",
        "m",
    )
    # genai-prices' own figure: reads at a tenth of the input price, writes at 1.25x
    genai = pytest.importorskip("genai_prices")
    Usage, calc_price = genai.Usage, genai.calc_price

    exact = calc_price(
        Usage(
            input_tokens=whole.input_tokens,
            output_tokens=whole.output_tokens,
            cache_read_tokens=read,
            cache_write_tokens=write,
        ),
        model_ref="claude-sonnet-4-5",
        provider_id="anthropic",
    )
    assert whole.cost == pytest.approx(float(exact.total_price))


def test_gemini_thinking_tokens_cost_the_same_streamed(emulator: Start, mode: str) -> None:
    usage = gemini_reasoning_usage()
    emu = emulator(gemini.GeminiEmulator(gemini.response("The answer.", thought="Thinking…", usage=usage)))
    deployment = {"provider": "gemini", "model": "gemini-2.5-pro", "api_base": emu.url, "api_key": KEY}
    r, collected = router([deployment])
    whole, streamed = both(mode, r, collected)
    assert_same_usage(whole, streamed)
    assert whole.reasoning_tokens == usage["thoughtsTokenCount"]
    assert whole.output_tokens == usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]
    assert whole.input_tokens == usage["promptTokenCount"]


@pytest.mark.parametrize(
    ("fixture", "key"),
    [
        ("openai__pydantic-ai__test_openai_chat_prompt_cache_e2e.yaml", "cached_tokens"),
        ("openai__pydantic-ai__test_openai_chat_prompt_cache_e2e.yaml", "cache_write_tokens"),
        ("openai__pydantic-ai__test_openai_model_thinking_part.yaml", "reasoning_tokens"),
    ],
)
def test_openai_cached_and_reasoning_tokens_cost_the_same_streamed(
    emulator: Start, mode: str, fixture: str, key: str
) -> None:
    usage = openai_usage(fixture, key)

    def handle(request: Request) -> Reply:
        body = request.json()
        if body.get("stream"):
            assert body["stream_options"]["include_usage"] is True
            return Reply.sse(chunks(["An", " answer."], model=body["model"], usage=usage))
        return Reply(body=completion("An answer.", model=body["model"], usage=usage))

    emu = emulator(handle)
    deployment = {"provider": "openai", "model": "gpt-4o", "api_base": emu.url + "/v1", "api_key": KEY}
    r, collected = router([deployment])
    whole, streamed = both(mode, r, collected)
    assert_same_usage(whole, streamed)
    prompt_details = usage.get("prompt_tokens_details") or {}
    assert whole.cached_tokens == prompt_details.get("cached_tokens", 0)
    assert whole.cache_write_tokens == prompt_details.get("cache_write_tokens", 0)
    assert whole.reasoning_tokens == (usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0)


def test_a_deployment_price_overrides_every_catalog(emulator: Start) -> None:
    emu = emulator(
        lambda request: Reply(
            body=completion("x", usage={"prompt_tokens": 1000, "completion_tokens": 10, "total_tokens": 1010})
        )
    )
    deployment = {
        "provider": "openai",
        "model": "gpt-4o",
        "api_base": emu.url + "/v1",
        "api_key": KEY,
        "prices": {"input": 1.0, "output": 100.0},
    }
    r, collected = router([deployment])
    run("sync", r)
    r.close()
    assert collected.calls()[0].cost == pytest.approx((1000 * 1.0 + 10 * 100.0) / 1e6)


# -- failover, errors, attribution -----------------------------------------------------------------------------


def _openai(emu: Emulator, name: str) -> dict[str, Any]:
    return {"provider": "openai", "model": "gpt-4o", "id": name, "api_base": emu.url + "/v1", "api_key": KEY}


def _ok(request: Request) -> Reply:
    body = request.json()
    if body.get("stream"):
        return Reply.sse(chunks(["o", "k"], model=body["model"]))
    return Reply(body=completion("ok", model=body["model"]))


def _down(request: Request) -> Reply:
    return Reply(status=503, body={"error": {"message": "overloaded", "type": "server_error", "code": None}})


@pytest.mark.parametrize("stream", [False, True])
def test_each_failed_attempt_is_a_marked_record(emulator: Start, mode: str, stream: bool) -> None:
    r, collected = router([_openai(emulator(_down), "a"), _openai(emulator(_ok), "b")])
    assert run(mode, r, stream=stream) == "ok"
    r.close()
    failed, answered = collected.records
    assert (failed.kind, failed.deployment, failed.status, failed.attempts) == ("attempt", "a", 503, 1)
    assert failed.failed and failed.cost is None and failed.input_tokens == 0
    assert (answered.kind, answered.deployment, answered.status, answered.attempts) == ("call", "b", 200, 2)
    assert failed.call_id == answered.call_id
    totals = r.usage()
    assert totals["total"]["calls"] == 1 and totals["total"]["failovers"] == 1
    assert totals["deployment"]["a"]["failed_attempts"] == 1 and totals["deployment"]["b"]["calls"] == 1


def test_a_call_that_fails_is_recorded_with_its_status(emulator: Start, mode: str) -> None:
    r, collected = router([_openai(emulator(_down), "a")], retry={"last_resort_retries": 0})
    with pytest.raises(Exception, match="overloaded"):
        run(mode, r)
    r.close()
    attempt, call = collected.records
    assert attempt.kind == "attempt" and call.kind == "call"
    assert call.status == 503 and call.failed and call.attempts == 1
    assert r.usage()["total"]["errors"] == 1


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_stream_cut_mid_answer_is_a_failed_call_with_its_tokens_so_far(emulator: Start, mode: str, api: str) -> None:
    """Anthropic cuts the connection after the first text: the caller hears the stream was cut (not that the
    deployment could not be reached), and the call's record is a failure that keeps the prompt's tokens
    ``message_start`` reported, priced.
    """

    def cut(request: Request) -> Reply:
        msg = claude.message([claude.text("This is a long answer that will be cut in the middle")])
        return Reply(chunks=claude.events(msg, pieces=6), headers={"content-type": "text/event-stream"}, cut_after=5)

    emu = emulator(claude.scripted([cut], repeat_last=True))
    deployment = {"provider": "anthropic", "model": "claude-sonnet-4-5", "api_base": emu.url, "api_key": "k"}
    r, collected = router([{**deployment, "id": "cutter"}])
    with pytest.raises(Exception, match="cutter cut the stream mid-answer") as caught:
        if api == "chat":
            run(mode, r, stream=True)
        elif mode == "sync":
            for _ in r.openai_client().responses.create(model="m", input="hi", stream=True):
                pass
        else:

            async def go() -> None:
                async for _ in await r.async_openai_client().responses.create(model="m", input="hi", stream=True):
                    pass
                await r.aclose()

            asyncio.run(go())
    assert "could not be reached" not in str(caught.value)
    r.close()
    (call,) = collected.calls()
    assert call.failed and call.status == 502 and call.error == "stream_interrupted" and call.streamed
    assert call.input_tokens > 0 and call.cost is not None and call.cost > 0
    assert r.usage()["total"]["errors"] == 1


def test_attribution_from_user_metadata_header_and_client_defaults(emulator: Start, mode: str) -> None:
    emu = emulator(_ok)
    r, collected = router([_openai(emu, "a")])
    run(mode, r, user="alice", metadata={"run": "42"}, extra_headers={"x-polyroute-tags": "agent-x, nightly"})
    run(mode, r, client={"tags": ["team-b"], "user": "bob"})
    r.close()
    first, second = collected.calls()
    assert (first.user, first.tags, first.metadata) == ("alice", ("agent-x", "nightly"), {"run": "42"})
    assert (second.user, second.tags, second.metadata) == ("bob", ("team-b",), None)
    assert first.prompt is None and first.completion is None  # no text unless usage.content is on
    totals = r.usage()
    assert set(totals["tag"]) == {"agent-x", "nightly", "team-b"} and set(totals["user"]) == {"alice", "bob"}
    assert not [h for req in emu.requests for h in req.headers if h.lower().startswith("x-polyroute")]  # ours only


def test_content_is_kept_only_when_asked(emulator: Start) -> None:
    r, collected = router([_openai(emulator(_ok), "a")], usage={"content": True})
    run("sync", r)
    r.close()
    (record,) = collected.calls()
    assert json.loads(record.prompt or "") == MESSAGES and record.completion == "ok"


def test_usage_off_records_nothing(emulator: Start) -> None:
    r = Router({"models": [{"name": "m", "deployments": [_openai(emulator(_ok), "a")]}], "usage": {"enabled": False}})
    assert r.recorder is None
    assert run("sync", r) == "ok"
    assert r.usage() == {}


def test_a_failing_sink_logs_once_and_never_fails_a_call(emulator: Start, caplog: pytest.LogCaptureFixture) -> None:
    def broken(record: UsageRecord) -> None:
        raise RuntimeError("sink down")

    r = Router(
        {
            "models": [{"name": "m", "deployments": [_openai(emulator(_ok), "a")]}],
            "usage": {"callback": broken, "flush_interval": 0.01},
        }
    )
    with caplog.at_level(logging.ERROR, logger="polyroute"):
        for _ in range(3):
            assert run("sync", r) == "ok"
            r.close()
    assert [rec.getMessage() for rec in caplog.records].count(
        "polyroute usage sink CallbackSink failed; its records are dropped"
    ) == 1
    assert r.usage()["total"]["calls"] == 3  # the totals do not depend on the broken sink


def test_callback_by_import_path_and_bad_paths() -> None:
    from polyroute import ConfigError

    r = Router({"usage": {"callback": "tests.core.test_usage:COLLECTED"}})
    assert r.recorder is not None and r.recorder.sinks
    with pytest.raises(ConfigError, match="module:function"):
        Router({"usage": {"callback": "nocolon"}})
    with pytest.raises(ConfigError, match="cannot import"):
        Router({"usage": {"callback": "tests.core.test_usage:MISSING"}})


COLLECTED = Collected()


def test_polyroute_headers_in_any_case_and_repeated(emulator: Start) -> None:
    """The transport reads its own headers in one pass over the raw names: any case, and a repeated header joined
    as ``Headers.get`` joins it."""
    emu = emulator(_ok)
    r, collected = router([_openai(emu, "a")])
    with r.http_client() as client:
        headers = [("X-Polyroute-Tags", "agent-x"), ("x-polyroute-tags", "nightly"), ("X-POLYROUTE-USER", "carol")]
        answer = client.post("/chat/completions", headers=headers, json={"model": "m", "messages": MESSAGES})
        assert answer.status_code == 200, answer.text
    r.close()
    (record,) = collected.calls()
    assert (record.user, record.tags) == ("carol", ("agent-x", "nightly"))


def test_a_call_the_caller_cancels_leaves_a_usage_record(emulator: Start) -> None:
    """An async caller's task cancelled while the upstream is silent (a timeout of its own, a user who left): the
    call is counted as an error (499 ``client_cancelled``), its deployment freed, a budget's reservation settled.
    """
    hung = emulator(lambda request: Reply(hang=2.0))
    deployment = {"provider": "openai", "model": "gpt-4o", "api_base": hung.url + "/v1", "api_key": KEY}
    r, collected = router([deployment], budgets=[{"name": "daily", "usd": 1.0, "per": "day"}])

    async def cancelled() -> None:
        task = asyncio.ensure_future(r.async_openai_client().chat.completions.create(model="m", messages=MESSAGES))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled())
    assert r.recorder is not None and r.recorder.flush(5.0)
    (call,) = collected.calls()
    assert (call.status, call.error) == (499, "client_cancelled")
    assert r.usage()["total"]["errors"] == 1
    assert r.state(r.route("m").targets[0]).in_flight == 0
    budgets = r.recorder.budgets
    assert budgets is not None
    counters = budgets.store._counters  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]
    assert counters and all(reserved == 0.0 for _, reserved, _ in counters.values())  # the estimate was released
