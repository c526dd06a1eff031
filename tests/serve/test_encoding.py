"""Compressed request bodies through ``polyroute serve``: gzip and deflate decoded, other codings a 415 that says to
send plain JSON, broken and bomb-sized bodies a 400 and a 413, in the shape of the path's API."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable

import httpx2
import pytest

from polyroute.serve.app import MAX_BODY
from polyroute.serve.encoding import BodyEncodingError, decode
from tests.emulators import Emulator
from tests.emulators.server import Handler
from tests.serve.helpers import KEY, OTHER_KEY, ToolThenText, config, openai_route, serving

StartEmulator = Callable[[Handler], Emulator]
CHAT = {"model": "gpt", "messages": [{"role": "user", "content": "What is the weather in Paris?"}]}
RAW = json.dumps(CHAT).encode()


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def headers(encoding: str, key: str = KEY) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", "content-type": "application/json", "content-encoding": encoding}


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", gzip.compress(RAW)),
        ("GZip", gzip.compress(RAW)),
        ("x-gzip", gzip.compress(RAW)),
        ("deflate", zlib.compress(RAW)),
        ("deflate", _raw_deflate(RAW)),
        ("identity", RAW),
        ("gzip, deflate", zlib.compress(gzip.compress(RAW))),
    ],
    ids=["gzip", "case", "x-gzip", "deflate", "raw-deflate", "identity", "two-codings"],
)
def test_a_compressed_body_is_served_as_the_plain_one(emulator: StartEmulator, encoding: str, body: bytes) -> None:
    upstream = ToolThenText()
    emu = emulator(upstream)
    with serving(config([openai_route("gpt", emu.url)])) as server:
        answer = httpx2.post(f"{server.url}/v1/chat/completions", content=body, headers=headers(encoding))
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "It is sunny in Paris."
    assert upstream.bodies[0]["messages"] == CHAT["messages"]


def test_a_compressed_stream_request_and_messages_request(emulator: StartEmulator) -> None:
    emu = emulator(ToolThenText())
    messages = {**CHAT, "max_tokens": 50}
    with serving(config([openai_route("gpt", emu.url)])) as server:
        streamed = httpx2.post(
            f"{server.url}/v1/chat/completions",
            content=gzip.compress(json.dumps({**CHAT, "stream": True}).encode()),
            headers=headers("gzip"),
        )
        native = httpx2.post(
            f"{server.url}/v1/messages",
            content=gzip.compress(json.dumps(messages).encode()),
            headers={**headers("gzip"), "anthropic-version": "2023-06-01"},
        )
    assert streamed.status_code == 200
    assert streamed.text.rstrip().endswith("data: [DONE]")
    assert native.status_code == 200, native.text
    assert native.json()["content"] == [{"type": "text", "text": "It is sunny in Paris."}]


def test_a_keys_routes_hold_for_a_compressed_body(emulator: StartEmulator) -> None:
    """The key's allowed models are checked on the decoded body, not skipped because it was not JSON."""
    upstream = ToolThenText()
    emu = emulator(upstream)
    with serving(config([openai_route("gpt", emu.url)])) as server:
        refused = httpx2.post(
            f"{server.url}/v1/chat/completions", content=gzip.compress(RAW), headers=headers("gzip", OTHER_KEY)
        )
    assert refused.status_code == 403
    assert "may not call model 'gpt'" in refused.json()["error"]["message"]
    assert upstream.bodies == []


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip, br"])
def test_a_coding_not_decoded_here_is_a_415_that_says_to_send_plain_json(
    emulator: StartEmulator, encoding: str
) -> None:
    upstream = ToolThenText()
    emu = emulator(upstream)
    with serving(config([openai_route("gpt", emu.url)])) as server:
        chat = httpx2.post(
            f"{server.url}/v1/chat/completions", content=b"\x28\xb5\x2f\xfd..", headers=headers(encoding)
        )
        messages = httpx2.post(f"{server.url}/v1/messages", content=b"\x28\xb5\x2f\xfd..", headers=headers(encoding))
    assert chat.status_code == 415
    assert chat.headers["accept-encoding"] == "gzip, deflate"
    error = chat.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "unsupported_content_encoding")
    assert error["message"].startswith(f"content-encoding {encoding.split(', ')[-1]} is not supported")
    assert "plain JSON" in error["message"]
    assert messages.status_code == 415
    assert messages.json()["type"] == "error"
    assert "plain JSON" in messages.json()["error"]["message"]
    assert upstream.bodies == []


@pytest.mark.parametrize(
    ("encoding", "body"),
    [("gzip", gzip.compress(RAW)[:-12]), ("gzip", RAW), ("deflate", b"not deflate at all")],
    ids=["truncated", "not-compressed", "garbage"],
)
def test_a_body_that_is_not_what_its_coding_says_is_a_400(emulator: StartEmulator, encoding: str, body: bytes) -> None:
    emu = emulator(ToolThenText())
    with serving(config([openai_route("gpt", emu.url)])) as server:
        answer = httpx2.post(f"{server.url}/v1/chat/completions", content=body, headers=headers(encoding))
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid_content_encoding"
    assert f"not valid {encoding} data" in error["message"]
    assert "0x8b" not in error["message"]


def test_a_body_that_inflates_past_the_limit_is_a_413(emulator: StartEmulator) -> None:
    packer = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    bomb = b"".join(packer.compress(block) for _ in range(MAX_BODY // len(block) + 1)) + packer.flush()
    assert len(bomb) < 100_000  # 64 MiB of zeros in 64 KB
    emu = emulator(ToolThenText())
    with serving(config([openai_route("gpt", emu.url)])) as server:
        answer = httpx2.post(f"{server.url}/v1/chat/completions", content=bomb, headers=headers("gzip"))
    assert answer.status_code == 413
    assert "once decompressed" in answer.json()["error"]["message"]


def test_decode_takes_gzip_members_one_after_another_and_stops_one_byte_past_the_limit() -> None:
    assert decode(gzip.compress(b'{"a":') + gzip.compress(b"1}"), ["gzip"], 100) == b'{"a":1}'
    assert decode(gzip.compress(bytes(100)), ["gzip"], 100) == bytes(100)
    with pytest.raises(BodyEncodingError) as raised:
        decode(gzip.compress(bytes(101)), ["gzip"], 100)
    assert raised.value.status == 413
