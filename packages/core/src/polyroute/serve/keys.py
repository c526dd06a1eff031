"""Virtual keys: who may call ``polyroute serve``, which routes, how often.

Keys are stored as SHA-256 hex digests (``keys:`` in the config), so a leaked config leaks no key; a client sends
the key itself as ``Authorization: Bearer …`` (OpenAI clients) or ``x-api-key`` (Anthropic clients). Provider keys
are never accepted from clients nor sent to them: the router adds each deployment's own key upstream.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from polyroute.config import VirtualKey

KEY_PREFIX = "pr-"


def new_key() -> str:
    """A fresh random client key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The digest stored in ``keys[].sha256``."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(slots=True)
class KeyState:
    """A key and its recent request times (for ``rpm``)."""

    key: VirtualKey
    recent: deque[float] = field(default_factory=deque[float])

    def allows(self, model: str) -> bool:
        """Whether the key may call ``model``."""
        routes = self.key.routes
        return routes is None or model in routes or "*" in routes

    def admit(self, now: float | None = None) -> float | None:
        """Count one request; None if within ``rpm``, else the seconds until the oldest one leaves the window."""
        rpm = self.key.rpm
        if rpm is None:
            return None
        now = time.monotonic() if now is None else now
        recent = self.recent
        while recent and recent[0] <= now - 60.0:
            recent.popleft()
        if len(recent) >= rpm:
            return max(0.001, recent[0] + 60.0 - now)
        recent.append(now)
        return None


class KeyRing:
    """The configured keys, looked up by the digest of what a client sent."""

    def __init__(self, keys: Sequence[VirtualKey]) -> None:
        self._by_digest = {key.sha256: KeyState(key) for key in keys}

    def __len__(self) -> int:
        return len(self._by_digest)

    def find(self, presented: str) -> KeyState | None:
        """The key a client presented, or None. The lookup is by digest: equal-time on the secret itself."""
        digest = hash_key(presented)
        state = self._by_digest.get(digest)
        if state is not None and hmac.compare_digest(state.key.sha256, digest):
            return state
        return None
