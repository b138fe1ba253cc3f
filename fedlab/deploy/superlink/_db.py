"""The SuperLink's SQLite database: schema, transactions, and waiting for changes.

One connection, used by every gRPC thread under one lock: SQLite serialises writers
anyway, and the SuperLink's writes are small (payloads live in the object store). A file
database runs in WAL mode with ``synchronous=FULL``, so a committed transaction survives
a crash of the process *and* of the machine; this is what "an acknowledged reply is never
lost" rests on. ``path=None`` gives an in-memory database (``--state memory``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["Clock", "Database", "from_sql_id", "to_sql_id"]

T = TypeVar("T")
Clock = Callable[[], float]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
    node_id INTEGER PRIMARY KEY,
    node_config TEXT NOT NULL,
    heartbeat_interval REAL NOT NULL,
    online_until REAL NOT NULL,
    last_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    status TEXT NOT NULL,
    attached INTEGER NOT NULL,
    run_config TEXT NOT NULL,
    bundle_digest TEXT NOT NULL,
    bundle_size INTEGER NOT NULL,
    created_at REAL NOT NULL,
    finished_at REAL NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    stop_requested INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS messages (
    message_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('instruction', 'reply')),
    run_id INTEGER NOT NULL,
    dst_node_id INTEGER NOT NULL,
    reply_to TEXT NOT NULL,
    frame BLOB NOT NULL,
    content_digest TEXT NOT NULL,
    content_size INTEGER NOT NULL,
    duration_s REAL NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    delivered_at REAL
);
-- Exactly one reply per instruction, whoever writes it (the node, or the SuperLink
-- answering for a node that went away).
CREATE UNIQUE INDEX IF NOT EXISTS one_reply_per_instruction
    ON messages (reply_to) WHERE kind = 'reply';
CREATE INDEX IF NOT EXISTS undelivered ON messages (dst_node_id, kind, delivered_at);
CREATE INDEX IF NOT EXISTS by_run ON messages (run_id);
CREATE TABLE IF NOT EXISTS events (
    run_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    round INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS logs (
    run_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    text TEXT NOT NULL,
    timestamp REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"""


def to_sql_id(node_id: int) -> int:
    """Map a uint64 id onto SQLite's int64 (two's complement), so any id can be stored."""
    return node_id - 2**64 if node_id >= 2**63 else node_id


def from_sql_id(value: int) -> int:
    """Undo :func:`to_sql_id`."""
    return value + 2**64 if value < 0 else value


class Database:
    """The connection, its lock, and a condition that waiters sleep on until data changes."""

    def __init__(self, path: Path | None, *, clock: Clock = time.time) -> None:
        self.path = path
        self.clock = clock
        self._lock = threading.RLock()
        self._changed = threading.Condition()
        self._closing = False
        self._conn = sqlite3.connect(
            ":memory:" if path is None else str(path), check_same_thread=False, isolation_level=None
        )
        if path is not None:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(_SCHEMA)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run a block as one transaction; it is committed (durably) when the block ends."""
        with self._lock:
            before = self._conn.total_changes
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            changed = self._conn.total_changes != before
        if changed:  # waking waiters for a transaction that wrote nothing would spin them
            with self._changed:
                self._changed.notify_all()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Return all rows of a read-only query."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def wait_until(
        self,
        probe: Callable[[], T],
        timeout: float,
        *,
        active: Callable[[], bool] | None = None,
        recheck: float = 0.5,
    ) -> T:
        """Return ``probe()`` once it is truthy, or its last value after ``timeout`` seconds.

        ``probe`` runs again after every committed transaction and at least every
        ``recheck`` seconds (some answers change with time alone: a node goes offline, a
        message expires). The wait also ends early when ``active()`` turns False (the
        caller hung up) or the database is closing.
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._changed:
            while True:
                result = probe()
                remaining = deadline - time.monotonic()
                if result or remaining <= 0 or self._closing or (active is not None and not active()):
                    return result
                self._changed.wait(min(remaining, recheck))

    def wake(self) -> None:
        """End every wait: the database is about to close."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()
