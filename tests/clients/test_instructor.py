"""instructor on Claude and Gemini routes: ``instructor.from_openai`` over polyroute's openai client.

``Mode.TOOLS`` forces a tool named after the model; ``Mode.JSON_SCHEMA`` sends ``response_format`` json_schema. Both
validate the answer against the pydantic model (its constraints included) and would re-ask on failure, so the
checks also count the upstream calls. instructor pins ``jiter<0.15``, which holds openai at 3.3: it has its own
environment (``.venvs/clients-instructor``).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.clients.matrix import (
    STRUCTURED_PROMPT,
    Forecast,
    StartEmulator,
    Upstream,
    check_forecast,
    check_structured,
    client_library,
    structured_upstream,
)

instructor = client_library("instructor")

MODES = ["TOOLS", "JSON_SCHEMA"]
CALLS = ["create", "create_partial"]


def options(up: Upstream) -> dict[str, Any]:
    return {
        "model": up.route,
        "messages": [{"role": "user", "content": STRUCTURED_PROMPT}],
        "response_model": Forecast,
        **({"reasoning_effort": up.effort} if up.effort else {}),
    }


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("mode", MODES)
def test_structured_sync(emulator: StartEmulator, provider: str, thinking: bool, mode: str, call: str) -> None:
    up = structured_upstream(emulator, provider, thinking)
    client = instructor.from_openai(up.router.openai_client(), mode=instructor.Mode[mode])
    if call == "create":
        result = client.chat.completions.create(**options(up))
    else:
        result = list(client.chat.completions.create_partial(**options(up)))[-1]
    check_forecast(result.model_dump())
    check_structured(up)


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("mode", MODES)
async def test_structured_async(emulator: StartEmulator, provider: str, thinking: bool, mode: str, call: str) -> None:
    up = structured_upstream(emulator, provider, thinking)
    client = instructor.from_openai(up.router.async_openai_client(), mode=instructor.Mode[mode])
    if call == "create":
        result = await client.chat.completions.create(**options(up))
    else:
        result = [partial async for partial in client.chat.completions.create_partial(**options(up))][-1]
    check_forecast(result.model_dump())
    check_structured(up)
