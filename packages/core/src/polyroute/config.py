"""The router's configuration, validated by pydantic.

A config is a dict, a :class:`RouterConfig`, or a YAML / TOML / JSON file. Errors name the field path and the
bad value (``models[0].deployments[1].provider: unknown provider 'antropic'; known: ...``) and are raised as
:class:`~polyroute.errors.ConfigError` when the router is built, never on the first call.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, cast, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from polyroute.errors import ConfigError, is_secret_header, remember_secret
from polyroute.state.sentinel import is_sentinel_url, parse_sentinel_url

Strategy = Literal["ordered", "weighted", "least-busy", "latency", "cost"]


class _Model(BaseModel):
    # Validation errors never echo input: a deployment's headers or api_key may be in it. load_config names the
    # bad values itself, except secret ones.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


_MIN_HEADER_SECRET = 16


def masked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with credential values replaced, for reprs."""
    return {name: "**********" if is_secret_header(name) else value for name, value in headers.items()}


class Capabilities(_Model):
    """What a deployment can take; ``None`` means "ask the catalog" (unknown models can do everything)."""

    tools: bool | None = None
    vision: bool | None = None
    pdf: bool | None = None
    audio: bool | None = None
    json_schema: bool | None = None
    reasoning: bool | None = None
    context_window: int | None = Field(default=None, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)


class Prices(_Model):
    """USD per million tokens; overrides the catalog."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_read: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)


class MockToolCall(_Model):
    """A tool call the mock provider answers with."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Deployment(_Model):
    """One provider deployment of a model: where to send a request, how, and with which limits."""

    provider: str
    model: str
    id: str | None = Field(default=None, description="A name for logs and headers; default provider/model.")
    api_base: str | None = None
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    api_version: str | None = Field(default=None, description="Azure's api-version; Anthropic's anthropic-version.")
    weight: float = Field(default=1.0, ge=0)
    timeout: float | None = Field(default=None, gt=0, description="Seconds for the whole upstream call.")
    ttft_timeout: float | None = Field(default=None, gt=0, description="Seconds to the first streamed token.")
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    max_parallel: int | None = Field(default=None, gt=0)
    capabilities: Capabilities | None = None
    prices: Prices | None = None
    headers: dict[str, str] = Field(default_factory=dict, description="Sent with every upstream request.")
    params: dict[str, Any] = Field(default_factory=dict, description="Native body fields merged into each request.")
    mode: Literal["chat", "embedding"] | None = Field(
        default=None,
        description="What the model serves: chat completions or embeddings; default from the catalog (a model it "
        "does not know serves either, unless its name says embed).",
    )
    dimensions: int | None = Field(
        default=None, gt=0, description="Embeddings: the vector size asked for when the request names none."
    )
    max_batch: int | None = Field(
        default=None, gt=0, description="Embeddings: most inputs per upstream request; default the provider's limit."
    )
    drop_params: list[str] = Field(
        default_factory=list,
        description="OpenAI request parameters this deployment may drop when it cannot honour them (e.g. seed); "
        "without this opt-in such a request is routed elsewhere or refused with a 400 naming the parameter.",
    )
    # AWS Bedrock (provider: bedrock): without these, botocore's credential chain (environment, profile, SSO,
    # container and instance roles) and region; a Bedrock API key (api_key / AWS_BEARER_TOKEN_BEDROCK) wins.
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None
    aws_profile: str | None = None
    aws_region: str | None = None
    # Google Vertex AI (provider: vertex): without credentials, application default credentials.
    project: str | None = Field(default=None, description="Vertex: the Google Cloud project id.")
    location: str | None = Field(default=None, description="Vertex: a region (us-east5) or 'global'.")
    credentials: str | dict[str, Any] | None = Field(
        default=None, description="Vertex: a service-account JSON file path, or the file's contents as a mapping."
    )
    # The mock provider's behaviour (provider: mock); rejected on other providers.
    response: str | None = None
    tool_calls: list[MockToolCall] | None = None
    error: int | None = Field(default=None, ge=400, le=599)
    error_message: str | None = None
    fail_times: int | None = Field(default=None, ge=0)
    retry_after: float | None = Field(default=None, ge=0, description="Mock errors: the retry-after header.")
    latency: float | None = Field(default=None, ge=0)
    chunk_delay: float | None = Field(default=None, ge=0)
    chunk_size: int | None = Field(default=None, gt=0)
    broken_stream: bool = False

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        from polyroute.providers import PROVIDERS

        if value not in PROVIDERS:
            raise ValueError(f"unknown provider {value!r}; known: {', '.join(sorted(PROVIDERS))}")
        return value

    @field_validator("drop_params")
    @classmethod
    def _openai_params(cls, value: list[str]) -> list[str]:
        from polyroute.providers._base import OPENAI_REQUEST_FIELDS

        unknown = [name for name in value if name not in OPENAI_REQUEST_FIELDS]
        if unknown:
            raise ValueError(
                f"drop_params names OpenAI request parameters; {', '.join(map(repr, unknown))} is not one (e.g. seed, "
                "presence_penalty, logprobs)"
            )
        return value

    @field_validator("api_key_env")
    @classmethod
    def _variable_name(cls, value: str | None) -> str | None:
        if value is not None and _ENV_NAME.fullmatch(value) is None:
            remember_secret(value)  # most likely the key itself, pasted in the wrong field: never echo it
            raise ValueError(
                "api_key_env must name an environment variable (letters, digits and _, e.g. ANTHROPIC_API_KEY), not "
                "hold the key; put a literal key in api_key"
            )
        return value

    @field_validator("api_base")
    @classmethod
    def _http_base(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"api_base must start with http:// or https://, got {value!r}")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _mock_fields_only_on_mock(self) -> Deployment:
        if self.provider != "mock":
            mock_only = (
                "response",
                "tool_calls",
                "error",
                "fail_times",
                "latency",
                "chunk_delay",
                "chunk_size",
                "retry_after",
            )
            used = [name for name in mock_only if getattr(self, name) is not None]
            if self.broken_stream:
                used.append("broken_stream")
            if used:
                raise ValueError(f"{', '.join(used)} only apply to provider 'mock' (this one is {self.provider!r})")
        return self

    @model_validator(mode="after")
    def _cloud_fields_on_their_provider(self) -> Deployment:
        for provider, names in _CLOUD_FIELDS.items():
            used = [name for name in names if getattr(self, name) is not None]
            if used and self.provider != provider:
                names = ", ".join(used)
                raise ValueError(f"{names} only apply to provider {provider!r} (this one is {self.provider!r})")
        for secret in (self.aws_secret_access_key, self.aws_session_token):
            if secret is not None and secret.get_secret_value():
                remember_secret(secret.get_secret_value())
        if isinstance(self.credentials, dict):
            key = self.credentials.get("private_key")
            if isinstance(key, str) and key:
                remember_secret(key)
        return self

    @model_validator(mode="after")
    def _remember_secret_headers(self) -> Deployment:
        # Only long values: a credential is, and a short one ("X-Auth-Mode: standard") would redact common words.
        for name, value in self.headers.items():
            if is_secret_header(name):
                scheme, _, token = value.partition(" ")
                for secret in (value, token.strip() if scheme.isalpha() else ""):  # "Bearer <token>": either
                    if len(secret) >= _MIN_HEADER_SECRET:
                        remember_secret(secret)
        return self

    def __repr_args__(self) -> Any:
        """Credential header values never show in a repr (``api_key`` is a ``SecretStr`` already)."""
        for name, value in super().__repr_args__():
            if name == "credentials" and isinstance(value, dict):
                yield name, "**********"  # a service account's private key
            else:
                yield name, masked_headers(value) if name == "headers" else value

    @property
    def label(self) -> str:
        """``id`` if given, else ``provider/model``: how logs, headers and errors name this deployment."""
        return self.id or f"{self.provider}/{self.model}"

    def resolve_api_key(self, default_envs: tuple[str, ...]) -> str | None:
        """The key from ``api_key``, ``api_key_env`` or the provider's usual variables, in that order."""
        if self.api_key is not None:
            return _resolved(self.api_key.get_secret_value())
        for env in (self.api_key_env,) if self.api_key_env else default_envs:
            value = os.environ.get(env)
            if value:
                return _resolved(value)
        return None


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_CLOUD_FIELDS: dict[str, tuple[str, ...]] = {
    "bedrock": ("aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_profile", "aws_region"),
    "vertex": ("project", "location", "credentials"),
}

KEY_LISTENERS: list[Callable[[str], None]] = []
"""Called with every API key a deployment resolves; ``polyroute.testing`` listens to keep keys out of cassettes."""


def _resolved(key: str) -> str:
    """Every key used is remembered for :func:`~polyroute.errors.redact` (cheap once known)."""
    remember_secret(key)
    for listener in KEY_LISTENERS:
        listener(key)
    return key


class ModelRoute(_Model):
    """A logical model name that clients ask for, served by one or more deployments."""

    name: str = Field(min_length=1)
    strategy: Strategy = "ordered"
    deployments: list[Deployment] = Field(min_length=1)
    fallbacks: list[str] = Field(default_factory=list)
    context_window_fallbacks: list[str] = Field(default_factory=list)
    content_policy_fallbacks: list[str] = Field(default_factory=list)
    hedge_after_ms: float | None = Field(default=None, gt=0)
    allow_mixed_vector_spaces: bool = Field(
        default=False,
        description="An embedding route may mix models or dimensions (and so fail over between incomparable "
        "vector spaces) only when this is set.",
    )


class RetrySettings(_Model):
    """How hard the router tries before it gives up."""

    max_attempts: int = Field(default=8, ge=1, description="Upstream calls per request, fallbacks included.")
    same_deployment_retries: int = Field(default=0, ge=0, description="Retries on one deployment before moving.")
    last_resort_retries: int = Field(
        default=2,
        ge=0,
        description="Retries of a lone deployment (the only one tried and left) after a transient failure "
        "(429, 5xx, 529, timeout), as the openai SDK itself would retry.",
    )
    backoff: float = Field(default=0.25, ge=0, description="First backoff in seconds; doubles, with jitter.")
    max_backoff: float = Field(default=4.0, ge=0)
    deadline: float | None = Field(default=None, gt=0, description="Seconds for the whole call, all attempts.")
    allowed_fails: int = Field(default=3, ge=1, description="Consecutive failures before a deployment cools down.")
    cooldown: float = Field(default=30.0, ge=0, description="Seconds a failing deployment is skipped.")
    max_retry_after: float = Field(default=60.0, ge=0, description="Longest upstream Retry-After honoured.")
    limit_wait: float = Field(default=2.0, ge=0, description="Longest wait when every deployment is at its limit.")


class StateSettings(_Model):
    """Where routing state lives: this process's memory (the default), or Redis shared by every process using the
    same ``url`` and ``prefix`` (cooldowns, circuits and their half-open probe, rpm/tpm buckets, in-flight counts,
    latency averages, budgets and spend). Needs ``pip install 'polyroute[redis]'``.
    """

    backend: Literal["memory", "redis"] = "memory"
    url: SecretStr | None = Field(
        default=None,
        description="redis://, rediss:// or unix:// URL, as redis-py takes it, or "
        "redis+sentinel://host:26379[,host:26379]/service[/db] (may hold a password).",
    )
    cluster: bool = Field(default=False, description="The URL names a node of a Redis Cluster.")
    prefix: str = Field(default="polyroute:", description="Start of every key, to keep apart fleets on one Redis.")
    timeout: float = Field(
        default=0.05, gt=0, description="Seconds one Redis operation may take before the call goes on without it."
    )
    refresh: float = Field(
        default=0.5, gt=0, description="Seconds between background reads of fleet latency, load and cooldowns."
    )
    reconnect: float = Field(
        default=1.0, gt=0, description="Seconds between checks whether an unreachable Redis is back."
    )
    probe_timeout: float = Field(
        default=30.0, gt=0, description="Seconds a half-open probe holds its claim if its process dies mid-call."
    )
    budgets_when_unreachable: Literal["open", "closed"] = Field(
        default="open",
        description="With Redis unreachable, budgets count in this process (open) or refuse calls with a 503 (closed).",
    )

    @model_validator(mode="after")
    def _url_for_redis(self) -> StateSettings:
        if self.backend == "redis" and self.url is None:
            raise ValueError("backend 'redis' needs url (redis://host:6379/0)")
        if self.url is not None and is_sentinel_url(self.url.get_secret_value()):
            parse_sentinel_url(self.url.get_secret_value())  # its ValueError names what to fix, never the password
            if self.cluster:
                raise ValueError("state.url names Sentinel, which serves one master: drop cluster: true")
        if "{" in self.prefix or "}" in self.prefix:
            raise ValueError("state.prefix must not contain braces: they mark Redis Cluster hash tags")
        return self


class ResponsesSettings(_Model):
    """Where ``/v1/responses`` keeps responses for ``previous_response_id`` and ``GET /v1/responses/{id}``."""

    store: Literal["memory", "sqlite", "redis"] | None = Field(
        default=None,
        description="memory, sqlite (store_path) or redis (the state: Redis, shared by every process on it); "
        "unset: sqlite with a store_path, else memory.",
    )
    store_path: str | None = Field(
        default=None, description="A SQLite file that outlives the process; None keeps responses in memory."
    )
    max_stored: int = Field(
        default=10_000, ge=1, description="Responses kept; the least recently used (on Redis: written) go first."
    )
    ttl: float = Field(
        default=30 * 86_400, gt=0, description="Seconds a response stays on Redis after it is written (30 days)."
    )

    @model_validator(mode="after")
    def _store_has_its_place(self) -> ResponsesSettings:
        if self.store == "sqlite" and not self.store_path:
            raise ValueError("store 'sqlite' needs store_path (a file)")
        if self.store in ("memory", "redis") and self.store_path:
            raise ValueError(f"store {self.store!r} keeps no file: drop store_path, or use store 'sqlite'")
        return self


class UsageSettings(_Model):
    """Where usage records go (see :mod:`polyroute.usage`). The in-memory totals are on by default; ``enabled:
    false`` turns recording off entirely (no cost per call).
    """

    enabled: bool = True
    aggregate: bool = Field(default=True, description="Keep in-memory totals: Router.usage().")
    ledger: str | None = Field(default=None, description="A SQLite file to append every record to (batched).")
    otel: bool = Field(default=False, description="OpenTelemetry GenAI spans and metrics (opentelemetry-api).")
    callback: Callable[..., Any] | str | None = Field(
        default=None,
        description="Called with each record (a UsageRecord), off the request path; a callable or 'module:function'.",
    )
    content: bool = Field(default=False, description="Keep prompt and completion text in records.")
    flush_interval: float = Field(default=0.5, gt=0, description="Seconds between background writes.")

    @field_validator("callback")
    @classmethod
    def _callback_resolves(cls, value: Any) -> Any:
        if isinstance(value, str):
            module, found, name = value.partition(":")
            if not found or not module or not name:
                raise ValueError(f"callback {value!r} must be 'module:function'")
        return value


BudgetPeriod = Literal["minute", "hour", "day", "month"]
BudgetScope = Literal["all", "route", "deployment", "tag", "user"]


class Budget(_Model):
    """A spending limit: USD or tokens per period (calendar periods in UTC), over calls of a route, deployment, tag
    or user (``match``: that one; none: each one separately), or all calls (``scope: all``).

    A call that would pass it goes to ``fallback`` (a model name) when set, else gets a 429 ``budget_exceeded``.
    """

    name: str = Field(min_length=1)
    scope: BudgetScope = "all"
    match: str | None = None
    usd: float | None = Field(default=None, gt=0)
    tokens: int | None = Field(default=None, gt=0)
    per: BudgetPeriod = "day"
    fallback: str | None = None

    @model_validator(mode="after")
    def _one_limit(self) -> Budget:
        if (self.usd is None) == (self.tokens is None):
            raise ValueError(f"budget {self.name!r}: set exactly one of usd or tokens")
        if self.scope == "all" and self.match is not None:
            raise ValueError(f"budget {self.name!r}: match needs a scope (route, deployment, tag or user)")
        if self.scope == "deployment" and self.fallback is not None:
            raise ValueError(f"budget {self.name!r}: a deployment budget skips the deployment; fallback is for routes")
        return self


class VirtualKey(_Model):
    """A key ``polyroute serve`` accepts from clients, stored as its SHA-256 (``polyroute key`` makes one). Clients
    never see or send provider keys: the deployment's key is added by the router.
    """

    name: str = Field(min_length=1, description="Who holds the key; in logs and usage records.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hashlib.sha256(key.encode()).hexdigest()")
    routes: list[str] | None = Field(default=None, description="Model names this key may call; unset: all.")
    rpm: int | None = Field(default=None, gt=0, description="Requests per minute (per server process).")
    tags: list[str] = Field(default_factory=list)
    admin: bool = Field(default=False, description="May read the server's admin pages (/usage).")


class RouterConfig(_Model):
    """The whole router: models, retry policy, defaults."""

    models: list[ModelRoute] = Field(default_factory=list[ModelRoute])
    retry: RetrySettings = Field(default_factory=RetrySettings)
    state: StateSettings = Field(default_factory=StateSettings)
    timeout: float = Field(default=600.0, gt=0, description="Default per-deployment timeout in seconds.")
    stream_idle_timeout: float = Field(
        default=120.0, gt=0, description="Longest silence between chunks once a stream has begun, in seconds."
    )
    direct_routes: bool = Field(default=True, description="Also route 'provider/model' names with no config entry.")
    responses: ResponsesSettings = Field(default_factory=ResponsesSettings)
    usage: UsageSettings = Field(default_factory=UsageSettings)
    budgets: list[Budget] = Field(default_factory=list[Budget])
    keys: list[VirtualKey] = Field(default_factory=list[VirtualKey], description="polyroute serve's client keys.")

    @model_validator(mode="after")
    def _names_resolve(self) -> RouterConfig:
        names = [m.name for m in self.models]
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ValueError(f"model name {name!r} is defined twice")
            seen.add(name)
        hashes = [key.sha256 for key in self.keys]
        if len(set(hashes)) != len(hashes):
            raise ValueError("keys: the same key (sha256) is listed twice")
        for route in self.models:
            for field in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
                for target in getattr(route, field):
                    if target not in seen and "/" not in target and ":" not in target:
                        raise ValueError(
                            f"model {route.name!r}: {field} names {target!r}, which is not a model here "
                            f"(known: {', '.join(names)})"
                        )
        if self.responses.store == "redis" and self.state.backend != "redis":
            raise ValueError("responses.store 'redis' uses the state: Redis; set state: {backend: redis, url: ...}")
        budget_names: set[str] = set()
        for budget in self.budgets:
            if budget.name in budget_names:
                raise ValueError(f"budget name {budget.name!r} is defined twice")
            budget_names.add(budget.name)
            fallback = budget.fallback
            if fallback is not None and fallback not in seen and "/" not in fallback and ":" not in fallback:
                raise ValueError(
                    f"budget {budget.name!r}: fallback names {fallback!r}, which is not a model here "
                    f"(known: {', '.join(names)})"
                )
        return self


def load_config(source: RouterConfig | Mapping[str, Any] | str | os.PathLike[str]) -> RouterConfig:
    """Validate ``source`` (a config, a dict, or a YAML / TOML / JSON path) into a :class:`RouterConfig`."""
    if isinstance(source, RouterConfig):
        return source
    if isinstance(source, str | os.PathLike):
        data: Any = _read_file(Path(source))
        if isinstance(data, dict):
            data = _files_beside(cast("dict[str, Any]", data), Path(source).resolve().parent)
    else:
        data = dict(source)
    try:
        return RouterConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc)) from None


def _files_beside(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A config file's relative file paths (``responses.store_path``, ``usage.ledger``, a Vertex deployment's
    ``credentials``) taken relative to the file's folder, as the file's author meant them, not the process's
    working directory.
    """

    def beside(value: Any) -> Any:
        if isinstance(value, str) and value and value != ":memory:" and not Path(value).expanduser().is_absolute():
            return str(folder / value)
        return value

    data = dict(data)
    for section, key in (("responses", "store_path"), ("usage", "ledger")):
        part = data.get(section)
        if isinstance(part, dict) and key in part:
            data[section] = {**cast("dict[str, Any]", part), key: beside(cast("dict[str, Any]", part)[key])}
    models = data.get("models")
    if isinstance(models, list):
        data["models"] = [_credentials_beside(model, beside) for model in cast("list[Any]", models)]
    return data


def _credentials_beside(model: Any, beside: Callable[[Any], Any]) -> Any:
    if not isinstance(model, dict):
        return model
    route = cast("dict[str, Any]", model)
    deployments: Any = route.get("deployments")
    if not isinstance(deployments, list):
        return route
    moved: list[Any] = []
    for deployment in cast("list[Any]", deployments):
        if isinstance(deployment, dict) and "credentials" in deployment:
            fields = cast("dict[str, Any]", deployment)
            deployment = {**fields, "credentials": beside(fields["credentials"])}
        moved.append(deployment)
    return {**route, "deployments": moved}


def _read_file(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise ConfigError(
                    f"{path} is YAML, which needs PyYAML: pip install pyyaml (the polyroute[yaml] extra), "
                    "or use TOML / JSON"
                ) from None
            return yaml.safe_load(text) or {}
        if suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib

                return tomllib.loads(text)
            import tomli  # pragma: no cover  # pyright: ignore[reportMissingImports]

            return tomli.loads(text)  # pragma: no cover  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        if suffix == ".json":
            return json.loads(text)
    except ConfigError:
        raise
    except Exception as exc:  # each parser has its own error class; all mean the same thing here
        raise ConfigError(f"{path}: cannot parse: {exc}") from None
    raise ConfigError(f"{path}: unknown config format {suffix!r}; use .yaml, .toml or .json")


def _format_validation_error(exc: ValidationError) -> str:
    lines: list[str] = []
    for error in exc.errors():
        loc = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")
        message = error["msg"].removeprefix("Value error, ")
        value = error.get("input")
        secret = "api_key" in loc or ".headers" in loc or loc.endswith("sha256")  # a raw key pasted by mistake
        if error["type"] == "extra_forbidden":
            lines.append(f"{loc or 'config'}: {_unknown_field(error['loc'])}")
        elif error["type"] == "missing" or secret or isinstance(value, dict | list):
            lines.append(f"{loc or 'config'}: {message}")
        else:
            lines.append(f"{loc or 'config'}: {message} (got {value!r})")
    return "invalid polyroute config:\n  " + "\n  ".join(lines)


def _unknown_field(loc: tuple[int | str, ...]) -> str:
    """A misspelt field (``timout``) is named with the closest field of its place, so the fix is obvious."""
    fields = _fields_at(loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), fields, n=1, cutoff=0.6)
    if close:
        return f"unknown field (did you mean {close[0]!r}?)"
    return "unknown field" + (f" (known here: {', '.join(sorted(fields))})" if fields else "")


def _fields_at(loc: tuple[int | str, ...]) -> list[str]:
    """The field names the config model at ``loc`` takes (none when ``loc`` leaves the models, e.g. a dict)."""
    model: type[BaseModel] | None = RouterConfig
    for part in loc:
        if model is None:
            return []
        if isinstance(part, int):  # a list index: the list's item model was taken with the list's field
            continue
        field = model.model_fields.get(part)
        model = _model_in(field.annotation) if field is not None else None
    if model is None:
        return []
    return [field.alias or name for name, field in model.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The config model inside an annotation (``list[Deployment]``, ``StateSettings | None``…), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None
