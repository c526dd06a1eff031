"""A Vertex AI emulator: Google's OAuth token endpoint, and Gemini and Claude behind bearer tokens.

- ``POST /token``: the service-account flow google-auth runs (``grant_type`` jwt-bearer): the assertion's RS256
  signature is verified with the test service account's public key, and its ``iss``, ``aud`` (Google's token endpoint),
  ``scope`` (cloud-platform) and ``iat`` / ``exp`` are checked; it answers ``{"access_token", "expires_in",
  "token_type": "Bearer"}`` as Google does (as recorded in ``../shared/corpus/vertex/``).
- ``POST /v1/projects/{project}/locations/{location}/publishers/{google|anthropic}/models/{model}:{method}``: the
  bearer token must be one this endpoint issued and not expired (401 ``UNAUTHENTICATED`` otherwise), the project and
  location the expected ones; then Gemini calls go to the Gemini emulator and Claude calls (``rawPredict`` /
  ``streamRawPredict``: ``anthropic_version: vertex-2023-10-16`` in the body, no ``model``) to the Anthropic one,
  which check bodies as strictly as for the direct APIs; ``:predict`` and ``:embedContent`` (Google's embedding
  models) go to :attr:`VertexEmulator.embeddings`. ``v1beta1`` is served beside ``v1``, as on Vertex.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from tests.emulators import anthropic_format as claude
from tests.emulators import gemini_format
from tests.emulators.server import Handler, Reply, Request

PROJECT = "polyroute-test-project"
CLIENT_EMAIL = "router@polyroute-test-project.iam.gserviceaccount.com"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
"""The ``aud`` of a service account's assertion: Google's token endpoint, wherever ``token_uri`` points."""

_PATH = re.compile(
    r"^/v1(?:beta1)?/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/publishers/"
    r"(?P<publisher>google|anthropic)/models/(?P<model>[^:/]+):"
    r"(?P<method>generateContent|streamGenerateContent|rawPredict|streamRawPredict|predict|embedContent)$"
)


def service_account(token_uri: str) -> tuple[dict[str, Any], Any]:
    """A fresh service account (its JSON file's contents) whose ``token_uri`` is this emulator, and its public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": CLIENT_EMAIL,
        "client_id": "123456789",
        "token_uri": token_uri,
    }
    return info, key.public_key()


def rpc_error(status: int, rpc_status: str, message: str) -> Reply:
    """A ``google.rpc.Status`` error, as Vertex sends it."""
    return Reply.json({"error": {"code": status, "message": message, "status": rpc_status}}, status=status)


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@dataclass
class VertexEmulator:
    """The token endpoint plus the two publishers; set :attr:`public_key` and :attr:`url` before use."""

    gemini: Handler | None = None
    claude: Handler | None = None
    embeddings: Handler | None = None
    """Google's embedding models (``:predict``, ``:embedContent``), e.g. ``embeddings_format.vertex_predict_handler()``."""
    location: str = "us-east5"
    token_lifetime: int = 3600
    public_key: Any = None
    url: str = ""
    tokens: dict[str, float] = field(default_factory=dict[str, float])
    """Issued access tokens → expiry (epoch seconds)."""
    token_requests: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    _counter: itertools.count[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, request: Request) -> Reply:
        if request.path == "/token":
            return self._token(request)
        found = _PATH.match(request.path)
        if request.method != "POST" or found is None:
            return rpc_error(404, "NOT_FOUND", f"{request.method} {request.path} is not a Vertex AI method")
        authorization = request.headers.get("authorization", "")
        expiry = self.tokens.get(authorization.removeprefix("Bearer "))
        if not authorization.startswith("Bearer ") or expiry is None or expiry < time.time():
            return rpc_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
                "other valid authentication credential.",
            )
        if found["project"] != PROJECT:
            return rpc_error(403, "PERMISSION_DENIED", f"Permission denied on resource project {found['project']}.")
        if found["location"] != self.location:
            return rpc_error(404, "NOT_FOUND", f"Publisher model not found in location {found['location']}.")
        body = request.json()
        with self._lock:
            self.bodies.append(body)
        if found["publisher"] == "google" and found["method"] in ("predict", "embedContent"):
            if self.embeddings is None:
                return rpc_error(404, "NOT_FOUND", "no embedding model here")
            return self.embeddings(request)
        if found["publisher"] == "google":
            return self._gemini(request, found)
        return self._claude(request, body, found)

    def _token(self, request: Request) -> Reply:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != JWT_BEARER or "assertion" not in form:
            return Reply.json({"error": "unsupported_grant_type"}, status=400)
        problem = self._check_assertion(form["assertion"])
        if problem is not None:
            return Reply.json({"error": "invalid_grant", "error_description": problem}, status=400)
        with self._lock:
            self.token_requests += 1
            token = f"ya29.emu-{next(self._counter)}-token"
            self.tokens[token] = time.time() + self.token_lifetime
        return Reply.json({"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"})

    def _check_assertion(self, assertion: str) -> str | None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            head, payload, signature = assertion.split(".")
            header, claims = json.loads(_b64decode(head)), json.loads(_b64decode(payload))
            self.public_key.verify(
                _b64decode(signature), f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except (ValueError, InvalidSignature):
            return "Invalid JWT Signature."
        now = time.time()
        if header.get("alg") != "RS256":
            return "Invalid JWT: alg must be RS256"
        if claims.get("iss") != CLIENT_EMAIL:
            return "Invalid JWT: iss is not the service account"
        if claims.get("aud") != GOOGLE_TOKEN_AUDIENCE:
            return "Invalid JWT: aud must be Google's token endpoint"
        if CLOUD_PLATFORM not in str(claims.get("scope", "")).split():
            return "Invalid JWT: no cloud-platform scope"
        if not claims.get("iat", 0) - 300 <= now <= claims.get("exp", 0):
            return "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
        return None

    def _gemini(self, request: Request, found: re.Match[str]) -> Reply:
        if self.gemini is None:
            return rpc_error(404, "NOT_FOUND", "no Gemini model here")
        method = found["method"]
        if method not in ("generateContent", "streamGenerateContent"):
            return rpc_error(400, "INVALID_ARGUMENT", f"{method} is not a Gemini method")
        inner = Request(
            request.method,
            f"/v1beta/models/{found['model']}:{method}",
            request.query,
            {**request.headers, "x-goog-api-key": "vertex"},
            request.body,
        )
        return self.gemini(inner)

    def _claude(self, request: Request, body: dict[str, Any], found: re.Match[str]) -> Reply:
        if self.claude is None:
            return rpc_error(404, "NOT_FOUND", "no Claude model here")
        method = found["method"]
        if method not in ("rawPredict", "streamRawPredict"):
            return rpc_error(400, "INVALID_ARGUMENT", f"{method} is not a Claude method")
        if body.get("anthropic_version") != "vertex-2023-10-16":
            return claude.error(400, "invalid_request_error", "anthropic_version: Input should be 'vertex-2023-10-16'")
        if "model" in body:
            return claude.error(400, "invalid_request_error", "model: Extra inputs are not permitted")
        if (method == "streamRawPredict") != bool(body.get("stream")):
            return claude.error(400, "invalid_request_error", "stream must be true with streamRawPredict only")
        native = {k: v for k, v in body.items() if k != "anthropic_version"}
        native["model"] = found["model"]
        headers = {**request.headers, "x-api-key": "vertex", "anthropic-version": "2023-06-01"}
        return self.claude(Request(request.method, "/v1/messages", {}, headers, json.dumps(native).encode()))


def gemini_emulator(*turns: Any, **options: Any) -> gemini_format.GeminiEmulator:
    """The Gemini emulator that answers behind Vertex (whose function responses may hold ``fileData`` too)."""
    return gemini_format.GeminiEmulator(*turns, **{"vertex": True, **options})
