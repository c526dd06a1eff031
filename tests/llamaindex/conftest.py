"""LlamaIndex tests: narrowly silence third-party deprecation warnings (the root config makes warnings errors).

Each filter names the message and, where the warning is attributed to it, the module that triggers it; they apply
to tests in this directory only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent

_THIRD_PARTY = [
    # llama-index-workflows finds steps with inspect.getmembers() on the agent, a pydantic model, which reads the
    # deprecated instance attributes (workflows/utils.py get_steps_from_instance); attributed to ``inspect``.
    "ignore:The `__fields__` attribute is deprecated:pydantic.warnings.PydanticDeprecatedSince20:inspect",
    "ignore:The `__fields_set__` attribute is deprecated:pydantic.warnings.PydanticDeprecatedSince20:inspect",
    "ignore:Accessing the 'model_computed_fields' attribute:pydantic.warnings.PydanticDeprecatedSince211:inspect",
    "ignore:Accessing the 'model_fields' attribute:pydantic.warnings.PydanticDeprecatedSince211:inspect",
    # llama-index-core's ReActAgent.take_step asks ctx.is_running, which llama-index-workflows deprecated.
    "ignore:is_running called from within a step:DeprecationWarning:llama_index.core.agent.workflow.react_agent",
    # llama-index-core's StructuredLLM.stream_chat calls the pydantic v1 ``.json()``.
    "ignore:The `json` method is deprecated:pydantic.warnings.PydanticDeprecatedSince20:llama_index.core.llms.structured_llm",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.parents:
            for spec in _THIRD_PARTY:
                item.add_marker(pytest.mark.filterwarnings(spec))
