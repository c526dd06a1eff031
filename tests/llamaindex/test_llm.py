"""Polyroute as a LlamaIndex LLM: construction, metadata, the eight call methods, usage and the serving deployment,
failover, instrumentation, structured output, provider round-trip data, serialization without secrets."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from llama_index.core.base.llms.types import ImageBlock, TextBlock, VideoBlock
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.llms import ChatMessage, ChatResponse, MessageRole
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from llama_index.llms.polyroute import Polyroute
from polyroute import NoRouteError, Router
from tests.emulators import Emulator, Reply, Request, gemini_format
from tests.emulators import anthropic_format as claude
from tests.emulators.gemini_format import GeminiEmulator
from tests.emulators.openai_format import completion, handler
from tests.llamaindex.scripted import Call, add, error, multiply, openai_reply

KEY = "sk-test-llamaindex-SECRET-0123456789"
USER = [ChatMessage(role=MessageRole.USER, content="hi")]


def deployment(emu: Emulator, model: str = "gpt-up", **extra: Any) -> dict[str, Any]:
    return {"provider": "openai", "model": model, "api_base": emu.url + "/v1", "api_key": KEY, **extra}


def llm_for(*deployments: dict[str, Any], **kwargs: Any) -> Polyroute:
    return Polyroute(model="m", config={"models": [{"name": "m", "deployments": list(deployments)}]}, **kwargs)


# -- construction and metadata ----------------------------------------------------------------------------------


def test_construct_with_router_config_or_neither(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(handler("ok"))
    config = {"models": [{"name": "m", "deployments": [deployment(emu)]}]}
    router = Router(config)
    assert Polyroute(model="m", router=router).router is router
    assert Polyroute(model="m", config=config).router.model_names == ["m"]
    from_env = Polyroute(model="openai/gpt-4o-mini")  # Router() from the environment: direct names only
    assert from_env.router.config.models == []
    assert from_env.metadata.context_window == 128000  # from the catalog, not LlamaIndex's 3900 default
    with pytest.raises(ValueError, match="not both"):
        Polyroute(model="m", router=router, config=config)
    with pytest.raises(NoRouteError, match="'nope'"):
        Polyroute(model="nope", router=router)


def test_metadata_from_the_catalog() -> None:
    config = {
        "models": [
            {"name": "m", "deployments": [{"provider": "mock", "model": "mock-1"}]},
            {
                "name": "no-tools",
                "deployments": [{"provider": "mock", "model": "mock-small", "capabilities": {"tools": False}}],
            },
        ]
    }
    meta = Polyroute(model="m", config=config).metadata
    assert (meta.context_window, meta.num_output, meta.model_name) == (128000, 16384, "m")
    assert meta.is_chat_model and meta.is_function_calling_model
    small = Polyroute(model="no-tools", config=config, max_tokens=100).metadata
    assert (small.context_window, small.num_output, small.is_function_calling_model) == (32000, 100, False)
    assert Polyroute.class_name() == "Polyroute"


# -- the call methods -------------------------------------------------------------------------------------------


def check_served(response: Any, *, streamed: bool) -> None:
    assert response.additional_kwargs["deployment"] == "openai/gpt-up"
    assert response.additional_kwargs["attempts"] == 1
    assert response.additional_kwargs["total_tokens"] > 0
    assert response.raw["polyroute"]["deployment"] == "openai/gpt-up"
    assert response.raw["usage"]["total_tokens"] == response.additional_kwargs["total_tokens"]
    if not streamed:
        assert response.raw["object"] == "chat.completion"


def test_chat(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(handler("Hello there"))
    response = llm_for(deployment(emu), temperature=0.2, max_tokens=50).chat(USER)
    assert response.message.role == MessageRole.ASSISTANT
    assert response.message.content == "Hello there"
    check_served(response, streamed=False)
    sent = emu.requests[0].json()
    assert sent["messages"] == [{"role": "user", "content": "hi"}]
    assert sent["temperature"] == 0.2
    assert sent.get("max_completion_tokens", sent.get("max_tokens")) == 50  # OpenAI's newer name, per the router


async def test_achat(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(handler("Hello async"))
    response = await llm_for(deployment(emu)).achat(USER)
    assert response.message.content == "Hello async"
    check_served(response, streamed=False)


def test_stream_chat(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(handler("abcdefghij", pieces=5))
    responses = list(llm_for(deployment(emu)).stream_chat(USER))
    assert "".join(r.delta or "" for r in responses) == "abcdefghij"
    assert [r.message.content for r in responses if r.delta] == ["ab", "abcd", "abcdef", "abcdefgh", "abcdefghij"]
    check_served(responses[-1], streamed=True)
    assert responses[-1].raw["object"] == "chat.completion.chunk"
    assert emu.requests[0].json()["stream"] is True


async def test_astream_chat(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(handler("abcdefghij", pieces=5))
    responses = [r async for r in await llm_for(deployment(emu)).astream_chat(USER)]
    assert responses[-1].message.content == "abcdefghij"
    check_served(responses[-1], streamed=True)


def test_complete_and_stream_complete(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(handler("Completed", pieces=3))
    llm = llm_for(deployment(emu))
    done = llm.complete("Say it")
    assert done.text == "Completed"
    check_served(done, streamed=False)
    pieces = list(llm.stream_complete("Say it"))
    assert "".join(p.delta or "" for p in pieces) == "Completed" == pieces[-1].text
    check_served(pieces[-1], streamed=True)
    assert emu.requests[0].json()["messages"] == [{"role": "user", "content": "Say it"}]


async def test_acomplete_and_astream_complete(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(handler("Completed", pieces=3))
    llm = llm_for(deployment(emu))
    assert (await llm.acomplete("Say it")).text == "Completed"
    pieces = [p async for p in await llm.astream_complete("Say it")]
    assert pieces[-1].text == "Completed"
    check_served(pieces[-1], streamed=True)


def test_leaving_a_stream_early_is_clean(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(handler("a long answer that streams in many pieces", pieces=20))
    stream = llm_for(deployment(emu)).stream_chat(USER)
    first = next(stream)
    assert first.message.role == MessageRole.ASSISTANT
    stream.close()  # runs the generator's cleanup: the SDK stream (and the upstream response) is closed


def test_multimodal_and_system_messages_reach_the_wire(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(handler("seen"))
    image = ImageBlock(url="https://example.com/cat.png", detail="low")
    messages = [
        ChatMessage(role=MessageRole.SYSTEM, content="Be brief."),
        ChatMessage(role=MessageRole.USER, blocks=[TextBlock(text="What is this?"), image]),
    ]
    llm_for(deployment(emu)).chat(messages)
    sent = emu.requests[0].json()["messages"]
    assert sent[0] == {"role": "system", "content": "Be brief."}
    assert sent[1]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
    ]
    video = ChatMessage(role=MessageRole.USER, blocks=[VideoBlock(url="https://example.com/v.mp4")])
    with pytest.raises(ValueError, match="VideoBlock"):
        llm_for(deployment(emu)).chat([video])


# -- failover and errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("primary", ["openai", "anthropic"])
def test_failover_is_visible(emulator: Callable[..., Emulator], stream: bool, primary: str) -> None:
    up = emulator(handler("from the backup"))
    if primary == "anthropic":  # Claude overloaded (529), then OpenAI: failover across wire formats
        down = emulator(lambda _request: claude.overloaded())
        first = {"provider": "anthropic", "model": "claude-sonnet-4-5", "api_base": down.url, "api_key": KEY}
    else:
        down = emulator(lambda _request: error("overloaded", status=503))
        first = deployment(down, "gpt-primary")
    llm = llm_for(first, deployment(up, "gpt-backup"))
    if stream:
        response: ChatResponse = list(llm.stream_chat(USER))[-1]
    else:
        response = llm.chat(USER)
    assert response.message.content == "from the backup"
    assert response.additional_kwargs["deployment"] == "openai/gpt-backup"
    assert response.additional_kwargs["attempts"] == 2
    assert response.raw["polyroute"] == {**response.raw["polyroute"], "deployment": "openai/gpt-backup", "attempts": 2}
    assert len(down.requests) == 1 and len(up.requests) == 1


async def test_exhausted_failover_raises_without_the_key(emulator: Callable[..., Emulator]) -> None:
    down = emulator(lambda _request: error("overloaded", status=503))
    llm = llm_for(deployment(down))
    with pytest.raises(openai.APIStatusError) as caught:
        await llm.achat(USER)
    assert KEY not in str(caught.value) and KEY not in json.dumps(caught.value.body)
    # a lone deployment is retried by the router (retry.last_resort_retries=2), never rerun by the SDK (max_retries=0)
    assert len(down.requests) == 3


# -- tools ------------------------------------------------------------------------------------------------------


def two_calls(request: Request) -> Reply:
    body = request.json()
    return Reply.json(
        completion(
            None,
            model=body["model"],
            tool_calls=[
                {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}},
                {"id": "c2", "type": "function", "function": {"name": "multiply", "arguments": '{"a": 3, "b": 4}'}},
            ],
        )
    )


def test_tool_specs_choice_and_parallel_calls(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(two_calls)
    llm = llm_for(deployment(emu))
    tools = [FunctionTool.from_defaults(add), FunctionTool.from_defaults(multiply)]
    single = llm.chat_with_tools(tools, user_msg="go")
    assert [c.tool_name for c in llm.get_tool_calls_from_response(single)] == ["add"]
    assert len(single.message.additional_kwargs["tool_calls"]) == 1  # history matches what will be answered
    both = llm.chat_with_tools(tools, user_msg="go", allow_parallel_tool_calls=True, tool_required=True)
    selections = llm.get_tool_calls_from_response(both)
    assert [(s.tool_id, s.tool_name, s.tool_kwargs) for s in selections] == [
        ("c1", "add", {"a": 1, "b": 2}),
        ("c2", "multiply", {"a": 3, "b": 4}),
    ]
    first, second = (r.json() for r in emu.requests)
    assert first["tool_choice"] == "auto" and second["tool_choice"] == "required"
    assert "parallel_tool_calls" not in first
    spec = first["tools"][0]["function"]
    assert spec["name"] == "add" and "Add two integers." in spec["description"]
    assert spec["parameters"]["properties"] == {
        "a": {"title": "A", "type": "integer"},
        "b": {"title": "B", "type": "integer"},
    }
    llm.chat_with_tools(tools, user_msg="go", tool_choice="multiply")
    assert emu.requests[2].json()["tool_choice"] == {"type": "function", "function": {"name": "multiply"}}


def test_no_tool_call(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(handler("just text"))
    llm = llm_for(deployment(emu))
    response = llm.chat(USER)
    assert llm.get_tool_calls_from_response(response, error_on_no_tool_call=False) == []
    with pytest.raises(ValueError, match="Expected at least one tool call"):
        llm.get_tool_calls_from_response(response)


# -- structured output ------------------------------------------------------------------------------------------


class Album(BaseModel):
    """An album and its year."""

    title: str
    artist: str
    year: int
    tracks: list[str]


ALBUM = Album(title="Kind of Blue", artist="Miles Davis", year=1959, tracks=["So What", "Blue in Green"])


def album_tool_call(request: Request) -> Reply:
    """Answers with a call of the (only) output tool, after checking the schema it was given."""
    body = request.json()
    tool = body["tools"][0]["function"]
    if tool["name"] != "Album" or set(tool["parameters"]["properties"]) != {"title", "artist", "year", "tracks"}:
        return error(f"unexpected output tool {tool}")
    return openai_reply(body, [Call("call_album", "Album", ALBUM.model_dump())])


def test_structured_predict(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(album_tool_call)
    llm = llm_for(deployment(emu))
    album = llm.structured_predict(Album, PromptTemplate("Describe {name}."), name="Kind of Blue")
    assert album == ALBUM
    sent = emu.requests[0].json()
    assert sent["tool_choice"] == "required"
    assert sent["messages"][-1] == {"role": "user", "content": "Describe Kind of Blue."}


async def test_as_structured_llm_async_and_streamed(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(album_tool_call)
    structured = llm_for(deployment(emu)).as_structured_llm(Album)
    response = await structured.achat([ChatMessage(role=MessageRole.USER, content="Kind of Blue?")])
    assert response.raw == ALBUM
    assert Album.model_validate_json(response.message.content or "") == ALBUM
    partials = list(structured.stream_chat([ChatMessage(role=MessageRole.USER, content="Kind of Blue?")]))
    assert partials[-1].raw == ALBUM
    assert emu.requests[-1].json()["stream"] is True


@pytest.mark.parametrize("stream", [False, True])
async def test_structured_output_through_anthropic(emulator: Callable[..., Emulator], stream: bool) -> None:
    script = claude.scripted([claude.tool_use("Album", ALBUM.model_dump())])
    emu = emulator(script)
    llm = llm_for({"provider": "anthropic", "model": "claude-sonnet-4-5", "api_base": emu.url, "api_key": KEY})
    prompt = PromptTemplate("Describe {name}.")
    if stream:
        partials = [p async for p in await llm.astream_structured_predict(Album, prompt, name="Kind of Blue")]
        album = partials[-1]
    else:
        album = await llm.astructured_predict(Album, prompt, name="Kind of Blue")
    assert album == ALBUM
    (body,) = script.bodies
    # LlamaIndex's FunctionCallingProgram requires the tool only when not streaming
    assert body["tool_choice"]["type"] == ("auto" if stream else "any") and body["tools"][0]["name"] == "Album"


# -- provider round-trip data -----------------------------------------------------------------------------------


def reasoning_then_check(request: Request) -> Reply:
    """A DeepSeek-style model: thinks (reasoning_content) and calls a tool, then checks the thinking came back."""
    body = request.json()
    messages = body["messages"]
    if messages[-1]["role"] != "tool":
        return openai_reply(body, [Call("call_1", "add", {"a": 1, "b": 2})], reasoning="Add them.")
    assistant = messages[-2]
    if assistant.get("reasoning_content") != "Add them." or assistant["tool_calls"][0]["id"] != "call_1":
        return error(f"the assistant turn lost its reasoning or tool call: {assistant}")
    return Reply.json(completion(f"It is {messages[-1]['content']}.", model=body["model"]))


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_content_goes_back_next_turn(emulator: Callable[..., Emulator], stream: bool) -> None:
    emu = emulator(reasoning_then_check)
    llm = llm_for({**deployment(emu, "deepseek-reasoner"), "provider": "deepseek"})
    tools = [FunctionTool.from_defaults(add)]
    history = [ChatMessage(role=MessageRole.USER, content="1 + 2?")]
    first = list(llm.stream_chat_with_tools(tools, chat_history=history))[-1] if stream else None
    if first is None:
        first = llm.chat_with_tools(tools, chat_history=history)
    assert first.message.additional_kwargs["reasoning_content"] == "Add them."
    (call,) = llm.get_tool_calls_from_response(first)
    history += [
        first.message,
        ChatMessage(role=MessageRole.TOOL, content="3", additional_kwargs={"tool_call_id": call.tool_id}),
    ]
    assert llm.chat_with_tools(tools, chat_history=history).message.content == "It is 3."


CALL_SIGNATURE, TEXT_SIGNATURE = "c2lnLWNhbGw=", "c2lnLXRleHQ="


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_thought_signatures_go_back(emulator: Callable[..., Emulator], stream: bool) -> None:
    gemini = GeminiEmulator(
        gemini_format.response(
            None, calls=[{"name": "add", "args": {"a": 1, "b": 2}, "thoughtSignature": CALL_SIGNATURE}]
        ),
        gemini_format.response("It is 3.", text_signature=TEXT_SIGNATURE),
        gemini_format.response("Bye."),
    )
    emu = emulator(gemini)
    llm = llm_for({"provider": "gemini", "model": "gemini-3-pro-preview", "api_key": KEY, "api_base": emu.url})
    tools = [FunctionTool.from_defaults(add)]

    def turn(history: list[ChatMessage]) -> ChatMessage:
        if stream:
            response = list(llm.stream_chat_with_tools(tools, chat_history=history))[-1]
        else:
            response = llm.chat_with_tools(tools, chat_history=history)
        history.append(response.message)
        return response.message

    history = [ChatMessage(role=MessageRole.USER, content="1 + 2?")]
    called = turn(history)
    (wire_call,) = called.additional_kwargs["tool_calls"]
    assert wire_call["provider_specific_fields"] == {"thought_signature": CALL_SIGNATURE}
    history.append(ChatMessage(role=MessageRole.TOOL, content="3", additional_kwargs={"tool_call_id": wire_call["id"]}))
    answered = turn(history)
    assert answered.content == "It is 3."
    assert answered.additional_kwargs["provider_specific_fields"] == {"thought_signature": TEXT_SIGNATURE}
    history.append(ChatMessage(role=MessageRole.USER, content="Thanks!"))
    assert turn(history).content == "Bye."
    model_turns = [c["parts"] for c in gemini.bodies[2]["contents"] if c["role"] == "model"]
    assert model_turns[0][0]["thoughtSignature"] == CALL_SIGNATURE
    assert model_turns[1][-1] == {"text": "It is 3.", "thoughtSignature": TEXT_SIGNATURE}


# -- instrumentation --------------------------------------------------------------------------------------------


class Recorder(BaseEventHandler):
    """Collects instrumentation event class names."""

    events: list[BaseEvent] = []

    @classmethod
    def class_name(cls) -> str:
        return "Recorder"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    dispatcher = get_dispatcher()  # the root dispatcher: every LlamaIndex event propagates to it
    recorder = Recorder(events=[])
    dispatcher.add_event_handler(recorder)
    yield recorder
    dispatcher.event_handlers.remove(recorder)


async def test_instrumentation_events_fire(emulator: Callable[..., Emulator], recorder: Recorder) -> None:
    emu = emulator(handler("abcdef", pieces=3))
    llm = llm_for(deployment(emu))

    def names() -> list[str]:
        found = [type(e).__name__ for e in recorder.events if type(e).__name__.startswith("LLM")]
        recorder.events.clear()
        return found

    llm.chat(USER)
    assert names() == ["LLMChatStartEvent", "LLMChatEndEvent"]
    list(llm.stream_chat(USER))
    streamed = names()
    assert streamed[0] == "LLMChatStartEvent" and streamed[-1] == "LLMChatEndEvent"
    assert set(streamed[1:-1]) == {"LLMChatInProgressEvent"} and len(streamed) > 3
    await llm.acomplete("x")
    assert names() == ["LLMCompletionStartEvent", "LLMCompletionEndEvent"]
    [p async for p in await llm.astream_complete("x")]
    assert names()[-1] == "LLMCompletionEndEvent"
    await llm.achat(USER)
    chat_events = [e for e in recorder.events if type(e).__name__ == "LLMChatEndEvent"]
    assert chat_events[0].response.additional_kwargs["deployment"] == "openai/gpt-up"  # type: ignore[attr-defined]


# -- serialization ----------------------------------------------------------------------------------------------


def test_to_dict_holds_no_secret(emulator: Callable[..., Emulator], recorder: Recorder) -> None:
    emu = emulator(handler("ok"))
    llm = llm_for(deployment(emu), temperature=0.5)
    data = llm.to_dict()
    assert data["class_name"] == "Polyroute" and data["model"] == "m" and data["temperature"] == 0.5
    llm.chat(USER)
    shown = [json.dumps(data, default=str), llm.to_json(), repr(llm), str(llm), json.dumps(llm.to_payload())]
    shown += [repr(e) for e in recorder.events]
    for text in shown:
        assert KEY not in text
    assert KEY not in repr(llm.router) and "router" not in data and "config" not in data
    again = Polyroute.from_dict({**data, "model": "openai/gpt-4o-mini"})  # a fresh Router() from the environment
    assert again.temperature == 0.5 and again.router is not llm.router


# -- copies and pickles -----------------------------------------------------------------------------------------

MOCK_CONFIG: dict[str, Any] = {
    "models": [{"name": "m", "deployments": [{"provider": "mock", "model": "mock-1", "response": "pong"}]}]
}


def test_deepcopy_of_a_dict_config_llm_answers_and_shares_the_router() -> None:
    import copy

    llm = Polyroute(model="m", config=MOCK_CONFIG, temperature=0.2)
    clone = copy.deepcopy(llm)
    assert clone is not llm and clone.temperature == 0.2
    assert clone.router is llm.router  # one router: one set of pools, health and limits
    assert clone.chat(USER).message.content == "pong"
    assert "".join(r.delta or "" for r in clone.stream_chat(USER)) == "pong"
    assert llm.chat(USER).message.content == "pong"


@pytest.mark.parametrize("given", ["config", "router"])
def test_pickle_round_trip(given: str) -> None:
    import pickle

    kwargs: dict[str, Any] = {"config": MOCK_CONFIG} if given == "config" else {"router": Router(MOCK_CONFIG)}
    llm = Polyroute(model="m", max_tokens=7, **kwargs)
    restored = pickle.loads(pickle.dumps(llm))
    assert restored.max_tokens == 7
    assert restored.chat(USER).message.content == "pong"


# -- attribution ------------------------------------------------------------------------------------------------


def test_tags_and_user_attribute_calls_in_usage_and_survive_copies() -> None:
    import copy
    import pickle

    llm = Polyroute(model="m", config=MOCK_CONFIG, tags=["research", "nightly"], user="alice")
    assert llm.chat(USER).message.content == "pong"
    assert "".join(r.delta or "" for r in llm.stream_chat(USER)) == "pong"
    usage = llm.router.usage()
    assert usage["tag"]["research"]["calls"] == usage["tag"]["nightly"]["calls"] == 2
    assert usage["user"]["alice"]["calls"] == 2
    restored = pickle.loads(pickle.dumps(llm))  # a new router: its own usage
    assert restored.complete("hi").text == "pong"
    assert (restored.router.usage()["tag"].keys(), restored.router.usage()["user"].keys()) == (
        {"research", "nightly"},
        {"alice"},
    )
    clone = copy.deepcopy(llm)
    assert clone.chat(USER).message.content == "pong"
    assert llm.router.usage()["user"]["alice"]["calls"] == 3
    again = Polyroute.from_dict({**llm.to_dict(), "config": MOCK_CONFIG})
    assert (again.tags, again.user) == (["research", "nightly"], "alice")
