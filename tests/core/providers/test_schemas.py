"""JSON Schemas as pydantic writes them reach Claude and Gemini in the form each API accepts.

Anthropic's structured outputs and strict tools take a JSON Schema subset and answer 400 to ``minimum``,
``maxLength``, ``minItems: 2``…; Gemini ignores what its subset lacks and refuses a ``$ref`` with siblings. The
emulators enforce those rules; these tests send the schemas pydantic emits for ordinary fields through the openai
SDK (``parse``, ``pydantic_function_tool``) and check that the answer still validates, and that every constraint
the provider cannot take is still written in a description.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import time
from collections.abc import Callable
from typing import Any

import openai
import pytest
from pydantic import BaseModel, Field, conlist

from polyroute import Router
from polyroute.providers import anthropic, gemini
from tests.emulators import Emulator
from tests.emulators import anthropic_format as claude
from tests.emulators.gemini_format import GeminiEmulator, check_fields, response
from tests.emulators.server import Handler

Start = Callable[[Handler], Emulator]


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    street: str = Field(min_length=1, max_length=80)
    zip: str = Field(pattern=r"^\d{5}$")


class Person(BaseModel):
    name: str = Field(max_length=40, description="Full name")
    age: int = Field(ge=0, le=150)
    score: float = Field(gt=0, lt=1, multiple_of=0.01)
    tags: conlist(str, min_length=2, max_length=5)  # type: ignore[valid-type]
    nick: str | None = Field(default=None, min_length=2)
    color: Color
    home: Address = Field(description="Where they live")
    balance: decimal.Decimal
    born: datetime.datetime


ANSWER = {
    "name": "Ada",
    "age": 36,
    "score": 0.5,
    "tags": ["math", "engines"],
    "nick": None,
    "color": "blue",
    "home": {"street": "1 Analytical Way", "zip": "12345"},
    "balance": "12.34",
    "born": "1815-12-10T00:00:00Z",
}


def _router(provider: str, model: str, url: str) -> Router:
    deployment = {"provider": provider, "model": model, "api_base": url, "api_key": "test-key-0123"}
    return Router({"models": [{"name": "m", "deployments": [deployment]}], "retry": {"backoff": 0}})


def _descriptions(schema: Any) -> str:
    """Every description in a schema, joined: where moved constraints must be found."""
    found: list[str] = []
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if isinstance(node.get("description"), str):
                found.append(node["description"])
            pending.extend(v for k, v in node.items() if k not in ("enum", "const", "required"))
        elif isinstance(node, list):
            pending.extend(node)
    return "\n".join(found)


MOVED_FOR_ANTHROPIC = [
    "{maxLength: 40}",
    "{maximum: 150, minimum: 0}",
    "{exclusiveMaximum: 1, exclusiveMinimum: 0, multipleOf: 0.01}",
    "{maxItems: 5, minItems: 2}",
    "{minLength: 2}",
    "{maxLength: 80, minLength: 1}",
    "{pattern: ^\\d{5}$}",
]


# -- Anthropic ----------------------------------------------------------------------------------------------------


def test_pydantic_schema_is_rejected_as_is_by_the_emulator() -> None:
    schema = Person.model_json_schema()
    problem = claude.schema_problem(schema, "output_config.format.schema")
    assert (
        problem
        == "output_config.format.schema: For 'object' type, 'additionalProperties' must be explicitly set to false"
    )
    closed = {"type": "object", "properties": {"age": schema["properties"]["age"]}, "additionalProperties": False}
    assert claude.schema_problem(closed, "tools.0.custom") == (
        "tools.0.custom: For 'integer' type, property 'minimum' is not supported"
    )


def test_anthropic_schema_moves_unsupported_constraints_into_descriptions() -> None:
    converted = anthropic._to_anthropic_schema(Person.model_json_schema())  # pyright: ignore[reportPrivateUsage]
    assert claude.schema_problem(converted, "output_config.format.schema") is None
    text = _descriptions(converted)
    for note in MOVED_FOR_ANTHROPIC:
        assert note in text, (note, text)
    assert converted["properties"]["name"]["description"] == "Full name\n\n{maxLength: 40}"
    assert converted["properties"]["born"]["format"] == "date-time"  # a supported format stays
    assert converted["$defs"]["Address"]["additionalProperties"] is False


def test_anthropic_schema_keeps_min_items_0_and_1_and_turns_one_of_into_any_of() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "b": {"oneOf": [{"type": "integer"}, {"type": "string", "format": "uri-reference"}]},
        },
    }
    converted = anthropic._to_anthropic_schema(schema)  # pyright: ignore[reportPrivateUsage]
    assert converted["properties"]["a"]["minItems"] == 1
    assert converted["properties"]["b"]["anyOf"][1] == {"type": "string", "description": "{format: uri-reference}"}
    assert claude.schema_problem(converted, "output_config.format.schema") is None


def _deep(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "object", "properties": {"leaf": {"type": "string", "minLength": 1}}}
    for i in range(depth):
        node = {"type": "object", "properties": {f"p{i}": node, "n": {"type": "integer"}}, "required": [f"p{i}"]}
    return node


class _Counted(dict[str, Any]):
    """A schema node that counts how often the conversion reads it, and stops a runaway (exponential) walk."""

    visits = 0

    def items(self) -> Any:
        type(self).visits += 1
        if type(self).visits > 10_000:
            raise RuntimeError("the schema conversion visits nodes far more than once")
        return super().items()


def _counted(node: Any) -> Any:
    if isinstance(node, dict):
        return _Counted({k: _counted(v) for k, v in node.items()})  # pyright: ignore[reportUnknownVariableType]
    return node


def test_anthropic_schema_conversion_is_linear_in_the_schema_size() -> None:
    schema = _counted(_deep(32))
    _Counted.visits = 0
    started = time.perf_counter()
    converted = anthropic._to_anthropic_schema(schema)  # pyright: ignore[reportPrivateUsage]
    elapsed = time.perf_counter() - started
    nodes = 3 * 32 + 2  # each level: the node and its properties map (items() each), plus "n"; the leaf level
    assert _Counted.visits <= 2 * nodes, _Counted.visits
    assert elapsed < 0.05
    assert claude.schema_problem(converted, "output_config.format.schema") is None


@pytest.mark.parametrize("stream", [False, True])
def test_parse_with_a_constrained_model_through_claude_native_output(emulator: Start, stream: bool) -> None:
    script = claude.scripted([json.dumps(ANSWER)])
    emu = emulator(script)
    client = _router("anthropic", "claude-sonnet-4-5", emu.url).openai_client()
    messages: Any = [{"role": "user", "content": "Describe Ada."}]
    if stream:
        with client.chat.completions.stream(model="m", messages=messages, response_format=Person) as events:
            parsed = events.get_final_completion().choices[0].message.parsed
    else:
        parsed = client.chat.completions.parse(model="m", messages=messages, response_format=Person).choices[0]
        parsed = parsed.message.parsed
    assert parsed == Person.model_validate(ANSWER)
    sent = script.bodies[0]["output_config"]["format"]["schema"]
    assert "{maximum: 150, minimum: 0}" in _descriptions(sent)


def test_strict_pydantic_tool_reaches_claude(emulator: Start) -> None:
    script = claude.scripted([claude.tool_use("Person", ANSWER)])
    emu = emulator(script)
    client = _router("anthropic", "claude-sonnet-4-5", emu.url).openai_client()
    completion = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Record Ada."}],
        tools=[openai.pydantic_function_tool(Person)],
    )
    call = (completion.choices[0].message.tool_calls or [])[0]
    assert call.type == "function"
    assert Person.model_validate_json(call.function.arguments) == Person.model_validate(ANSWER)
    tool = script.bodies[0]["tools"][0]
    assert tool["strict"] is True
    assert "{maxItems: 5, minItems: 2}" in _descriptions(tool["input_schema"])


def test_non_strict_tools_keep_their_schema(emulator: Start) -> None:
    script = claude.scripted(["ok"])
    emu = emulator(script)
    client = _router("anthropic", "claude-sonnet-4-5", emu.url).openai_client()
    schema = Person.model_json_schema()
    client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Hi"}],
        tools=[{"type": "function", "function": {"name": "record", "parameters": schema}}],
    )
    assert script.bodies[0]["tools"][0]["input_schema"] == schema  # free-form input_schema takes JSON Schema as is


# -- Gemini -------------------------------------------------------------------------------------------------------


def test_gemini_json_schema_keeps_what_it_honours_and_describes_the_rest() -> None:
    converted = gemini._to_gemini_json_schema(Person.model_json_schema())  # pyright: ignore[reportPrivateUsage]
    assert check_fields({"contents": [], "generationConfig": {"responseJsonSchema": converted}}) is None
    props = converted["properties"]
    assert props["age"]["minimum"] == 0 and props["age"]["maximum"] == 150  # honoured by Gemini: kept
    assert props["tags"]["minItems"] == 2 and props["tags"]["maxItems"] == 5
    assert props["home"] == {"anyOf": [{"$ref": "#/$defs/Address"}], "description": "Where they live"}
    text = _descriptions(converted)
    for note in ("{maxLength: 40}", "{exclusiveMaximum: 1, exclusiveMinimum: 0, multipleOf: 0.01}", "{minLength: 2}"):
        assert note in text, (note, text)
    assert "{pattern: ^\\d{5}$}" in text


@pytest.mark.parametrize("model", ["gemini-2.5-flash", "gemini-3-flash-preview"])
def test_parse_with_a_constrained_model_through_gemini(emulator: Start, model: str) -> None:
    emu_handler = GeminiEmulator(response(json.dumps(ANSWER)))
    emu = emulator(emu_handler)
    client = _router("gemini", model, emu.url).openai_client()
    completion = client.chat.completions.parse(
        model="m",
        messages=[{"role": "user", "content": "Describe Ada."}],
        response_format=Person,
        tools=[openai.pydantic_function_tool(Address)],
    )
    assert completion.choices[0].message.parsed == Person.model_validate(ANSWER)
    config = emu_handler.bodies[0]["generationConfig"]
    assert "{minLength: 2}" in _descriptions(config["responseJsonSchema"])
    declaration = emu_handler.bodies[0]["tools"][0]["functionDeclarations"][0]
    assert "{maxLength: 80, minLength: 1}" in _descriptions(declaration["parametersJsonSchema"])


def test_gemini_1_parameters_describe_what_the_openapi_subset_cannot_hold() -> None:
    schema = {
        "type": "object",
        "properties": {"score": {"type": "number", "exclusiveMinimum": 0, "multipleOf": 0.5, "description": "S"}},
    }
    converted = gemini._to_native_schema(schema, schema, ())  # pyright: ignore[reportPrivateUsage]
    assert converted["properties"]["score"]["description"] == "S\n\n{exclusiveMinimum: 0, multipleOf: 0.5}"
    assert check_fields({"contents": [], "tools": [{"functionDeclarations": [{"parameters": converted}]}]}) is None


def test_the_emulator_counts_optional_and_union_parameters_across_strict_schemas() -> None:
    wide = {
        "type": "object",
        "properties": {f"f{i}": {"anyOf": [{"type": "string"}, {"type": "null"}]} for i in range(17)},
        "additionalProperties": False,
    }
    body = {"output_config": {"format": {"type": "json_schema", "schema": wide}}}
    assert "too many optional parameters (17)" not in (claude.check_schemas(body) or "")  # 17 optional: allowed
    assert "too many parameters with union types (17)" in (claude.check_schemas(body) or "")
    tool = {
        "name": "t",
        "strict": True,
        "input_schema": {**wide, "properties": {f"g{i}": {"type": "string"} for i in range(8)}},
    }
    assert "too many optional parameters (25)" in (claude.check_schemas({**body, "tools": [tool]}) or "")


def test_gemini_json_schema_unwraps_a_one_part_all_of() -> None:
    schema = {"type": "object", "properties": {"home": {"allOf": [{"$ref": "#/$defs/A"}], "description": "D"}}}
    converted = gemini._to_gemini_json_schema(schema)  # pyright: ignore[reportPrivateUsage]
    assert converted["properties"]["home"] == {"anyOf": [{"$ref": "#/$defs/A"}], "description": "D"}
