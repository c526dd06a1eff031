"""Record and replay the router's provider calls in tests: a pytest plugin on vcrpy and pytest-recording.

Opt in with ``pytest -p polyroute.testing`` or ``pytest_plugins = ["polyroute.testing"]`` in a conftest
(``pip install "polyroute[testing]"``). A test marked ``@pytest.mark.vcr`` then records the router's **upstream**
calls (the provider hop, not the in-process OpenAI call) with ``--record-mode=once``, and replays them offline
with ``--record-mode=none``, pytest-recording's default. Sync, async and streamed calls replay.

The defaults are set on the ``VCR`` object in pytest-recording's ``pytest_recording_configure`` hook, so they
apply with no conftest at all (a ``vcr_config`` fixture in this module would be shadowed by pytest-recording's
own); a ``vcr_config`` fixture still overrides single options. :func:`llm_vcr_config` returns them as a dict:

- every provider's auth headers are dropped (:data:`SECRET_HEADERS`: ``authorization``, ``x-api-key``,
  ``api-key``, ``x-goog-api-key``, ``openai-organization``, the AWS signature headers, cookies), from requests
  and responses, and so are key-carrying query parameters (:data:`SECRET_QUERY_PARAMETERS`, ``?key=``…);
- compressed responses are stored decoded;
- requests match on method, scheme, host, port, path, query and :func:`llm_json_body` (canonical JSON, the
  :data:`VOLATILE_BODY_KEYS` ignored).

**Secret guard.** The plugin learns every key the router uses: the provider variables of
:data:`polyroute.providers.PROVIDERS` (and AWS's), each key a deployment resolves
(:data:`polyroute.config.KEY_LISTENERS`), and each credential header it drops. Before a cassette is written it
drops the auth headers again (whatever ``vcr_config`` says), then looks for those keys anywhere in it; a cassette
holding one is deleted, never written, and the test fails at teardown, naming where the key was, never the key.

**No match.** A request that is not in the cassette raises vcrpy's ``CannotOverwriteExistingCassetteException``;
the router lets it through (it is no upstream failure, so no failover), the openai SDK reports it as the cause
of its connection error, and this plugin adds a hint to the failure report.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import pytest

from polyroute.config import KEY_LISTENERS
from polyroute.errors import redact
from polyroute.providers import PROVIDERS

SECRET_HEADERS: tuple[str, ...] = (
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "openai-organization",
    "openai-project",
    "anthropic-organization-id",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    "cookie",
    "set-cookie",
)
"""Headers never kept in a cassette, request or response."""

CREDENTIAL_HEADERS: frozenset[str] = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "x-amz-security-token"}
)
"""The headers whose values are keys: the guard learns them before dropping them."""

SECRET_QUERY_PARAMETERS: tuple[str, ...] = (
    "key",
    "api_key",
    "api-key",
    "apikey",
    "access_token",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
)
"""Query parameters never kept in a cassette (Gemini's ``?key=``, presigned AWS URLs)."""

VOLATILE_BODY_KEYS: frozenset[str] = frozenset({"id", "tool_call_id", "tool_use_id"})
"""Request-body keys whose values :func:`llm_json_body` ignores: tool-call ids that may be generated per run."""

MATCH_ON: tuple[str, ...] = ("method", "scheme", "host", "port", "path", "query", "llm_json_body")

AWS_KEY_ENVS: tuple[str, ...] = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")

MIN_SECRET_LENGTH = 8
"""Shorter values (``ollama``, ``none``) are placeholders, not keys, and would match by chance."""

_NO_MATCH = "CannotOverwriteExistingCassetteException"
_HINT = (
    "A provider call of this test is not in its cassette (vcrpy's CannotOverwriteExistingCassetteException, the "
    "cause above): the request changed since it was recorded (prompt, model, parameters, deployments), or it was "
    "never recorded. polyroute does not fail over on this error. Record with --record-mode=once (new cassettes) or "
    "--record-mode=rewrite (changed ones), or fix the request."
)


# -- the secret guard ---------------------------------------------------------------------------------------------


def key_env_names() -> tuple[str, ...]:
    """Every environment variable a provider key may come from."""
    names = [env for spec in PROVIDERS.values() for env in spec.key_envs]
    return tuple(dict.fromkeys([*names, *AWS_KEY_ENVS]))


@dataclass
class SecretGuard:
    """The keys seen in this session (value → where it came from) and the cassettes refused because of them."""

    _keys: dict[str, str] = field(default_factory=dict[str, str])
    _refused: list[str] = field(default_factory=list[str])
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, value: object, source: str) -> None:
        """Remember a key (a ``Bearer`` prefix is stripped); placeholders shorter than 8 characters are ignored."""
        if not isinstance(value, str):
            return
        key = value.strip()
        scheme, _, rest = key.partition(" ")
        if rest and scheme.lower() in ("bearer", "token", "basic"):
            key = rest.strip()
        if len(key) >= MIN_SECRET_LENGTH and " " not in key:
            with self._lock:
                self._keys.setdefault(key, source)

    def add_environment(self) -> None:
        """Remember the provider keys set in the environment now."""
        for name in key_env_names():
            self.add(os.environ.get(name), name)

    def find(self, text: str) -> list[str]:
        """Where each known key occurs in ``text``: the key's source, never the key."""
        with self._lock:
            keys = list(self._keys.items())
        return [source for key, source in keys if key in text or quote(key, safe="") in text]

    def refuse(self, message: str) -> None:
        """Record a refused cassette, for the teardown to report."""
        with self._lock:
            self._refused.append(message)

    def take_refused(self) -> list[str]:
        """The refusals since the last call."""
        with self._lock:
            refused, self._refused = self._refused, []
        return refused


GUARD = SecretGuard()
"""The guard of this pytest session."""


def _learn_header(key: str, value: Any, request: Any) -> None:
    if key.lower() in CREDENTIAL_HEADERS:
        GUARD.add(value, f"the {key.lower()} header")
    GUARD.add_environment()
    return None


def _learn_query(key: str, value: Any, request: Any) -> None:
    if key.lower() in ("key", "api_key", "api-key", "apikey", "access_token"):
        GUARD.add(value, f"the {key} query parameter")
    return None


def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    """Drop :data:`SECRET_HEADERS` from a recorded response (``before_record_response``)."""
    headers: dict[str, Any] = response.get("headers") or {}
    response["headers"] = {k: v for k, v in headers.items() if k.lower() not in SECRET_HEADERS}
    return response


def _scrub_request(request: Any) -> None:
    headers: Mapping[str, Any] = request.headers
    for name in [k for k in headers if k.lower() in SECRET_HEADERS]:
        del request.headers[name]


def _walk(value: Any, path: str) -> Iterable[tuple[str, str]]:
    """Every string in a recorded interaction, with its path (bytes decoded as UTF-8)."""
    if isinstance(value, bytes):
        yield path, value.decode("utf-8", errors="replace")
    elif isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for k, v in cast("Mapping[Any, Any]", value).items():
            yield f"{path}.{k}", str(k)
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(cast("Iterable[Any]", value)):
            yield from _walk(v, f"{path}[{i}]")


def leaks(cassette_dict: Mapping[str, Any]) -> list[str]:
    """Where a known key occurs in a cassette's interactions: ``"OPENAI_API_KEY in interactions[0].request…"``."""
    found: list[str] = []
    pairs = zip(cassette_dict.get("requests") or [], cassette_dict.get("responses") or [], strict=False)
    for i, (request, response) in enumerate(pairs):
        recorded = {"request": request._to_dict(), "response": response}
        for path, text in _walk(recorded, f"interactions[{i}]"):
            found.extend(f"{source} in {path}" for source in GUARD.find(text))
    return list(dict.fromkeys(found))


class GuardedPersister:
    """Wraps pytest-recording's persister: scrubs auth headers, and refuses to write a cassette holding a key."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def load_cassette(self, cassette_path: str, serializer: Any) -> Any:
        """Load as the wrapped persister does."""
        return self._inner.load_cassette(cassette_path, serializer)

    def save_cassette(self, cassette_path: str, cassette_dict: dict[str, Any], serializer: Any) -> None:
        """Scrub, scan, then write, or delete the cassette and record why."""
        requests: list[Any] = cassette_dict.get("requests") or []
        responses: list[dict[str, Any]] = cassette_dict.get("responses") or []
        for request in requests:
            _scrub_request(request)
        for response in responses:
            scrub_response(response)
        path = Path(cassette_path)
        found = leaks(cassette_dict)
        if not found:
            self._inner.save_cassette(cassette_path, cassette_dict, serializer=serializer)
            text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
            found = [f"{source} in the written file" for source in GUARD.find(text)]
        if found:
            path.unlink(missing_ok=True)
            GUARD.refuse(_refusal(path, found))


def _refusal(path: Path, found: list[str]) -> str:
    return (
        f"polyroute.testing: cassette {path} would hold an API key, so it was deleted: {'; '.join(found)}. "
        "Keep keys out of deployment headers, params and prompts, or drop the header with vcr_config's "
        "filter_headers."
    )


# -- matching ------------------------------------------------------------------------------------------------------


def _canonical(body: Any, volatile: frozenset[str]) -> Any:
    """A request body as comparable data: parsed JSON with volatile values blanked, else the raw bytes."""
    if body is None or body in (b"", ""):
        return None
    raw = body.encode() if isinstance(body, str) else body
    try:
        data: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw
    return _blank(data, volatile)


def _blank(value: Any, volatile: frozenset[str]) -> Any:
    if isinstance(value, dict):
        items = cast("dict[str, Any]", value).items()
        return {k: "<volatile>" if k in volatile else _blank(v, volatile) for k, v in items}
    if isinstance(value, list):
        return [_blank(v, volatile) for v in cast("list[Any]", value)]
    return value


def _difference(live: Any, recorded: Any, path: str = "$") -> str:
    """The first place two bodies differ, briefly."""
    if isinstance(live, dict) and isinstance(recorded, dict):
        a, b = cast("dict[str, Any]", live), cast("dict[str, Any]", recorded)
        for key in sorted(set(a) | set(b)):
            if key not in b:
                return f"{path}.{key} is new"
            if key not in a:
                return f"{path}.{key} is missing"
            if a[key] != b[key]:
                return _difference(a[key], b[key], f"{path}.{key}")
    elif isinstance(live, list) and isinstance(recorded, list):
        a_list, b_list = cast("list[Any]", live), cast("list[Any]", recorded)
        if len(a_list) == len(b_list):
            for i, (x, y) in enumerate(zip(a_list, b_list, strict=True)):
                if x != y:
                    return _difference(x, y, f"{path}[{i}]")

    def short(value: Any) -> str:
        text = repr(value)
        return text if len(text) <= 80 else text[:77] + "..."

    return f"{path}: {short(live)} (this request) != {short(recorded)} (recorded)"


def json_body_matcher(volatile_keys: Iterable[str] = VOLATILE_BODY_KEYS) -> Callable[[Any, Any], None]:
    """A vcrpy matcher comparing request bodies as canonical JSON (key order and spacing ignored, values of
    ``volatile_keys`` ignored), or byte for byte when a body is not JSON.
    """
    volatile = frozenset(volatile_keys)

    def llm_json_body(r1: Any, r2: Any) -> None:
        live, recorded = _canonical(r1.body, volatile), _canonical(r2.body, volatile)
        if live != recorded:
            raise AssertionError(redact("JSON bodies differ at " + _difference(live, recorded)))

    return llm_json_body


llm_json_body = json_body_matcher()
"""The default body matcher, registered under the name ``"llm_json_body"``."""


# -- configuration -------------------------------------------------------------------------------------------------


def llm_vcr_config(*, extra_headers: Iterable[str] = (), extra_query_parameters: Iterable[str] = ()) -> dict[str, Any]:
    """The plugin's VCR options as a dict, for a ``vcr_config`` fixture that adds its own.

    The plugin applies these already; return this (updated) from ``vcr_config`` to change one. The
    ``llm_json_body`` matcher it names is registered by the plugin.
    """
    return {
        "filter_headers": [(name, _learn_header) for name in (*SECRET_HEADERS, *extra_headers)],
        "filter_query_parameters": [
            (name, _learn_query) for name in (*SECRET_QUERY_PARAMETERS, *extra_query_parameters)
        ],
        "before_record_response": scrub_response,
        "decode_compressed_response": True,
        "match_on": MATCH_ON,
    }


def _learn_resolved_key(key: str) -> None:
    GUARD.add(key, "a key a deployment resolved")


# -- pytest hooks --------------------------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    """Listen to the keys deployments resolve; check that pytest-recording is active."""
    if not any(getattr(p, "__name__", "") == "pytest_recording.plugin" for p in config.pluginmanager.get_plugins()):
        raise pytest.UsageError(
            "polyroute.testing needs pytest-recording: pip install 'polyroute[testing]' (with plugin autoload "
            "disabled, also pass -p pytest_recording.plugin)"
        )
    if _learn_resolved_key not in KEY_LISTENERS:
        KEY_LISTENERS.append(_learn_resolved_key)
    GUARD.add_environment()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop listening."""
    if _learn_resolved_key in KEY_LISTENERS:
        KEY_LISTENERS.remove(_learn_resolved_key)


@pytest.hookimpl(optionalhook=True, trylast=True)
def pytest_recording_configure(config: pytest.Config, vcr: Any) -> None:
    """Apply polyroute's defaults to each cassette's VCR, and guard what it writes (last, over other hooks)."""
    for name, value in llm_vcr_config().items():
        setattr(vcr, name, value)
    vcr.register_matcher("llm_json_body", llm_json_body)
    if not isinstance(vcr.persister, GuardedPersister):
        vcr.register_persister(GuardedPersister(vcr.persister))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Note the keys in the environment while the test's own settings (monkeypatch) still hold."""
    try:
        return (yield)
    finally:
        GUARD.add_environment()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    """After the cassette is saved: fail the test if a cassette it used holds a key (and delete it)."""
    GUARD.take_refused()
    funcargs: Mapping[str, Any] = getattr(item, "funcargs", None) or {}
    cassette = funcargs.get("vcr")
    try:
        return (yield)
    finally:
        problems = GUARD.take_refused()
        path = getattr(cassette, "_path", None)
        if isinstance(path, str) and not problems and os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                found = GUARD.find(f.read())
            if found:
                os.remove(path)
                problems.append(_refusal(Path(path), [f"{source} in the file" for source in found]))
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Explain a failure caused by a request missing from the cassette."""
    report = yield
    if call.excinfo is not None and report.failed and _caused_by_no_match(call.excinfo.value):
        report.sections.append(("polyroute.testing", _HINT))
    return report


def _caused_by_no_match(exc: BaseException | None, depth: int = 0) -> bool:
    if exc is None or depth > 20:
        return False
    if type(exc).__name__ == _NO_MATCH:
        return True
    for inner in getattr(exc, "exceptions", ()) or ():
        if isinstance(inner, BaseException) and _caused_by_no_match(inner, depth + 1):
            return True
    return _caused_by_no_match(exc.__cause__ or exc.__context__, depth + 1)


__all__ = [
    "CREDENTIAL_HEADERS",
    "GUARD",
    "MATCH_ON",
    "SECRET_HEADERS",
    "SECRET_QUERY_PARAMETERS",
    "VOLATILE_BODY_KEYS",
    "GuardedPersister",
    "SecretGuard",
    "json_body_matcher",
    "key_env_names",
    "leaks",
    "llm_json_body",
    "llm_vcr_config",
    "scrub_response",
]
