"""An OpenAI Chat Completions emulator: scripted text or tool calls, JSON or SSE, as OpenAI sends them.

Stream chunks are compact JSON (``{"id":"…","object":"chat.completion.chunk",…}``), as OpenAI writes them; the
first is a role-only delta (``"content":""``) as OpenAI's, and with ``azure=True`` it is preceded by Azure's
prompt-filter chunk (``"choices":[]`` with ``prompt_filter_results``), as Azure OpenAI sends it (shape from
AbanteAI/archive-old-cli-mentat issue #429).
"""

from __future__ import annotations

import json
from typing import Any

from tests.emulators.server import Reply, Request

AZURE_PROMPT_FILTER: dict[str, Any] = {
    "id": "",
    "choices": [],
    "created": 0,
    "model": "",
    "object": "",
    "system_fingerprint": None,
    "prompt_filter_results": [
        {
            "prompt_index": 0,
            "content_filter_results": {
                name: {"filtered": False, "severity": "safe"} for name in ("hate", "self_harm", "sexual", "violence")
            },
        }
    ],
}
"""Azure OpenAI's first stream chunk: the prompt's content-filter verdict, no choices."""


def compact_events(payloads: list[Any]) -> list[str]:
    """``data:`` events of compact JSON (strings such as ``[DONE]`` as they are), as OpenAI writes them."""
    return [
        f"data: {p if isinstance(p, str) else json.dumps(p, separators=(',', ':'), ensure_ascii=False)}\n\n"
        for p in payloads
    ]


def completion(
    text: str | None = "Hello!",
    *,
    model: str = "gpt-test",
    tool_calls: list[dict[str, Any]] | None = None,
    usage: dict[str, Any] | None = None,
    finish_reason: str | None = None,
) -> dict[str, Any]:
    """A chat.completion body."""
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-emu",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop"),
            }
        ],
        "usage": usage or {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def chunks(
    pieces: list[str],
    *,
    model: str = "gpt-test",
    usage: dict[str, Any] | None = None,
    done: bool = True,
    finish: bool = True,
    azure: bool = False,
) -> list[str]:
    """SSE events streaming ``pieces`` as OpenAI does: role delta, content deltas, finish, usage, [DONE]."""

    def chunk(delta: dict[str, Any] | None, finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
        choices = (
            [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
        )
        return {
            "id": "chatcmpl-emu",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": model,
            "choices": choices,
            **extra,
        }

    payloads: list[Any] = [AZURE_PROMPT_FILTER] if azure else []
    payloads.append(chunk({"role": "assistant", "content": "", "refusal": None}))
    payloads += [chunk({"content": p}) for p in pieces]
    if finish:
        payloads.append(chunk({}, "stop"))
        payloads.append(
            chunk(
                None,
                usage=usage
                or {"prompt_tokens": 10, "completion_tokens": len(pieces), "total_tokens": 10 + len(pieces)},
            )
        )
    if done:
        payloads.append("[DONE]")
    return compact_events(payloads)


def handler(text: str = "Hello from the emulator!", pieces: int = 5, **reply: Any):
    """A handler answering every chat request with ``text`` (streamed in ``pieces`` when asked)."""

    def handle(request: Request) -> Reply:
        body = json.loads(request.body)
        if body.get("stream"):
            step = max(1, len(text) // pieces)
            return Reply.sse(
                chunks([text[i : i + step] for i in range(0, len(text), step)], model=body["model"]), **reply
            )
        return Reply(body=completion(text, model=body["model"]), **reply)

    return handle
