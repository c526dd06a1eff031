"""The pure Responses ↔ Chat Completions functions (``polyroute.responses.translate``), and the one fixture fed
both ways: a chat completion and its chunk stream give the same Response.
"""

from __future__ import annotations

from typing import Any

import pytest
from openai.types import responses as rtypes
from pydantic import TypeAdapter

from polyroute.errors import InvalidRequestError, UnsupportedFeatureError
from polyroute.responses import translate

RESPONSE = TypeAdapter(rtypes.Response)
THINKING = {"type": "thinking", "thinking": "Paris first.", "signature": "c2lnbmVk"}


def chat(body: dict[str, Any]) -> dict[str, Any]:
    return dict(translate.to_chat(body, translate.input_items(body), "anthropic/claude"))


def test_a_model_turn_becomes_one_assistant_message_with_its_reasoning_state() -> None:
    token = translate.encode_reasoning({"thinking_blocks": [THINKING], "thought_signature": "Z2Vt"})
    body = {
        "model": "m",
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": "Weather?"},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Paris first."}]}
            | {"encrypted_content": token},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Looking."}]},
            {"type": "function_call", "call_id": "toolu_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
            {"type": "function_call_output", "call_id": "toolu_1", "output": "sunny"},
        ],
    }
    assert chat(body)["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": "Looking.",
            "reasoning_content": "Paris first.",
            "thinking_blocks": [THINKING],
            "provider_specific_fields": {"thought_signature": "Z2Vt"},
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
    ]


def test_settings_map_to_chat_fields() -> None:
    body = {
        "model": "m",
        "input": "hi",
        "stream": True,
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}],
        "tool_choice": {"type": "function", "name": "f"},
        "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}},
        "reasoning": {"effort": "high", "summary": "auto"},
        "max_output_tokens": 500,
        "temperature": 0.3,
        "parallel_tool_calls": False,
        "metadata": {"k": "v"},
    }
    out = chat(body)
    assert out["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "strict": True}}
    ]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
    }
    assert (out["reasoning_effort"], out["max_completion_tokens"], out["temperature"]) == ("high", 500, 0.3)
    assert out["parallel_tool_calls"] is False and out["stream_options"] == {"include_usage": True}
    assert "metadata" not in out  # echoed in the Response, not sent upstream


def test_images_and_files() -> None:
    parts = [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
        {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,AAAA"},
    ]
    out = chat({"model": "m", "input": [{"role": "user", "content": parts}]})
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,AAAA", "filename": "a.pdf"}},
    ]
    with pytest.raises(UnsupportedFeatureError, match="file_id"):
        chat({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]})
    for image, got in ({"url": "data:image/png;base64,AAAA"}, "an object"), (None, "nothing"), (["x"], "list"):
        part = {"type": "input_image", "image_url": image}
        with pytest.raises(InvalidRequestError, match=f"image_url' must be a URL string .*, got {got}:"):
            chat({"model": "m", "input": [{"role": "user", "content": [part]}]})


def test_changed_encrypted_content_is_refused() -> None:
    body = {
        "model": "m",
        "input": [{"type": "reasoning", "id": "rs", "summary": [], "encrypted_content": "polyroute:@@"}],
    }
    with pytest.raises(InvalidRequestError, match="encrypted_content was changed"):
        chat(body)


def test_openai_ciphertext_is_left_out_for_another_provider() -> None:
    body = {
        "model": "m",
        "input": [
            {"type": "reasoning", "id": "rs", "summary": [], "encrypted_content": "gAAAAB..."},
            {"type": "message", "role": "assistant", "content": "ok"},
        ],
    }
    assert chat(body)["messages"] == [{"role": "assistant", "content": "ok"}]


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ({"type": "web_search_call", "id": "ws", "status": "completed"}, "'web_search_call' item"),
        ({"type": "item_reference", "id": "msg_1"}, "'item_reference' item"),
    ],
)
def test_items_only_openai_takes(item: dict[str, Any], words: str) -> None:
    with pytest.raises(UnsupportedFeatureError, match=words):
        chat({"model": "m", "input": [item]})


AGENTS_TOOL_CHOICES = (
    *("web_search", "web_search_preview", "file_search", "computer_use", "computer_use_preview", "image_generation"),
    *("code_interpreter", "shell", "apply_patch", "mcp", "programmatic_tool_calling"),
)
"""What openai-agents sends as ``tool_choice: {"type": ...}`` (agents/models/openai_responses.py, convert_tool_choice);
``web_search`` and a bare ``mcp`` are not in OpenAI's spec, yet a client this widely used sends them: they must pass
(with the tool they choose, as openai-agents sends them)."""


F = {"type": "function", "name": "f"}
MCP_DOCS = {"type": "mcp", "server_label": "docs", "server_url": "https://docs.example/mcp"}


@pytest.mark.parametrize(
    "fields",
    [
        *(
            {"reasoning": {"effort": e, "summary": s}}
            for e in translate._EFFORTS
            for s in ("auto", "concise", "detailed")
        ),
        {"reasoning": {"effort": None, "summary": None}},
        {"include": list(translate._INCLUDABLE)},
        *({"service_tier": t} for t in ("auto", "default", "flex", "scale", "priority", "fast", "ultrafast")),
        {"truncation": "auto"},
        {"truncation": "disabled"},
        {"stream_options": {"include_obfuscation": False}},  # without stream too: OpenAI is not known to refuse it
        {"background": False},
        {"instructions": "Be brief.", "user": "u", "safety_identifier": "s", "prompt_cache_key": "k"},
        *({"tool_choice": c} for c in ("none", "auto", "required")),
        *(
            {"tool_choice": {"type": kind}, "tools": [{"type": "computer" if kind == "computer_use" else kind}]}
            for kind in AGENTS_TOOL_CHOICES
        ),
        # a version of web search, of the computer tool, finds another (openai-agents picks the choice's apart)
        {"tool_choice": {"type": "web_search"}, "tools": [{"type": "web_search_preview"}]},
        {"tool_choice": {"type": "computer_use_preview"}, "tools": [{"type": "computer"}]},
        {"tool_choice": {"type": "mcp", "server_label": "docs", "name": None}, "tools": [MCP_DOCS]},
        {"tool_choice": {"type": "function", "name": "f"}, "tools": [{"type": "function", "name": "f"}]},
        {"tool_choice": {"type": "custom", "name": "grammar"}, "tools": [{"type": "custom", "name": "grammar"}]},
        {
            "tool_choice": {
                "type": "allowed_tools",
                "mode": "required",
                "tools": [F, MCP_DOCS, {"type": "image_generation"}],
            },
            "tools": [F, {"type": "function", "name": "g"}, MCP_DOCS, {"type": "image_generation"}],
        },
        {"tools": [{"type": "function", "name": "f"}, *({"type": t} for t in sorted(translate.HOSTED_TOOLS))]},
        {"tools": [{"type": "custom", "name": "grammar"}, {"type": "namespace", "name": "ns", "tools": []}]},
        {"input": [], "previous_response_id": "resp_1"},
        {"input": [], "conversation": "conv_1"},
        {"input": [{"role": "user", "content": ""}]},  # pydantic-ai's placeholder for an instructions-only run
        # null is absent, for every field with a rule
        dict.fromkeys(translate._CHECKS),
    ],
)
def test_what_openai_takes_passes(fields: dict[str, Any]) -> None:
    body = {"model": "m", "input": "hi", **fields}
    assert translate.validate(body) is body


# -- answers: one fixture both ways ------------------------------------------------------------------------------

USAGE = {
    "prompt_tokens": 30,
    "completion_tokens": 12,
    "total_tokens": 42,
    "prompt_tokens_details": {"cached_tokens": 8},
    "completion_tokens_details": {"reasoning_tokens": 5},
}
MESSAGE = {
    "role": "assistant",
    "content": "Checking.",
    "reasoning_content": "Paris first.",
    "thinking_blocks": [THINKING],
    "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"a":1}'}}],
}


def chunks() -> list[dict[str, Any]]:
    """:data:`MESSAGE` as an Anthropic-translated chat stream sends it (thinking text, then its block, then text,
    then the call in pieces)."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "c",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    call = {"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    return [
        chunk({"role": "assistant", "reasoning_content": "Paris "}),
        chunk({"reasoning_content": "first."}),
        chunk({"thinking_blocks": [THINKING]}),
        chunk({"content": "Check"}),
        chunk({"content": "ing."}),
        chunk({"tool_calls": [call]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
        chunk({}, "tool_calls"),
        {"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": USAGE},
    ]


def without_ids(response: dict[str, Any]) -> dict[str, Any]:
    return {**response, "id": None, "created_at": 0, "output": [{**o, "id": None} for o in response["output"]]}


@pytest.mark.parametrize("encrypted", [False, True])
def test_a_completion_and_its_stream_give_the_same_response(encrypted: bool) -> None:
    body: dict[str, Any] = {"model": "m", "input": "hi"}
    if encrypted:
        body["include"] = ["reasoning.encrypted_content"]
    completion = {"model": "claude", "choices": [{"index": 0, "message": MESSAGE, "finish_reason": "tool_calls"}]}
    whole = translate.from_chat(completion | {"usage": USAGE}, body, "resp_1")  # type: ignore[arg-type]
    events = translate.ChatToResponseEvents(body, "resp_1", "claude")
    seen = [e for c in chunks() for e in events.feed(c)] + events.end()
    streamed = seen[-1]["response"]
    assert without_ids(streamed) == without_ids(translate.public(whole, encrypted))
    assert without_ids(events.response) == without_ids(whole)  # what the store keeps: the state, always
    RESPONSE.validate_python(whole)
    assert [o["type"] for o in whole["output"]] == ["reasoning", "message", "function_call"]
    assert whole["usage"]["input_tokens_details"] == {"cached_tokens": 8, "cache_write_tokens": 0}
    assert whole["usage"]["output_tokens_details"] == {"reasoning_tokens": 5}
    assert translate.decode_reasoning(whole["output"][0]["encrypted_content"]) == {"thinking_blocks": [THINKING]}
    assert ("encrypted_content" in streamed["output"][0]) is encrypted
    assert [e["sequence_number"] for e in seen] == list(range(len(seen)))


GEMINI_SIGNED_TEXT = [
    {"choices": [{"index": 0, "delta": {"reasoning_content": "Think."}}]},
    {"choices": [{"index": 0, "delta": {"content": "Answer."}}]},
    {"choices": [{"index": 0, "delta": {"provider_specific_fields": {"thought_signature": "c2ln"}}}]},
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
]
"""A Gemini stream whose text signature comes after its reasoning item closed (Gemini signs the last text part)."""


def test_gemini_text_signature_after_the_reasoning_item_gets_an_item_of_its_own() -> None:
    body = {"model": "m", "input": "hi", "include": ["reasoning.encrypted_content"]}
    events = translate.ChatToResponseEvents(body, "resp_1", "gemini")
    seen = [e for c in GEMINI_SIGNED_TEXT for e in events.feed(c)] + events.end()
    output = seen[-1]["response"]["output"]
    assert [o["type"] for o in output] == ["reasoning", "message", "reasoning"]
    assert output[0]["encrypted_content"] is None
    assert translate.decode_reasoning(output[2]["encrypted_content"]) == {"thought_signature": "c2ln"}


def test_gemini_text_signature_unasked_is_kept_on_the_reasoning_item() -> None:
    """Without ``include`` the caller sees no state; the response the store keeps has it on the turn's reasoning item,
    as a non-streamed answer has it.
    """
    body = {"model": "m", "input": "hi"}
    events = translate.ChatToResponseEvents(body, "resp_1", "gemini")
    seen = [e for c in GEMINI_SIGNED_TEXT for e in events.feed(c)] + events.end()
    output = seen[-1]["response"]["output"]
    assert [o["type"] for o in output] == ["reasoning", "message"]
    assert all("encrypted_content" not in o for e in seen for o in [e.get("item") or {}, *output])
    kept = events.response["output"]
    assert translate.decode_reasoning(kept[0]["encrypted_content"]) == {"thought_signature": "c2ln"}
    message = {"role": "assistant", "content": "Answer.", "reasoning_content": "Think."}
    completion = {
        "choices": [{"index": 0, "message": message | {"provider_specific_fields": {"thought_signature": "c2ln"}}}]
    }
    whole = translate.from_chat(completion, body, "resp_1")  # type: ignore[arg-type]
    assert kept[0]["encrypted_content"] == whole["output"][0]["encrypted_content"]


def test_reasoning_ids_name_their_response() -> None:
    """A reasoning item's id says which response (and output index) holds its state; other ids name none."""
    response_id = translate.new_id("resp")
    item_id = translate.reasoning_id(response_id, 2)
    assert translate.is_polyroute_id(item_id) and translate.reasoning_source(item_id) == (response_id, 2)
    events = translate.ChatToResponseEvents({"model": "m", "input": "hi"}, response_id, "gemini")
    streamed = [e for c in GEMINI_SIGNED_TEXT for e in events.feed(c)] + events.end()
    completion = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "x", "reasoning_content": "y"}}]}
    whole = translate.from_chat(completion, {"model": "m"}, response_id)  # type: ignore[arg-type]
    for output in (streamed[-1]["response"]["output"], whole["output"]):
        assert translate.reasoning_source(output[0]["id"]) == (response_id, 0)
    assert translate.reasoning_source(translate.reasoning_id("resp_1", 0)) is None  # a response id not polyroute's
    for other in ("rs_pr" + "0" * 32, "rs_0123abcd", "msg_pr0_0", "rs_pr0_x", "rs_pr0_12345", "rs_pr0_\u0661", None, 7):
        assert translate.reasoning_source(other) is None, other  # polyroute's before, OpenAI's, not reasoning


def test_a_reasoning_item_by_id_alone_asks_for_its_state_once_its_turn_is_known() -> None:
    """Sent back without ``encrypted_content``, a reasoning item's state is asked for with its turn's tool-call ids,
    and goes where the item stood among the turn's thinking blocks.
    """
    first = {"type": "thinking", "thinking": "One.", "signature": "b25l"}
    asked: list[tuple[str, list[str]]] = []

    def stored(item_id: str, call_ids: Any) -> dict[str, Any]:
        asked.append((item_id, list(call_ids)))
        return {"thinking_blocks": [first]} if item_id == "rs_a" else {}

    body = {
        "model": "m",
        "input": [
            {"role": "user", "content": "Weather?"},
            {"type": "reasoning", "id": "rs_a", "summary": []},
            {"type": "reasoning", "id": "rs_b", "summary": []}
            | {"encrypted_content": translate.encode_reasoning({"thinking_blocks": [THINKING]})},
            {"type": "function_call", "call_id": "toolu_1", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "toolu_1", "output": "sunny"},
            {"type": "reasoning", "id": "rs_c", "summary": []} | {"encrypted_content": None},
            {"type": "message", "role": "assistant", "content": "Sunny."},
        ],
    }
    messages = translate.to_chat(body, translate.input_items(body), "anthropic/claude", stored)["messages"]
    assert asked == [("rs_c", []), ("rs_a", ["toolu_1"])]
    assert messages[1].get("thinking_blocks") == [first, THINKING]
    assert "thinking_blocks" not in messages[3]
    assert chat(body)["messages"][1].get("thinking_blocks") == [THINKING]  # nothing to ask: as before


@pytest.mark.parametrize(
    ("reason", "status", "why"), [("length", "incomplete", "max_output_tokens"), ("stop", "completed", None)]
)
def test_status(reason: str, status: str, why: str | None) -> None:
    completion = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": reason}]}
    response = translate.from_chat(completion, {"model": "m"}, "resp_1")  # type: ignore[arg-type]
    assert response["status"] == status
    assert response["incomplete_details"] == ({"reason": why} if why else None)


def test_a_deployments_own_prices_price_a_response() -> None:
    """As for chat: the deployment's ``prices`` come before genai-prices and the catalog (Responses usage shape)."""
    from polyroute import Router

    prices = {"input": 1.0, "output": 100.0}
    router = Router(
        {"models": [{"name": "m", "deployments": [{"provider": "mock", "model": "mock-1", "prices": prices}]}]}
    )
    answer = router.openai_client().responses.create(model="m", input="hi")
    assert answer.usage is not None
    expected = (answer.usage.input_tokens * 1.0 + answer.usage.output_tokens * 100.0) / 1e6
    assert answer.usage.model_extra == {"cost": pytest.approx(expected)}


def test_ids_are_unique_and_a_forked_worker_never_reuses_its_parents() -> None:
    """Ids come from a pool of os.urandom bytes (one system call per 64): a forked worker (serve's workers, a
    multiprocessing pool) must draw its own, or two processes on one shared store would make the same ids."""
    import os

    ids = {translate.new_id("resp") for _ in range(1000)}
    assert len(ids) == 1000 and all(i.startswith("resp_pr") and len(i) == len("resp_pr") + 32 for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, translate.new_id("resp").encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    assert child.startswith("resp_pr") and child != translate.new_id("resp")
