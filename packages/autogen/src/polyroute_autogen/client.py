"""``PolyrouteChatCompletionClient``: an AutoGen (0.4+) model client whose OpenAI calls stay in-process.

It is autogen-ext's OpenAI client over an ``AsyncOpenAI`` bound to the router's transport, with what the router
knows laid on top: ``model_info`` from the route's deployments (so ``claude-*`` or ``smart`` get the right
tool/vision/JSON flags and no vendor ``base_url``), token limits from the catalog, and a component config that
round-trips the router config without its secrets.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, Literal, get_args

from autogen_core import CancellationToken, Component
from autogen_core.models import CreateResult, LLMMessage, ModelFamily, ModelInfo
from autogen_core.tools import Tool, ToolSchema
from autogen_ext.models.openai import BaseOpenAIChatCompletionClient
from autogen_ext.models.openai.config import CreateArgumentsConfigModel
from pydantic import BaseModel
from typing_extensions import Self

from polyroute import Router, RouterConfig

__all__ = ["PolyrouteChatCompletionClient", "PolyrouteClientConfig", "dump_router_config"]

_CREATE_ARG_FIELDS = frozenset(CreateArgumentsConfigModel.model_fields)

_CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie", "openai-organization"}
)
"""Deployment headers whose values are credentials: never written into a dumped component."""


class PolyrouteClientConfig(CreateArgumentsConfigModel):
    """The JSON form of a :class:`PolyrouteChatCompletionClient` (``dump_component()["config"]``).

    ``router`` is the router's config with every secret removed (keys come from the environment on reload), or
    ``None`` for a router built from the environment alone (``Router()``: direct ``provider/model`` names).
    """

    model: str
    router: dict[str, Any] | None = None
    model_info: dict[str, Any] | None = None
    """Overrides of the ``ModelInfo`` derived from the route (keys of :class:`~autogen_core.models.ModelInfo`)."""
    timeout: float | None = None
    tags: list[str] | None = None
    """Tags that attribute every call in the router's usage records and budgets."""
    add_name_prefixes: bool = False
    include_name_in_message: bool = True


class PolyrouteChatCompletionClient(BaseOpenAIChatCompletionClient, Component[PolyrouteClientConfig]):
    """An AutoGen ``ChatCompletionClient`` that routes through polyroute in-process.

    Args:
        model: A model name of the router: a configured route (``"smart"``) or a direct ``"provider/model"``.
        router: A live :class:`~polyroute.Router` to share (its health state and connection pools).
        config: A router config (``RouterConfig``, dict, or YAML / TOML / JSON path) to build a router from.
            With neither ``router`` nor ``config``, ``Router()`` routes direct names with keys from the environment.
        model_info: Overrides for the :class:`~autogen_core.models.ModelInfo` derived from the route.
        timeout: Seconds for each call (the router's own per-deployment timeouts still apply).
        tags: Tags that attribute every call in the router's usage records and budgets (``user=``, a request
            argument, attributes them to a user).
        add_name_prefixes: Prefix message content with the sender's name (as autogen-ext's OpenAI client does).
        include_name_in_message: Send the ``name`` field on user / assistant messages.
        **create_args: Default request arguments (``temperature``, ``max_tokens``, ``seed``, ``stop``, ...).

    Example:
        .. code-block:: python

            router = Router.from_config("polyroute.yaml")
            client = PolyrouteChatCompletionClient(model="smart", router=router)
            agent = AssistantAgent("assistant", model_client=client, tools=[get_weather])
    """

    component_type = "model"
    component_config_schema = PolyrouteClientConfig
    component_provider_override = "polyroute_autogen.PolyrouteChatCompletionClient"

    def __init__(
        self,
        model: str,
        *,
        router: Router | None = None,
        config: RouterConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        model_info: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        tags: Sequence[str] | None = None,
        add_name_prefixes: bool = False,
        include_name_in_message: bool = True,
        **create_args: Any,
    ) -> None:
        if router is not None and config is not None:
            raise ValueError("pass either router= or config=, not both")
        unknown = set(create_args) - _CREATE_ARG_FIELDS
        if unknown:
            raise TypeError(
                f"unknown argument(s) {', '.join(sorted(unknown))}; request arguments are: "
                f"{', '.join(sorted(_CREATE_ARG_FIELDS))}"
            )
        self._router = router if router is not None else Router(config)
        self._from_env = router is None and config is None
        self._owns_router = router is None
        info = model_info_for(self._router, model)
        if model_info:
            info.update(model_info)  # type: ignore[typeddict-item]
        self._polyroute_args: dict[str, Any] = {k: v for k, v in create_args.items() if v is not None}
        self._tags = list(tags) if tags else None
        openai_kwargs: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        super().__init__(
            client=self._router.async_openai_client(tags=self._tags, **openai_kwargs),
            create_args={"model": model, **self._polyroute_args},
            model_info=info,
            add_name_prefixes=add_name_prefixes,
            include_name_in_message=include_name_in_message,
        )
        # autogen-ext compares the answer's model with the asked name and warns on a mismatch; a route name
        # ("smart") is answered by a deployment's model ("claude-sonnet-4-5"), which is the point, not an error.
        self._resolved_model = None
        self._model = model
        self._model_info_override = dict(model_info) if model_info else None
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"PolyrouteChatCompletionClient(model={self._model!r}, router={self._router!r})"

    @property
    def router(self) -> Router:
        """The router this client sends through."""
        return self._router

    async def create_stream(  # type: ignore[override]
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = (),
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] | None = None,
        cancellation_token: CancellationToken | None = None,
        max_consecutive_empty_chunk_tolerance: int = 0,
        include_usage: bool | None = True,
    ) -> AsyncGenerator[str | CreateResult, None]:
        """Stream text chunks, then a :class:`~autogen_core.models.CreateResult`; usage is on by default.

        ``include_usage=True`` (the default here, unlike autogen-ext's) asks for the final usage chunk, so
        :meth:`total_usage` counts streamed calls too. It is sent per streaming request only: a
        ``stream_options`` in the default arguments would leak into non-streaming requests, which are rejected.
        """
        extra = dict(extra_create_args or {})
        if include_usage is False and "stream_options" not in extra:
            include_usage = None  # autogen-ext turns any non-None value into include_usage=True
        async for item in super().create_stream(
            messages,
            tools=list(tools),
            tool_choice=tool_choice,
            json_output=json_output,
            extra_create_args=extra,
            cancellation_token=cancellation_token,
            max_consecutive_empty_chunk_tolerance=max_consecutive_empty_chunk_tolerance,
            include_usage=include_usage,
        ):
            yield item

    def count_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = ()) -> int:
        """An estimate of the prompt's tokens: about four characters of the OpenAI-format request per token.

        A route may end at any provider's model, whose tokenizer polyroute does not have; tiktoken would be
        exact only for OpenAI models and downloads its tables on first use. The estimate never touches the network.
        """
        params = self._process_create_args(messages, list(tools), "auto", None, {})
        text = json.dumps(params.messages, default=str, ensure_ascii=False)
        if params.tools:
            text += json.dumps(params.tools, default=str, ensure_ascii=False)
        return math.ceil(len(text) / 4) + 3 * len(params.messages)

    def remaining_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = ()) -> int:
        """The route's smallest known context window minus :meth:`count_tokens`."""
        window = self._router.model_info(self._model).context_window
        if window is None:
            raise ValueError(
                f"the context window of {self._model!r} is unknown: set capabilities.context_window on its "
                "deployments in the router config"
            )
        return window - self.count_tokens(messages, tools=tools)

    async def close(self) -> None:
        """Release what this client owns, and nothing a shared router holds.

        The OpenAI client here is a thin layer over the router's transport, whose connection pools belong to the
        router: closing it would cut every other client's calls, streams in flight included. A router this client
        built itself (from ``config=`` or the environment) is its own, and closes with it; a ``router=`` given to
        it stays open for its other users (close it with the router's own ``close()``).
        """
        if self._owns_router:
            self._router.close()
            await self._router.async_transport().aclose()

    def _to_config(self) -> PolyrouteClientConfig:
        return PolyrouteClientConfig(
            model=self._model,
            router=None if self._from_env else dump_router_config(self._router.config),
            model_info=self._model_info_override,
            timeout=self._timeout,
            tags=self._tags,
            add_name_prefixes=self._add_name_prefixes,
            include_name_in_message=self._include_name_in_message,
            **self._polyroute_args,
        )

    @classmethod
    def _from_config(cls, config: PolyrouteClientConfig) -> Self:
        args = config.model_dump(exclude_none=True, exclude={"router", "model_info", "model"})
        return cls(
            config.model,
            config=config.router,
            model_info=config.model_info,
            **args,
        )


def model_info_for(router: Router, model: str) -> ModelInfo:
    """The AutoGen ``ModelInfo`` of a router model name, from its deployments' catalog rows and config.

    ``multiple_system_messages`` is true when every deployment takes system messages anywhere in the history
    (see :data:`_SYSTEM_ANYWHERE`); ``AssistantAgent(memory=[...])`` adds a second, non-adjacent one, which
    autogen-ext refuses before sending when the flag is false (it merges adjacent ones itself).
    """
    info = router.model_info(model)
    return ModelInfo(
        vision=info.vision,
        function_calling=info.tools,
        json_output=info.json_schema,
        structured_output=info.json_schema,
        family=_family(router, model),
        multiple_system_messages=all(t.spec.key in _SYSTEM_ANYWHERE for t in router.route(model).targets),
    )


_SYSTEM_ANYWHERE = frozenset({"openai", "azure", "anthropic", "gemini", "mock"})
"""Providers that take system messages anywhere in the history: OpenAI and Azure accept them; polyroute's Anthropic
and Gemini adapters move every one, in order, into the top-level system prompt. Not Mistral ("Unexpected role
'system' after role 'assistant'"), nor, unverified, the other OpenAI-compatible vendors, whose open models'
chat templates often want the system message first."""


def _family(router: Router, model: str) -> str:
    """AutoGen's model family when every deployment of the route is of the same one, else ``unknown``."""
    found = {family_of(target.deployment.model) for target in router.route(model).targets}
    return found.pop() if len(found) == 1 else ModelFamily.UNKNOWN


_VERSIONED = re.compile(r"^(claude|gemini)-(\d+(?:[.-]\d)?)-([a-z]+)$")
"""AutoGen's Claude and Gemini families: ``claude-3-5-sonnet``, ``claude-4-opus``, ``gemini-2.5-pro``."""
_CLAUDE_ID = re.compile(
    r"claude-(?:(?P<tier>haiku|sonnet|opus)-(?P<new>\d+(?:-\d(?!\d))?)|(?P<old>\d+(?:-\d)?)-(?P<old_tier>haiku|sonnet|opus))"
)
_GEMINI_ID = re.compile(r"gemini-(?P<version>\d+(?:\.\d+)?)-(?P<tier>pro|flash)")


def family_of(model_id: str) -> str:
    """AutoGen's ``ModelFamily`` of a provider model id (``claude-sonnet-4-5``, ``us.anthropic.claude-...``).

    Claude and Gemini ids map to the family of the same tier with the highest version not above the model's
    (``claude-sonnet-4-5`` → ``claude-4-sonnet``, ``claude-haiku-4-5`` → ``claude-3-5-haiku``, ``gemini-3-pro``
    → ``gemini-2.5-pro``): autogen-ext's Claude and Gemini message rules then run, which is what the family is
    for. Other ids match AutoGen's family names as prefixes (``gpt-4o``, ``gpt-4.1`` → ``gpt-41``, ``o3``).
    """
    name = model_id.rsplit("/", 1)[-1].lower()
    for vendor, pattern in (("claude", _CLAUDE_ID), ("gemini", _GEMINI_ID)):
        match = pattern.search(name)
        if match:
            groups = match.groupdict()
            tier = groups.get("tier") or groups.get("old_tier") or ""
            version = _version(groups.get("version") or groups.get("new") or groups.get("old") or "0")
            return _nearest_family(vendor, tier, version)
    name = re.sub(r"^gpt-(\d)\.(\d)", r"gpt-\1\2", name)  # AutoGen writes gpt-4.1 as gpt-41, gpt-3.5 as gpt-35
    prefixes = sorted((f for f in get_args(ModelFamily.ANY) if f != ModelFamily.UNKNOWN), key=len, reverse=True)
    return next((p for p in prefixes if name.startswith(p)), ModelFamily.UNKNOWN)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.split(r"[.-]", text))


def _nearest_family(vendor: str, tier: str, version: tuple[int, ...]) -> str:
    candidates: list[tuple[tuple[int, ...], str]] = []
    for family in get_args(ModelFamily.ANY):
        match = _VERSIONED.match(family)
        if match and match[1] == vendor and match[3] == tier and _version(match[2]) <= version:
            candidates.append((_version(match[2]), family))
    return max(candidates)[1] if candidates else ModelFamily.UNKNOWN


def dump_router_config(config: RouterConfig) -> dict[str, Any]:
    """``config`` as JSON-safe data without secrets: inline ``api_key``s and credential headers are dropped.

    Keys come from the environment on reload (``api_key_env``, else the provider's usual variable); a dropped
    inline key is named in a :class:`UserWarning` (by deployment, never by value) so the loss is not silent.
    """
    data = config.model_dump(mode="json", exclude_defaults=True)
    dropped: list[str] = []
    for route, route_data in zip(config.models, data.get("models", []), strict=True):
        for deployment, dep_data in zip(route.deployments, route_data["deployments"], strict=True):
            if dep_data.pop("api_key", None) is not None:
                dropped.append(f"{route.name}: {deployment.label} api_key")
            headers: dict[str, str] = dep_data.get("headers", {})
            for name in [h for h in headers if h.lower() in _CREDENTIAL_HEADERS]:
                del headers[name]
                dropped.append(f"{route.name}: {deployment.label} header {name}")
    if dropped:
        warnings.warn(
            "polyroute: inline credentials are not saved in a dumped config ("
            + "; ".join(dropped)
            + "); on reload keys come from api_key_env or the provider's usual environment variable",
            UserWarning,
            stacklevel=3,
        )
    return data
