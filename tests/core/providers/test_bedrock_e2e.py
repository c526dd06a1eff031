"""End to end: the openai SDK → polyroute → a loopback Bedrock emulator (SigV4 checked, event-stream framing).

Also the failover that matters most in practice: Anthropic's API → Claude on Bedrock, streamed, with the thinking
signatures carried where the API takes them and dropped where it cannot, without a 400.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest

from polyroute import Router
from polyroute.providers import bedrock
from tests.emulators import Emulator, Reply
from tests.emulators import anthropic_format as claude
from tests.emulators import bedrock_format as br
from tests.emulators.server import Handler

Start = Callable[[Handler], Emulator]
CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
NOVA = "us.amazon.nova-pro-v1:0"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
SIGV4 = {
    "aws_access_key_id": br.ACCESS_KEY,
    "aws_secret_access_key": br.SECRET_KEY,
    "aws_session_token": br.SESSION_TOKEN,
    "aws_region": br.REGION,
}


def deployment(emu: Emulator, model: str = CLAUDE, **extra: Any) -> dict[str, Any]:
    return {"provider": "bedrock", "model": model, "api_base": emu.url, **SIGV4, **extra}


def router(*deployments: dict[str, Any]) -> Router:
    labelled = [{"id": f"d{i}", **d} for i, d in enumerate(deployments)]
    return Router({"models": [{"name": "m", "deployments": labelled}], "retry": {"backoff": 0}})


def test_sync_text_signed_with_sigv4(emulator: Start) -> None:
    script = br.scripted(["Hello from Bedrock!"])
    emu = emulator(script)
    client = router(deployment(emu)).openai_client()
    completion = client.chat.completions.create(
        model="m",
        messages=[{"role": "system", "content": "Be nice."}, {"role": "user", "content": "Hi"}],
        max_tokens=50,
        temperature=0.2,
        stop=["END"],
    )
    assert completion.choices[0].message.content == "Hello from Bedrock!"
    assert completion.usage is not None and completion.usage.prompt_tokens == 11
    request = emu.requests[0]
    assert request.path == "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"
    assert request.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={br.ACCESS_KEY}/")
    assert script.bodies[0] == {
        "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
        "system": [{"text": "Be nice."}],
        "inferenceConfig": {"maxTokens": 50, "temperature": 0.2, "stopSequences": ["END"]},
    }


async def test_async_stream_with_thinking_tool_call_and_usage(emulator: Start) -> None:
    turn = [br.reasoning("Need the weather."), br.text("Checking."), br.tool_use("get_weather", {"city": "Paris"})]
    script = br.scripted([turn], pieces=4, usage={"inputTokens": 20, "outputTokens": 9, "cacheReadInputTokens": 5})
    emu = emulator(script)
    client = router(deployment(emu)).async_openai_client()
    stream = await client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER],
        reasoning_effort="low",
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert emu.requests[0].path.endswith("/converse-stream")
    assert script.bodies[0]["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 2048}}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices)
    assert (text, reasoning) == ("Checking.", "Need the weather.")
    blocks = [b for c in chunks if c.choices for b in (getattr(c.choices[0].delta, "thinking_blocks", None) or [])]
    assert blocks == [{"type": "thinking", "thinking": "Need the weather.", "signature": next(iter(script.signatures))}]
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert calls[0].function.name == "get_weather"
    assert json.loads("".join(tc.function.arguments or "" for tc in calls)) == {"city": "Paris"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    usage = chunks[-1].usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (25, 9)
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 5


@pytest.mark.parametrize("stream", [False, True])
def test_tool_loop_gets_its_thinking_back_from_the_store(emulator: Start, stream: bool) -> None:
    """The client resends the tool turn without thinking blocks (most do); Claude on Bedrock wants it first."""
    turns = [[br.reasoning("Look it up."), br.tool_use("get_weather", {"city": "Oslo"})], "It is 3°C in Oslo."]
    script = br.scripted(turns)
    emu = emulator(script)
    client = router(deployment(emu)).openai_client()
    messages: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client.chat.completions.create(model="m", messages=messages, tools=[WEATHER], reasoning_effort="low")
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "3°C"},
    ]
    if stream:
        chunks = list(
            client.chat.completions.create(
                model="m", messages=messages, tools=[WEATHER], reasoning_effort="low", stream=True
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        answer = client.chat.completions.create(model="m", messages=messages, tools=[WEATHER], reasoning_effort="low")
        text = answer.choices[0].message.content or ""
    assert text == "It is 3°C in Oslo."
    sent = script.bodies[1]["messages"][1]["content"]
    assert "reasoningContent" in sent[0] and sent[1]["toolUse"]["toolUseId"] == call.id


def test_wrong_secret_is_a_403_and_not_retried(emulator: Start) -> None:
    emu = emulator(br.scripted(["never"]))
    client = router(deployment(emu, aws_secret_access_key="wrong-secret-0123456789")).openai_client(max_retries=0)
    with pytest.raises(openai.PermissionDeniedError, match="signature we calculated does not match"):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}])
    assert len(emu.requests) == 1


def test_a_changed_body_fails_the_signature() -> None:
    """The emulator's check is real: the signature covers the body."""
    t = (
        router({"provider": "bedrock", "model": CLAUDE, "api_base": "http://127.0.0.1:9", **SIGV4})
        .route("m")
        .targets[0]
    )
    upstream = bedrock.build_request({"model": "m", "messages": [{"role": "user", "content": "Hi"}]}, t)
    headers = {**upstream.headers, "host": "127.0.0.1:9"}
    path = upstream.url.removeprefix("http://127.0.0.1:9")
    good = br.Request("POST", path, {}, headers, upstream.content)
    assert br.check_auth(good) is None
    bad = br.Request("POST", path, {}, headers, upstream.content.replace(b"Hi", b"Ho"))
    reply = br.check_auth(bad)
    assert reply is not None and reply.status == 403


def test_bedrock_api_key_is_a_bearer_token(emulator: Start) -> None:
    emu = emulator(br.scripted(["keyed"]))
    d = {"provider": "bedrock", "model": CLAUDE, "api_base": emu.url, "api_key": br.API_KEY, "aws_region": "us-east-1"}
    completion = (
        router(d).openai_client().chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    )
    assert completion.choices[0].message.content == "keyed"
    assert emu.requests[0].headers["authorization"] == f"Bearer {br.API_KEY}"
    assert "x-amz-date" not in emu.requests[0].headers


def test_arn_model_id_is_url_encoded_and_signed(emulator: Start) -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123xyz"
    script = br.scripted(["from a profile"])
    emu = emulator(script)
    completion = (
        router(deployment(emu, model=arn))
        .openai_client()
        .chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    )
    assert completion.choices[0].message.content == "from a profile"
    assert emu.requests[0].path == (
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc123xyz/converse"
    )
    assert script.models == [arn]


def test_throttling_fails_over_to_the_next_deployment(emulator: Start) -> None:
    first, second = emulator(br.scripted([br.throttled()])), emulator(br.scripted(["from the second"]))
    client = router(deployment(first), deployment(second)).openai_client(max_retries=0)
    response = client.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert response.parse().choices[0].message.content == "from the second"
    assert response.headers["x-polyroute-deployment"] == "d1"


@pytest.mark.parametrize(
    ("kind", "status"),
    [("ModelNotReadyException", 503), ("ServiceUnavailableException", 503), ("InternalServerException", 500)],
)
def test_retryable_exceptions_fail_over(emulator: Start, kind: str, status: int) -> None:
    first = emulator(br.scripted([br.error(status if status != 503 else 429, kind, "not now")]))
    second = emulator(br.scripted(["ok"]))
    client = router(deployment(first), deployment(second)).openai_client(max_retries=0)
    completion = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert completion.choices[0].message.content == "ok"


def test_validation_error_is_a_400_and_not_failed_over(emulator: Start) -> None:
    first = emulator(br.scripted([br.invalid("The provided model identifier is invalid.")]))
    second = emulator(br.scripted(["never"]))
    client = router(deployment(first), deployment(second)).openai_client(max_retries=0)
    with pytest.raises(openai.BadRequestError, match="model identifier is invalid"):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert second.requests == []


def _throttled_stream(request: Any) -> Reply:
    frames = [br.event("messageStart", {"role": "assistant"}), br.exception("throttlingException", "Slow down")]
    return Reply(chunks=frames, headers={"content-type": "application/vnd.amazon.eventstream"})


def test_in_stream_throttling_before_content_fails_over(emulator: Start) -> None:
    first, second = emulator(br.scripted([_throttled_stream])), emulator(br.scripted(["streamed elsewhere"]))
    client = router(deployment(first), deployment(second)).openai_client(max_retries=0)
    chunks = list(client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "streamed elsewhere"


def test_stream_cut_after_content_is_an_api_error(emulator: Start) -> None:
    frames = br.stream_frames(br.response([br.text("partial answer here")], "end_turn"), pieces=3)
    cut = Reply(chunks=frames[:3], headers={"content-type": "application/vnd.amazon.eventstream"}, cut_after=3)
    emu = emulator(br.scripted([cut]))
    client = router(deployment(emu)).openai_client(max_retries=0)
    stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True)
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


def test_images_go_as_bytes_and_urls_are_refused(emulator: Start) -> None:
    script = br.scripted(["a red dot"])
    emu = emulator(script)
    client = router(deployment(emu)).openai_client(max_retries=0)
    pixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{pixel}"}}
    content: Any = [{"type": "text", "text": "What is this?"}, image]
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": content}])
    assert script.bodies[0]["messages"][0]["content"][1] == {"image": {"format": "png", "source": {"bytes": pixel}}}
    url: Any = [{"type": "image_url", "image_url": {"url": "https://example.com/dot.png"}}]
    with pytest.raises(openai.BadRequestError, match="data URL"):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": url}])


def test_guardrails_and_native_fields_by_config(emulator: Start) -> None:
    script = br.scripted(["guarded"])
    emu = emulator(script)
    guardrail = {"guardrailIdentifier": "gr-1", "guardrailVersion": "1"}
    client = router(deployment(emu, params={"guardrailConfig": guardrail})).openai_client()
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], extra_body={"top_k": 5})
    assert script.bodies[0]["guardrailConfig"] == guardrail
    assert script.bodies[0]["additionalModelRequestFields"] == {"top_k": 5}


def test_blank_history_turns_are_left_out(emulator: Start) -> None:
    """AutoGen and LangChain histories can hold an assistant turn of "\\n": Bedrock refuses an empty message."""
    script = br.scripted(["fine"])
    emu = emulator(script)
    client = router(deployment(emu)).openai_client(max_retries=0)
    messages: Any = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "\n"},
        {"role": "user", "content": "b"},
    ]
    assert client.chat.completions.create(model="m", messages=messages).choices[0].message.content == "fine"


# -- failover from Anthropic's API to Bedrock ---------------------------------------------------------------------


def _anthropic_then_bedrock(emulator: Start, model: str, **bedrock_options: Any) -> tuple[Any, Any, Router]:
    anthropic_script = claude.scripted(
        [claude.tool_use("get_weather", {"city": "Oslo"}, thinking="Look it up."), claude.overloaded()]
    )
    anthropic_emu = emulator(anthropic_script)
    bedrock_script = br.scripted(["It is 3°C in Oslo."], **bedrock_options)
    bedrock_emu = emulator(bedrock_script)
    deployments = [
        {
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "api_base": anthropic_emu.url,
            "api_key": "sk-ant-x" * 3,
        },
        deployment(bedrock_emu, model=model),
    ]
    return anthropic_script, bedrock_script, router(*deployments)


def _tool_loop(client: Any, keep_blocks: bool, reasoning: bool = True) -> str:
    effort: Any = {"reasoning_effort": "low"} if reasoning else {}
    messages: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client.chat.completions.create(model="m", messages=messages, tools=[WEATHER], **effort)
    message = first.choices[0].message
    call = message.tool_calls[0]
    assistant: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]}
    if keep_blocks:
        assistant["thinking_blocks"] = message.thinking_blocks
    messages += [assistant, {"role": "tool", "tool_call_id": call.id, "content": "3°C"}]
    stream = client.chat.completions.create(model="m", messages=messages, tools=[WEATHER], stream=True, **effort)
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


@pytest.mark.parametrize("keep_blocks", [True, False])
def test_failover_to_claude_on_bedrock_carries_the_signature(emulator: Start, keep_blocks: bool) -> None:
    anthropic_script, bedrock_script, r = _anthropic_then_bedrock(emulator, CLAUDE)
    bedrock_script.signatures = anthropic_script.signatures  # one model family: Bedrock accepts what Claude signed
    assert _tool_loop(r.openai_client(max_retries=0), keep_blocks) == "It is 3°C in Oslo."
    turn = bedrock_script.bodies[0]["messages"][1]["content"]
    signature = next(iter(anthropic_script.signatures))
    assert turn[0] == {"reasoningContent": {"reasoningText": {"text": "Look it up.", "signature": signature}}}
    assert bedrock_script.bodies[0]["additionalModelRequestFields"]["thinking"]["type"] == "enabled"


def test_failover_to_another_model_on_bedrock_drops_the_thinking(emulator: Start) -> None:
    _, bedrock_script, r = _anthropic_then_bedrock(emulator, NOVA)
    client = r.openai_client(max_retries=0)
    messages: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client.chat.completions.create(model="m", messages=messages, tools=[WEATHER])
    message = first.choices[0].message
    call = message.tool_calls[0]  # type: ignore[index]
    assistant = {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]}
    assistant["thinking_blocks"] = message.thinking_blocks  # type: ignore[attr-defined]
    messages += [assistant, {"role": "tool", "tool_call_id": call.id, "content": "3°C"}]
    stream = client.chat.completions.create(model="m", messages=messages, tools=[WEATHER], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "It is 3°C in Oslo."
    sent = bedrock_script.bodies[0]["messages"]
    assert not any("reasoningContent" in b for m in sent for b in m["content"])


def test_failover_without_thinking_on_drops_the_blocks(emulator: Start) -> None:
    """Thinking off for this call: Claude needs no blocks, so none is sent (nor any signature to check)."""
    _, bedrock_script, r = _anthropic_then_bedrock(emulator, CLAUDE)
    assert _tool_loop(r.openai_client(max_retries=0), keep_blocks=True, reasoning=False) == "It is 3°C in Oslo."
    sent = bedrock_script.bodies[0]["messages"]
    assert not any("reasoningContent" in b for m in sent for b in m["content"])
    assert "additionalModelRequestFields" not in bedrock_script.bodies[0]


# -- credentials, region and config -------------------------------------------------------------------------------


def test_credentials_and_region_from_the_environment(emulator: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's chain: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN and AWS_REGION."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", br.ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", br.SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", br.SESSION_TOKEN)
    monkeypatch.setenv("AWS_REGION", br.REGION)
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)
    monkeypatch.setattr(bedrock, "_CREDENTIALS", {})  # resolved once per process: start this test afresh
    emu = emulator(br.scripted(["from the chain"]))
    d = {"provider": "bedrock", "model": CLAUDE, "api_base": emu.url}
    completion = (
        router(d).openai_client().chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    )
    assert completion.choices[0].message.content == "from the chain"


def test_missing_region_is_a_clear_401(emulator: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/polyroute-test")
    monkeypatch.setattr(bedrock, "_SESSIONS", {})
    d = {"provider": "bedrock", "model": CLAUDE, **{k: v for k, v in SIGV4.items() if k != "aws_region"}}
    client = router(d).openai_client()
    with pytest.raises(openai.AuthenticationError, match="no AWS region: set aws_region"):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])


def test_regions_of_one_model_keep_their_own_health(emulator: Start) -> None:
    """A throttled us-east-1 must not cool down the same model in another region (the template base is shared)."""
    config = {
        "models": [
            {
                "name": "m",
                "deployments": [
                    {"provider": "bedrock", "model": CLAUDE, "aws_region": "us-east-1", "api_key": br.API_KEY},
                    {"provider": "bedrock", "model": CLAUDE, "aws_region": "us-west-2", "api_key": br.API_KEY},
                ],
            }
        ]
    }
    r = Router(config)
    east, west = r.route("m").targets
    assert bedrock.endpoint(east, False).startswith("https://bedrock-runtime.us-east-1.amazonaws.com/model/")
    assert bedrock.endpoint(west, True).startswith("https://bedrock-runtime.us-west-2.amazonaws.com/model/")
    assert r.state(east) is not r.state(west)


def test_cloud_fields_belong_to_their_provider_and_secrets_stay_hidden() -> None:
    from polyroute.errors import ConfigError

    with pytest.raises(ConfigError, match="aws_region only apply to provider 'bedrock'"):
        Router({"models": [{"name": "m", "deployments": [{"provider": "anthropic", "model": "x", "aws_region": "a"}]}]})
    with pytest.raises(ConfigError, match="project only apply to provider 'vertex'"):
        Router({"models": [{"name": "m", "deployments": [{"provider": "bedrock", "model": "x", "project": "p"}]}]})
    r = router({"provider": "bedrock", "model": CLAUDE, "api_base": "http://127.0.0.1:9", **SIGV4})
    shown = repr(r.route("m").targets[0].deployment)
    assert br.SECRET_KEY not in shown and br.SESSION_TOKEN not in shown


def test_a_corrupt_frame_is_an_error_not_a_crash() -> None:
    frame = bytearray(br.event("messageStart", {"role": "assistant"}))
    frame[-1] ^= 0xFF  # the message CRC
    decoder = bedrock.stream_decoder()
    with pytest.raises(ValueError, match="corrupt event-stream frame"):
        decoder.feed(bytes(frame))


@pytest.mark.parametrize("stream", [False, True])
def test_guardrail_intervention_is_a_content_filter_refusal(emulator: Start, stream: bool) -> None:
    emu = emulator(br.scripted([[br.text("Sorry, the model cannot answer this.")]], stop="guardrail_intervened"))
    client = router(deployment(emu, model=NOVA)).openai_client()
    messages: Any = [{"role": "user", "content": "something blocked"}]
    if stream:
        chunks = list(client.chat.completions.create(model="m", messages=messages, stream=True))
        refusal = "".join(getattr(c.choices[0].delta, "refusal", None) or "" for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    else:
        completion = client.chat.completions.create(model="m", messages=messages)
        refusal, finish = completion.choices[0].message.refusal or "", [completion.choices[0].finish_reason]
    assert refusal == "Bedrock stopped this answer (stopReason: guardrail_intervened)."
    assert finish == ["content_filter"]


def test_structured_output_goes_as_output_config(emulator: Start) -> None:
    script = br.scripted(['{"city":"Paris"}'])
    emu = emulator(script)
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    completion = (
        router(deployment(emu))
        .openai_client()
        .chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "Capital of France?"}],
            response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
        )
    )
    assert json.loads(completion.choices[0].message.content or "") == {"city": "Paris"}
    text_format = script.bodies[0]["outputConfig"]["textFormat"]
    assert text_format["type"] == "json_schema"
    assert json.loads(text_format["structure"]["jsonSchema"]["schema"])["properties"] == schema["properties"]


def test_refusals_name_bedrock_not_the_messages_api(emulator: Start) -> None:
    client = router(deployment(emulator(br.scripted(["never"])), model=NOVA)).openai_client()
    with pytest.raises(openai.BadRequestError, match=r"\(Bedrock Converse\) has no sampling seed"):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], seed=1)


def test_named_profile_from_the_shared_files(emulator: Start, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """``aws_profile``: credentials and region from the profile, through botocore's own config loading."""
    (tmp_path / "credentials").write_text(
        f"[bedrock-prod]\naws_access_key_id = {br.ACCESS_KEY}\naws_secret_access_key = {br.SECRET_KEY}\n"
        f"aws_session_token = {br.SESSION_TOKEN}\n"
    )
    (tmp_path / "config").write_text(f"[profile bedrock-prod]\nregion = {br.REGION}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(bedrock, "_CREDENTIALS", {})
    monkeypatch.setattr(bedrock, "_SESSIONS", {})
    emu = emulator(br.scripted(["from the profile"]))
    d = {"provider": "bedrock", "model": CLAUDE, "api_base": emu.url, "aws_profile": "bedrock-prod"}
    completion = (
        router(d).openai_client().chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    )
    assert completion.choices[0].message.content == "from the profile"


def test_stream_without_metadata_still_finishes(emulator: Start) -> None:
    frames = br.stream_frames(br.response([br.text("done")], "end_turn"))[:-1]  # no metadata frame
    reply = Reply(chunks=frames, headers={"content-type": "application/vnd.amazon.eventstream"})
    client = router(deployment(emulator(br.scripted([reply])))).openai_client()
    chunks = list(client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "done"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]


@pytest.mark.parametrize("stream", [False, True])
def test_parallel_tool_calls_false_keeps_the_first_call(emulator: Start, stream: bool) -> None:
    """Converse cannot say it; the answer's second call is left out, as LangChain's with_structured_output expects."""
    turn = [br.tool_use("get_weather", {"city": "Oslo"}), br.tool_use("get_weather", {"city": "Rome"})]
    client = router(deployment(emulator(br.scripted([turn])))).openai_client()
    messages: Any = [{"role": "user", "content": "Weather in Oslo and Rome?"}]
    if stream:
        chunks = client.chat.completions.create(
            model="m", messages=messages, tools=[WEATHER], parallel_tool_calls=False, stream=True
        )
        calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or [] if tc.id]
        names = [tc.function.name for tc in calls]  # type: ignore[union-attr]
    else:
        answer = client.chat.completions.create(
            model="m", messages=messages, tools=[WEATHER], parallel_tool_calls=False
        )
        names = [tc.function.name for tc in answer.choices[0].message.tool_calls or []]  # type: ignore[union-attr]
    assert names == ["get_weather"]
