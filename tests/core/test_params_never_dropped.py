"""No request field vanishes on the way to a provider.

An OpenAI parameter a deployment cannot honour sends the request to a deployment that can, or comes back as a 400
naming it, unless the deployment opted to drop it (``drop_params``); a field that is not OpenAI's (``extra_body``)
reaches the provider's native body. End to end: the openai SDK → the router → loopback emulators.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest

from polyroute import ConfigError, Router
from tests.emulators import Emulator, Reply, openai_format
from tests.emulators import anthropic_format as claude
from tests.emulators.gemini_format import GeminiEmulator, response
from tests.emulators.server import Handler

Start = Callable[[Handler], Emulator]
KEY = "test-key-0123456789"
HI: Any = [{"role": "user", "content": "Hi"}]


def _claude(url: str, **extra: Any) -> dict[str, Any]:
    return {"provider": "anthropic", "model": "claude-sonnet-4-5", "api_base": url, "api_key": KEY, **extra}


def _router(*deployments: dict[str, Any]) -> Router:
    return Router({"models": [{"name": "m", "deployments": list(deployments)}], "retry": {"backoff": 0}})


def test_seed_goes_to_the_deployment_that_honours_it(emulator: Start) -> None:
    script = claude.scripted(["from Claude"])
    first = emulator(script)
    second = emulator(openai_format.handler("from the OpenAI-format deployment"))
    openai_deployment = {"provider": "openai", "model": "gpt-test", "api_base": second.url + "/v1", "api_key": KEY}
    client = _router(_claude(first.url), openai_deployment).openai_client()
    raw = client.chat.completions.with_raw_response.create(model="m", messages=HI, seed=7)
    assert raw.parse().choices[0].message.content == "from the OpenAI-format deployment"
    assert raw.headers["x-polyroute-deployment"] == "openai/gpt-test"
    assert script.bodies == []  # Claude was never asked
    assert json.loads(second.requests[0].body)["seed"] == 7


@pytest.mark.parametrize(
    ("param", "value"),
    [("seed", 7), ("presence_penalty", 0.5), ("frequency_penalty", -0.5), ("verbosity", "low")],
)
def test_a_parameter_no_deployment_honours_is_a_400_naming_it(emulator: Start, param: str, value: Any) -> None:
    script = claude.scripted(["never"])
    client = _router(_claude(emulator(script).url)).openai_client()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=HI, extra_body={param: value})
    message = str(info.value)
    assert f"'{param}'" in message and "anthropic/claude-sonnet-4-5" in message and "drop_params" in message
    assert info.value.code == "unsupported_feature"
    assert info.value.param == param
    assert message.count("anthropic/claude-sonnet-4-5") == 1  # named once, not by the router and the adapter both
    assert script.bodies == []


def test_zero_penalties_are_openai_defaults_and_pass(emulator: Start) -> None:
    script = claude.scripted(["fine"])
    client = _router(_claude(emulator(script).url)).openai_client()
    completion = client.chat.completions.create(model="m", messages=HI, presence_penalty=0, frequency_penalty=0)
    assert completion.choices[0].message.content == "fine"
    assert "presence_penalty" not in script.bodies[0]


def test_drop_params_opt_in_serves_the_request(emulator: Start) -> None:
    script = claude.scripted(["served"])
    client = _router(_claude(emulator(script).url, drop_params=["seed", "logprobs"])).openai_client()
    completion = client.chat.completions.create(model="m", messages=HI, seed=7, logprobs=True, temperature=0.5)
    assert completion.choices[0].message.content == "served"
    assert "seed" not in script.bodies[0] and "logprobs" not in script.bodies[0]
    assert script.bodies[0]["temperature"] == 0.5


@pytest.mark.parametrize("stream", [False, True])
def test_extra_body_reaches_claude(emulator: Start, stream: bool) -> None:
    script = claude.scripted(["ok"])
    client = _router(_claude(emulator(script).url)).openai_client()
    created = client.chat.completions.create(model="m", messages=HI, stream=stream, extra_body={"top_k": 5})
    if stream:
        list(created)  # pyright: ignore[reportArgumentType]
    assert script.bodies[0]["top_k"] == 5


SAFETY = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]


def test_extra_body_reaches_gemini(emulator: Start) -> None:
    upstream = GeminiEmulator(response("ok"))
    deployment = {"provider": "gemini", "model": "gemini-2.5-flash", "api_base": emulator(upstream).url, "api_key": KEY}
    client = _router(deployment).openai_client()
    completion = client.chat.completions.create(
        model="m",
        messages=HI,
        temperature=0.3,
        seed=11,
        extra_body={"safetySettings": SAFETY, "top_k": 20, "generationConfig": {"responseLogprobs": False}},
    )
    assert completion.choices[0].message.content == "ok"
    body = upstream.bodies[0]
    assert body["safetySettings"] == SAFETY
    assert body["generationConfig"] == {"temperature": 0.3, "seed": 11, "topK": 20, "responseLogprobs": False}


def test_an_unknown_gemini_field_is_gemini_s_400_not_a_silent_drop(emulator: Start) -> None:
    upstream = GeminiEmulator(response("never"))
    deployment = {"provider": "gemini", "model": "gemini-2.5-flash", "api_base": emulator(upstream).url, "api_key": KEY}
    client = _router(deployment).openai_client()
    with pytest.raises(openai.BadRequestError, match='Unknown name "safety_setings"'):
        client.chat.completions.create(model="m", messages=HI, extra_body={"safety_setings": SAFETY})


def test_gemini_refusals_name_drop_params(emulator: Start) -> None:
    upstream = GeminiEmulator(response("ok"))
    url = emulator(upstream).url
    refusing = {"provider": "gemini", "model": "gemini-2.5-flash", "api_base": url, "api_key": KEY}
    with pytest.raises(openai.BadRequestError, match="drop_params"):
        _router(refusing).openai_client().chat.completions.create(model="m", messages=HI, verbosity="low")
    client = _router({**refusing, "drop_params": ["verbosity"]}).openai_client()
    assert client.chat.completions.create(model="m", messages=HI, verbosity="low").choices[0].message.content == "ok"


def test_drop_params_must_name_openai_parameters() -> None:
    with pytest.raises(ConfigError, match=r"drop_params.*'sed' is not one"):
        _router(_claude("http://127.0.0.1:9", drop_params=["sed"]))


def test_drop_params_also_lets_an_openai_compatible_vendor_drop_what_it_refuses() -> None:
    from polyroute.errors import UnsupportedFeatureError
    from polyroute.providers import openai as adapter

    def deployment(**extra: Any) -> Any:
        config = {"provider": "together", "model": "up", "api_base": "http://127.0.0.1:9/v1", "api_key": KEY, **extra}
        return _router(config).route("m").targets[0]

    body: Any = {"model": "m", "messages": HI, "store": True, "seed": 3}
    with pytest.raises(UnsupportedFeatureError, match="'store'"):
        adapter.build_request(body, deployment())
    sent = json.loads(adapter.build_request(body, deployment(drop_params=["store"])).content)
    assert "store" not in sent and sent["seed"] == 3


def _tool_call_names(client: Any, tools: Any, stream: bool, **extra: Any) -> list[str]:
    """The names of the tool calls in one answer, whole or streamed."""
    if not stream:
        answer = client.chat.completions.create(model="m", messages=HI, tools=tools, **extra)
        return [call.function.name for call in answer.choices[0].message.tool_calls or []]
    seen: dict[int, str] = {}
    for chunk in client.chat.completions.create(model="m", messages=HI, tools=tools, stream=True, **extra):
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            if call.function and call.function.name:
                seen[call.index] = call.function.name
    return [seen[i] for i in sorted(seen)]


@pytest.mark.parametrize("stream", [False, True])
def test_parallel_tool_calls_false_is_honoured_on_gemini(emulator: Start, stream: bool) -> None:
    """Gemini cannot be told to make one call: its later calls are left out of the answer instead of the flag."""
    two_calls = response(None, calls=[{"name": "f", "args": {"x": 1}}, {"name": "g", "args": {"y": 2}}])
    upstream = emulator(GeminiEmulator(two_calls))
    tools: Any = [
        {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}} for name in ("f", "g")
    ]
    deployment = {"provider": "gemini", "model": "gemini-2.5-flash", "api_base": upstream.url, "api_key": KEY}
    client = _router(deployment).openai_client()

    assert _tool_call_names(client, tools, stream) == ["f", "g"]
    assert _tool_call_names(client, tools, stream, parallel_tool_calls=False) == ["f"]


def _two_calls_openai_format(request: Any) -> Any:
    """Two tool calls, as a vendor that cannot be held to one sends them (whole or streamed)."""
    calls = [{"id": f"call_{n}", "type": "function", "function": {"name": n, "arguments": "{}"}} for n in ("f", "g")]
    if not request.json().get("stream"):
        return Reply.json(openai_format.completion(None, tool_calls=calls))
    head = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    payloads: list[Any] = [
        {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": None}, "finish_reason": None}]}
    ]
    for i, call in enumerate(calls):
        delta = {"tool_calls": [{"index": i, **call}]}
        payloads.append({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    payloads += [{**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}, "[DONE]"]
    return Reply.sse(openai_format.compact_events(payloads))


@pytest.mark.parametrize("stream", [False, True])
def test_parallel_tool_calls_false_is_honoured_on_deepseek(emulator: Start, stream: bool) -> None:
    """DeepSeek takes no parallel_tool_calls field: false is honoured by leaving later calls out of the answer."""
    upstream = emulator(_two_calls_openai_format)
    tools: Any = [
        {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}} for name in ("f", "g")
    ]
    deployment = {"provider": "deepseek", "model": "deepseek-chat", "api_base": upstream.url + "/v1", "api_key": KEY}
    client = _router(deployment).openai_client()

    assert _tool_call_names(client, tools, stream) == ["f", "g"]
    assert _tool_call_names(client, tools, stream, parallel_tool_calls=False) == ["f"]
    assert all("parallel_tool_calls" not in request.json() for request in upstream.requests)


WEATHER: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def _chat_deployments(emulator: Start) -> dict[str, tuple[dict[str, Any], Emulator]]:
    """A Claude, a Gemini and an OpenAI-compatible vendor's deployment, each on its own emulator."""
    claude_emu = emulator(claude.scripted(["from Claude"], repeat_last=True))
    gemini_emu = emulator(GeminiEmulator(response("from Gemini")))
    vendor_emu = emulator(openai_format.handler("from DeepSeek"))
    return {
        "anthropic": (_claude(claude_emu.url), claude_emu),
        "gemini": (
            {"provider": "gemini", "model": "gemini-2.5-flash", "api_base": gemini_emu.url, "api_key": KEY},
            gemini_emu,
        ),
        "deepseek": (
            {"provider": "deepseek", "model": "deepseek-chat", "api_base": vendor_emu.url + "/v1", "api_key": KEY},
            vendor_emu,
        ),
    }


@pytest.mark.parametrize("provider", ["anthropic", "gemini", "deepseek"])
@pytest.mark.parametrize(
    ("tools", "words"),
    [
        (None, "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified."),
        (WEATHER, "Invalid value for 'tool_choice': function 'nope' not found in 'tools'."),
    ],
    ids=["no-tools", "other-tools"],
)
def test_a_tool_choice_naming_a_function_not_in_tools_is_refused(
    emulator: Start, provider: str, tools: Any, words: str
) -> None:
    """OpenAI's 400 naming tool_choice, before anything goes upstream: Claude and Gemini were asked to force a tool
    they were never given (or, with no tools, the choice was dropped and the answer echoed it), a vendor got it as is.
    """
    deployment, upstream = _chat_deployments(emulator)[provider]
    client = _router(deployment).openai_client()
    extra: dict[str, Any] = {} if tools is None else {"tools": tools}
    choice: Any = {"type": "function", "function": {"name": "nope"}}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=HI, tool_choice=choice, **extra)
    error: Any = caught.value.body
    assert error == {"message": words, "type": "invalid_request_error", "param": "tool_choice", "code": None}
    assert upstream.requests == []
    for mode in ("auto", "none", "required"):  # modes, not tools: clients send them without tools too
        client.chat.completions.create(model="m", messages=HI, tool_choice=mode, **extra)
    named: Any = {"type": "function", "function": {"name": "get_weather"}}
    client.chat.completions.create(model="m", messages=HI, tools=WEATHER, tool_choice=named)


def _vendor(emulator: Start) -> tuple[Emulator, Any]:
    """An OpenAI-compatible vendor (DeepSeek) on the chat emulator, and an openai client routing to it."""
    upstream = emulator(openai_format.handler("Hello there, friend.", pieces=3))
    vendor = {"provider": "deepseek", "model": "deepseek-chat", "api_base": upstream.url + "/v1", "api_key": KEY}
    return upstream, _router(vendor).openai_client()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_logprobs_reach_a_vendor_and_come_back_as_it_sends_them(emulator: Start, stream: bool) -> None:
    """Chat's ``logprobs`` / ``top_logprobs`` reach an OpenAI-compatible vendor as sent, and its log probabilities
    come back: each token with its ``top_logprobs`` alternatives, streamed or not.
    """
    upstream, client = _vendor(emulator)
    if stream:
        chunks = list(
            client.chat.completions.create(model="m", messages=HI, logprobs=True, top_logprobs=2, stream=True)
        )
        entries = [
            e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content or []
        ]
        pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    else:
        completion = client.chat.completions.create(model="m", messages=HI, logprobs=True, top_logprobs=2)
        logprobs = completion.choices[0].logprobs
        entries = list(logprobs.content or []) if logprobs else []
        pieces = ["Hello", " there,", " friend."]
    assert [e.model_dump() for e in entries] == [openai_format.token_logprob(p, i, 2) for i, p in enumerate(pieces)]
    assert [len(e.top_logprobs) for e in entries] == [2] * len(pieces)
    sent = json.loads(upstream.requests[0].body)
    assert sent["logprobs"] is True and sent["top_logprobs"] == 2


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_top_logprobs_without_logprobs_is_the_vendors_400(emulator: Start, stream: bool) -> None:
    """``top_logprobs`` without ``logprobs: true`` is refused as OpenAI refuses it (the emulator is that strict), and
    the vendor's 400 comes back with its param; polyroute adds no ``logprobs`` the caller did not send.
    """
    upstream, client = _vendor(emulator)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=HI, top_logprobs=2, stream=stream)
    error: Any = caught.value.body
    assert error["message"] == (
        "deepseek/deepseek-chat: The 'top_logprobs' parameter is only allowed when 'logprobs' is enabled."
    )
    assert error["param"] == "top_logprobs"
    assert "logprobs" not in json.loads(upstream.requests[0].body)
