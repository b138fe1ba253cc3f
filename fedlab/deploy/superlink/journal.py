"""Per-run events and log lines, numbered in arrival order so that readers can follow them.

Events arrive from the run's ServerApp as JSON (:mod:`fedlab.deploy.transport.events_json`); log
lines are the output of a ServerApp process the SuperLink started. Both are kept until
the SuperLink's state is deleted, so ``fedlab log RUN`` works after a run has finished.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from fedlab.deploy.superlink._db import Database
from fedlab.errors import DeployError

__all__ = ["Journal"]

# The largest integer SQLite stores; a client may send a larger uint64 sequence number.
_MAX_SEQ = 2**63 - 1


class Journal:
    """Appending to and reading from a run's event and log streams."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add_events(self, run_id: int, bodies: Sequence[str]) -> None:
        """Append JSON events to ``run_id``'s stream; a second RunFinished is dropped.

        The SuperLink writes a RunFinished itself when a run ends without one, so one sent
        late by the ServerApp must not make the run look finished twice.

        Raises
        ------
        DeployError
            If a body is not a JSON object with a ``type`` (nothing is appended then).
        """
        rows = []
        for body in bodies:
            try:
                parsed = json.loads(body)
                kind, round_ = str(parsed["type"]), parsed.get("round", 0)
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as err:
                raise DeployError(f"Not a JSON event ({err}): {body[:80]!r}") from err
            in_range = isinstance(round_, int) and -_MAX_SEQ <= round_ <= _MAX_SEQ  # SQLite's int64
            rows.append((kind, round_ if in_range else 0, body))
        with self._db.transaction() as conn:
            (last,) = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM events WHERE run_id = ?", (run_id,)
            ).fetchone()
            finished = conn.execute(
                "SELECT 1 FROM events WHERE run_id = ? AND type = 'RunFinished'", (run_id,)
            ).fetchone() is not None
            kept = []
            for row in rows:
                if row[0] == "RunFinished":
                    if finished:
                        continue
                    finished = True
                kept.append(row)
            rows = kept
            conn.executemany(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?)",
                [(run_id, last + i, *row) for i, row in enumerate(rows, start=1)],
            )

    def add_logs(self, run_id: int, lines: Sequence[str]) -> None:
        """Append output lines to ``run_id``'s log."""
        if not lines:
            return
        now = self._db.clock()
        with self._db.transaction() as conn:
            (last,) = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM logs WHERE run_id = ?", (run_id,)
            ).fetchone()
            conn.executemany(
                "INSERT INTO logs VALUES (?, ?, ?, ?)",
                [(run_id, last + i, line, now) for i, line in enumerate(lines, start=1)],
            )

    def events(self, run_id: int, after: int = 0, limit: int = 1000) -> list[tuple[int, str]]:
        """Return up to ``limit`` (seq, JSON) pairs of ``run_id`` with seq > ``after``."""
        return [
            (seq, body)
            for seq, body in self._db.query(
                "SELECT seq, body FROM events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (run_id, min(after, _MAX_SEQ), limit),
            )
        ]

    def logs(self, run_id: int, after: int = 0, limit: int = 1000) -> list[tuple[int, str, float]]:
        """Return up to ``limit`` (seq, text, timestamp) lines of ``run_id`` with seq > ``after``."""
        return [
            (seq, text, ts)
            for seq, text, ts in self._db.query(
                "SELECT seq, text, timestamp FROM logs WHERE run_id = ? AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (run_id, min(after, _MAX_SEQ), limit),
            )
        ]

    def has_event_type(self, run_id: int, event_type: str) -> bool:
        """True if ``run_id``'s stream holds an event of ``event_type`` (e.g. RunFinished)."""
        rows = self._db.query(
            "SELECT 1 FROM events WHERE run_id = ? AND type = ? LIMIT 1", (run_id, event_type)
        )
        return bool(rows)

    def count_rounds(self, run_id: int) -> int:
        """How many distinct rounds were aggregated in ``run_id`` (from its events)."""
        rows = self._db.query(
            "SELECT COUNT(DISTINCT round) FROM events WHERE run_id = ? AND type = 'RoundAggregated'",
            (run_id,),
        )
        return int(rows[0][0])
