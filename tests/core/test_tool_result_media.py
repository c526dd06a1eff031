"""Images and files in tool results (a computer-use screenshot, openai-agents' ``ToolOutputImage`` /
``ToolOutputFileContent``), through the openai SDK on both APIs: a Responses ``function_call_output`` whose
``output`` is a list of parts, and a chat ``tool`` message whose ``content`` is a list of parts. Each provider gets
them the way its API takes them, never as base64 text:

- Anthropic: ``image`` / ``document`` blocks in the ``tool_result``; Claude on Bedrock: ``image`` / ``document`` in
  the ``toolResult``;
- Gemini 3: ``functionResponse.parts`` (``inlineData``; ``fileData`` on Vertex AI); older Gemini, and media Gemini
  does not read there: parts of the same user turn after the function responses;
- OpenAI-compatible chat vendors (tool messages take text only): the text stays in the tool message, the media go in
  a user message after the turn's tool messages; Mistral (whose tool messages take images) keeps them in place;
- Cohere (tool results are text or documents): a 400 naming the deployment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from polyroute import Router
from tests.emulators import Emulator
from tests.emulators import anthropic_format as claude
from tests.emulators import bedrock_format as br
from tests.emulators import cohere_format as co
from tests.emulators import gemini_format as gem
from tests.emulators import openai_format as oai
from tests.emulators import vertex_format as vx
from tests.emulators.server import Handler

Start = Callable[[Handler], Emulator]
KEY = "sk-tool-media-fake-0123456789"

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
PNG = f"data:image/png;base64,{PNG_B64}"
GIF_B64 = "R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw=="
GIF = f"data:image/gif;base64,{GIF_B64}"
PDF_B64 = "JVBERi0xLjQKMSAwIG9iajw8Pj5lbmRvYmoKdHJhaWxlcjw8Pj4KJSVFT0YK"
PDF = f"data:application/pdf;base64,{PDF_B64}"
TEXT = "Here is the screen."

APIS = ["responses", "chat"]


# -- one conversation, in either API --------------------------------------------------------------------------------


def image(url: str) -> dict[str, Any]:
    return {"type": "input_image", "image_url": url}


def pdf(name: str = "report.pdf") -> dict[str, Any]:
    return {"type": "input_file", "file_data": PDF, "filename": name}


def screenshot_turn(*outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A user prompt, the model's ``screenshot`` calls (one per output, ids ``call_1``…), their outputs (Responses
    items)."""
    items: list[dict[str, Any]] = [{"role": "user", "content": "What is on the screen?"}]
    ids = [f"call_{n}" for n in range(1, len(outputs) + 1)]
    items += [{"type": "function_call", "call_id": i, "name": "screenshot", "arguments": "{}"} for i in ids]
    items += [
        {"type": "function_call_output", "call_id": i, "output": out} for i, out in zip(ids, outputs, strict=True)
    ]
    return items


def _chat_part(part: dict[str, Any]) -> dict[str, Any]:
    match part["type"]:
        case "input_text":
            return {"type": "text", "text": part["text"]}
        case "input_image":
            return {"type": "image_url", "image_url": {"url": part["image_url"]}}
        case _:
            return {"type": "file", "file": {"file_data": part["file_data"], "filename": part["filename"]}}


def as_chat(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same conversation as chat messages, as a chat client sends it."""
    calls = [
        {"id": i["call_id"], "type": "function", "function": {"name": i["name"], "arguments": i["arguments"]}}
        for i in items
        if i.get("type") == "function_call"
    ]
    messages: list[dict[str, Any]] = [items[0], {"role": "assistant", "content": None, "tool_calls": calls}]
    for item in items:
        if item.get("type") == "function_call_output":
            content = [_chat_part(p) for p in item["output"]]
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": content})
    return messages


def ask(api: str, router: Router, items: list[dict[str, Any]]) -> str | None:
    """Send the conversation through the openai SDK on ``api``; the answer's text."""
    client = router.openai_client()
    if api == "responses":
        tool = {"type": "function", "name": "screenshot", "parameters": {"type": "object", "properties": {}}}
        return client.responses.create(model="m", input=items, tools=[tool]).output_text  # type: ignore[arg-type]
    tool = {"type": "function", "function": {"name": "screenshot", "parameters": {"type": "object", "properties": {}}}}
    completion = client.chat.completions.create(model="m", messages=as_chat(items), tools=[tool])  # type: ignore[arg-type]
    return completion.choices[0].message.content


def router_for(deployment: dict[str, Any]) -> Router:
    return Router({"models": [{"name": "m", "deployments": [deployment]}], "retry": {"backoff": 0}})


def no_base64_in_text(value: Any) -> None:
    """No text anywhere in a native body carries the media's base64 (the bug: a tool result's JSON sent as text)."""
    texts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, item in node.items():
                if key in ("text", "output", "content") and isinstance(item, str):
                    texts.append(item)
                walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(value)
    assert not [t for t in texts if PNG_B64 in t or PDF_B64 in t or GIF_B64 in t]


# -- Anthropic and Claude on Bedrock --------------------------------------------------------------------------------


def test_anthropic_gets_image_and_document_blocks_in_the_tool_result(emulator: Start) -> None:
    """Both APIs send the same: the chat path already did, the Responses one now does too."""
    script = claude.scripted(["A red pixel and a report."], repeat_last=True)
    emu = emulator(script)
    router = router_for({"provider": "anthropic", "model": "claude-sonnet-4-5", "api_base": emu.url, "api_key": KEY})
    texts = [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]
    turn = screenshot_turn([{"type": "input_text", "text": TEXT}, image(PNG), pdf()], texts)
    for api in APIS:
        assert ask(api, router, turn) == "A red pixel and a report."
    for body in script.bodies:
        assert body["messages"][-1] == {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "call_1",
                    "content": [
                        {"type": "text", "text": TEXT},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
                        {
                            "type": "document",
                            "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_B64},
                            "title": "report.pdf",
                        },
                    ],
                },
                body["messages"][-1]["content"][1],
            ],
        }
        no_base64_in_text(body)
    # text alone: a string from Responses (as before); a chat client's text parts as text blocks
    assert script.bodies[0]["messages"][-1]["content"][1] == {
        "type": "tool_result",
        "tool_use_id": "call_2",
        "content": "ab",
    }
    assert script.bodies[1]["messages"][-1]["content"][1]["content"] == [
        {"type": "text", "text": "a"},
        {"type": "text", "text": "b"},
    ]


def test_claude_on_bedrock_gets_image_and_document_in_the_tool_result(emulator: Start) -> None:
    script = br.scripted(["A red pixel and a report."] * 2)
    emu = emulator(script)
    router = router_for(
        {
            "provider": "bedrock",
            "model": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "api_base": emu.url,
            "aws_access_key_id": br.ACCESS_KEY,
            "aws_secret_access_key": br.SECRET_KEY,
            "aws_session_token": br.SESSION_TOKEN,
            "aws_region": br.REGION,
        }
    )
    for api in APIS:
        assert ask(api, router, screenshot_turn([{"type": "input_text", "text": TEXT}, image(PNG), pdf()]))
    assert script.bodies[0] == script.bodies[1]
    result = script.bodies[0]["messages"][-1]["content"][0]["toolResult"]
    assert result == {
        "toolUseId": "call_1",
        "content": [
            {"text": TEXT},
            {"image": {"format": "png", "source": {"bytes": PNG_B64}}},
            {
                "document": {"format": "pdf", "name": "report pdf", "source": {"bytes": PDF_B64}}
            },  # Converse names: no dots,
        ],
    }
    no_base64_in_text(script.bodies[0])


# -- Gemini ---------------------------------------------------------------------------------------------------------


def gemini_router(emu: Emulator, model: str) -> Router:
    return router_for({"provider": "gemini", "model": model, "api_base": emu.url, "api_key": KEY})


@pytest.mark.parametrize("api", APIS)
def test_gemini_3_reads_the_image_inside_its_function_response(emulator: Start, api: str) -> None:
    handler = gem.GeminiEmulator(gem.response("A red pixel and a report."))
    router = gemini_router(emulator(handler), "gemini-3-flash-preview")
    answer = ask(api, router, screenshot_turn([{"type": "input_text", "text": TEXT}, image(PNG), pdf()]))
    assert answer == "A red pixel and a report."
    assert handler.bodies[0]["contents"][-1] == {
        "role": "user",
        "parts": [
            {
                "functionResponse": {
                    "name": "screenshot",
                    "id": "call_1",
                    "response": {"output": TEXT},
                    "parts": [
                        {"inlineData": {"mimeType": "image/png", "data": PNG_B64}},
                        {"inlineData": {"mimeType": "application/pdf", "data": PDF_B64}},
                    ],
                }
            }
        ],
    }
    no_base64_in_text(handler.bodies[0])


@pytest.mark.parametrize("api", APIS)
def test_gemini_2_5_gets_the_images_after_the_turns_function_responses(emulator: Start, api: str) -> None:
    handler = gem.GeminiEmulator(gem.response("Two screens."))
    router = gemini_router(emulator(handler), "gemini-2.5-flash")
    turn = screenshot_turn([{"type": "input_text", "text": TEXT}, image(PNG)], [image(GIF)])
    assert ask(api, router, turn) == "Two screens."
    assert handler.bodies[0]["contents"][-1] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "screenshot", "id": "call_1", "response": {"output": TEXT}}},
            {"functionResponse": {"name": "screenshot", "id": "call_2", "response": {"output": ""}}},
            {"text": "The result of the screenshot function call call_1 includes:"},
            {"inlineData": {"mimeType": "image/png", "data": PNG_B64}},
            {"text": "The result of the screenshot function call call_2 includes:"},
            {"inlineData": {"mimeType": "image/gif", "data": GIF_B64}},
        ],
    }
    no_base64_in_text(handler.bodies[0])


def test_gemini_3_sends_what_it_cannot_read_inside_beside_it(emulator: Start) -> None:
    """A GIF (not among the documented function-response types) goes beside the response; the PNG inside."""
    handler = gem.GeminiEmulator(gem.response("Two pictures."))
    router = gemini_router(emulator(handler), "gemini-3-flash-preview")
    assert ask("responses", router, screenshot_turn([image(PNG), image(GIF)])) == "Two pictures."
    assert handler.bodies[0]["contents"][-1]["parts"] == [
        {
            "functionResponse": {
                "name": "screenshot",
                "id": "call_1",
                "response": {"output": ""},
                "parts": [{"inlineData": {"mimeType": "image/png", "data": PNG_B64}}],
            }
        },
        {"text": "The result of the screenshot function call call_1 includes:"},
        {"inlineData": {"mimeType": "image/gif", "data": GIF_B64}},
    ]


@pytest.mark.parametrize("api", APIS)
def test_gemini_3_on_vertex_takes_an_image_url_inside_its_function_response(emulator: Start, api: str) -> None:
    handler = vx.VertexEmulator(gemini=vx.gemini_emulator(gem.response("A photo.")))
    emu = emulator(handler)
    handler.url = emu.url
    info, handler.public_key = vx.service_account(f"{emu.url}/token")
    deployment = {
        "provider": "vertex",
        "model": "gemini-3-flash-preview",
        "api_base": emu.url,
        "credentials": info,
        "location": "us-east5",
    }
    url = "https://example.com/shots/1.png"
    assert ask(api, router_for(deployment), screenshot_turn([image(url)])) == "A photo."
    assert handler.bodies[0]["contents"][-1]["parts"] == [
        {
            "functionResponse": {
                "name": "screenshot",
                "id": "call_1",
                "response": {"output": ""},
                "parts": [{"fileData": {"fileUri": url, "mimeType": "image/png"}}],
            }
        }
    ]


# -- OpenAI-compatible chat vendors, Mistral, Cohere ----------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_a_chat_vendor_gets_the_images_in_a_user_message_after_the_tool_messages(emulator: Start, api: str) -> None:
    handler = oai.ChatEmulator("Two screens.")
    emu = emulator(handler)
    router = router_for(
        {"provider": "openai-compatible", "model": "vision-emu", "api_base": emu.url + "/v1", "api_key": KEY}
    )
    turn = screenshot_turn([{"type": "input_text", "text": TEXT}, image(PNG)], [image(GIF), pdf()])
    assert ask(api, router, turn) == "Two screens."
    messages = handler.bodies[0]["messages"]
    assert messages[2:] == [
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": f"{TEXT}\n(The image of this result follows in the next message.)",
        },
        {
            "role": "tool",
            "tool_call_id": "call_2",
            "content": "(The 2 attachments of this result follow in the next message.)",
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Attached to the result of tool call call_1:"},
                {"type": "image_url", "image_url": {"url": PNG}},
                {"type": "text", "text": "Attached to the result of tool call call_2:"},
                {"type": "image_url", "image_url": {"url": GIF}},
                {"type": "file", "file": {"file_data": PDF, "filename": "report.pdf"}},
            ],
        },
    ]
    no_base64_in_text([m for m in messages if m["role"] == "tool"])


def test_openai_chat_deployment_gets_the_image_in_a_user_message(emulator: Start) -> None:
    """A chat client's tool message with an image, to OpenAI's own chat API (which would refuse it as it is)."""
    handler = oai.ChatEmulator("A red pixel.")
    emu = emulator(handler)
    router = router_for({"provider": "openai", "model": "gpt-4.1", "api_base": emu.url + "/v1", "api_key": KEY})
    assert ask("chat", router, screenshot_turn([image(PNG)])) == "A red pixel."
    assert handler.bodies[0]["messages"][-2:] == [
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": "(The image of this result follows in the next message.)",
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Attached to the result of tool call call_1:"},
                {"type": "image_url", "image_url": {"url": PNG}},
            ],
        },
    ]


def test_mistral_keeps_the_image_in_the_tool_message(emulator: Start) -> None:
    handler = oai.ChatEmulator("A red pixel.", tool_media=True)
    emu = emulator(handler)
    router = router_for({"provider": "mistral", "model": "mistral-emu", "api_base": emu.url + "/v1", "api_key": KEY})
    for api in APIS:
        assert ask(api, router, screenshot_turn([{"type": "input_text", "text": TEXT}, image(PNG)])) == "A red pixel."
    for body in handler.bodies:
        tool = body["messages"][-1]
        assert tool["role"] == "tool"
        assert tool["content"] == [{"type": "text", "text": TEXT}, {"type": "image_url", "image_url": {"url": PNG}}]


@pytest.mark.parametrize("api", APIS)
def test_cohere_refuses_an_image_in_a_tool_result_naming_the_deployment(emulator: Start, api: str) -> None:
    emu = emulator(co.Scripted([co.response("never")]))
    router = router_for(
        {"id": "cohere-main", "provider": "cohere", "model": "command-emu", "api_base": emu.url, "api_key": co.KEY}
    )
    with pytest.raises(openai.BadRequestError, match=r"cohere-main \(Cohere chat\) takes text in a tool result"):
        ask(api, router, screenshot_turn([image(PNG)]))
    assert emu.requests == []


# -- what cannot be translated --------------------------------------------------------------------------------------


def test_an_uploaded_file_id_in_a_tool_output_is_a_400_naming_the_part(emulator: Start) -> None:
    script = claude.scripted(["never"])
    emu = emulator(script)
    router = router_for({"provider": "anthropic", "model": "claude-sonnet-4-5", "api_base": emu.url, "api_key": KEY})
    with router.http_client(timeout=60) as http:
        r = http.post(
            "/v1/responses",
            json={"model": "m", "input": screenshot_turn([{"type": "input_image", "file_id": "file-123"}])},
        )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "input[2].output[0]"
    assert "file_id" in r.json()["error"]["message"]
    assert emu.requests == []
