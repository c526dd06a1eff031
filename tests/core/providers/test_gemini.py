"""The Gemini adapter's pure functions: requests, responses, streams and errors, without any I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest

from polyroute import Router, UnsupportedFeatureError
from polyroute._sse import SSEEvent
from polyroute.errors import StreamInterruptedError, UpstreamStatusError
from polyroute.providers import gemini
from polyroute.providers._base import Target

SIG = "EpwICpkI+/+/c2lnbmF0dXI="  # standard base64, with + / and padding
KEY = "test-gemini-key-0000000000000000000000"


def target(model: str = "gemini-3-flash-preview", **deployment: Any) -> Target:
    deployment.setdefault("api_base", "http://127.0.0.1:1")
    router = Router(
        {
            "models": [
                {"name": "g", "deployments": [{"provider": "gemini", "model": model, "api_key": KEY, **deployment}]}
            ]
        }
    )
    return router.route("g").targets[0]


def native(body: dict[str, Any], model: str = "gemini-3-flash-preview", **deployment: Any) -> dict[str, Any]:
    request = gemini.build_request({"model": "g", **body}, target(model, **deployment))  # type: ignore[arg-type]
    return json.loads(request.content)


def user(content: Any = "hi") -> dict[str, Any]:
    return {"role": "user", "content": content}


# -- endpoint and auth ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "base", "stream", "url"),
    [
        ("gemini-2.5-flash", "https://g.example", False, "https://g.example/v1beta/models/gemini-2.5-flash:generateContent"),
        ("models/gemini-2.5-flash", "https://g.example/", False, "https://g.example/v1beta/models/gemini-2.5-flash:generateContent"),
        ("gemini-3-pro", "https://g.example/v1beta", True, "https://g.example/v1beta/models/gemini-3-pro:streamGenerateContent?alt=sse"),
        ("tunedModels/mine", "https://g.example", False, "https://g.example/v1beta/tunedModels/mine:generateContent"),
    ],
)  # fmt: skip
def test_url_and_key_header(model: str, base: str, stream: bool, url: str) -> None:
    request = gemini.build_request(
        {"model": "g", "messages": [user()], "stream": stream},
        target(model, api_base=base, headers={"x-extra": "1"}),
    )
    assert request.url == url
    assert request.stream is stream
    assert request.headers["x-goog-api-key"] == KEY
    assert request.headers["x-extra"] == "1"
    assert KEY not in request.url and "key=" not in request.url
    assert KEY not in request.content.decode()
    assert KEY not in repr(target())


# -- messages ---------------------------------------------------------------------------------------------------


def test_system_and_developer_become_system_instruction_and_roles_map() -> None:
    out = native(
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "developer", "content": [{"type": "text", "text": "in French"}]},
                user("hello"),
                {"role": "assistant", "content": "bonjour"},
                user("again"),
            ]
        }
    )
    assert out["systemInstruction"] == {"parts": [{"text": "be brief"}, {"text": "in French"}]}
    assert out["contents"] == [
        {"role": "user", "parts": [{"text": "hello"}]},
        {"role": "model", "parts": [{"text": "bonjour"}]},
        {"role": "user", "parts": [{"text": "again"}]},
    ]


def test_tool_results_become_one_user_turn_of_function_responses_named_by_call_id() -> None:
    out = native(
        {
            "messages": [
                user("weather?"),
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "a1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                        },
                        {"id": "b2", "type": "function", "function": {"name": "time", "arguments": "{}"}},
                    ],
                },
                {"role": "tool", "tool_call_id": "b2", "content": "12:00"},
                {"role": "tool", "tool_call_id": "a1", "content": [{"type": "text", "text": "sunny"}]},
            ]
        },
        model="gemini-2.5-flash",
    )
    model_turn, results = out["contents"][1], out["contents"][2]
    assert model_turn == {
        "role": "model",
        "parts": [
            {"functionCall": {"name": "weather", "args": {"city": "Paris"}, "id": "a1"}},
            {"functionCall": {"name": "time", "args": {}, "id": "b2"}},
        ],
    }
    assert results == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "time", "response": {"output": "12:00"}, "id": "b2"}},
            {"functionResponse": {"name": "weather", "response": {"output": "sunny"}, "id": "a1"}},
        ],
    }


def test_a_tool_result_without_its_call_says_what_to_keep() -> None:
    with pytest.raises(UnsupportedFeatureError, match="answers no earlier assistant tool call"):
        native({"messages": [user(), {"role": "tool", "tool_call_id": "nope", "content": "x"}]})


def test_content_parts() -> None:
    out = native(
        {
            "messages": [
                user(
                    [
                        {"type": "text", "text": "look"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg?size=2"}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/render"}},
                        {"type": "image_url", "image_url": {"url": "https://youtu.be/abc"}},
                        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
                        {"type": "file", "file": {"file_data": "JVBERi0=", "filename": "b.pdf"}},
                        {"type": "file", "file": {"file_id": "files/abc-123"}},
                        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                    ]
                )
            ]
        }
    )  # fmt: skip
    assert out["contents"][0]["parts"] == [
        {"text": "look"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"fileUri": "https://example.com/cat.jpg?size=2", "mimeType": "image/jpeg"}},
        {"fileData": {"fileUri": "https://example.com/render"}},
        {"fileData": {"fileUri": "https://youtu.be/abc", "mimeType": "video/mp4"}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
        {"fileData": {"fileUri": "http://127.0.0.1:1/v1beta/files/abc-123"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
    ]


@pytest.mark.parametrize(
    ("part", "match"),
    [
        ({"type": "video_url", "video_url": {"url": "x"}}, "cannot take a 'video_url' content part"),
        ({"type": "image_url", "image_url": {"url": "data:image/png,raw"}}, "must be base64"),
        ({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}, "cannot fetch"),
        ({"type": "file", "file": {"file_id": "file-openai123"}}, "cannot read file_id"),
    ],
)
def test_unsupported_parts_say_what_to_send(part: dict[str, Any], match: str) -> None:
    with pytest.raises(UnsupportedFeatureError, match=match) as info:
        native({"messages": [user([part])]})
    assert info.value.status == 400


def test_images_in_a_system_message_are_refused() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}
    with pytest.raises(UnsupportedFeatureError, match="move it to a user message"):
        native({"messages": [{"role": "system", "content": [image]}, user()]})


# -- tools ------------------------------------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": ["string", "null"], "enum": ["c", "f"]}},
    "required": ["city"],
    "additionalProperties": False,
}
TOOL = {"type": "function", "function": {"name": "weather", "description": "Weather.", "parameters": SCHEMA}}


def test_tools_prefer_parameters_json_schema() -> None:
    out = native({"messages": [user()], "tools": [TOOL]})
    assert out["tools"] == [
        {"functionDeclarations": [{"name": "weather", "description": "Weather.", "parametersJsonSchema": SCHEMA}]}
    ]
    assert "toolConfig" not in out


def test_tools_for_gemini_1_are_converted_to_the_openapi_subset() -> None:
    schema = {
        "type": "object",
        "$defs": {"Unit": {"type": "string", "enum": ["c", "f"]}},
        "properties": {
            "city": {"type": "string", "const": "Paris"},
            "unit": {"anyOf": [{"$ref": "#/$defs/Unit"}, {"type": "null"}]},
            "days": {"type": ["integer", "null"], "minimum": 1},
        },
        "additionalProperties": False,
    }
    tool = {"type": "function", "function": {"name": "w", "parameters": schema}}
    declaration = native({"messages": [user()], "tools": [tool]}, model="gemini-1.5-pro")["tools"][0][
        "functionDeclarations"
    ][0]
    assert declaration["parameters"] == {
        "type": "OBJECT",
        "properties": {
            "city": {"type": "STRING", "enum": ["Paris"]},
            "unit": {"type": "STRING", "enum": ["c", "f"], "nullable": True},
            "days": {"type": "INTEGER", "nullable": True, "minimum": 1},
        },
    }


def test_recursive_schemas_cannot_be_converted() -> None:
    schema = {"$defs": {"N": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/N"}}}}}, "$ref": "#/$defs/N"}  # fmt: skip
    with pytest.raises(UnsupportedFeatureError, match="recursive"):
        native({"messages": [user()], "tools": [{"type": "function", "function": {"name": "t", "parameters": schema}}]}, model="gemini-1.5-flash")  # fmt: skip


@pytest.mark.parametrize(
    ("choice", "config", "names"),
    [
        ("auto", {"mode": "AUTO"}, ["weather", "time"]),
        ("none", {"mode": "NONE"}, ["weather", "time"]),
        ("required", {"mode": "ANY"}, ["weather", "time"]),
        ({"type": "function", "function": {"name": "time"}}, {"mode": "ANY", "allowedFunctionNames": ["time"]}, ["weather", "time"]),
        ({"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "time"}}]}}, {"mode": "ANY"}, ["time"]),
    ],
)  # fmt: skip
def test_tool_choice(choice: Any, config: dict[str, Any], names: list[str]) -> None:
    time_tool = {"type": "function", "function": {"name": "time"}}
    out = native({"messages": [user()], "tools": [TOOL, time_tool], "tool_choice": choice})
    assert out["toolConfig"] == {"functionCallingConfig": config}
    assert [d["name"] for d in out["tools"][0]["functionDeclarations"]] == names


# -- generation config ------------------------------------------------------------------------------------------


def test_generation_config() -> None:
    out = native(
        {
            "messages": [user()],
            "temperature": 0.2,
            "top_p": 0.9,
            "max_tokens": 10,
            "max_completion_tokens": 50,
            "stop": "END",
            "n": 2,
            "seed": 7,
            "presence_penalty": 0.5,
            "frequency_penalty": 0.25,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA, "strict": True}},
            "parallel_tool_calls": False,
            "user": "u-1",
            "stream_options": {"include_usage": True},
        }
    )
    assert out["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.9,
        "candidateCount": 2,
        "seed": 7,
        "presencePenalty": 0.5,
        "frequencyPenalty": 0.25,
        "maxOutputTokens": 50,
        "stopSequences": ["END"],
        "responseMimeType": "application/json",
        "responseJsonSchema": SCHEMA,
    }
    assert set(out) == {"contents", "generationConfig"}


def test_json_object_sets_only_the_mime_type() -> None:
    out = native({"messages": [user()], "response_format": {"type": "json_object"}, "n": 1})
    assert out["generationConfig"] == {"responseMimeType": "application/json"}


@pytest.mark.parametrize(
    ("model", "effort", "thinking"),
    [
        ("gemini-3-flash-preview", "minimal", {"thinkingLevel": "minimal", "includeThoughts": True}),
        ("gemini-3-flash-preview", "none", {"thinkingLevel": "minimal", "includeThoughts": False}),
        ("gemini-3-flash-preview", "medium", {"thinkingLevel": "medium", "includeThoughts": True}),
        ("gemini-3-pro-preview", "medium", {"thinkingLevel": "high", "includeThoughts": True}),
        ("gemini-3-pro-preview", "minimal", {"thinkingLevel": "low", "includeThoughts": True}),
        ("gemini-2.5-flash", "low", {"thinkingBudget": 1024, "includeThoughts": True}),
        ("gemini-2.5-flash", "none", {"thinkingBudget": 0}),
        ("gemini-2.5-flash", "xhigh", {"thinkingBudget": 24576, "includeThoughts": True}),
        ("gemini-2.5-pro", "none", {"thinkingBudget": 128}),
        ("gemini-2.0-flash", "high", None),
    ],
)
def test_reasoning_effort(model: str, effort: str, thinking: dict[str, Any] | None) -> None:
    out = native({"messages": [user()], "reasoning_effort": effort}, model=model)
    assert (out.get("generationConfig") or {}).get("thinkingConfig") == thinking


@pytest.mark.parametrize(
    ("field", "value"),
    [("logprobs", True), ("top_logprobs", 2), ("logit_bias", {"1": 5}), ("modalities", ["text", "audio"])],
)
def test_fields_gemini_cannot_honour_are_refused(field: str, value: Any) -> None:
    with pytest.raises(UnsupportedFeatureError) as info:
        native({"messages": [user()], field: value})
    assert info.value.status == 400


def test_deployment_params_merge_into_the_body() -> None:
    params = {"generationConfig": {"topK": 40}, "safetySettings": [{"category": "X", "threshold": "BLOCK_NONE"}]}
    out = native({"messages": [user()], "temperature": 1.0}, params=params)
    assert out["generationConfig"] == {"temperature": 1.0, "topK": 40}
    assert out["safetySettings"] == params["safetySettings"]


# -- thought signatures -----------------------------------------------------------------------------------------


def _loop(call: dict[str, Any], *, answer_id: str | None = None) -> list[dict[str, Any]]:
    return [
        user("weather?"),
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": answer_id or call["id"], "content": "sunny"},
    ]


def _call(call_id: str = "call_1", **extra: Any) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": "weather", "arguments": "{}"}, **extra}


def test_tool_call_ids_carry_the_signature_and_give_it_back() -> None:
    joined = gemini.join_tool_call_id("call_1", SIG)
    assert joined.startswith("call_1__gts_") and all(c.isalnum() or c in "_-" for c in joined)
    assert gemini.split_tool_call_id(joined) == ("call_1", SIG)
    assert gemini.split_tool_call_id("call_1") == ("call_1", None)
    assert gemini.split_tool_call_id("call__gts_!!") == ("call__gts_!!", None)


@pytest.mark.parametrize(
    "call",
    [
        _call(provider_specific_fields={"thought_signature": SIG}),
        _call(extra_content={"google": {"thought_signature": SIG}}),
        _call(gemini.join_tool_call_id("call_1", SIG)),
    ],
    ids=["provider_specific_fields", "extra_content", "id"],
)
def test_signature_restored_on_the_function_call(call: dict[str, Any]) -> None:
    contents = native({"messages": _loop(call)})["contents"]
    assert contents[1]["parts"] == [
        {"functionCall": {"name": "weather", "args": {}, "id": "call_1"}, "thoughtSignature": SIG}
    ]
    assert contents[2]["parts"][0]["functionResponse"]["id"] == "call_1"


def test_lost_signatures_get_the_placeholder_in_the_current_turn_only() -> None:
    old_turn = _loop(_call("old"))
    messages = [*old_turn, {"role": "assistant", "content": "done"}, *_loop(_call("new"))]
    contents = native({"messages": messages})["contents"]
    calls = [p for c in contents for p in c["parts"] if "functionCall" in p]
    assert "thoughtSignature" not in calls[0]
    assert calls[1]["thoughtSignature"] == gemini.SKIP_SIGNATURE
    assert (
        "thoughtSignature"
        not in native({"messages": _loop(_call())}, model="gemini-2.5-flash")["contents"][1]["parts"][0]
    )


def test_media_sent_beside_function_responses_do_not_start_a_new_turn() -> None:
    """A GIF from a tool result goes beside the function response, as ordinary parts of that user turn: the turn
    is still the calls', so a call that lost its signature still gets the placeholder Gemini 3 wants.
    """
    gif = "data:image/gif;base64,R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw=="
    messages = _loop(_call())
    messages[-1]["content"] = [{"type": "image_url", "image_url": {"url": gif}}]
    messages += [{"role": "assistant", "content": None, "tool_calls": [_call("call_2")]}]
    messages += [{"role": "tool", "tool_call_id": "call_2", "content": "done"}]
    contents = native({"messages": messages})["contents"]
    assert contents[2]["parts"][1:] == [
        {"text": "The result of the weather function call call_1 includes:"},
        {"inlineData": {"mimeType": "image/gif", "data": gif.split(",")[1]}},
    ]
    calls = [p for c in contents for p in c["parts"] if "functionCall" in p]
    assert [c.get("thoughtSignature") for c in calls] == [gemini.SKIP_SIGNATURE, gemini.SKIP_SIGNATURE]


def test_text_signature_goes_back_on_the_last_text_part() -> None:
    assistant = {"role": "assistant", "content": "Paris.", "provider_specific_fields": {"thought_signature": SIG}}
    contents = native({"messages": [user(), assistant, user("and?")]})["contents"]
    assert contents[1]["parts"] == [{"text": "Paris.", "thoughtSignature": SIG}]


# -- responses --------------------------------------------------------------------------------------------------


def parse(response: dict[str, Any]) -> dict[str, Any]:
    return gemini.parse_response(json.dumps(response).encode(), target(), {"model": "g", "messages": []})  # type: ignore[return-value, typeddict-item]


def test_response_with_thoughts_text_call_signatures_and_usage() -> None:
    completion = parse(
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"text": "Let me think.", "thought": True},
                            {"text": "Checking.", "thoughtSignature": "dGV4dA=="},
                            {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": SIG},
                            {"functionCall": {"name": "time", "args": {}}},
                        ],
                    },
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 100,
                "toolUsePromptTokenCount": 5,
                "cachedContentTokenCount": 60,
                "candidatesTokenCount": 20,
                "thoughtsTokenCount": 30,
            },
            "modelVersion": "gemini-3-flash-preview",
            "responseId": "resp-1",
        }
    )
    assert completion["id"] == "chatcmpl-resp-1"
    choice = completion["choices"][0]
    message = choice["message"]
    assert choice["finish_reason"] == "tool_calls"
    assert message["content"] == "Checking."
    assert message["reasoning_content"] == "Let me think."
    assert message["provider_specific_fields"] == {"thought_signature": "dGV4dA=="}
    first, second = message["tool_calls"]
    assert first["function"] == {"name": "weather", "arguments": '{"city":"Paris"}'}
    assert first["provider_specific_fields"] == {"thought_signature": SIG}
    assert gemini.split_tool_call_id(first["id"])[1] == SIG
    assert "provider_specific_fields" not in second and "__gts_" not in second["id"]
    assert first["id"] != second["id"] and first["id"] == parse(_same_calls())["choices"][0]["message"]["tool_calls"][0]["id"]  # fmt: skip
    assert completion["usage"] == {
        "prompt_tokens": 105,
        "completion_tokens": 50,
        "total_tokens": 155,
        "prompt_tokens_details": {"cached_tokens": 60},
        "completion_tokens_details": {"reasoning_tokens": 30},
    }


def _same_calls() -> dict[str, Any]:
    part = {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": SIG}
    return {"candidates": [{"content": {"parts": [part]}, "finishReason": "STOP"}], "responseId": "resp-1"}


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("OTHER", "stop"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
    ],
)
def test_finish_reasons(reason: str, finish: str) -> None:
    choice = parse({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]})["choices"][0]
    assert choice["finish_reason"] == finish


def test_several_candidates_become_several_choices() -> None:
    completion = parse(
        {
            "candidates": [
                {"index": 1, "content": {"parts": [{"text": "B"}]}, "finishReason": "MAX_TOKENS"},
                {"index": 0, "content": {"parts": [{"text": "A"}]}, "finishReason": "STOP"},
            ]
        }
    )
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in completion["choices"]] == [
        (0, "A", "stop"),
        (1, "B", "length"),
    ]


def test_a_blocked_prompt_is_a_content_filter_with_a_clear_refusal() -> None:
    completion = parse({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 7}})
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"]["content"] is None
    assert "blocked the prompt" in choice["message"]["refusal"] and "SAFETY" in choice["message"]["refusal"]
    assert completion["usage"]["prompt_tokens"] == 7


# -- streams ----------------------------------------------------------------------------------------------------


def stream(events: list[Any], n_include_usage: bool = True) -> list[dict[str, Any]]:
    body = {"model": "g", "messages": [], "stream": True, "stream_options": {"include_usage": n_include_usage}}
    translator = gemini.stream_translator(target(), body)  # type: ignore[arg-type]
    out: list[dict[str, Any]] = []
    for event in events:
        out.extend(translator.feed(SSEEvent("", event if isinstance(event, str) else json.dumps(event))))  # type: ignore[arg-type]
    out.extend(translator.finish())  # type: ignore[arg-type]
    return out


def test_stream_of_two_candidates_finishes_each() -> None:
    chunks = stream(
        [
            {"candidates": [{"index": 0, "content": {"parts": [{"text": "A"}]}}, {"index": 1, "content": {"parts": [{"text": "B"}]}}]},
            {"candidates": [{"index": 0, "content": {"parts": [{"text": ""}]}, "finishReason": "STOP"}]},
            {"candidates": [{"index": 1, "content": {"parts": [{"functionCall": {"name": "f", "args": {}}}]}, "finishReason": "STOP"}],
             "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4}},
        ]
    )  # fmt: skip
    finishes = [(c["choices"][0]["index"], c["choices"][0]["finish_reason"]) for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]  # fmt: skip
    assert finishes == [(0, "stop"), (1, "tool_calls")]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "A"}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 7


def test_stream_not_finished_for_every_candidate_is_an_error() -> None:
    with pytest.raises(StreamInterruptedError, match="without a finishReason"):
        stream([{"candidates": [{"content": {"parts": [{"text": "Hel"}]}}]}])
    with pytest.raises(StreamInterruptedError):
        stream([])


def test_stream_blocked_prompt() -> None:
    chunks = stream([{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}])
    assert "blocked the prompt" in chunks[0]["choices"][0]["delta"]["refusal"]
    assert chunks[1]["choices"][0]["finish_reason"] == "content_filter"


def test_stream_error_event_raises_the_mapped_error() -> None:
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    with pytest.raises(UpstreamStatusError, match="overloaded") as info:
        stream([{"candidates": [{"content": {"parts": [{"text": "x"}]}}]}, error])
    assert info.value.status == 503 and info.value.retryable


def test_stream_text_signature_is_its_own_delta() -> None:
    chunks = stream([{"candidates": [{"content": {"parts": [{"text": "", "thoughtSignature": SIG}]}, "finishReason": "STOP"}]}])  # fmt: skip
    assert chunks[0]["choices"][0]["delta"]["provider_specific_fields"] == {"thought_signature": SIG}


def test_usage_chunk_only_when_asked() -> None:
    events = [{"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 1}}]  # fmt: skip
    assert not any(c.get("usage") for c in stream(events, n_include_usage=False))


# -- errors -----------------------------------------------------------------------------------------------------


def error_body(status: str, message: str, *details: dict[str, Any], code: int = 400) -> bytes:
    return json.dumps(
        {"error": {"code": code, "message": message, "status": status, "details": list(details)}}
    ).encode()


@pytest.mark.parametrize(
    ("rpc", "http", "status", "retryable"),
    [
        ("INVALID_ARGUMENT", 400, 400, False),
        ("PERMISSION_DENIED", 403, 403, False),
        ("UNAUTHENTICATED", 401, 401, False),
        ("NOT_FOUND", 404, 404, False),
        ("RESOURCE_EXHAUSTED", 429, 429, True),
        ("UNAVAILABLE", 503, 503, True),
        ("INTERNAL", 500, 500, True),
        ("DEADLINE_EXCEEDED", 504, 504, True),
    ],
)
def test_rpc_statuses(rpc: str, http: int, status: int, retryable: bool) -> None:
    error = gemini.classify_error(http, {}, error_body(rpc, "m", code=http), target())
    assert (error.status, error.retryable, error.code) == (status, retryable, rpc)


def test_retry_info_is_the_retry_after() -> None:
    body = error_body("RESOURCE_EXHAUSTED", "quota", {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}, code=429)  # fmt: skip
    assert gemini.classify_error(429, {"retry-after": "9"}, body, target()).retry_after == 1.5
    assert gemini.classify_error(429, {"retry-after": "9"}, error_body("RESOURCE_EXHAUSTED", "q", code=429), target()).retry_after == 9  # fmt: skip


def test_context_overflow_is_named() -> None:
    message = "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."
    error = gemini.classify_error(400, {}, error_body("INVALID_ARGUMENT", message), target())
    assert error.code == "context_length_exceeded" and "context_length_exceeded" in error.message


def test_unreadable_error_bodies_keep_the_status() -> None:
    error = gemini.classify_error(502, {}, b"<html>Bad Gateway</html>", target())
    assert error.status == 502 and "Bad Gateway" in error.message
