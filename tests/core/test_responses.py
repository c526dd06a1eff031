"""The Responses API (``/v1/responses``) through the openai SDK, on OpenAI-format pass-through and on routes to the
Anthropic and Gemini emulators (translated through chat): create, stream (the SDK's accumulator), parse, a tool
loop of two calls with reasoning on and off, conversations continued by ``previous_response_id`` and by stateless
encrypted reasoning, the stored-response paths, failover before the commit, errors.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import inspect
import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types import responses as rtypes
from pydantic import TypeAdapter

from polyroute import Router
from polyroute._thinking import ThinkingStore
from polyroute.api import api_for
from polyroute.responses import translate
from polyroute.responses.api import RawEvent
from polyroute.responses.store import MemoryStore, store_for, stored_reasoning
from tests.clients import matrix
from tests.emulators import Emulator, Reply
from tests.emulators import anthropic_format as claude
from tests.emulators import gemini_format as gemini
from tests.emulators import openai_format as oai

KEY = "sk-responses-fake-0123456789"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "openai_responses"
LIBS = [lib for lib in ("httpx", "httpx2") if importlib.util.find_spec(lib) is not None]
"""The HTTP libraries of this test environment (openai 3.x with httpx2 only; openai 2.x with httpx)."""
MODES = [f"{kind}-{lib}" for kind in ("sync", "async") for lib in LIBS]
CLAUDE_STREAMS = [i for name in claude.fixture_names() for i in claude.load(name) if i.status == 200 and i.sse]
"""Every recorded Claude stream in tests/fixtures/anthropic."""
ONE, OTHER = f"sync-{LIBS[0]}", f"async-{LIBS[-1]}"
"""Two modes for tests that need not run all four: sync, and async on the other library where there is one."""
ROUTES = ["openai", "anthropic", "gemini"]
EVENT = TypeAdapter(rtypes.ResponseStreamEvent)
RESPONSE = TypeAdapter(rtypes.Response)

Start = Callable[..., Emulator]


def deployment(provider: str, url: str, **extra: Any) -> dict[str, Any]:
    if provider == "openai":
        return {"provider": "openai", "model": "gpt-5-emu", "api_base": url + "/v1", "api_key": KEY, **extra}
    return {"provider": provider, "model": matrix.MODELS[provider], "api_base": url, "api_key": KEY, **extra}


def router_for(*deployments: dict[str, Any], **config: Any) -> Router:
    return Router({"models": [{"name": "m", "deployments": list(deployments)}], "retry": {"backoff": 0}, **config})


def run(mode: str, router: Router, job: Callable[[Any], Any]) -> Any:
    """``job(client)`` with an openai client of this mode; an async job is awaited in a fresh event loop."""
    sync, lib = mode.split("-")
    if sync == "sync":
        return job(
            openai.OpenAI(
                api_key="x", base_url="http://polyroute/v1", http_client=router.http_client(library=lib), max_retries=0
            )
        )

    async def go() -> Any:
        client = openai.AsyncOpenAI(
            api_key="x",
            base_url="http://polyroute/v1",
            http_client=router.http_client(library=lib, asynchronous=True),
            max_retries=0,
        )
        try:
            return await job(client)
        finally:
            await router.aclose()

    return asyncio.run(go())


def create(mode: str, router: Router, **kwargs: Any) -> Any:
    kwargs.setdefault("model", "m")
    return run(mode, router, lambda c: c.responses.create(**kwargs))


def stream(mode: str, router: Router, **kwargs: Any) -> tuple[list[Any], Any]:
    """``responses.stream``: the events and the accumulator's final response."""
    kwargs.setdefault("model", "m")
    if mode.startswith("sync"):

        def job(client: Any) -> tuple[list[Any], Any]:
            with client.responses.stream(**kwargs) as s:
                events = list(s)
                return events, s.get_final_response()

        return run(mode, router, job)

    async def ajob(client: Any) -> tuple[list[Any], Any]:
        async with client.responses.stream(**kwargs) as s:
            events = [e async for e in s]
            return events, await s.get_final_response()

    return run(mode, router, ajob)


_NUMBER = re.compile(rb"-?\d[\d.eE+-]*")


def is_compact(data: bytes) -> bool:
    """JSON written as OpenAI writes it: no space between tokens (numbers compared as written by either encoder:
    0.00002 and 2e-05 are the same cost).
    """
    compact = json.dumps(json.loads(data), separators=(",", ":"), ensure_ascii=False).encode()
    return _NUMBER.sub(b"0", data) == _NUMBER.sub(b"0", compact)


def raw_events(router: Router, **kwargs: Any) -> tuple[bytes, list[dict[str, Any]]]:
    """A streamed call read as bytes: the body and the decoded ``data`` payloads (each checked to be compact)."""
    with router.http_client(timeout=60) as http:
        r = http.post("/v1/responses", json={"model": "m", "stream": True, **kwargs})
        assert r.status_code == 200, r.text
        body = r.content
    events = []
    for block in body.decode().split("\n\n"):
        if not block:
            continue
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: "), block
        payload = json.loads(data[6:])
        assert payload["type"] == name[7:]
        assert is_compact(data[6:].encode()), "not compact JSON"
        events.append(payload)
    return body, events


def check_events(events: list[dict[str, Any]], *, typed: bool = True) -> None:
    """Every event parses as the SDK's own type (``typed``), numbered 0, 1, 2…; one terminal event, last."""
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    for e in events:
        if typed:
            EVENT.validate_python(e)
    assert events[0]["type"] == "response.created" and events[1]["type"] == "response.in_progress"
    assert events[-1]["type"] in ("response.completed", "response.incomplete")
    assert not [e for e in events[:-1] if e["type"] in ("response.completed", "response.incomplete")]


# -- upstreams ------------------------------------------------------------------------------------------------------


def text_upstream(start: Start, provider: str, text: str = "Hello there, friend.", reasoning: str | None = None) -> Any:
    if provider == "openai":
        return start(oai.ResponsesEmulator({"text": text, "reasoning": reasoning}))
    if provider == "anthropic":
        return start(claude.scripted([claude.thinking(reasoning, text) if reasoning else text], repeat_last=True))
    return start(gemini.GeminiEmulator(gemini.response(text, thought=reasoning)))


def weather_loop(start: Start, provider: str, thinking: bool) -> tuple[str, Any]:
    """The matrix's tool loop (get_weather Paris, then Rome, then the answer), on any route: the upstream's URL,
    and what :func:`check_loop` checks.
    """
    if provider == "openai":
        emu = oai.ResponsesEmulator(
            {"calls": [("get_weather", {"city": "Paris"})], "reasoning": "Paris first." if thinking else None},
            {"calls": [("get_weather", {"city": "Rome"})], "reasoning": "Now Rome." if thinking else None},
            {"text": matrix.FINAL_TEXT},
        )
        return start(emu).url, emu
    up = matrix.tool_loop_upstream(start, provider, thinking)
    return up.emulator.url, up


WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def tool_loop(
    mode: str,
    router: Router | Callable[[], Router],
    *,
    thinking: bool,
    chain: str,
    streamed: bool = False,
) -> Any:
    """Run the loop to its answer. ``chain``: ``previous`` (previous_response_id), ``stateless`` (``store:
    false``, the whole conversation resent with encrypted reasoning) or ``resent`` (the whole conversation resent,
    stored, reasoning items by id alone: openai-agents' default); a fresh router each turn when ``router`` is a
    factory, as a new process would be.
    """
    options: dict[str, Any] = {"tools": [WEATHER_TOOL]}
    if thinking:
        options["reasoning"] = {"effort": matrix.EFFORT, "summary": "auto"}
    if chain == "stateless":
        options["store"] = False
        options["include"] = ["reasoning.encrypted_content"]
    conversation: list[Any] = [{"role": "user", "content": matrix.PROMPT}]
    previous: str | None = None
    pending: list[Any] = conversation
    for _ in range(4):
        r = router() if callable(router) else router
        kwargs = dict(options, input=pending if chain == "previous" else conversation)
        if previous is not None and chain == "previous":
            kwargs["previous_response_id"] = previous
        response = stream(mode, r, **kwargs)[1] if streamed else create(mode, r, **kwargs)
        calls = [item for item in response.output if item.type == "function_call"]
        if not calls:
            return response
        pending = [
            {
                "type": "function_call_output",
                "call_id": c.call_id,
                "output": matrix.get_weather(**json.loads(c.arguments)),
            }
            for c in calls
        ]
        conversation += [item.model_dump(exclude_none=True) for item in response.output] + pending
        previous = response.id
    raise AssertionError("the loop did not end")


def check_loop(provider: str, upstream: Any, thinking: bool) -> None:
    if provider == "openai":
        assert len(upstream.bodies) == 3
        return
    matrix.check_tool_loop(upstream)


# -- create / stream / parse on every route -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", ROUTES)
def test_create(emulator: Start, provider: str, mode: str) -> None:
    emu = text_upstream(emulator, provider)
    response = create(mode, router_for(deployment(provider, emu.url)), input="Say hello", instructions="Be brief.")
    assert response.output_text == "Hello there, friend."
    assert response.status == "completed"
    assert response.usage is not None and response.usage.total_tokens > 0


@pytest.mark.parametrize("provider", ROUTES)
def test_json_answer_is_the_sdk_type(emulator: Start, provider: str) -> None:
    """The SDK builds its models without validating: validate the JSON itself against its Response type."""
    emu = text_upstream(emulator, provider, reasoning="Think.")
    with router_for(deployment(provider, emu.url)).http_client(timeout=60) as http:
        r = http.post("/v1/responses", json={"model": "m", "input": "hi", "reasoning": {"effort": "low"}})
    assert r.status_code == 200, r.text
    response = RESPONSE.validate_python(r.json())
    assert response.output_text == "Hello there, friend."
    assert r.headers["x-polyroute-deployment"] and r.headers["x-polyroute-attempts"] == "1"
    if provider != "openai":  # a model the catalog prices: the cost rides in usage and a header, as in chat
        assert float(r.headers["x-polyroute-cost"]) == r.json()["usage"]["cost"] > 0
    assert is_compact(r.content)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", ROUTES)
def test_stream_accumulates_the_final_response(emulator: Start, provider: str, mode: str) -> None:
    emu = text_upstream(emulator, provider, reasoning="Greet them.")
    router = router_for(deployment(provider, emu.url))
    events, final = stream(mode, router, input="Say hello", reasoning={"effort": "low", "summary": "auto"})
    assert final.output_text == "Hello there, friend."
    assert [o.type for o in final.output] == ["reasoning", "message"]
    assert final.output[0].summary[0].text == "Greet them."
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Hello there, friend."
    assert events[-1].type == "response.completed" and events[-1].response.id == final.id


@pytest.mark.parametrize("provider", ROUTES)
def test_stream_events_are_typed_numbered_and_compact(emulator: Start, provider: str) -> None:
    emu = text_upstream(emulator, provider, reasoning="Greet them.")
    _, events = raw_events(router_for(deployment(provider, emu.url)), input="hi", reasoning={"effort": "low"})
    check_events(events)
    kinds = [e["type"] for e in events]
    assert kinds.index("response.reasoning_summary_text.delta") < kinds.index("response.output_text.delta")


@pytest.mark.parametrize("mode", [ONE, OTHER])
@pytest.mark.parametrize("provider", ROUTES)
def test_parse_into_a_pydantic_model(emulator: Start, provider: str, mode: str) -> None:
    if provider == "openai":
        router = router_for(
            deployment("openai", emulator(oai.ResponsesEmulator({"text": json.dumps(matrix.ANSWER)})).url)
        )
        up = None
    else:
        up = matrix.structured_upstream(emulator, provider, False)
        router = router_for(deployment(provider, up.emulator.url))
    parsed = run(
        mode,
        router,
        lambda c: c.responses.parse(model="m", input=matrix.STRUCTURED_PROMPT, text_format=matrix.Forecast),
    )
    matrix.check_forecast(parsed.output_parsed)
    if up is not None:
        matrix.check_structured(up)


# -- tool loops and conversations ----------------------------------------------------------------------------------


@pytest.mark.parametrize("thinking", [False, True], ids=["plain", "thinking"])
@pytest.mark.parametrize("provider", ROUTES)
@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
def test_tool_loop_by_previous_response_id(emulator: Start, provider: str, thinking: bool, streamed: bool) -> None:
    url, upstream = weather_loop(emulator, provider, thinking)
    final = tool_loop(
        ONE, router_for(deployment(provider, url)), thinking=thinking, chain="previous", streamed=streamed
    )
    assert final.output_text == matrix.FINAL_TEXT
    check_loop(provider, upstream, thinking)
    if provider == "openai":  # the upstream's own chain: previous_response_id went as it was
        assert [b.get("previous_response_id") is not None for b in upstream.bodies] == [False, True, True]


@pytest.mark.parametrize("thinking", [False, True], ids=["plain", "thinking"])
@pytest.mark.parametrize("provider", ROUTES)
def test_stateless_tool_loop_keeps_reasoning_in_encrypted_content(
    emulator: Start, provider: str, thinking: bool
) -> None:
    """``store: false``, a fresh router (a new process) every turn: the thinking blocks and thought signatures
    reach the provider again only through ``encrypted_content``.
    """
    url, upstream = weather_loop(emulator, provider, thinking)
    fresh = lambda: router_for(deployment(provider, url))  # noqa: E731
    final = tool_loop(OTHER, fresh, thinking=thinking, chain="stateless", streamed=provider == "gemini")
    assert final.output_text == matrix.FINAL_TEXT
    check_loop(provider, upstream, thinking)
    if provider == "openai":
        assert all(b["store"] is False for b in upstream.bodies)


def test_encrypted_content_is_what_keeps_claude_thinking(emulator: Start) -> None:
    """Without ``include`` the stateless loop loses the signed thinking blocks (the check that the test above can
    fail): thinking is then turned off mid-loop.
    """
    up = matrix.tool_loop_upstream(emulator, "anthropic", True)
    fresh = lambda: router_for(deployment("anthropic", up.emulator.url))  # noqa: E731
    conversation: list[Any] = [{"role": "user", "content": matrix.PROMPT}]
    for _ in range(3):
        response = create(
            ONE, fresh(), input=conversation, tools=[WEATHER_TOOL], store=False, reasoning={"effort": "low"}
        )
        calls = [o for o in response.output if o.type == "function_call"]
        if not calls:
            break
        conversation += [o.model_dump(exclude_none=True) for o in response.output]
        conversation += [{"type": "function_call_output", "call_id": c.call_id, "output": "sunny"} for c in calls]
    with pytest.raises(AssertionError, match="thinking"):
        matrix.check_tool_loop(up)


def test_previous_response_id_crosses_providers(emulator: Start) -> None:
    """A conversation begun on Claude continues on an OpenAI deployment: polyroute expands the chain it alone
    knows into input (the upstream would not know the id), without polyroute's reasoning items.
    """
    claude_emu = emulator(claude.scripted([claude.thinking("Hm.", "First answer.")]))
    openai_emu = oai.ResponsesEmulator({"text": "Second answer."})
    url = emulator(openai_emu).url
    router = Router(
        {
            "models": [
                {"name": "claude", "deployments": [deployment("anthropic", claude_emu.url)]},
                {"name": "gpt", "deployments": [deployment("openai", url)]},
            ]
        }
    )
    first = create(ONE, router, model="claude", input="One?", reasoning={"effort": "low"})
    second = create(ONE, router, model="gpt", input="Two?", previous_response_id=first.id)
    assert second.output_text == "Second answer."
    sent = openai_emu.bodies[0]
    assert "previous_response_id" not in sent
    assert [(i.get("type"), i.get("role")) for i in sent["input"]] == [
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
    ]


def test_conversation_resent_from_claude_to_openai(emulator: Start) -> None:
    """A client that resends the whole conversation (as openai-agents does) moves from Claude to an OpenAI
    deployment: polyroute's reasoning items and ids are not sent there (OpenAI would answer 404 for them).
    """
    claude_url = emulator(claude.scripted([claude.thinking("Hm.", "First answer.")])).url
    openai_emu = oai.ResponsesEmulator({"text": "Second answer."})
    router = Router(
        {
            "models": [
                {"name": "claude", "deployments": [deployment("anthropic", claude_url)]},
                {"name": "gpt", "deployments": [deployment("openai", emulator(openai_emu).url)]},
            ]
        }
    )
    conversation: list[Any] = [{"role": "user", "content": "One?"}]
    first = create(ONE, router, model="claude", input=conversation, reasoning={"effort": "low"})
    assert [o.type for o in first.output] == ["reasoning", "message"]
    conversation += [o.model_dump(exclude_none=True) for o in first.output] + [{"role": "user", "content": "Two?"}]
    second = create(ONE, router, model="gpt", input=conversation)
    assert second.output_text == "Second answer."
    assert [i.get("type") for i in openai_emu.bodies[0]["input"]] == ["message", "message", "message"]
    assert "id" not in openai_emu.bodies[0]["input"][1]


def test_a_pass_through_answer_is_kept_as_bytes_and_read_back(emulator: Start) -> None:
    """An OpenAI deployment's answer is kept as the upstream's bytes (no object tree per stored response), and reads
    back whole: by GET, and as the history a chain sends to Claude.
    """
    openai_url = emulator(oai.ResponsesEmulator({"text": "First answer."})).url
    claude_emu = emulator(claude.scripted(["Second answer."]))
    router = Router(
        {
            "models": [
                {"name": "gpt", "deployments": [deployment("openai", openai_url)]},
                {"name": "claude", "deployments": [deployment("anthropic", claude_emu.url)]},
            ]
        }
    )
    first = create(ONE, router, model="gpt", input="One?")
    record = store_for(router).get(first.id)
    assert record is not None and isinstance(record.get("raw"), bytes) and "response" not in record
    got = run(ONE, router, lambda c: c.responses.retrieve(first.id))
    assert got.output_text == "First answer." and got.id == first.id
    second = create(ONE, router, model="claude", input="Two?", previous_response_id=first.id)
    assert second.output_text == "Second answer."
    sent = claude_emu.requests[-1].json()["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"] and "First answer." in json.dumps(sent[1])


def test_chain_moves_between_openai_deployments(emulator: Start) -> None:
    """A chain begun on one OpenAI deployment goes on by id there; failing over to another deployment, which never
    saw it, the chain is sent as input.
    """
    first_emu = oai.ResponsesEmulator({"text": "One.", "reasoning": "r"}, oai.responses_error(503, "Overloaded."))
    second_emu = oai.ResponsesEmulator({"text": "Two."})
    router = router_for(
        deployment("openai", emulator(first_emu).url, id="oai-a"),
        deployment("openai", emulator(second_emu).url, id="oai-b"),
    )
    first = create(ONE, router, input="One?")
    second = create(ONE, router, input="Two?", previous_response_id=first.id)
    assert second.output_text == "Two."
    assert first_emu.bodies[1]["previous_response_id"] == first.id
    sent = second_emu.bodies[0]
    assert "previous_response_id" not in sent
    assert [(i.get("type"), i.get("role")) for i in sent["input"]] == [
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
    ]


# -- stored responses ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [ONE, OTHER])
def test_retrieve_input_items_and_delete(emulator: Start, mode: str) -> None:
    emu = text_upstream(emulator, "anthropic")
    router = router_for(deployment("anthropic", emu.url))
    first = create(mode, router, input="One")
    second = create(mode, router, input=[{"role": "user", "content": "Two"}], previous_response_id=first.id)

    async def maybe(value: Any) -> Any:
        return await value if inspect.isawaitable(value) else value

    def job(client: Any) -> Any:
        async def go() -> Any:
            got = await maybe(client.responses.retrieve(second.id))
            page = await maybe(client.responses.input_items.list(second.id, order="asc"))
            desc = await maybe(client.responses.input_items.list(second.id, limit=1))
            await maybe(client.responses.delete(second.id))
            return got, page, desc

        if mode.startswith("sync"):
            got = client.responses.retrieve(second.id)
            page = client.responses.input_items.list(second.id, order="asc")
            desc = client.responses.input_items.list(second.id, limit=1)
            client.responses.delete(second.id)
            return got, page, desc
        return go()

    got, page, desc = run(mode, router, job)
    assert got.id == second.id and got.output_text == second.output_text
    assert [(i.type, i.role) for i in page.data] == [("message", "user"), ("message", "assistant"), ("message", "user")]
    assert page.data[0].content[0].text == "One" and page.data[2].content[0].text == "Two"
    assert len(desc.data) == 1 and desc.has_more and desc.data[0].content[0].text == "Two"
    assert desc.data[0].id == page.data[2].id  # an item's id, given when first listed, stays the same
    with pytest.raises(openai.NotFoundError, match=r"Response with id .* not found"):
        run(ONE, router, lambda c: c.responses.retrieve(second.id))


@pytest.mark.parametrize("mode", [ONE, OTHER])
def test_input_items_after_an_unknown_id_is_a_404_naming_after(emulator: Start, mode: str) -> None:
    """A page after an item the response does not have: a 404 naming ``after`` (it was an empty page, which reads as
    the end of the list); an id it has pages on.
    """
    router = router_for(deployment("anthropic", text_upstream(emulator, "anthropic").url))
    first = create(mode, router, input=[{"role": "user", "content": "One"}, {"role": "user", "content": "Two"}])

    async def listing(client: Any, **query: Any) -> Any:  # sync clients too: their calls answer before the await
        page = client.responses.input_items.list(first.id, order="asc", **query)
        return await page if inspect.isawaitable(page) else page

    def job(client: Any, **query: Any) -> Any:
        return listing(client, **query) if mode.startswith("async") else asyncio.run(listing(client, **query))

    page = run(mode, router, lambda c: job(c, limit=1))
    rest = run(mode, router, lambda c: job(c, after=page.last_id))
    assert page.data[0].content[0].text == "One" and [i.content[0].text for i in rest.data] == ["Two"]
    with pytest.raises(openai.NotFoundError) as caught:
        run(mode, router, lambda c: job(c, after="msg_nope"))
    error = caught.value
    assert error.status_code == 404 and error.type == "invalid_request_error" and error.param == "after"
    assert f"Item with id 'msg_nope' not found in the input items of response '{first.id}'" in error.message


def test_concurrent_first_listings_page_through_every_item() -> None:
    """Input items get their ids when first listed; callers listing a response at once all page through every item
    (each used to page by ids another had just replaced, and stopped short).
    """
    from concurrent.futures import ThreadPoolExecutor

    router = Router({"models": [{"name": "m", "deployments": [{"provider": "mock", "model": "mock-1"}]}]})
    client = router.openai_client()
    items = [{"role": "user", "content": f"message {i}"} for i in range(50)]
    for _ in range(8):
        response = client.responses.create(model="m", input=items)  # type: ignore[arg-type]

        def listing(_: int, response_id: str = response.id) -> list[str]:
            return [item.id for item in client.responses.input_items.list(response_id, limit=10, order="asc")]

        with ThreadPoolExecutor(4) as pool:
            listings = list(pool.map(listing, range(4)))
        assert [len(ids) for ids in listings] == [50] * 4
        assert all(ids == listings[0] for ids in listings)


def test_store_false_keeps_nothing(emulator: Start) -> None:
    router = router_for(deployment("anthropic", text_upstream(emulator, "anthropic").url))
    response = create(ONE, router, input="One", store=False)
    with pytest.raises(openai.NotFoundError):
        run(ONE, router, lambda c: c.responses.retrieve(response.id))
    with pytest.raises(openai.BadRequestError, match="not found") as caught:
        create(ONE, router, input="Two", previous_response_id=response.id)
    assert caught.value.param == "previous_response_id" and caught.value.code == "previous_response_not_found"
    # said as OpenAI says it, not as a deployment that could not serve the call
    body = caught.value.body
    message = str(body.get("message") if isinstance(body, dict) else body)
    assert message.startswith(f"Previous response with id '{response.id}' not found.")


def test_request_refused_behind_keyless_deployments_is_a_400(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's quick start: OpenAI and Anthropic with no key set, then the mock. A request the one callable
    deployment refuses is answered with that refusal (a 400 naming the parameter and OpenAI's code), the keyless
    deployments named in it, not a 401 about keys.
    """
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    router = router_for(
        {"provider": "openai", "model": "gpt-5-emu"},
        {"provider": "anthropic", "model": matrix.MODELS["anthropic"]},
        {"provider": "mock", "model": "mock-1"},
    )
    with pytest.raises(openai.BadRequestError) as caught:
        create(ONE, router, input="again", previous_response_id="resp_doesnotexist")
    assert caught.value.param == "previous_response_id" and caught.value.code == "previous_response_not_found"
    assert "no API key" in str(caught.value) and "Previous response with id 'resp_doesnotexist'" in str(caught.value)
    with pytest.raises(openai.BadRequestError, match="runs only on OpenAI") as hosted:
        create(ONE, router, input="find it", tools=[{"type": "web_search"}])
    assert hosted.value.param == "tools"


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_memory_store_keeps_records_packed(emulator: Start, provider: str) -> None:
    """Stored responses are bytes, not dicts the garbage collector walks on every full collection (a translated
    answer's dicts made each call 40 µs slower at 3,000 stored); a chain and GET read them back whole.
    """
    import gc

    prices = {"prices": {"input": 1.0, "output": 2.0}}
    router = router_for(deployment(provider, text_upstream(emulator, provider).url, **prices))
    first = create(ONE, router, input="One", metadata={"k": "v"})
    store = store_for(router)
    packed = store._entries[first.id]  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]
    assert all(isinstance(part, bytes) for part in packed) and not gc.is_tracked(packed[0])
    got = run(ONE, router, lambda c: c.responses.retrieve(first.id))
    assert got.model_dump() == first.model_dump()  # the cost too: priced before it was kept
    second = create(ONE, router, input="Two", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    record = store.get(second.id)
    assert record is not None and record["input"][0]["content"] == [{"type": "input_text", "text": "One"}]
    # a request's own input is kept as the caller's bytes, not encoded again; a chain's input is encoded
    assert b'"One"' in packed[2] and b'"input"' not in packed[1]
    chained = store._entries[second.id]  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]
    assert chained[2] == b"" and b'"input"' in chained[1]
    assert store.get(first.id)["input"] == [  # type: ignore[index]
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "One"}]}
    ]


@pytest.mark.parametrize("provider", ["gemini", "openai"])
def test_sqlite_store_outlives_the_router(emulator: Start, tmp_path: Path, provider: str) -> None:
    """A translated answer, and a pass-through one (kept in memory as the upstream's bytes), in a SQLite store."""
    url = text_upstream(emulator, provider).url
    config = {"responses": {"store_path": str(tmp_path / "responses.db")}}
    first = create(ONE, router_for(deployment(provider, url), **config), input="One")
    again = router_for(deployment(provider, url), **config)  # a restarted process
    assert run(ONE, again, lambda c: c.responses.retrieve(first.id)).output_text == first.output_text
    second = create(ONE, again, input="Two", previous_response_id=first.id)
    assert second.previous_response_id == first.id


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_chain_survives_a_restart_with_its_reasoning(emulator: Start, provider: str, tmp_path: Path) -> None:
    """A tool loop chained by ``previous_response_id`` over a SQLite store, a new process (router) each turn: the
    store kept the provider's reasoning state though the caller never asked for ``encrypted_content``.
    """
    url, upstream = weather_loop(emulator, provider, True)
    config = {"responses": {"store_path": str(tmp_path / "responses.db")}}
    fresh = lambda: router_for(deployment(provider, url), **config)  # noqa: E731
    final = tool_loop(ONE, fresh, thinking=True, chain="previous")
    assert final.output_text == matrix.FINAL_TEXT
    assert all(o.encrypted_content is None for o in final.output if o.type == "reasoning")
    check_loop(provider, upstream, True)


def test_streamed_gemini_text_signature_goes_on_by_previous_response_id(emulator: Start) -> None:
    """Gemini signs a streamed answer's last text part after its reasoning item is done: the stored response keeps
    the signature on that item (the caller, who did not ask for ``encrypted_content``, sees none), so the next turn
    by ``previous_response_id`` gives it back on the text it signed.
    """
    signature = base64.b64encode(b"gemini-sig-text").decode()
    handler = gemini.GeminiEmulator(
        gemini.response("Paris is sunny.", thought="Known.", text_signature=signature), gemini.response("Bye.")
    )
    router = router_for(deployment("gemini", emulator(handler).url))
    first = stream(ONE, router, input="Weather in Paris?", reasoning={"effort": "low"})[1]
    assert [o.type for o in first.output] == ["reasoning", "message"]
    assert first.output[0].encrypted_content is None
    create(ONE, router, input="Thanks!", previous_response_id=first.id, reasoning={"effort": "low"})
    parts = [p for c in handler.bodies[1]["contents"] if c["role"] == "model" for p in c["parts"]]
    assert [p.get("thoughtSignature") for p in parts if p.get("text") == "Paris is sunny."] == [signature]


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
def test_reasoning_resent_by_id_survives_a_restart(
    emulator: Start, tmp_path: Path, streamed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """openai-agents' default (store on, no ``include``): the whole conversation resent each turn, Claude's reasoning
    items by id alone. A new process (router) each turn on one SQLite store: the signed thinking blocks come back from
    the stored response the item id names, and thinking stays on (it used to be turned off, with a warning).
    """
    up = matrix.tool_loop_upstream(emulator, "anthropic", True)
    config = {"responses": {"store_path": str(tmp_path / "responses.db")}}
    fresh = lambda: router_for(deployment("anthropic", up.emulator.url), **config)  # noqa: E731
    with caplog.at_level(logging.WARNING, logger="polyroute"):
        final = tool_loop(ONE, fresh, thinking=True, chain="resent", streamed=streamed)
    assert final.output_text == matrix.FINAL_TEXT
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert all(o.encrypted_content is None for o in final.output if o.type == "reasoning")
    matrix.check_tool_loop(up)  # each turn after the first starts with the thinking block Claude signed


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
def test_gemini_text_signature_resent_by_id_survives_a_restart(
    emulator: Start, tmp_path: Path, streamed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Gemini 3's call signatures ride in the call ids; the signature on an answer's text rides only in its reasoning
    item. Resent by id alone to a new process, it comes back from the stored response, on the text it signed.
    """
    call_sig, text_sig = (base64.b64encode(f"gemini-sig-{what}".encode()).decode() for what in ("call", "text"))
    handler = gemini.GeminiEmulator(
        gemini.response(
            None,
            thought="Look up Paris.",
            calls=[{"name": "get_weather", "args": {"city": "Paris"}, "thoughtSignature": call_sig}],
        ),
        gemini.response("Paris is sunny.", thought="Known.", text_signature=text_sig),
        gemini.response("You are welcome."),
    )
    url = emulator(handler).url
    config = {"responses": {"store_path": str(tmp_path / "responses.db")}}
    options: dict[str, Any] = {"tools": [WEATHER_TOOL], "reasoning": {"effort": "low"}}
    conversation: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]

    def turn() -> Any:
        router = router_for(deployment("gemini", url), **config)  # a new process each turn
        if streamed:
            return stream(ONE, router, input=conversation, **options)[1]
        return create(ONE, router, input=conversation, **options)

    with caplog.at_level(logging.WARNING, logger="polyroute"):
        first = turn()
        call = next(o for o in first.output if o.type == "function_call")
        conversation += [o.model_dump(exclude_none=True) for o in first.output]
        conversation.append({"type": "function_call_output", "call_id": call.call_id, "output": "sunny"})
        second = turn()
        assert second.output_text == "Paris is sunny."
        conversation += [o.model_dump(exclude_none=True) for o in second.output]
        conversation.append({"role": "user", "content": "Thanks!"})
        assert turn().output_text == "You are welcome."
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert all("encrypted_content" not in item for item in conversation if isinstance(item, dict))
    parts = [p for c in handler.bodies[2]["contents"] if c["role"] == "model" for p in c["parts"]]
    assert [p.get("thoughtSignature") for p in parts if "functionCall" in p] == [call_sig]
    assert [p.get("thoughtSignature") for p in parts if p.get("text") == "Paris is sunny."] == [text_sig]


@pytest.mark.parametrize("known", ["deleted", "unknown", "old"])
def test_reasoning_resent_by_an_id_the_store_lacks_turns_thinking_off(
    emulator: Start, tmp_path: Path, known: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A reasoning item resent by an id whose response the store no longer has (deleted), never had, or that predates
    ids naming their response: Claude answers without thinking, and the warning says why, as before.
    """
    up = matrix.tool_loop_upstream(emulator, "anthropic", True)
    config = {"responses": {"store_path": str(tmp_path / "responses.db")}}
    options: dict[str, Any] = {"tools": [WEATHER_TOOL], "reasoning": {"effort": "low"}}
    conversation: list[Any] = [{"role": "user", "content": matrix.PROMPT}]
    first = create(ONE, router_for(deployment("anthropic", up.emulator.url), **config), input=conversation, **options)
    resent = [o.model_dump(exclude_none=True) for o in first.output]
    reasoning = next(item for item in resent if item["type"] == "reasoning")
    again = router_for(deployment("anthropic", up.emulator.url), **config)  # a new process
    if known == "deleted":
        run(ONE, again, lambda c: c.responses.delete(first.id))
    elif known == "unknown":
        reasoning["id"] = "rs_pr" + "0" * 32 + "_0"
    else:
        reasoning["id"] = "rs_pr" + "0" * 32  # polyroute's reasoning ids before they named their response
    calls = [item for item in resent if item["type"] == "function_call"]
    conversation += resent + [
        {"type": "function_call_output", "call_id": c["call_id"], "output": "sunny"} for c in calls
    ]
    with caplog.at_level(logging.WARNING, logger="polyroute"):
        second = create(ONE, again, input=conversation, **options)
    assert [o.type for o in second.output if o.type == "function_call"] == ["function_call"]
    assert "thinking" not in up.bodies[1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "thinking turned off" in warnings[0] and "a new process" in warnings[0]


def test_stored_reasoning_is_read_once_and_not_when_this_process_has_it() -> None:
    """The thinking store first (this process answered the turn: its blocks by call id), then the response the id
    names, read once: what was read is remembered, found or not.
    """
    blocks = [{"type": "thinking", "thinking": "Hm.", "signature": "c2ln"}]
    response_id = translate.new_id("resp")
    item_id, other_id = translate.reasoning_id(response_id, 0), translate.reasoning_id(response_id, 1)
    token = translate.encode_reasoning({"thinking_blocks": blocks})
    output = [{"id": item_id, "type": "reasoning", "summary": [], "encrypted_content": token}]
    store, memory = MemoryStore(), ThinkingStore()
    store.put(response_id, {"response": {"id": response_id, "output": output}, "input": [], "origin": "polyroute"})
    memory.remember_blocks(["toolu_here"], blocks)
    assert stored_reasoning(store, memory, item_id, ["toolu_here"]) == {}  # the adapter re-attaches them
    assert len(memory) == 1
    assert stored_reasoning(store, memory, item_id, ["toolu_1"]) == {"thinking_blocks": blocks}
    assert stored_reasoning(store, memory, item_id, []) == {"thinking_blocks": blocks}
    assert stored_reasoning(store, memory, other_id, []) == {}  # no such item in that response
    store.delete(response_id)
    assert memory.blocks_for(["toolu_1"]) == blocks  # read once: remembered as this process's own answer would be
    assert stored_reasoning(store, memory, item_id, []) == {"thinking_blocks": blocks}
    assert stored_reasoning(store, memory, other_id, []) == {}
    assert stored_reasoning(store, None, item_id, []) == {}  # gone from the store, and no memory


def test_stored_reasoning_is_its_keys_alone() -> None:
    """Under serve a response made with a key is that key's alone: so is its reasoning state, resent by item id.
    Another key (or no key) gets nothing, from the store or from what the key's own read left in memory.
    """
    blocks = [{"type": "thinking", "thinking": "Secret plan.", "signature": "c2ln"}]
    response_id = translate.new_id("resp")
    item_id = translate.reasoning_id(response_id, 0)
    token = translate.encode_reasoning({"thinking_blocks": blocks})
    output = [{"id": item_id, "type": "reasoning", "summary": [], "encrypted_content": token}]
    store, memory = MemoryStore(), ThinkingStore()
    record = {"response": {"id": response_id, "output": output}, "input": [], "origin": "polyroute", "owner": "dev"}
    store.put(response_id, record)
    assert stored_reasoning(store, memory, item_id, [], "ops") == {}
    assert stored_reasoning(store, memory, item_id, []) == {}
    assert stored_reasoning(store, memory, item_id, [], "dev") == {"thinking_blocks": blocks}
    assert stored_reasoning(store, memory, item_id, [], "ops") == {}  # the read for dev is not remembered for ops
    assert stored_reasoning(store, memory, item_id, []) == {}


# -- failover and failures --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
def test_failover_before_commit_across_apis(emulator: Start, streamed: bool) -> None:
    """An OpenAI deployment that fails (a 503; a stream cut before any content) gives way to Claude."""
    failing = oai.ResponsesEmulator(
        Reply.sse(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in oai.response_events(_started())[:2])
        if streamed
        else oai.responses_error(503, "The server is overloaded.")
    )
    bad = emulator(failing)
    good = text_upstream(emulator, "anthropic", text="From Claude.")
    router = router_for(deployment("openai", bad.url), deployment("anthropic", good.url))
    if streamed:
        events, final = stream(ONE, router, input="hi")
        assert [e.sequence_number for e in events] == list(range(len(events)))
    else:
        final = create(ONE, router, input="hi")
    assert final.output_text == "From Claude."
    assert len(failing.bodies) == 1


def _started() -> dict[str, Any]:
    """A response whose stream stops after ``response.in_progress`` (no terminal event): a cut stream."""
    return {"id": "resp_cut", "object": "response", "status": "in_progress", "output": [], "usage": None}


def test_failure_after_commit_is_an_error_event_the_sdk_raises(emulator: Start) -> None:
    msg = claude.message([claude.text("A long answer that stops")])
    events = claude.events(msg)
    emu = emulator(claude.scripted([Reply(chunks=events, headers={"content-type": "text/event-stream"}, cut_after=4)]))
    router = router_for(deployment("anthropic", emu.url))
    with pytest.raises(openai.APIError, match=r"cut the stream mid-answer"):
        stream(ONE, router, input="hi")
    again = emulator(
        claude.scripted([Reply(chunks=events, headers={"content-type": "text/event-stream"}, cut_after=4)])
    )
    body, payloads = raw_events(router_for(deployment("anthropic", again.url)), input="hi")
    kinds = [p["type"] for p in payloads]
    assert "response.output_text.delta" in kinds and kinds[-2:] == ["error", "response.failed"]
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    assert b"[DONE]" not in body


@pytest.mark.parametrize(("separator", "named"), [(":", True), (": ", True), (":", False)])
def test_pass_through_failure_after_commit_numbers_on(emulator: Start, separator: str, named: bool) -> None:
    """An OpenAI-format upstream cut after content: the ``error`` and ``response.failed`` events follow its last
    sequence number, whether it writes compact JSON (OpenAI) or puts spaces in it (another server at an OpenAI
    deployment's ``api_base``), and whether its events have ``event:`` lines or only ``data:`` (either commits at the
    first delta).
    """

    def event(kind: str, number: int, **fields: Any) -> str:
        data = json.dumps({"type": kind, "sequence_number": number, **fields}, separators=(",", separator))
        return f"event: {kind}\ndata: {data}\n\n" if named else f"data: {data}\n\n"

    started = _started()
    ref = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    events = [
        event("response.created", 0, response=started),
        event("response.in_progress", 1, response=started),
        *(event("response.output_text.delta", 2 + i, **ref, delta=f"t{i} ", logprobs=[]) for i in range(4)),
    ]
    emu = emulator(lambda request: Reply(chunks=events, headers={"content-type": "text/event-stream"}))
    with router_for(deployment("openai", emu.url)).http_client(timeout=60) as http:
        body = http.post("/v1/responses", json={"model": "m", "stream": True, "input": "hi"}).content
    payloads = [json.loads(line[6:]) for line in body.decode().splitlines() if line.startswith("data: ")]
    assert [p["type"] for p in payloads][-2:] == ["error", "response.failed"]
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))


def test_pass_through_forwards_the_callers_bytes_and_answers_the_upstreams(emulator: Start) -> None:
    """A request an OpenAI deployment can take as it is goes upstream as the caller's own bytes, and its answer
    comes back as the upstream's bytes with polyroute's cost first in ``usage`` (no second encoding either way);
    a route whose name is not the deployment's model gets the body re-encoded with that model.
    """
    emu = emulator(oai.ResponsesEmulator({"text": "Hi."}))
    priced = deployment("openai", emu.url, prices={"input": 1.0, "output": 100.0})
    same = Router({"models": [{"name": "gpt-5-emu", "deployments": [priced]}]})
    sent = b'{"model": "gpt-5-emu",  "input": [{"role": "user", "content": "Hello"}], "max_output_tokens": 64}'
    with same.http_client() as http:
        answer = http.post("/v1/responses", content=sent, headers={"content-type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert emu.requests[-1].body == sent
    # first in usage: spliced into the upstream's bytes (an encoded answer would have it last)
    cost = re.search(rb'"usage":\{"cost":([0-9.e-]+),', answer.content)
    assert cost is not None and float(cost.group(1)) == float(answer.headers["x-polyroute-cost"])
    assert b'"input_tokens_details":{' in answer.content  # OpenAI's nested usage kept as sent
    renamed = router_for(deployment("openai", emu.url))
    with renamed.http_client() as http:
        assert http.post("/v1/responses", content=sent.replace(b"gpt-5-emu", b"m")).status_code == 200
    assert json.loads(emu.requests[-1].body)["model"] == "gpt-5-emu"
    assert b" " not in emu.requests[-1].body.split(b'"Hello"')[0]  # re-encoded compact


def test_recorded_upstream_error_stream(emulator: Start) -> None:
    """OpenAI's recorded quota failure (an ``error`` event before any content) fails the call with its 429."""
    lines = (FIXTURES / "vercel-ai__openai-error.1.chunks.txt").read_text().splitlines()
    sse = [f"event: {json.loads(line)['type']}\ndata: {line}\n\n" for line in lines]
    emu = emulator(lambda request: Reply.sse(sse))
    with pytest.raises(openai.RateLimitError, match="exceeded your current quota"):
        stream(ONE, router_for(deployment("openai", emu.url)), input="hi")


@pytest.mark.parametrize("reads", ["300-byte", "per-event"])
def test_recorded_streams_pass_through_unchanged(emulator: Start, reads: str) -> None:
    """The four recorded responses of a gpt-5 tool loop with encrypted reasoning: the caller gets the upstream's
    events byte for byte, and the SDK's accumulator their final response; whether reads split events anywhere or
    bring one whole event each (each then forwarded as the very bytes read).
    """
    lines = (FIXTURES / "vercel-ai__openai-reasoning-encrypted-content.1.chunks.txt").read_text().splitlines()
    recorded: list[list[str]] = []
    for line in lines:
        if json.loads(line)["type"] == "response.created":
            recorded.append([])
        recorded[-1].append(line)
    for lines_ in recorded:
        sse = "".join(f"event: {json.loads(line)['type']}\ndata: {line}\n\n" for line in lines_)
        if reads == "per-event":
            pieces = [f"event: {json.loads(line)['type']}\ndata: {line}\n\n" for line in lines_]
        else:
            pieces = [sse[i : i + 300] for i in range(0, len(sse), 300)]
        emu = emulator(lambda request, pieces=pieces: Reply.sse(pieces))
        router = router_for(deployment("openai", emu.url, model="gpt-5.1-codex-max"))
        body, events = raw_events(router, input="hi")
        # the same bytes, but for the cost polyroute adds to the usage (as it does in chat)
        assert re.sub(r',"cost":[0-9.e-]+', "", body.decode()) == sse
        # OpenAI's recorded usage predates ``cache_write_tokens``, which this SDK's types require: numbering only
        check_events(events, typed=False)
        _, final = stream(ONE, router, input="hi")
        completed = json.loads(lines_[-1])["response"]
        assert final.id == completed["id"] and [o.type for o in final.output] == [
            o["type"] for o in completed["output"]
        ]


def test_translated_function_call_events_match_the_recorded_sequence(emulator: Start) -> None:
    """A function call from Claude streams the events OpenAI sends for one (pydantic-ai's recording), in order."""
    import yaml

    cassette = yaml.safe_load((FIXTURES / "pydantic-ai__test_openai_responses_stream.yaml").read_text())
    recorded = [
        line[len("event: ") :]
        for line in cassette["interactions"][0]["response"]["body"]["string"].splitlines()
        if line.startswith("event: ")
    ]
    emu = emulator(claude.scripted([claude.tool_use("get_capital", {"country": "France"})]))
    _, events = raw_events(router_for(deployment("anthropic", emu.url)), input="Capital?", tools=[WEATHER_TOOL])
    dedupe = lambda kinds: [k for i, k in enumerate(kinds) if not i or k != kinds[i - 1]]  # noqa: E731
    assert dedupe([e["type"] for e in events]) == dedupe(recorded)


@pytest.mark.parametrize("interaction", CLAUDE_STREAMS, ids=[i.name for i in CLAUDE_STREAMS])
def test_claude_text_shortcut_sends_what_the_chat_translation_sends(interaction: claude.Interaction) -> None:
    """Claude's text deltas go straight to their encoded ``response.output_text.delta`` events (no chat chunk in
    between); every recorded Claude stream gives the bytes the full chat-chunk translation gives, ids aside.
    """
    assert interaction.sse is not None
    router = router_for(deployment("anthropic", "http://127.0.0.1:9"))
    api = api_for("/v1/responses")
    target = router.route("m").targets[0]
    events = [(part + "\n\n").encode() for part in interaction.sse.split("\n\n") if part.strip()]

    def translated(shortcut: bool) -> tuple[bytes, int]:
        call = api.parse(b'{"model":"m","input":"hi","stream":true}', router.transport())
        adapter = api.adapter(target, call)
        decoder, translator = adapter.stream_decoder(), adapter.stream_translator(target, call)
        if not shortcut:
            translator._plain = None
        items = [item for raw in events for event in decoder.feed(raw) for item in translator.feed(event)]
        items += translator.finish()
        fmt = api.stream_format
        body = b"".join(fmt.encode(item, target) for item in items)
        ids: dict[bytes, bytes] = {}
        same = re.sub(rb"(resp|msg|rs|fc|call)_pr[0-9a-f]+", lambda m: ids.setdefault(m[0], b"id%d" % len(ids)), body)
        return same, sum(isinstance(item, RawEvent) for item in items)

    fast, shortcuts = translated(True)
    slow, none = translated(False)
    assert none == 0
    assert fast == slow
    deltas = interaction.sse.count('"text_delta"')
    assert shortcuts >= deltas - interaction.sse.count("content_block_start") if deltas else shortcuts == 0


def test_usage_is_attributed_from_the_responses_body() -> None:
    """A Responses call's ``user`` (or its newer name, ``safety_identifier``) and ``metadata`` attribute its usage
    record as a chat call's do, and with ``usage.content`` on, its input is the record's prompt.
    """
    records: list[Any] = []
    router = Router(
        {
            "models": [{"name": "m", "deployments": [{"provider": "mock", "model": "mock-1"}]}],
            "usage": {"callback": records.append, "flush_interval": 0.01, "content": True},
        }
    )
    client = router.openai_client()
    client.responses.create(model="m", input="hi", user="alice", metadata={"run": "42"})
    client.responses.create(model="m", input=[{"role": "user", "content": "yo"}], safety_identifier="carol")
    client.responses.create(model="m", input="hey", user="erin", safety_identifier="dave")
    router.close()
    first, second, third = records
    assert third.user == "dave"  # safety_identifier first, as it is the one sent upstream
    assert (first.user, first.metadata, json.loads(first.prompt)) == ("alice", {"run": "42"}, "hi")
    assert (second.user, second.metadata) == ("carol", None)
    assert json.loads(second.prompt) == [{"role": "user", "content": "yo"}]
    assert set(router.usage()["user"]) == {"alice", "carol", "dave"}


# -- bad input -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"input": "hi", "tools": [{"type": "function", "function": {"name": "f"}}]}, "tools[0].name"),
        ({"input": "hi", "temprature": 0.2}, "Unrecognized request argument supplied: temprature"),
        ({"input": 42}, "'input' must be a string or an array"),
        ({"input": [{"type": "message", "role": "robot", "content": "x"}]}, "input[0].role"),
        ({"input": [{"type": "message", "role": ["user"], "content": "x"}]}, "input[0].role"),
        ({"input": [{"type": ["message"], "content": "x"}]}, "input[0].type"),
        ({"input": [{"role": "user", "content": "x", "id": 5}]}, "input[0].id"),
        (
            {"input": [{"role": "user", "content": "a", "id": "m1"}, {"role": "user", "content": "b", "id": "m1"}]},
            "Duplicate item found with id m1",
        ),
        ({"input": [{"type": "function_call", "name": "f"}]}, "input[0].call_id"),
        ({"input": [{"role": "user", "content": 5}]}, "input[0].content"),
        ({"input": "hi", "text": {"format": {"type": "json_schema", "json_schema": {}}}}, "needs 'name' and 'schema'"),
        ({"input": "hi", "tools": [{"type": "web_search"}]}, "built-in tool 'web_search'"),
        ({"input": "hi", "background": True}, "'background' responses are not served through polyroute"),
        ({"input": "hi", "prompt": {"id": "pmpt_1"}}, "'prompt' is served only by OpenAI"),
        ({"input": "hi", "temperature": 5}, "'temperature' must be a number from 0 to 2"),
        ({"input": "hi", "previous_response_id": 5}, "'previous_response_id' must be a response id"),
        ({"input": "hi", "metadata": [1]}, "'metadata' must be an object"),
        ({"input": "hi", "metadata": {"a": 1}}, "'metadata' values must be strings"),
        ({"input": "hi", "text": {"verbosity": "loud"}}, "'text.verbosity' must be"),
        ({"input": "hi", "prompt_cache_retention": "forever"}, "'prompt_cache_retention' must be"),
        ({"input": "hi", "reasoning": "high"}, "'reasoning' must be an object"),
    ],
)
def test_bad_input_is_a_clear_400(emulator: Start, body: dict[str, Any], words: str) -> None:
    emu = text_upstream(emulator, "anthropic")
    with router_for(deployment("anthropic", emu.url)).http_client(timeout=60) as http:
        r = http.post("/v1/responses", json={"model": "m", **body})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert words in error["message"], error
    assert error["type"] == "invalid_request_error"
    if re.fullmatch(r"\w+\[\d+\]\.\w+", words):  # a field's path: the param names that very field
        assert error["param"] == words, error
    assert emu.requests == []


def refused(emulator: Start, provider: str, body: dict[str, Any]) -> openai.BadRequestError:
    """The 400 the openai SDK raises for ``body`` sent through polyroute to ``provider``; nothing went upstream."""
    emu = text_upstream(emulator, provider)
    with pytest.raises(openai.BadRequestError) as caught:
        create(ONE, router_for(deployment(provider, emu.url)), extra_body=body)
    assert emu.requests == []
    assert caught.value.status_code == 400 and caught.value.type == "invalid_request_error"
    return caught.value


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"instructions": 5}, "instructions", "'instructions' must be a string, got 5"),
        ({"reasoning": {"effort": "extreme"}}, "reasoning.effort", "'reasoning.effort' must be 'none', 'minimal', "),
        ({"reasoning": {"effort": 3}}, "reasoning.effort", "'high', 'xhigh' or 'max', got 3"),
        ({"reasoning": {"summary": "long"}}, "reasoning.summary", "must be 'auto', 'concise' or 'detailed'"),
        ({"tool_choice": "any"}, "tool_choice", "'tool_choice' must be 'none', 'auto' or 'required'"),
        ({"tool_choice": 1}, "tool_choice", "or an object naming a tool, got 1"),
        ({"tool_choice": {"type": "nonsense"}}, "tool_choice.type", "'tool_choice.type' 'nonsense' is not a tool"),
        ({"tool_choice": {"name": "f"}}, "tool_choice.type", "'tool_choice.type' None is not a tool"),
        (
            {"tool_choice": {"type": "function", "function": {"name": "f"}}},
            "tool_choice.name",
            "not nested under 'function'",
        ),
        (
            {"tool_choice": {"type": "allowed_tools", "mode": "any", "tools": []}},
            "tool_choice.mode",
            "'tool_choice.mode' must be 'auto' or 'required'",
        ),
        ({"user": 5}, "user", "'user' must be a string, got 5"),
        ({"safety_identifier": ["a"]}, "safety_identifier", "'safety_identifier' must be a string"),
        ({"prompt_cache_key": {"k": 1}}, "prompt_cache_key", "'prompt_cache_key' must be a string"),
        ({"truncation": "sometimes"}, "truncation", "'truncation' must be 'auto' or 'disabled', got 'sometimes'"),
        ({"service_tier": "gold"}, "service_tier", "'service_tier' must be 'auto', 'default', 'flex'"),
        ({"stream": True, "stream_options": 5}, "stream_options", "'stream_options' must be an object, got 5"),
        ({"include": ["nonsense"]}, "include[0]", "'include[0]' must be one of file_search_call.results"),
        ({"include": "reasoning.encrypted_content"}, "include", "'include' must be an array of strings"),
        ({"background": "no"}, "background", "'background' must be true or false, got 'no'"),
        ({"background": 0}, "background", "'background' must be true or false, got 0"),
        ({"top_logprobs": 21}, "top_logprobs", "'top_logprobs' must be an integer from 0 to 20, got 21"),
        ({"top_logprobs": -1}, "top_logprobs", "'top_logprobs' must be an integer from 0 to 20, got -1"),
        ({"top_logprobs": True}, "top_logprobs", "'top_logprobs' must be an integer from 0 to 20, got True"),
        ({"top_logprobs": 2.5}, "top_logprobs", "'top_logprobs' must be an integer from 0 to 20, got 2.5"),
        ({"input": []}, "input", "'input' is an empty array: send at least one input item"),
        (
            {"input": [], "instructions": "Be brief."},
            "input",
            "or continue a stored response with 'previous_response_id'",
        ),
        ({"input": [{"role": "user", "content": []}]}, "input[0].content", "'input[0].content' is an empty array"),
        (
            {"input": [{"role": "user", "content": "hi"}, {"type": "message", "role": "assistant", "content": []}]},
            "input[1].content",
            "send at least one part (input_text, input_image, input_file)",
        ),
        (
            {"tools": [{"type": "nonsense"}]},
            "tools[0].type",
            "'tools[0].type' 'nonsense' is not a tool type: use 'function'",
        ),
        (
            {"tools": [WEATHER_TOOL, {"type": "websearch"}]},
            "tools[1].type",
            "built-in tools: apply_patch, code_interpreter",
        ),
        # refused before too, said the same way
        ({"max_output_tokens": 0}, "max_output_tokens", "'max_output_tokens' must be an integer ≥ 16, got 0"),
        ({"max_output_tokens": "64"}, "max_output_tokens", "must be an integer ≥ 16, got '64'"),
        ({"parallel_tool_calls": "yes"}, "parallel_tool_calls", "'parallel_tool_calls' must be true or false"),
        ({"store": 1}, "store", "'store' must be true or false, got 1"),
        ({"stream": "yes"}, "stream", "'stream' must be true or false, got 'yes'"),
    ],
)
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_refused_as_openai_refuses_it(
    emulator: Start, provider: str, body: dict[str, Any], param: str, words: str
) -> None:
    """A value OpenAI's API refuses (its OpenAPI spec: types and enums) is a 400 naming the field, whatever the
    route: a pass-through deployment is not asked, a translated one would not have been told.
    """
    error = refused(emulator, provider, {"input": "hi", **body})
    assert error.param == param
    assert words in error.message


@pytest.mark.parametrize("provider", ["anthropic", "gemini", "openai"])
@pytest.mark.parametrize("tools", [None, [WEATHER_TOOL]], ids=["no-tools", "other-tools"])
def test_a_tool_choice_naming_a_function_not_in_tools_is_refused(
    emulator: Start, provider: str, tools: list[dict[str, Any]] | None
) -> None:
    """OpenAI's 400 naming tool_choice (its words, then which function), before anything goes upstream: a translated
    deployment dropped the choice without tools and echoed it back, or was asked to force a tool it lacks. Modes
    (auto, none, required) need no tools.
    """
    extra: dict[str, Any] = {} if tools is None else {"tools": tools}
    error = refused(emulator, provider, {"input": "hi", "tool_choice": {"type": "function", "name": "nope"}, **extra})
    assert error.param == "tool_choice" and error.code is None
    body: Any = error.body
    assert body["message"] == "Tool choice 'function' not found in 'tools' parameter: no function tool is named 'nope'"
    router = router_for(deployment(provider, text_upstream(emulator, provider).url))
    for mode in ("auto", "none", "required"):
        assert create(ONE, router, input="hi", tool_choice=mode, **extra).tool_choice == mode
    named = {"type": "function", "name": "get_weather"}
    assert create(ONE, router, input="hi", tool_choice=named, tools=[WEATHER_TOOL]).status == "completed"


ALLOWED = {"type": "allowed_tools", "mode": "auto"}


@pytest.mark.parametrize("provider", ["anthropic", "gemini", "openai"])
@pytest.mark.parametrize(
    ("choice", "tools", "param", "words"),
    [
        (
            {**ALLOWED, "tools": [{"type": "function", "name": "get_weather"}, {"type": "function", "name": "nope"}]},
            [WEATHER_TOOL],
            "tool_choice.tools[1]",
            "Invalid 'tool_choice.tools[1]': function 'nope' is not in 'tools'. allowed_tools only narrows",
        ),
        (
            {**ALLOWED, "tools": [{"type": "web_search"}]},
            [WEATHER_TOOL],
            "tool_choice.tools[0]",
            "Invalid 'tool_choice.tools[0]': a 'web_search' tool is not in 'tools'.",
        ),
        (
            {"type": "web_search_preview"},
            [WEATHER_TOOL],
            "tool_choice",
            "Tool choice 'web_search_preview' not found in 'tools' parameter: add a 'web_search_preview' tool",
        ),
        ({"type": "file_search"}, None, "tool_choice", "Tool choice 'file_search' not found in 'tools' parameter"),
        (
            {"type": "code_interpreter"},
            [WEATHER_TOOL, {"type": "web_search"}],
            "tool_choice",
            "Tool choice 'code_interpreter' not found in 'tools' parameter",
        ),
    ],
    ids=["allowed-function", "allowed-hosted", "web_search_preview", "file_search", "code_interpreter"],
)
def test_a_tool_choice_naming_a_tool_not_in_tools_is_refused(
    emulator: Start, provider: str, choice: dict[str, Any], tools: Any, param: str, words: str
) -> None:
    """An allowed_tools entry, or a built-in tool chosen, that ``tools`` does not declare: a 400 naming the entry (or
    tool_choice) and what to declare, before anything goes upstream, on every route. OpenAI was sent it as it was;
    Claude and Gemini refused it as not translated, or as a built-in tool only OpenAI runs, not saying what to fix.
    """
    extra: dict[str, Any] = {} if tools is None else {"tools": tools}
    error = refused(emulator, provider, {"input": "hi", "tool_choice": choice, **extra})
    assert error.param == param and error.code is None
    assert words in error.message


def test_a_tool_choice_naming_declared_tools_reaches_openai(emulator: Start) -> None:
    """What the check above takes goes to an OpenAI deployment as it was sent: allowed tools among ``tools`` (a
    function, an MCP server), a built-in tool chosen that ``tools`` declare (web search in another version).
    """
    upstream = text_upstream(emulator, "openai")
    router = router_for(deployment("openai", upstream.url))
    mcp = {"type": "mcp", "server_label": "docs", "server_url": "https://docs.example/mcp"}
    allowed = {
        **ALLOWED,
        "tools": [{"type": "function", "name": "get_weather"}, {"type": "mcp", "server_label": "docs"}],
    }
    chosen = {"type": "web_search_preview"}
    for choice, tools in ((allowed, [WEATHER_TOOL, mcp]), (chosen, [WEATHER_TOOL, {"type": "web_search"}])):
        assert create(ONE, router, input="hi", tool_choice=choice, tools=tools).status == "completed"
        sent = upstream.requests[-1].json()
        assert sent["tool_choice"] == choice and sent["tools"] == tools


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_logprobs_asked_of_a_deployment_without_them_is_refused(emulator: Start, provider: str) -> None:
    """``include: ["message.output_text.logprobs"]`` is a 400 naming ``include`` where the deployment cannot return
    them (as ``top_logprobs`` is, and chat's ``logprobs``), not a 200 with ``logprobs: []``.
    """
    error = refused(emulator, provider, {"input": "hi", "include": ["message.output_text.logprobs"]})
    assert error.param == "include" and error.code == "unsupported_feature"
    assert "remove 'message.output_text.logprobs' from 'include'" in error.message  # as the caller sent it


CHAT_LOGPROBS = [
    {"token": "Hel", "logprob": -0.25, "bytes": [72, 101, 108], "top_logprobs": [{"token": "Hel", "logprob": -0.25}]},
    {"token": "lo", "logprob": -0.5, "bytes": None, "top_logprobs": []},
]
"""A chat choice's ``logprobs.content`` as OpenAI-compatible vendors send it (chat's ``bytes`` may be null)."""
RESPONSES_LOGPROBS = [
    {"token": "Hel", "bytes": [72, 101, 108], "logprob": -0.25, "top_logprobs": [
        {"token": "Hel", "bytes": [72, 101, 108], "logprob": -0.25}
    ]},
    {"token": "lo", "bytes": [108, 111], "logprob": -0.5, "top_logprobs": []},
]  # fmt: skip


def _logprobs_vendor(request: Any) -> Reply:
    """An OpenAI-compatible vendor that returns logprobs when asked (``logprobs: true``)."""
    body = request.json()
    logprobs = {"content": CHAT_LOGPROBS, "refusal": None} if body.get("logprobs") else None
    if not body.get("stream"):
        answer = oai.completion("Hello", model=body["model"])
        answer["choices"][0]["logprobs"] = logprobs
        return Reply.json(answer)
    head = {"id": "chatcmpl-emu", "object": "chat.completion.chunk", "created": 1700000000, "model": body["model"]}
    payloads: list[Any] = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    for text, entry in (("Hel", CHAT_LOGPROBS[0]), ("lo", CHAT_LOGPROBS[1])):
        one = {"content": [entry], "refusal": None} if logprobs else None
        payloads.append({**head, "choices": [{"index": 0, "delta": {"content": text}, "logprobs": one}]})
    payloads.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    payloads += [{**head, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}]
    return Reply.sse(oai.compact_events([*payloads, "[DONE]"]))


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
def test_logprobs_of_a_translated_vendor_reach_output_text(emulator: Start, streamed: bool) -> None:
    """A chat deployment that returns logprobs (an OpenAI-compatible vendor) is asked for them, and they reach
    ``output_text.logprobs`` in OpenAI's Responses shape, streamed (per delta, and in the done part) or not.
    """
    upstream = emulator(_logprobs_vendor)
    vendor = {"provider": "deepseek", "model": "deepseek-chat", "api_base": upstream.url + "/v1", "api_key": KEY}
    router = router_for(vendor)
    include = ["message.output_text.logprobs"]
    if streamed:
        events, final = stream(ONE, router, input="hi", include=include)
        deltas = [e for e in events if e.type == "response.output_text.delta"]
        assert [[p.model_dump() for p in e.logprobs] for e in deltas] == [
            [RESPONSES_LOGPROBS[0]],
            [RESPONSES_LOGPROBS[1]],
        ]
        done = next(e for e in events if e.type == "response.output_text.done")
        assert [p.model_dump() for p in done.logprobs] == RESPONSES_LOGPROBS
    else:
        final = create(ONE, router, input="hi", include=include)
    assert upstream.requests[0].json()["logprobs"] is True
    assert final.output_text == "Hello"
    assert [p.model_dump() for p in final.output[0].content[0].logprobs] == RESPONSES_LOGPROBS
    plain = create(ONE, router, input="hi")  # not asked: not asked upstream, none in the answer
    assert "logprobs" not in upstream.requests[-1].json() and plain.output[0].content[0].logprobs == []


def _vendor(emulator: Start, provider: str = "deepseek") -> tuple[Emulator, Router]:
    """An OpenAI-compatible vendor on the chat emulator (log probabilities as OpenAI answers and refuses them)."""
    upstream = emulator(oai.handler("Hello there, friend.", pieces=3))
    vendor = {"provider": provider, "model": "vendor-model", "api_base": upstream.url + "/v1", "api_key": KEY}
    return upstream, router_for(vendor)


@pytest.mark.parametrize("include", [True, False], ids=["with-include", "number-alone"])
@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
def test_top_logprobs_of_a_translated_vendor_reach_output_text(emulator: Start, streamed: bool, include: bool) -> None:
    """``top_logprobs: N`` on a deployment reached through chat is asked as chat's ``logprobs: true`` with
    ``top_logprobs: N`` (the emulator, as OpenAI, refuses the number without the flag), and each ``output_text``
    logprob carries its N alternatives: per delta and in the done part when streamed, and in the response. The number
    alone asks for them too.
    """
    upstream, router = _vendor(emulator)
    extra: dict[str, Any] = {"include": ["message.output_text.logprobs"]} if include else {}
    if streamed:
        events, final = stream(ONE, router, input="hi", top_logprobs=2, **extra)
        deltas = [e for e in events if e.type == "response.output_text.delta"]
        expected = [oai.token_logprob(e.delta, i, 2) for i, e in enumerate(deltas)]
        assert [[p.model_dump() for p in e.logprobs] for e in deltas] == [[entry] for entry in expected]
        done = next(e for e in events if e.type == "response.output_text.done")
        assert [p.model_dump() for p in done.logprobs] == expected
    else:
        final = create(ONE, router, input="hi", top_logprobs=2, **extra)
        expected = [oai.token_logprob(t, i, 2) for i, t in enumerate(["Hello", " there,", " friend."])]
    sent = upstream.requests[0].json()
    assert sent["logprobs"] is True and sent["top_logprobs"] == 2
    assert final.output_text == "Hello there, friend."
    logprobs = final.output[0].content[0].logprobs
    assert [p.model_dump() for p in logprobs] == expected
    assert [[top.token for top in p.top_logprobs] for p in logprobs] == [[p.token, "alt1"] for p in logprobs]


@pytest.mark.parametrize("provider", ["anthropic", "gemini", "groq"])
def test_top_logprobs_asked_of_a_deployment_without_them_is_refused(emulator: Start, provider: str) -> None:
    """Where the chat adapter cannot send logprobs (Claude, Gemini, a vendor whose quirks refuse them), ``top_logprobs``
    alone is a 400 unsupported_feature naming ``top_logprobs``, not ``include`` (not sent) nor chat's ``logprobs``;
    nothing goes upstream.
    """
    body = {"input": "hi", "top_logprobs": 3}
    if provider == "groq":
        upstream, router = _vendor(emulator, "groq")
        with pytest.raises(openai.BadRequestError) as caught:
            create(ONE, router, extra_body=body)
        assert upstream.requests == []
        error = caught.value
    else:
        error = refused(emulator, provider, body)
    assert error.param == "top_logprobs" and error.code == "unsupported_feature"
    assert ": 'top_logprobs' is not translated for " in error.message
    assert "Remove 'top_logprobs'" in error.message and "'include'" not in error.message


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_empty_input_goes_on_from_a_stored_response(emulator: Start, provider: str) -> None:
    """``input: []`` with ``previous_response_id`` is taken, as OpenAI takes it (pydantic-ai sends it so: an empty
    input is refused only with nothing to go on from); the model sees the stored conversation.
    """
    upstream = text_upstream(emulator, provider, "Go on, then.")
    router = router_for(deployment(provider, upstream.url))
    first = create(ONE, router, input="hi")
    second = create(ONE, router, input=[], previous_response_id=first.id)
    assert second.output_text == "Go on, then." and second.previous_response_id == first.id
    if provider == "anthropic":
        assert [m["role"] for m in upstream.requests[-1].json()["messages"]] == ["user", "assistant"]


def test_a_prompt_alone_needs_no_input(emulator: Start) -> None:
    """A stored prompt (``prompt: {id}``) stands for the input, as on OpenAI: it reaches an OpenAI deployment; a
    translated one says it cannot take a prompt, not that the input is missing.
    """
    openai_emu = oai.ResponsesEmulator({"text": "From the prompt."})
    router = router_for(deployment("openai", emulator(openai_emu).url))
    assert create(ONE, router, extra_body={"prompt": {"id": "pmpt_1"}}).output_text == "From the prompt."
    assert openai_emu.bodies[0]["prompt"] == {"id": "pmpt_1"} and "input" not in openai_emu.bodies[0]
    error = refused(emulator, "anthropic", {"prompt": {"id": "pmpt_1"}})
    assert error.param == "prompt" and "'prompt' is served only by OpenAI" in error.message


def test_an_image_url_object_is_told_to_be_a_url(emulator: Start) -> None:
    """Chat Completions' ``image_url: {"url": ...}`` in a Responses input_image: the 400 says the URL itself is wanted
    (it said the part referred to an uploaded file, and looked for another deployment).
    """
    part = {"type": "input_image", "image_url": {"url": "https://example.com/cat.png"}}
    error = refused(emulator, "anthropic", {"input": [{"role": "user", "content": [part]}]})
    assert error.param == "input[0].content[0].image_url"
    assert "'input[0].content[0].image_url' must be a URL string (https://… or a data: URL), got an object" in (
        error.message
    )


def test_hosted_tools_go_to_a_deployment_that_hosts_them(emulator: Start) -> None:
    claude_emu = text_upstream(emulator, "anthropic")
    openai_emu = oai.ResponsesEmulator({"text": "Searched."})
    router = router_for(deployment("anthropic", claude_emu.url), deployment("openai", emulator(openai_emu).url))
    response = create(ONE, router, input="news?", tools=[{"type": "web_search"}])
    assert response.output_text == "Searched."
    assert openai_emu.bodies[0]["tools"] == [{"type": "web_search"}]
    assert openai_emu.bodies[0]["model"] == "gpt-5-emu"
    assert claude_emu.requests == []


IMAGE = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="


@pytest.mark.parametrize(
    ("lacks", "request_body"),
    [
        ("vision", {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": IMAGE}]}]}),
        ("pdf", {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]}),
        ("tools", {"input": "hi", "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}]}),
        ("json_schema", {"input": "hi", "text": {"format": {"type": "json_schema", "name": "x", "schema": {}}}}),
        ("reasoning", {"input": "hi", "reasoning": {"effort": "low"}}),
        ("context_window", {"input": "word " * 2000}),
        ("context_window", {"input": "hi", "instructions": "rule " * 2000}),
        (
            "context_window",
            {
                "input": [
                    {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                    {"type": "function_call_output", "call_id": "c", "output": "x" * 9000},
                ]
            },
        ),
        ("max_output_tokens", {"input": "hi", "max_output_tokens": 4000}),
    ],
)
def test_routing_reads_what_the_responses_request_needs(emulator: Start, lacks: str, request_body: Any) -> None:
    """A pass-through deployment that cannot take the request (a capability, its context window) is passed over
    for the next one, as for chat; one that can takes it.
    """
    small = {"context_window": 2000} if lacks in ("context_window", "max_output_tokens") else {lacks: False}
    narrow, wide = text_upstream(emulator, "openai", "narrow"), text_upstream(emulator, "openai", "wide")
    router = router_for(
        deployment("openai", narrow.url, capabilities=small),
        deployment("openai", wide.url),
    )
    assert create(ONE, router, **request_body).output_text == "wide"
    assert create(ONE, router, input="hi").output_text == "narrow"  # what it can take, it takes


def test_a_tool_output_image_is_routed_as_an_image(emulator: Start) -> None:
    """A screenshot in a ``function_call_output``: it needs vision (a deployment without it is passed over) and counts
    as one image in the size, not as its base64 text (which would be far over a small window).
    """
    screenshot = "data:image/png;base64," + "iVBORw0KGgo" * 40_000  # ~440 KB of base64
    blind, seeing = text_upstream(emulator, "openai", "blind"), text_upstream(emulator, "openai", "seeing")
    router = router_for(
        deployment("openai", blind.url, capabilities={"vision": False}),
        deployment("openai", seeing.url, capabilities={"context_window": 8000}),
    )
    conversation = [
        {"role": "user", "content": "What is on screen?"},
        {"type": "function_call", "call_id": "call_shot", "name": "screenshot", "arguments": "{}"},
        {
            "type": "function_call_output",
            "call_id": "call_shot",
            "output": [{"type": "input_text", "text": "here"}, {"type": "input_image", "image_url": screenshot}],
        },
    ]
    assert create(ONE, router, input=conversation).output_text == "seeing"
    assert blind.requests == []


def test_a_chain_counts_its_history_in_the_size(emulator: Start) -> None:
    narrow, wide = text_upstream(emulator, "openai", "narrow"), text_upstream(emulator, "openai", "wide")
    claude_emu = text_upstream(emulator, "anthropic", "from claude")
    router = Router(
        {
            "models": [
                {"name": "claude", "deployments": [deployment("anthropic", claude_emu.url)]},
                {
                    "name": "m",
                    "deployments": [
                        deployment("openai", narrow.url, capabilities={"context_window": 2000}),
                        deployment("openai", wide.url),
                    ],
                },
            ],
            "retry": {"backoff": 0},
        }
    )
    first = create(ONE, router, model="claude", input="word " * 1800)
    assert create(ONE, router, previous_response_id=first.id, input="and?").output_text == "wide"
    assert create(ONE, router, input="and?").output_text == "narrow"


@pytest.mark.parametrize("chain", ["resent", "previous"])
def test_a_gemini_call_id_goes_on_to_openai(emulator: Start, chain: str) -> None:
    """A Gemini call's id carries its thought signature (hundreds of characters); OpenAI refuses a ``call_id`` over
    64. Continued on an OpenAI deployment (the conversation resent, or by ``previous_response_id``), the call and its
    output go under one shorter id.
    """
    signature = "c2lnbmF0dXJl" * 60
    gemini_emu = emulator(
        gemini.GeminiEmulator(
            gemini.response(
                None, calls=[{"name": "get_weather", "args": {"city": "Paris"}, "thoughtSignature": signature}]
            )
        )
    )
    openai_emu = oai.ResponsesEmulator({"text": "Sunny."})
    router = Router(
        {
            "models": [
                {"name": "g", "deployments": [deployment("gemini", gemini_emu.url)]},
                {"name": "m", "deployments": [deployment("openai", emulator(openai_emu).url)]},
            ]
        }
    )
    first = create(ONE, router, model="g", input="Weather in Paris?", tools=[WEATHER_TOOL])
    call = next(item for item in first.output if item.type == "function_call")
    assert len(call.call_id) > 64
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    if chain == "resent":
        history = [{"role": "user", "content": "Weather in Paris?"}, call.model_dump(exclude_none=True), output]
        answer = create(ONE, router, input=history, tools=[WEATHER_TOOL])
    else:
        answer = create(ONE, router, previous_response_id=first.id, input=[output], tools=[WEATHER_TOOL])
    assert answer.output_text == "Sunny."
    sent = [item for item in openai_emu.bodies[0]["input"] if "call_id" in item]
    assert len(sent) == 2 and sent[0]["call_id"] == sent[1]["call_id"] and len(sent[0]["call_id"]) <= 64


def _long_conversation(turns: int) -> list[dict[str, Any]]:
    """``turns`` exchanges of ~100 tokens each way, a tool call among the first ones, then a last question."""
    items: list[dict[str, Any]] = []
    for i in range(turns):
        items.append({"role": "user", "content": f"question {i}: " + "words " * 70})
        if i == 1:
            items.append({"type": "function_call", "call_id": "call_early", "name": "get_weather", "arguments": "{}"})
            items.append({"type": "function_call_output", "call_id": "call_early", "output": "sunny " * 60})
        items.append({"role": "assistant", "content": f"answer {i}: " + "words " * 70})
    items.append({"role": "user", "content": "And the last question?"})
    return items


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_truncation_auto_drops_the_oldest_turns_to_fit(emulator: Start, provider: str) -> None:
    """``truncation: "auto"`` on a deployment reached through chat: the oldest turns go until the conversation fits
    the deployment's context window (instructions kept, the rest starting at a user turn, no tool result without its
    call); ``disabled`` (the default) is the 400 OpenAI answers.
    """
    up = text_upstream(emulator, provider, "Fits now.")
    router = router_for(deployment(provider, up.url, capabilities={"context_window": 2000}))
    conversation = _long_conversation(30)  # ~6,000 tokens
    with pytest.raises(openai.BadRequestError) as too_long:
        create(ONE, router, input=conversation, instructions="Be brief.", tools=[WEATHER_TOOL])
    assert too_long.value.code == "context_length_exceeded"
    answer = create(ONE, router, input=conversation, instructions="Be brief.", tools=[WEATHER_TOOL], truncation="auto")
    assert answer.output_text == "Fits now." and answer.truncation == "auto"
    sent = json.dumps(up.requests[-1].json())
    assert "Be brief." in sent and "And the last question?" in sent
    assert "question 0:" not in sent and "call_early" not in sent  # the oldest turns, and the early tool call
    assert "question 29:" in sent and len(sent) < 9000


def test_an_output_larger_than_the_window_is_said_to_be_the_output(emulator: Start) -> None:
    up = text_upstream(emulator, "anthropic")
    router = router_for(deployment("anthropic", up.url, capabilities={"context_window": 200_000}))
    with pytest.raises(openai.BadRequestError) as caught:
        create(ONE, router, input="hi", max_output_tokens=1_000_000)
    assert caught.value.param == "max_output_tokens" and caught.value.code == "context_length_exceeded"
    assert "max_output_tokens 1000000 alone" in caught.value.message and "prompt" not in caught.value.message
    with pytest.raises(openai.BadRequestError) as prompt:
        create(ONE, router, input="word " * 900_000, max_output_tokens=100)
    assert prompt.value.param == "input" and "the prompt" in prompt.value.message
    assert up.requests == []


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_verbosity_and_service_tier_are_not_dropped_unsaid(emulator: Start, provider: str) -> None:
    """``text.verbosity`` other than OpenAI's default is refused by a deployment that has no such setting (as on
    chat), not dropped; the Response echoes the service tier that served it, not the one asked for.
    """
    router = router_for(deployment(provider, text_upstream(emulator, provider).url))
    with pytest.raises(openai.BadRequestError) as low:
        create(ONE, router, input="hi", text={"verbosity": "low"})
    assert low.value.param == "text.verbosity" and "verbosity" in low.value.message
    answer = create(ONE, router, input="hi", text={"verbosity": "medium"}, service_tier="priority")
    assert answer.text.verbosity == "medium" and answer.service_tier == "default"


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
@pytest.mark.parametrize("request_body", [{"instructions": "Say hi."}, {"input": ""}], ids=["instructions", "empty"])
def test_nothing_to_answer_is_a_400_before_any_call(emulator: Start, provider: str, request_body: Any) -> None:
    """Instructions alone, or an empty input: Claude and Gemini need a user message with content. polyroute says so
    before an upstream call is spent on it (Gemini answered 'contents is not specified').
    """
    up = text_upstream(emulator, provider)
    with pytest.raises(openai.BadRequestError, match="at least one user message") as caught:
        create(ONE, router_for(deployment(provider, up.url)), **request_body)
    assert caught.value.param == "input"  # as the Responses API names it (the chat adapter said messages)
    assert up.requests == []


def test_fields_newer_than_polyroute_go_to_openai_and_are_named_elsewhere(emulator: Start) -> None:
    """Codex CLI sends ``client_metadata``; the openai SDK grows new fields. An OpenAI deployment gets them as they
    are (it says whether it takes them); a deployment reached through chat takes what changes nothing in the answer
    and names what it cannot take; a Chat Completions field is told the Responses one.
    """
    openai_emu = oai.ResponsesEmulator({"text": "From OpenAI."})
    claude_emu = text_upstream(emulator, "anthropic", "From Claude.")
    router = Router(
        {
            "models": [
                {"name": "gpt", "deployments": [deployment("openai", emulator(openai_emu).url)]},
                {"name": "claude", "deployments": [deployment("anthropic", claude_emu.url)]},
            ]
        }
    )
    codex = {"input": "hi", "client_metadata": {"x-codex-installation-id": "abc"}, "prompt_cache_key": "k"}
    assert create(ONE, router, model="gpt", extra_body=codex).output_text == "From OpenAI."
    assert openai_emu.bodies[-1]["client_metadata"] == {"x-codex-installation-id": "abc"}
    assert create(ONE, router, model="claude", extra_body=codex).output_text == "From Claude."
    compaction = {"type": "compaction", "compact_threshold": 80000}
    create(ONE, router, model="gpt", input="hi", extra_body={"context_management": compaction})
    assert openai_emu.bodies[-1]["context_management"] == compaction
    with pytest.raises(openai.BadRequestError) as only_openai:
        create(ONE, router, model="claude", input="hi", extra_body={"context_management": compaction})
    assert only_openai.value.param == "context_management"
    with pytest.raises(openai.BadRequestError) as at_openai:  # OpenAI's own answer to a field it does not know
        create(ONE, router, model="gpt", input="hi", extra_body={"future_field": 1})
    assert at_openai.value.param == "future_field"
    with pytest.raises(openai.BadRequestError) as translated:
        create(ONE, router, model="claude", input="hi", extra_body={"future_field": 1})
    assert translated.value.param == "future_field" and "future_field" in translated.value.message
    with pytest.raises(openai.BadRequestError) as chat_field:
        create(ONE, router, model="gpt", extra_body={"messages": [{"role": "user", "content": "hi"}]})
    assert chat_field.value.param == "messages" and "use 'input'" in chat_field.value.message
    assert len(claude_emu.requests) == 1


def test_custom_and_namespace_tools_are_the_callers_and_named_as_such(emulator: Start) -> None:
    """Codex sends a namespace of functions and a freeform (custom) tool: not OpenAI's built-in tools. A deployment
    reached through chat says it cannot take them (and a route goes on to an OpenAI deployment that can).
    """
    namespace = {"type": "namespace", "name": "crm", "tools": [{"type": "function", "name": "find", "parameters": {}}]}
    custom = {"type": "custom", "name": "apply_patch", "description": "Patch files"}
    claude_emu = text_upstream(emulator, "anthropic")
    for tool, words in ((namespace, "namespace tools (a group of functions)"), (custom, "custom tools (freeform")):
        with pytest.raises(openai.BadRequestError) as caught:
            create(ONE, router_for(deployment("anthropic", claude_emu.url)), input="hi", tools=[tool])
        assert words in caught.value.message and "built-in" not in caught.value.message
        assert caught.value.param == "tools"
    openai_emu = oai.ResponsesEmulator({"text": "Done."})
    both = router_for(deployment("anthropic", claude_emu.url), deployment("openai", emulator(openai_emu).url))
    assert create(ONE, both, input="hi", tools=[custom]).output_text == "Done."
    assert claude_emu.requests == []


def test_a_translated_deployments_refusal_names_the_responses_field(emulator: Start) -> None:
    router = router_for(deployment("anthropic", text_upstream(emulator, "anthropic").url))
    with pytest.raises(openai.BadRequestError) as caught:
        create(ONE, router, input="hi", reasoning={"effort": "low"}, max_output_tokens=500)
    assert caught.value.param == "reasoning.effort"
    assert "reasoning_effort" not in caught.value.message.split("drop_params")[0], caught.value.message


def test_retrieving_a_response_as_a_stream_is_refused_not_empty(emulator: Start) -> None:
    router = router_for(deployment("anthropic", text_upstream(emulator, "anthropic").url))
    response = create(ONE, router, input="hi")
    client = router.openai_client()
    with pytest.raises(openai.BadRequestError) as caught:
        for _ in client.responses.retrieve(response.id, stream=True):
            pass
    assert caught.value.param == "stream"
    assert client.responses.retrieve(response.id).output_text == response.output_text


def test_a_tool_output_without_its_call_is_refused_as_openai_refuses_it(emulator: Start) -> None:
    up = text_upstream(emulator, "anthropic")
    router = router_for(deployment("anthropic", up.url))
    orphan = {"type": "function_call_output", "call_id": "call_nope", "output": "42"}
    with pytest.raises(openai.BadRequestError) as caught:
        create(ONE, router, input=[{"role": "user", "content": "hi"}, orphan])
    assert "No tool call found for function call output with call_id call_nope" in caught.value.message
    assert caught.value.param == "input[1]" and up.requests == []
    call = {"type": "function_call", "call_id": "call_ok", "name": "f", "arguments": "{}"}
    answered = {"type": "function_call_output", "call_id": "call_ok", "output": "42"}
    create(ONE, router, input=[{"role": "user", "content": "hi"}, call, answered], tools=[WEATHER_TOOL])


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_a_call_without_its_output_is_refused_as_openai_refuses_it(emulator: Start, provider: str) -> None:
    """A function call left unanswered (in the input, or at the end of the previous response, then a user turn): OpenAI's
    400 naming it, where Claude got a made-up error result and Gemini nothing at all."""
    up = text_upstream(emulator, provider)
    router = router_for(deployment(provider, up.url))
    call = {"type": "function_call", "call_id": "call_left", "name": "get_weather", "arguments": "{}"}
    then = {"role": "user", "content": "Never mind."}
    with pytest.raises(openai.BadRequestError) as caught:
        create(ONE, router, input=[{"role": "user", "content": "hi"}, call, then], tools=[WEATHER_TOOL])
    assert "No tool output found for function call call_left" in caught.value.message
    assert caught.value.param == "input[1]" and up.requests == []
    loop = weather_loop(emulator, provider, False)[0]
    router = router_for(deployment(provider, loop))
    first = create(ONE, router, input="Weather in Paris?", tools=[WEATHER_TOOL])
    assert [o.type for o in first.output][-1] == "function_call"
    with pytest.raises(openai.BadRequestError) as caught:
        create(ONE, router, input=[then], previous_response_id=first.id, tools=[WEATHER_TOOL])
    assert caught.value.param == "previous_response_id" and "No tool output found" in caught.value.message


def test_other_methods_and_unknown_ids(emulator: Start) -> None:
    """A method or path not served under /v1/responses is a 404, as OpenAI answers one ("Invalid URL (GET
    /v1/responses)"), that says what is served: it was a 400 ("use POST"), which reads as a bad body.
    """
    router = router_for(deployment("anthropic", text_upstream(emulator, "anthropic").url))
    with router.http_client(timeout=60) as http:
        missing = http.get("/responses/resp_nope")
        assert missing.status_code == 404 and "resp_nope" in missing.json()["error"]["message"]
        assert http.post("/responses", content=b"{").status_code == 400
        for method, path in (("GET", "/responses"), ("PUT", "/responses/resp_nope"), ("GET", "/responses/resp_nope/x")):
            wrong = http.request(method, path)  # the method or path is wrong whatever the id: said first
            assert wrong.status_code == 404, wrong.text
            error = wrong.json()["error"]
            assert error["type"] == "invalid_request_error" and error["code"] == "unknown_url"
            assert error["message"].startswith(
                f"Invalid URL ({method} /v1{path}): polyroute serves POST /v1/responses, "
            )
            assert "GET and DELETE /v1/responses/{id} and GET /v1/responses/{id}/input_items" in error["message"]
    with pytest.raises(openai.NotFoundError, match=r"Invalid URL \(GET /v1/responses\)"):  # what the SDK raises
        run(ONE, router, lambda c: c.get("/responses", cast_to=object))
    response = create(ONE, router, input="hi")
    with router.http_client(timeout=60) as http:
        deleted = http.delete(f"/v1/responses/{response.id}")
    assert deleted.json() == {"id": response.id, "object": "response.deleted", "deleted": True}


def test_an_unknown_response_id_is_openais_not_found(emulator: Start) -> None:
    """An id never stored, deleted, or another serve key's: OpenAI's 404 for it (code null), not the ``unknown_url``
    of a path polyroute does not serve.
    """
    router = router_for(deployment("anthropic", text_upstream(emulator, "anthropic").url))
    with router.http_client(timeout=60) as http:
        mine = http.post("/v1/responses", json={"model": "m", "input": "hi"}, headers={"x-polyroute-key": "a"})
        theirs = mine.json()["id"]
        for method, path, wanted in (
            ("GET", "/v1/responses/resp_nope", "resp_nope"),
            ("DELETE", "/v1/responses/resp_nope", "resp_nope"),
            ("GET", "/v1/responses/resp_nope/input_items", "resp_nope"),
            ("GET", f"/v1/responses/{theirs}", theirs),  # another key's: as if it were not there
        ):
            missing = http.request(method, path, headers={"x-polyroute-key": "b"})
            assert missing.status_code == 404, missing.text
            assert missing.json() == {
                "error": {
                    "message": f"Response with id '{wanted}' not found.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            }
        assert http.get(f"/v1/responses/{theirs}", headers={"x-polyroute-key": "a"}).status_code == 200


@pytest.mark.parametrize("route", ["anthropic", "gemini", "mock"])
@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
def test_a_completed_response_says_when(emulator: Start, route: str, streamed: bool) -> None:
    """``completed_at`` (unix seconds) on a completed translated response, streamed or not, and when it is read back
    from the store, as OpenAI sets it; null while in progress.
    """
    if route == "mock":
        router = Router({"models": [{"name": "m", "deployments": [{"provider": "mock", "model": "mock-1"}]}]})
    else:
        router = router_for(deployment(route, text_upstream(emulator, route).url))
    before = int(time.time())
    if streamed:
        events, final = stream(ONE, router, input="hi")
        assert events[0].type == "response.created" and events[0].response.completed_at is None
    else:
        final = create(ONE, router, input="hi")
    assert final.status == "completed" and final.completed_at is not None
    assert final.created_at <= final.completed_at and before <= final.completed_at <= time.time()
    assert router.openai_client().responses.retrieve(final.id).completed_at == final.completed_at


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
def test_cut_answer_is_incomplete(emulator: Start, streamed: bool) -> None:
    msg = claude.message([claude.text("A long answer that")], stop_reason="max_tokens")

    def turn(request: Any) -> Reply:
        if request.json().get("stream"):
            return Reply(chunks=claude.events(msg), headers={"content-type": "text/event-stream"})
        return Reply.json(msg)

    router = router_for(deployment("anthropic", emulator(claude.scripted([turn])).url))
    if streamed:  # as from OpenAI, the stream ends with response.incomplete (the SDK's stream helper wants a
        # response.completed for get_final_response, so read the events)
        events = list(create(ONE, router, input="hi", max_output_tokens=16, stream=True))
        assert events[-1].type == "response.incomplete"
        final = events[-1].response
    else:
        final = create(ONE, router, input="hi", max_output_tokens=16)
    assert final.status == "incomplete" and final.incomplete_details.reason == "max_output_tokens"
    assert final.completed_at is None  # OpenAI sets it only on a completed response
    assert final.output_text == "A long answer that"


def test_azure_deployment_gets_its_responses_url_and_key_header(emulator: Start) -> None:
    seen: list[Any] = []
    answer = oai.ResponsesEmulator({"text": "From Azure."})

    def handle(request: Any) -> Reply:
        seen.append(request)
        return Reply.json(answer._response(request.json(), {"text": "From Azure."}))

    url = emulator(handle).url
    router = router_for({"provider": "azure", "model": "my-gpt", "api_base": url, "api_key": KEY})
    assert create(ONE, router, input="hi").output_text == "From Azure."
    request = seen[0]
    assert request.path == "/openai/responses" and request.query["api-version"] == ["2025-04-01-preview"]
    assert request.headers["api-key"] == KEY and "authorization" not in request.headers
    assert request.json()["model"] == "my-gpt"


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_deleted_openai_response_stays_deleted_in_every_store(kind: str, tmp_path: Path) -> None:
    """Deleting a response an OpenAI deployment made leaves a mark (OpenAI keeps its copy): read back from the store,
    it is no one's to see or continue from, the key that made it included."""
    from polyroute.responses.api import _deleted, _live  # pyright: ignore[reportPrivateUsage]
    from polyroute.responses.store import SQLiteStore

    store = MemoryStore() if kind == "memory" else SQLiteStore(str(tmp_path / "responses.db"))
    record = {"response": {"id": "resp_1", "output": []}, "input": [], "origin": "openai/gpt-5", "owner": "dev"}
    store.put("resp_1", record)
    assert _live(store.get("resp_1"), {"x-polyroute-key": "dev"}) is not None
    store.put("resp_1", _deleted("resp_1", record))
    kept = store.get("resp_1")
    assert kept is not None and kept["deleted"] is True and kept["origin"] == "openai/gpt-5"
    assert _live(kept, {"x-polyroute-key": "dev"}) is None and _live(kept, None) is None


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_a_file_by_url_reaches_claude_and_gemini_as_a_url(emulator: Start, provider: str) -> None:
    """``input_file`` with ``file_url``: Claude takes a document by URL, Gemini a file by URI (it was a 400 saying
    only OpenAI can read it); an uploaded file id still is one, naming the part."""
    up = text_upstream(emulator, provider, text="A PDF about cats.")
    router = router_for(deployment(provider, up.url))
    url = "https://example.com/cats.pdf"
    part = {"type": "input_file", "file_url": url}
    answer = create(ONE, router, input=[{"role": "user", "content": [{"type": "input_text", "text": "Sum up"}, part]}])
    assert answer.output_text == "A PDF about cats."
    body = up.requests[0].json()
    if provider == "anthropic":
        assert body["messages"][0]["content"][1] == {"type": "document", "source": {"type": "url", "url": url}}
    else:
        assert body["contents"][0]["parts"][1]["fileData"]["fileUri"] == url
    with pytest.raises(openai.BadRequestError) as caught:
        create(ONE, router, input=[{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}])
    assert caught.value.body["param"] == "input[0].content[0]" and "file_url" in caught.value.message  # type: ignore[index]


def test_a_translated_refusal_names_the_fields_as_the_caller_sent_them() -> None:
    """A chat adapter's refusal, on /v1/responses: the fields in the Responses API's words, but the drop_params hint
    (a deployment config, in chat's names) as it is."""
    from polyroute.responses.api import _as_sent  # pyright: ignore[reportPrivateUsage]

    said = (
        "anthropic/claude (Anthropic Messages API) model x has no extended thinking; remove 'reasoning_effort', "
        "route to a deployment that has it, or list 'reasoning_effort' in this deployment's drop_params"
    )
    assert _as_sent(said) == said.replace("remove 'reasoning_effort'", "remove 'reasoning.effort'")
    assert _as_sent("needs max_tokens above 1024; raise max_tokens or remove reasoning_effort") == (
        "needs max_output_tokens above 1024; raise max_output_tokens or remove reasoning.effort"
    )
    assert _as_sent("remove 'logprobs' / 'top_logprobs'") == (
        "remove 'message.output_text.logprobs' from 'include' / 'top_logprobs'"
    )
