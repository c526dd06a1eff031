"""Stored responses: what ``previous_response_id``, ``GET /v1/responses/{id}`` and ``…/input_items`` read.

A record is a response, the whole input the model saw for it (a chain of ``previous_response_id`` already
expanded), and where it came from (``upstream``: an OpenAI deployment that keeps its own copy; ``polyroute``: a
translated answer only polyroute has). In memory and bounded by default (least recently used go first); in a SQLite
file (``responses.store_path`` in the router config) for a process that restarts; on the ``state:`` Redis
(``responses.store: redis``, :mod:`polyroute.state.redis_responses`) for a fleet of processes. One store per router.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol

from polyroute._thinking import ThinkingStore
from polyroute.errors import ResponseStoreUnreachableError
from polyroute.providers._base import as_list, as_object, dumps, loads
from polyroute.responses.translate import decode_reasoning, input_items, reasoning_source
from polyroute.router import Router

Record = dict[str, Any]
"""``{"response": {...}, "input": [items], "origin": "polyroute" | "upstream"}``; an OpenAI deployment's answer may
be kept as its bytes instead (``"raw"``), read with :func:`response_of`; ``"request"``, the caller's bytes when the
input is that request's own, lets the in-memory store keep those instead of encoding the input again; ``"owner"``, the
``polyroute serve`` key that made it, when one did (only that key may read, continue or delete it)."""


def response_of(record: Record) -> dict[str, Any]:
    """A record's response. A pass-through answer is kept in memory as the upstream's bytes (fewer objects for the
    garbage collector to walk in a store of thousands, and a third of the memory) and parsed when first read.
    """
    response = record.get("response")
    if response is None:
        raw = record.get("raw")
        if raw is None:  # another thread parsed it meanwhile
            return record["response"]
        response = record["response"] = loads(raw)
    return response


def portable(record: Record) -> Record:
    """The record as JSON can carry it (a store that serializes: SQLite, Redis)."""
    if "raw" not in record and "request" not in record:
        return record
    out = {key: value for key, value in record.items() if key not in _PACKED_APART}
    out["response"] = response_of(record)
    return out


class ResponseStore(Protocol):
    """Where responses are kept; thread-safe."""

    def put(self, response_id: str, record: Record) -> None:
        """Keep (or replace) a response."""
        ...

    def get(self, response_id: str) -> Record | None:
        """A kept response, or None."""
        ...

    def delete(self, response_id: str) -> bool:
        """Forget a response; whether it was kept."""
        ...


class MemoryStore:
    """Responses in memory, the ``max_entries`` most recently used.

    Each record is kept packed, as JSON bytes (a pass-through answer as the upstream's own bytes): thousands of
    stored responses as dicts would be hundreds of thousands of objects for the garbage collector to walk on every
    full collection, a cost every call of the process pays (measured: 40 µs per translated call at 3,000 stored).
    Packed, they are a few objects each and a third of the memory; a record is unpacked when read.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[bytes, bytes, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, response_id: str, record: Record) -> None:
        """Keep a response; the least recently used go when full."""
        packed = _pack(record)
        with self._lock:
            self._entries[response_id] = packed
            self._entries.move_to_end(response_id)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def get(self, response_id: str) -> Record | None:
        """A kept response, or None."""
        with self._lock:
            packed = self._entries.get(response_id)
            if packed is None:
                return None
            self._entries.move_to_end(response_id)
        response, rest, request = packed
        record: Record = loads(rest)
        record["raw"] = response
        if request:
            record["input"] = input_items(loads(request))
        return record

    def delete(self, response_id: str) -> bool:
        """Forget a response."""
        with self._lock:
            return self._entries.pop(response_id, None) is not None


def _pack(record: Record) -> tuple[bytes, bytes, bytes]:
    """A record as (its response's JSON bytes, the rest's JSON bytes, the request's bytes or ``b""``).

    When the input is one request's own (no ``previous_response_id`` chain), the caller's bytes are kept and its
    items read back from them: a long conversation resent each turn is not encoded again for the store (24 KB of
    input: 18 µs a call).
    """
    raw = record.get("raw")
    response = raw if isinstance(raw, bytes) else dumps(record["response"])
    request = record.get("request")
    skip = _INPUT_APART if isinstance(request, bytes) else _PACKED_APART
    rest = dumps({key: value for key, value in record.items() if key not in skip})
    return response, rest, request if isinstance(request, bytes) else b""


_PACKED_APART = frozenset({"raw", "response", "request"})
"""Record keys kept as bytes of their own, not in the rest's JSON."""
_INPUT_APART = _PACKED_APART | {"input"}


class SQLiteStore:
    """Responses in a SQLite file, the ``max_entries`` most recently written."""

    def __init__(self, path: str, max_entries: int = 10_000) -> None:
        self.path = path
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE, record TEXT)"
        )

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    def put(self, response_id: str, record: Record) -> None:
        """Keep a response; the oldest go when full."""
        data = json.dumps(portable(record), separators=(",", ":"))
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses (id, record) VALUES (?, ?)", (response_id, data))
            self._db.execute(
                "DELETE FROM responses WHERE seq <= (SELECT MAX(seq) FROM responses) - ?", (self.max_entries,)
            )

    def get(self, response_id: str) -> Record | None:
        """A kept response, or None."""
        with self._lock:
            row = self._db.execute("SELECT record FROM responses WHERE id = ?", (response_id,)).fetchone()
        return loads(row[0]) if row else None

    def delete(self, response_id: str) -> bool:
        """Forget a response."""
        with self._lock:
            return self._db.execute("DELETE FROM responses WHERE id = ?", (response_id,)).rowcount > 0

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


def stored_reasoning(
    store: ResponseStore,
    memory: ThinkingStore | None,
    item_id: str,
    call_ids: Sequence[str],
    owner: str | None = None,
) -> dict[str, Any]:
    """The state of a reasoning item sent back by id alone (openai-agents' default; langchain-openai's and
    pydantic-ai's histories): ``encrypted_content`` comes back only to a caller who asked for it (``include``).

    Looked for, cheapest first: the router's thinking store (``memory``), which still has the turn's thinking blocks by
    its ``call_ids`` when this process answered it (the provider's adapter re-attaches them: nothing to add here),
    or what an earlier call read; then the stored response the item's id names (:func:`~polyroute.responses.translate.
    reasoning_id`): a SQLite store after a restart, Redis from another process. What is read there is remembered in
    ``memory``, so each item is read once. Nothing is found for an id that names no response (OpenAI's, or
    polyroute's from before ids named their response), a response no longer kept, or a store that cannot answer:
    ``{}``, and the provider's adapter goes on without (Anthropic: thinking off for the request, with a warning).

    ``owner``: the serve key of the request. A response made under a key is that key's alone, its reasoning too: the
    item is looked for among that key's responses, and what was read is remembered for that key only.
    """
    source = reasoning_source(item_id)
    if source is None:
        return {}
    if memory is not None:
        if call_ids and memory.blocks_for(call_ids) is not None:
            return {}
        known = memory.reasoning_for(_owned_key(owner, item_id))
        if known is not None:
            return known
    token = _stored_token(store, *source, item_id, owner)
    if token is None:
        return {}
    state = decode_reasoning(token)
    if memory is not None:
        blocks = as_list(state.get("thinking_blocks"))
        signature = state.get("thought_signature")
        if blocks and call_ids:
            memory.remember_blocks(call_ids, blocks)  # as when this process answered that turn
        else:
            memory.remember_reasoning(
                _owned_key(owner, item_id), blocks, signature if isinstance(signature, str) else ""
            )
    return state


def visible(record: Record | None, owner: str | None) -> Record | None:
    """A stored response as the caller (``owner``: its serve key, or None) may see it, or None: one made under a key
    is that key's alone, and a deleted one (marked ``deleted``: OpenAI keeps its own copy) is no one's.
    """
    if record is None or record.get("owner") != owner or record.get("deleted"):
        return None
    return record


def _owned_key(owner: str | None, item_id: str) -> str:
    """The thinking store's key for an item read for ``owner`` (a key's reads are not another key's)."""
    return item_id if owner is None else f"{item_id}\x00{owner}"


def _stored_token(store: ResponseStore, response_id: str, index: int, item_id: str, owner: str | None) -> str | None:
    """The ``encrypted_content`` of ``output[index]`` of a stored response when that is the item; ``""`` when the store
    has no such item or the item carried nothing; None when the store cannot answer now (not remembered: it may later).
    """
    try:
        record = store.get(response_id)
    except ResponseStoreUnreachableError:
        return None
    record = visible(record, owner)  # another key's response: as if it were not there
    if record is None:
        return ""
    output = as_list(response_of(record).get("output"))
    item = as_object(output[index]) if index < len(output) else {}
    token = item.get("encrypted_content") if item.get("id") == item_id else None
    return token if isinstance(token, str) else ""


_STORES: weakref.WeakKeyDictionary[Router, ResponseStore] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def store_for(router: Router) -> ResponseStore:
    """The router's store, made on first use from its config."""
    store = _STORES.get(router)
    if store is None:
        with _LOCK:
            store = _STORES.get(router)
            if store is None:
                settings = router.config.responses
                if settings.store == "redis":
                    from polyroute.state.redis import RedisState
                    from polyroute.state.redis_responses import RedisResponseStore

                    shared = router.shared_state
                    assert isinstance(shared, RedisState)  # the config requires state: {backend: redis}
                    store = RedisResponseStore(shared, settings.max_stored, settings.ttl)
                elif settings.store_path:
                    sqlite = SQLiteStore(settings.store_path, settings.max_stored)
                    weakref.finalize(router, sqlite.close)  # the file is closed with the router, not left to GC
                    store = sqlite
                else:
                    store = MemoryStore(settings.max_stored)
                _STORES[router] = store
    return store
