"""The SuperLink's SQLite database: schema, transactions, and waiting for changes.

One connection, used by every gRPC thread under one lock: SQLite serialises writers
anyway, and the SuperLink's writes are small (payloads live in the object store).

Waiters sleep until the data they wait for may have changed. Most wait on one shared
condition that every committed transaction wakes; a waiter that names a *key* (a node's
long poll for instructions) sleeps on that key alone and is woken only by a transaction
that calls :meth:`Database.signal` for it, so a commit costs O(its own waiters), not O(every
node), and thousands of nodes can long-poll at once. A file
database runs in WAL mode with ``synchronous=FULL``, so a committed transaction survives
a crash of the process *and* of the machine; this is what "an acknowledged reply is never
lost" rests on. ``path=None`` gives an in-memory database (``--state memory``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
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
        # key -> [condition, number of waiters]; a door exists while someone waits at it.
        self._doors: dict[Hashable, list[Any]] = {}
        self._doors_lock = threading.Lock()
        self._signalled: set[Hashable] = set()
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
                self._signalled.clear()
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            changed = self._conn.total_changes != before
            signalled, self._signalled = self._signalled, set()
        if changed:  # waking waiters for a transaction that wrote nothing would spin them
            with self._changed:
                self._changed.notify_all()
            self._ring(signalled)

    def signal(self, key: Hashable) -> None:
        """Wake the waiters at ``key`` once the current transaction commits.

        Call it inside :meth:`transaction` for every key whose answer the transaction may
        change; a rolled-back transaction wakes no one.
        """
        self._signalled.add(key)

    def ring(self, *keys: Hashable) -> None:
        """Wake the waiters at ``keys`` now, outside any transaction."""
        self._ring(keys)

    def _ring(self, keys: Iterable[Hashable]) -> None:
        for key in keys:
            with self._doors_lock:
                door = self._doors.get(key)
            if door is not None:
                with door[0]:
                    door[0].notify_all()

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
        key: Hashable | None = None,
    ) -> T:
        """Return ``probe()`` once it is truthy, or its last value after ``timeout`` seconds.

        Without ``key``, ``probe`` runs again after every committed transaction; with one,
        only after a transaction that called :meth:`signal` for that key. Either way it also runs
        at least every ``recheck`` seconds (some answers change with time alone: a node
        goes offline, a message expires). The wait also ends early when ``active()`` turns
        False (the caller hung up) or the database is closing.
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        if key is None:
            return self._wait(self._changed, probe, deadline, active, recheck)
        with self._doors_lock:
            door = self._doors.setdefault(key, [threading.Condition(), 0])
            door[1] += 1
        try:
            return self._wait(door[0], probe, deadline, active, recheck)
        finally:
            with self._doors_lock:
                door[1] -= 1
                if door[1] == 0:
                    del self._doors[key]

    def _wait(
        self,
        condition: threading.Condition,
        probe: Callable[[], T],
        deadline: float,
        active: Callable[[], bool] | None,
        recheck: float,
    ) -> T:
        # The probe runs holding the condition, and a writer notifies only after its
        # commit, so a change between a probe and the sleep cannot be missed.
        with condition:
            while True:
                result = probe()
                remaining = deadline - time.monotonic()
                if result or remaining <= 0 or self._closing or (active is not None and not active()):
                    return result
                condition.wait(min(remaining, recheck))

    def wake(self) -> None:
        """End every wait: the database is about to close."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        with self._doors_lock:
            keys = list(self._doors)
        self._ring(keys)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()
