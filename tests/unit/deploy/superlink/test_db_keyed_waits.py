"""Waits on the SuperLink's database: a keyed waiter wakes only for its own key.

This is what lets thousands of SuperNodes long-poll at once: a commit for one node must not
re-run every other node's probe.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedlab.deploy.superlink._db import Database


@pytest.fixture(params=["memory", "file"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    database = Database(None if request.param == "memory" else tmp_path / "state.db")
    database.query("SELECT 1")
    with database.transaction() as conn:
        conn.execute("INSERT INTO logs VALUES (0, 0, 'start', 0)")
    yield database
    database.wake()
    database.close()


class Waiter:
    """A thread waiting at ``key`` for a log line ``text``; counts how often it probed."""

    def __init__(self, db: Database, key: object, text: str) -> None:
        self.probes = 0
        self.result: list[object] = []
        self._db, self._key, self._text = db, key, text
        self._started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self._started.wait(30)

    def _probe(self) -> list[object]:
        self.probes += 1
        self._started.set()
        return self._db.query("SELECT text FROM logs WHERE text = ?", (self._text,))

    def _run(self) -> None:
        # recheck far beyond the test: only a wake-up can make it probe again.
        self.result = self._db.wait_until(self._probe, 120.0, key=self._key, recheck=120.0)


def write(db: Database, seq: int, text: str, *signals: object) -> None:
    with db.transaction() as conn:
        conn.execute("INSERT INTO logs VALUES (0, ?, ?, 0)", (seq, text))
        for key in signals:
            db.signal(key)


def test_commits_for_other_keys_or_none_do_not_rerun_a_keyed_probe(db: Database) -> None:
    waiter = Waiter(db, ("instructions", 1), "for-1")
    for seq in range(1, 51):
        write(db, seq, f"other-{seq}", ("instructions", 2))
    for seq in range(51, 101):
        write(db, seq, f"unkeyed-{seq}")
    assert waiter.thread.is_alive()
    assert waiter.probes == 1
    write(db, 101, "for-1", ("instructions", 1))
    waiter.thread.join(60)
    assert not waiter.thread.is_alive()
    assert waiter.result == [("for-1",)]
    assert waiter.probes == 2


def test_a_rolled_back_transaction_wakes_no_one(db: Database) -> None:
    waiter = Waiter(db, "k", "never")
    with pytest.raises(RuntimeError), db.transaction() as conn:
        conn.execute("INSERT INTO logs VALUES (0, 1, 'never', 0)")
        db.signal("k")
        raise RuntimeError("abandon")
    write(db, 2, "unrelated")  # the abandoned signal must not ride on the next commit
    assert waiter.probes == 1
    db.ring("k")
    db.ring("k")
    for _ in range(6000):
        if waiter.probes >= 2:
            break
        waiter.thread.join(0.01)
    assert waiter.probes == 2
    assert waiter.thread.is_alive()  # probed again, found nothing, waits on
    db.wake()
    waiter.thread.join(60)
    assert waiter.result == []


def test_every_waiter_at_a_key_wakes_and_unkeyed_waiters_still_see_every_commit(db: Database) -> None:
    keyed = [Waiter(db, "shared", "go") for _ in range(3)]
    unkeyed: list[object] = []
    thread = threading.Thread(
        target=lambda: unkeyed.extend(db.wait_until(lambda: db.query("SELECT seq FROM logs WHERE seq = 7"), 120.0))
    )
    thread.start()
    write(db, 7, "go", "shared")
    for waiter in keyed:
        waiter.thread.join(60)
        assert waiter.result == [("go",)]
    thread.join(60)
    assert unkeyed == [(7,)]


def test_closing_the_database_ends_keyed_waits(db: Database) -> None:
    waiters = [Waiter(db, ("instructions", n), "never") for n in range(4)]
    db.wake()
    for waiter in waiters:
        waiter.thread.join(60)
        assert not waiter.thread.is_alive()
        assert waiter.result == []
