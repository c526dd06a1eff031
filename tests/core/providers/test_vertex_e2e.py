"""End to end: the openai SDK → polyroute → a loopback Vertex AI emulator (Google's token endpoint, bearer tokens,
Gemini and Claude behind them), with a service account whose ``token_uri`` points at the emulator.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from polyroute import Router
from polyroute.providers import vertex
from tests.emulators import Emulator
from tests.emulators import anthropic_format as claude
from tests.emulators import gemini_format as gem
from tests.emulators import vertex_format as vx
from tests.emulators.server import Handler

Start = Callable[[Handler], Emulator]
CLAUDE = "claude-sonnet-4-5@20250929"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def start_vertex(emulator: Start, **options: Any) -> tuple[vx.VertexEmulator, Emulator, dict[str, Any]]:
    handler = vx.VertexEmulator(**options)
    emu = emulator(handler)
    handler.url = emu.url
    info, handler.public_key = vx.service_account(f"{emu.url}/token")
    return handler, emu, info


def deployment(emu: Emulator, credentials: Any, model: str = "gemini-2.5-flash", **extra: Any) -> dict[str, Any]:
    return {
        "provider": "vertex",
        "model": model,
        "api_base": emu.url,
        "credentials": credentials,
        "location": "us-east5",
        **extra,
    }


def router(*deployments: dict[str, Any]) -> Router:
    labelled = [{"id": f"d{i}", **d} for i, d in enumerate(deployments)]
    return Router({"models": [{"name": "m", "deployments": labelled}], "retry": {"backoff": 0}})


def test_gemini_on_vertex_with_a_service_account(emulator: Start) -> None:
    handler, emu, info = start_vertex(emulator, gemini=vx.gemini_emulator(gem.response("Hello from Vertex")))
    client = router(deployment(emu, info)).openai_client()
    for _ in range(3):
        completion = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}])
        assert completion.choices[0].message.content == "Hello from Vertex"
    calls = [r for r in emu.requests if r.path != "/token"]
    assert calls[0].path == (
        f"/v1/projects/{vx.PROJECT}/locations/us-east5/publishers/google/models/gemini-2.5-flash:generateContent"
    )
    assert handler.token_requests == 1  # one token, cached for every call
    assert {r.headers["authorization"] for r in calls} == {f"Bearer {next(iter(handler.tokens))}"}
    assert handler.bodies[0]["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]


async def test_gemini_on_vertex_streams(emulator: Start, tmp_path: Path) -> None:
    _, emu, info = start_vertex(emulator, gemini=vx.gemini_emulator(gem.response("Streaming from Vertex")))
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(info))
    client = router(deployment(emu, str(path))).async_openai_client()
    stream = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Hi"}], stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Streaming from Vertex"
    assert any(r.path.endswith(":streamGenerateContent") and r.query == {"alt": ["sse"]} for r in emu.requests)
    assert chunks[-1].usage is not None


@pytest.mark.parametrize("stream", [False, True])
def test_claude_on_vertex_tool_loop_with_thinking(emulator: Start, stream: bool) -> None:
    script = claude.scripted(
        [claude.tool_use("get_weather", {"city": "Oslo"}, thinking="Look it up."), "It is 3°C in Oslo."]
    )
    handler, emu, info = start_vertex(emulator, claude=script)
    client = router(deployment(emu, info, model=CLAUDE)).openai_client()
    messages: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client.chat.completions.create(model="m", messages=messages, tools=[WEATHER], reasoning_effort="low")
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "3°C"},
    ]
    if stream:
        chunks = client.chat.completions.create(
            model="m", messages=messages, tools=[WEATHER], reasoning_effort="low", stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        answer = client.chat.completions.create(model="m", messages=messages, tools=[WEATHER], reasoning_effort="low")
        text = answer.choices[0].message.content or ""
    assert text == "It is 3°C in Oslo."
    method = "streamRawPredict" if stream else "rawPredict"
    paths = [r.path for r in emu.requests if r.path != "/token"]
    assert paths[-1] == f"/v1/projects/{vx.PROJECT}/locations/us-east5/publishers/anthropic/models/{CLAUDE}:{method}"
    assert handler.bodies[-1]["anthropic_version"] == "vertex-2023-10-16" and "model" not in handler.bodies[-1]
    assert handler.bodies[-1]["messages"][1]["content"][0]["type"] == "thinking"


def test_token_refreshed_in_the_background_before_expiry(emulator: Start) -> None:
    """Within REFRESH_AHEAD of expiry, calls go on with the current token while a new one is fetched."""
    handler, emu, info = start_vertex(
        emulator, gemini=vx.gemini_emulator(gem.response("ok")), token_lifetime=int(vertex.REFRESH_AHEAD) - 60
    )
    client = router(deployment(emu, info)).openai_client()
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "1"}])
    first_token = next(iter(handler.tokens))
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "2"}])
    calls = [r for r in emu.requests if r.path != "/token"]
    assert calls[1].headers["authorization"] == f"Bearer {first_token}"  # not held up by the refresh
    deadline = time.monotonic() + 5
    while handler.token_requests < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert handler.token_requests == 2


def test_an_expired_token_is_refreshed_before_the_call(emulator: Start) -> None:
    handler, emu, info = start_vertex(emulator, gemini=vx.gemini_emulator(gem.response("ok")), token_lifetime=1)
    client = router(deployment(emu, info)).openai_client()
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "1"}])
    time.sleep(1.1)
    completion = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "2"}])
    assert completion.choices[0].message.content == "ok"
    assert handler.token_requests >= 2


def test_a_forged_service_account_gets_no_token(emulator: Start) -> None:
    """The token endpoint checks the JWT signature: a key the emulator does not know is refused."""
    _, emu, _ = start_vertex(emulator, gemini=vx.gemini_emulator(gem.response("never")))
    forged, _ = vx.service_account(f"{emu.url}/token")
    client = router(deployment(emu, forged)).openai_client()
    with pytest.raises(openai.AuthenticationError, match="could not be refreshed"):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])


def test_project_from_the_service_account_and_a_wrong_one_is_a_403(emulator: Start) -> None:
    _, emu, info = start_vertex(emulator, gemini=vx.gemini_emulator(gem.response("ok")))
    client = router(deployment(emu, info, project="someone-else")).openai_client()
    with pytest.raises(openai.PermissionDeniedError, match="Permission denied on resource project"):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])


def test_failover_from_anthropic_to_claude_on_vertex_carries_the_signature(emulator: Start) -> None:
    direct = claude.scripted(
        [claude.tool_use("get_weather", {"city": "Oslo"}, thinking="Look it up."), claude.overloaded()]
    )
    direct_emu = emulator(direct)
    on_vertex = claude.scripted(["It is 3°C in Oslo."])
    on_vertex.signatures = direct.signatures  # one model family: Vertex's Claude accepts what Claude signed
    _, vertex_emu, info = start_vertex(emulator, claude=on_vertex)
    r = router(
        {"provider": "anthropic", "model": "claude-sonnet-4-5", "api_base": direct_emu.url, "api_key": "sk-ant-x" * 3},
        deployment(vertex_emu, info, model=CLAUDE),
    )
    client = r.openai_client()
    messages: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client.chat.completions.create(model="m", messages=messages, tools=[WEATHER], reasoning_effort="low")
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "3°C"},
    ]
    stream = client.chat.completions.create(
        model="m", messages=messages, tools=[WEATHER], reasoning_effort="low", stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "It is 3°C in Oslo."
    turn = on_vertex.bodies[0]["messages"][1]["content"]
    assert turn[0]["type"] == "thinking" and turn[0]["signature"] in direct.signatures


def test_global_and_regional_hosts() -> None:
    r = Router(
        {
            "models": [
                {
                    "name": "m",
                    "deployments": [
                        {"provider": "vertex", "model": "gemini-2.5-pro", "location": "global", "project": "p"},
                        {"provider": "vertex", "model": "gemini-2.5-pro", "location": "europe-west4", "project": "p"},
                    ],
                }
            ]
        }
    )
    world, europe = r.route("m").targets
    assert vertex.base_url(world) == "https://aiplatform.googleapis.com"
    assert vertex.base_url(europe) == "https://europe-west4-aiplatform.googleapis.com"
    assert r.state(world) is not r.state(europe)


def test_credentials_info_never_shows_in_a_repr(emulator: Start) -> None:
    _, emu, info = start_vertex(emulator)
    shown = repr(router(deployment(emu, info)).route("m").targets[0])
    assert "PRIVATE KEY" not in shown


def test_application_default_credentials(emulator: Start, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ``credentials``: google-auth's ADC (here GOOGLE_APPLICATION_CREDENTIALS), its project used."""
    handler, emu, info = start_vertex(emulator, gemini=vx.gemini_emulator(gem.response("via ADC")))
    path = tmp_path / "adc.json"
    path.write_text(json.dumps(info))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.setattr(vertex, "_SOURCES", {})
    d = {"provider": "vertex", "model": "gemini-2.5-flash", "api_base": emu.url, "location": "us-east5"}
    completion = (
        router(d).openai_client().chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    )
    assert completion.choices[0].message.content == "via ADC"
    assert handler.token_requests == 1
