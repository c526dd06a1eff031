"""The Responses store on Redis (``responses: {store: redis}``): a conversation continued by ``previous_response_id``
works whichever process the next turn lands on.

All keys share the one hash tag ``{responses}`` (one Redis Cluster slot), so one script writes a response and trims
the store::

    <prefix>{responses}:<id>   string: the record as JSON, expiring ``ttl`` after it was written
    <prefix>{responses}        sorted set of ids by write time (ms): the ``max_stored`` most recent are kept

It uses the connection, the timeout and the down-detection of the router's :class:`RedisState`. While Redis is
unreachable a lookup raises :class:`ResponseStoreUnreachableError` (a 503 saying so) and a write is dropped, logged
once until a write succeeds again: the answer itself still reaches the caller.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from polyroute.errors import ResponseStoreUnreachableError
from polyroute.providers._base import loads
from polyroute.responses.store import portable
from polyroute.state.redis import RedisState

_log = logging.getLogger("polyroute.state")

# KEYS: index, record. ARGV: id, record JSON, ttl ms, max entries, record key prefix. The oldest ids past the bound
# (or past their ttl) leave the index and their records are deleted (same hash tag: the same slot).
_PUT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ttl)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
if over > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, over - 1)) do redis.call('DEL', ARGV[5] .. id) end
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1)
end
redis.call('PEXPIRE', KEYS[1], ttl)
return 0
"""

# KEYS: index, record. ARGV: id. Reply: 1 if the record was there.
_DELETE = """
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('DEL', KEYS[2])
"""


def response_keys(prefix: str, response_id: str) -> tuple[str, str]:
    """The index and the record key of ``response_id`` (the one ``{responses}`` tag: one Cluster slot)."""
    base = f"{prefix}{{responses}}"
    return base, f"{base}:{response_id}"


class RedisResponseStore:
    """:class:`~polyroute.responses.store.ResponseStore` on the connection of a :class:`RedisState`."""

    def __init__(self, state: RedisState, max_entries: int = 10_000, ttl: float = 30 * 86_400) -> None:
        self._state = state
        self._prefix = state._settings.prefix  # pyright: ignore[reportPrivateUsage]
        self.max_entries = max_entries
        self.ttl = ttl
        self._lock = threading.Lock()
        self._dropping = False
        """Writes fail and that was logged (reset when one succeeds)."""

    def __repr__(self) -> str:
        return f"RedisResponseStore({self._state!r}, max_entries={self.max_entries})"

    def put(self, response_id: str, record: dict[str, Any]) -> None:
        """Keep a response; when Redis cannot take it, the caller still gets its answer (logged once)."""
        keys = response_keys(self._prefix, response_id)
        args = (
            response_id,
            json.dumps(portable(record), separators=(",", ":")),
            str(max(int(self.ttl * 1000), 1)),
            str(self.max_entries),
            keys[0] + ":",
        )
        if self._call(lambda client: self._state._run(client, _PUT, keys, args)) is None:  # pyright: ignore[reportPrivateUsage]
            with self._lock:
                if self._dropping:
                    return
                self._dropping = True
            _log.warning(
                "responses store on Redis unreachable: responses answered now are not kept (a previous_response_id "
                "naming one will not be found) until it answers"
            )
            return
        self._dropping = False

    def get(self, response_id: str) -> dict[str, Any] | None:
        """A kept response, or None; raises :class:`ResponseStoreUnreachableError` when Redis does not answer."""
        key = response_keys(self._prefix, response_id)[1]
        found = self._call(lambda client: [client.get(key)])
        if found is None:
            raise self._unreachable(
                f"Response with id '{response_id}' cannot be looked up: the responses store (Redis) is unreachable. "
                "Retry shortly, or send the conversation as input instead of previous_response_id."
            )
        return loads(found[0]) if found[0] is not None else None

    def delete(self, response_id: str) -> bool:
        """Forget a response; raises :class:`ResponseStoreUnreachableError` when Redis does not answer."""
        keys = response_keys(self._prefix, response_id)
        deleted = self._call(lambda client: self._state._run(client, _DELETE, keys, (response_id,)))  # pyright: ignore[reportPrivateUsage]
        if deleted is None:
            raise self._unreachable(
                f"Response with id '{response_id}' cannot be deleted: the responses store (Redis) is unreachable. "
                "Retry shortly."
            )
        return int(deleted) > 0

    def _call(self, operation: Callable[[Any], Any]) -> Any:
        """``operation(client)``, or None when Redis is down or does not answer in time (the shared state learns it:
        routing goes on alone, and the background thread watches for Redis to come back).
        """
        state = self._state
        client = state._ready()  # pyright: ignore[reportPrivateUsage]
        if client is None:
            return None
        try:
            return operation(client)
        except Exception as exc:  # never a traceback for the caller: a clear error or a logged drop
            state._went_down(exc)  # pyright: ignore[reportPrivateUsage]
            return None

    def _unreachable(self, message: str) -> ResponseStoreUnreachableError:
        reconnect = self._state._settings.reconnect  # pyright: ignore[reportPrivateUsage]
        return ResponseStoreUnreachableError(message, retry_after=reconnect)
