"""The SQLite ledger: every usage record appended to one file, durable across restarts.

Written only by the recorder's background thread, a batch per transaction, in WAL mode: a process killed in the
middle of a write leaves the file as of its last committed batch (SQLite's journal), never a torn one. Readers
(``polyroute usage``) may read while a router writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from polyroute.usage.record import COLUMNS, UsageRecord

TABLE = "usage"

_TYPES = {
    "time": "REAL NOT NULL",
    "status": "INTEGER NOT NULL",
    "attempts": "INTEGER",
    "latency_ms": "REAL",
    "ttft_ms": "REAL",
    "input_tokens": "INTEGER",
    "output_tokens": "INTEGER",
    "cached_tokens": "INTEGER",
    "cache_write_tokens": "INTEGER",
    "reasoning_tokens": "INTEGER",
    "cost": "REAL",
    "streamed": "INTEGER",
}
_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    + ", ".join(f"{name} {_TYPES.get(name, 'TEXT')}" for name in COLUMNS)
    + f"); CREATE INDEX IF NOT EXISTS {TABLE}_time ON {TABLE} (time);"
)
_INSERT = f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (or create) a ledger: WAL, the table and its index."""
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(_SCHEMA)
    return conn


def row(record: UsageRecord) -> tuple[Any, ...]:
    """A record as a ledger row (tags and metadata as JSON)."""
    values = [getattr(record, name) for name in COLUMNS]
    tags_at = COLUMNS.index("tags")
    values[tags_at] = json.dumps(list(record.tags)) if record.tags else None
    meta_at = COLUMNS.index("metadata")
    values[meta_at] = json.dumps(record.metadata) if record.metadata else None
    return tuple(values)


def write(conn: sqlite3.Connection, records: Sequence[UsageRecord]) -> None:
    """Append records in one transaction."""
    conn.execute("BEGIN")
    try:
        conn.executemany(_INSERT, [row(record) for record in records])
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def read(conn: sqlite3.Connection, since: float | None = None) -> Iterator[UsageRecord]:
    """Records in time order (from ``since``, epoch seconds)."""
    query = f"SELECT {', '.join(COLUMNS)} FROM {TABLE}"
    params: tuple[Any, ...] = ()
    if since is not None:
        query += " WHERE time >= ?"
        params = (since,)
    tags_at = COLUMNS.index("tags")
    meta_at = COLUMNS.index("metadata")
    streamed_at = COLUMNS.index("streamed")
    for values in conn.execute(query + " ORDER BY time", params):
        fields = list(values)
        fields[tags_at] = tuple(json.loads(fields[tags_at])) if fields[tags_at] else ()
        fields[meta_at] = json.loads(fields[meta_at]) if fields[meta_at] else None
        fields[streamed_at] = bool(fields[streamed_at])
        yield UsageRecord(*fields)


_INHERITED: list[sqlite3.Connection] = []
"""Connections a forked child got from its parent: left open and unused (see :meth:`LedgerSink.forked`)."""


class LedgerSink:
    """The recorder's sink for a ledger file (its connection is opened on the background thread's first write)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def write(self, batches: Sequence[tuple[list[UsageRecord], Any]]) -> None:
        """All records of these calls, one transaction."""
        if self._conn is None:
            self._conn = connect(self.path)
        write(self._conn, [record for records, _ in batches for record in records])

    def forked(self) -> None:
        """In a forked child: a connection of its own (SQLite's must not cross a fork). The parent's copy is kept
        open, never used: closing it here could checkpoint and remove the WAL the parent is writing to.
        """
        if self._conn is not None:
            _INHERITED.append(self._conn)
            self._conn = None

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed into the file)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
