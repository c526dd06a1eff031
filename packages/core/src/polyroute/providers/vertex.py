"""Google Vertex AI: Gemini and Claude behind Google Cloud auth, with the Gemini and Anthropic translations.

Docs: https://cloud.google.com/vertex-ai/generative-ai/docs ("model-reference/inference",
"partner-models/claude/use-claude", "learn/locations").

**Endpoints.** ``https://{location}-aiplatform.googleapis.com``, or ``https://aiplatform.googleapis.com`` for the
``global`` location; a deployment's ``api_base`` replaces the host (private endpoints, tests). Under it:

- Gemini: ``/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent`` (and
  ``:streamGenerateContent?alt=sse``); the body is the Gemini API's (:mod:`polyroute.providers.gemini`);
- Claude (a model id starting with ``claude``, e.g. ``claude-sonnet-4-5@20250929``):
  ``/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{model}:rawPredict`` (and
  ``:streamRawPredict``); the body is the Messages API's (:mod:`polyroute.providers.anthropic`) with
  ``anthropic_version: vertex-2023-10-16`` in the body instead of the header, and no ``model`` (it is in the URL).

Answers, streams and errors are those of the publisher's own API and are read by its adapter.

**Auth.** An OAuth access token from google-auth (``pip install "polyroute[vertex]"``): the deployment's
``credentials`` (a service-account JSON file path, or its contents as a mapping), else application default
credentials (``GOOGLE_APPLICATION_CREDENTIALS``, gcloud, the metadata server). The token is cached per credentials
source; within :data:`REFRESH_AHEAD` seconds of its expiry a background thread refreshes it while calls go on with
the current one, so only the very first call (or one after a long idle past expiry) waits for the token endpoint.
``project``: the deployment's, else the credentials' own project, else ``GOOGLE_CLOUD_PROJECT``. ``location``: the
deployment's, else ``GOOGLE_CLOUD_LOCATION``, else ``global``.
"""

from __future__ import annotations

import datetime
import json
import os
import threading
import time
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import quote

from polyroute.errors import UpstreamStatusError
from polyroute.providers import anthropic, gemini
from polyroute.providers._base import (
    StreamDecoder,
    StreamTranslator,
    Target,
    UpstreamRequest,
    credentials_error,
    dumps,
)
from polyroute.types.openai import ChatCompletion, ChatCompletionRequest

ANTHROPIC_VERSION = "vertex-2023-10-16"
"""The ``anthropic_version`` Claude on Vertex takes in the body."""

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)

REFRESH_AHEAD = 300.0
"""Seconds before a token's expiry at which a background refresh starts (tokens live an hour)."""


def is_claude(model: str) -> bool:
    """Whether a Vertex model id names a Claude model (publisher ``anthropic``)."""
    return model.startswith(("claude", "publishers/anthropic/"))


def _publisher(target: Target) -> Any:
    return anthropic if is_claude(target.model) else gemini


# -- the four verbs, by publisher ---------------------------------------------------------------------------------


def build_request(body: ChatCompletionRequest, target: Target) -> UpstreamRequest:
    """The ``generateContent`` / ``rawPredict`` request (or its streaming twin), with a bearer token."""
    stream = bool(body.get("stream"))
    if is_claude(target.model):
        native = anthropic.native_body(body, target)
        native.pop("model", None)  # in the URL; the body names the API version instead
        native["anthropic_version"] = ANTHROPIC_VERSION
        if stream:
            native["stream"] = True
        content = dumps(native)
        method = "streamRawPredict" if stream else "rawPredict"
        publisher = "anthropic"
    else:
        content = gemini.build_request(body, target).content
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        publisher = "google"
    model = quote(target.model.rsplit("/", 1)[-1], safe="@-._~")
    url = f"{base_url(target)}/v1/projects/{project(target)}/locations/{location(target)}/publishers/{publisher}"
    url += f"/models/{model}:{method}"
    headers = {
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
        "authorization": f"Bearer {token(target)}",
    }
    headers.update(target.deployment.headers)
    return UpstreamRequest("POST", url, headers, content, stream=stream)


def parse_response(content: bytes, target: Target, body: ChatCompletionRequest) -> ChatCompletion:
    """The publisher's answer, read by its adapter."""
    return _publisher(target).parse_response(content, target, body)


def stream_decoder() -> StreamDecoder:
    """Both publishers stream server-sent events."""
    return gemini.stream_decoder()


def stream_translator(target: Target, body: ChatCompletionRequest) -> StreamTranslator:
    """The publisher's stream translator."""
    return _publisher(target).stream_translator(target, body)


def classify_error(status: int, headers: Mapping[str, str], content: bytes, target: Target) -> UpstreamStatusError:
    """Vertex's own errors (auth, quota, a wrong project) are ``google.rpc.Status`` bodies, read as Gemini's; Claude's
    are Anthropic's.
    """
    if is_claude(target.model) and b'"type"' in content[:200]:
        return anthropic.classify_error(status, headers, content, target)
    return gemini.classify_error(status, headers, content, target)


# -- where --------------------------------------------------------------------------------------------------------


def location(target: Target) -> str:
    """The deployment's ``location``, else ``GOOGLE_CLOUD_LOCATION``, else ``global``."""
    return target.deployment.location or os.environ.get("GOOGLE_CLOUD_LOCATION") or "global"


def base_url(target: Target) -> str:
    """``https://{location}-aiplatform.googleapis.com`` (``aiplatform.googleapis.com`` for ``global``)."""
    base = target.api_base.rstrip("/")
    if "{location}" not in base:
        return base
    where = location(target)
    return "https://aiplatform.googleapis.com" if where == "global" else base.replace("{location}", where)


def project(target: Target) -> str:
    """The deployment's ``project``, else the credentials' project, else ``GOOGLE_CLOUD_PROJECT``."""
    found = target.deployment.project or _source(target).project or os.environ.get("GOOGLE_CLOUD_PROJECT")
    if not found:
        raise credentials_error(
            target, "no Google Cloud project: set project in the deployment, or GOOGLE_CLOUD_PROJECT"
        )
    return found


# -- tokens -------------------------------------------------------------------------------------------------------


def token(target: Target) -> str:
    """A valid access token for the deployment's credentials (see the module docstring for refresh)."""
    return _source(target).token(target)


class TokenSource:
    """One credentials source and its current token; refreshes ahead of expiry in a background thread."""

    __slots__ = ("_credentials", "_lock", "_refreshing", "project")

    def __init__(self, credentials: Any, project: str | None) -> None:
        self._credentials = credentials
        self.project = project
        self._lock = threading.Lock()
        self._refreshing = False

    def token(self, target: Target) -> str:
        """The cached token; a synchronous refresh only when there is none or it has expired."""
        credentials = self._credentials
        left = self._seconds_left()
        if credentials.token and left > 0:
            if left < REFRESH_AHEAD:
                self._refresh_in_background(target)
            return str(credentials.token)
        with self._lock:
            if not (credentials.token and self._seconds_left() > 0):
                self._refresh(target)
            return str(credentials.token)

    def _seconds_left(self) -> float:
        expiry = self._credentials.expiry  # naive UTC datetime (google-auth's convention), or None: no expiry
        if expiry is None:
            return float("inf")
        return expiry.replace(tzinfo=datetime.timezone.utc).timestamp() - time.time()

    def _refresh_in_background(self, target: Target) -> None:
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True

        def run() -> None:
            try:
                with self._lock:
                    self._refresh(target)
            except UpstreamStatusError:
                pass  # the current token is still valid; the next call past expiry retries in the foreground
            finally:
                self._refreshing = False

        threading.Thread(target=run, name="polyroute-vertex-token", daemon=True).start()

    def _refresh(self, target: Target) -> None:
        from google.auth.exceptions import GoogleAuthError

        try:
            self._credentials.refresh(_HttpRequest())
        except GoogleAuthError as exc:
            raise credentials_error(target, f"Google Cloud credentials could not be refreshed: {exc}") from exc


_SOURCES: dict[str, TokenSource] = {}
_SOURCES_LOCK = threading.Lock()


def _source(target: Target) -> TokenSource:
    credentials = target.deployment.credentials
    key = json.dumps(credentials, sort_keys=True) if credentials is not None else ""
    found = _SOURCES.get(key)
    if found is None:
        with _SOURCES_LOCK:
            found = _SOURCES.get(key)
            if found is None:
                found = _SOURCES[key] = _load(target, credentials)
    return found


def _load(target: Target, credentials: str | dict[str, Any] | None) -> TokenSource:
    try:
        import google.auth
        from google.auth.exceptions import GoogleAuthError
        from google.oauth2 import service_account
    except ImportError as exc:
        raise credentials_error(target, 'Vertex AI requests need google-auth: pip install "polyroute[vertex]"') from exc
    accounts: Any = service_account.Credentials
    try:
        if isinstance(credentials, dict):
            loaded: Any = accounts.from_service_account_info(credentials, scopes=SCOPES)
            return TokenSource(loaded, cast("str | None", credentials.get("project_id")))
        if isinstance(credentials, str):
            loaded = accounts.from_service_account_file(credentials, scopes=SCOPES)
            return TokenSource(loaded, cast("str | None", loaded.project_id))
        default: Any = getattr(google.auth, "default")  # noqa: B009 - its signature is partly untyped
        found: tuple[Any, str | None] = default(scopes=SCOPES)
        return TokenSource(found[0], found[1])
    except (GoogleAuthError, OSError, ValueError) as exc:
        raise credentials_error(target, f"Google Cloud credentials could not be loaded: {exc}") from exc


class _HttpRequest:
    """google-auth's transport ``Request`` over httpx / httpx2, so the token endpoint needs no ``requests``."""

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        from google.auth import exceptions

        from polyroute import _compat

        lib: Any = _compat.UPSTREAM
        try:
            with lib.Client(timeout=timeout or 30.0) as client:
                response = client.request(method, url, content=body, headers=dict(headers or {}))
        except lib.HTTPError as exc:
            raise exceptions.TransportError(str(exc)) from exc
        return _HttpResponse(response.status_code, dict(response.headers), response.content)


class _HttpResponse:
    __slots__ = ("data", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.status = status
        self.headers = headers
        self.data = data
