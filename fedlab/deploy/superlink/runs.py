"""The SuperLink's runs: several at once, each with its own id, config, bundle and status.

Status moves ``running`` → (``stopping``, once a stop was requested) → ``completed``,
``failed`` or ``stopped``. A finished run's undelivered and unanswered messages are
dropped: nothing more will be done for it.

An attached run is driven by a process outside the SuperLink (``deploy()`` in a notebook or
script). If that process dies, nothing finishes the run, so the SuperLink notes each
ServerAppIo call made for a run (:meth:`Runs.seen`, in memory) and its sweep fails an
attached run that stayed silent longer than a grace period (:meth:`Runs.silent_attached`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from fedlab.context import UserConfig
from fedlab.deploy.superlink._db import Database
from fedlab.errors import DeployError

__all__ = ["FINAL_STATUSES", "RunRow", "Runs"]

#: The statuses of a run that has ended.
FINAL_STATUSES = ("completed", "failed", "stopped")


@dataclass(frozen=True)
class RunRow:
    """One run as the SuperLink knows it."""

    run_id: int
    status: str
    attached: bool
    run_config: UserConfig
    bundle_digest: str
    bundle_size: int
    created_at: float
    finished_at: float
    error: str
    stop_requested: bool

    @property
    def finished(self) -> bool:
        """True once the run has ended."""
        return self.status in FINAL_STATUSES


class Runs:
    """Creating, listing, stopping and finishing runs."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._opened_at = db.clock()
        self._seen: dict[int, float] = {}

    def seen(self, run_id: int) -> None:
        """Note that the ServerApp or driver of ``run_id`` just called the SuperLink."""
        self._seen[run_id] = self._db.clock()

    def silent_attached(self, since: float) -> list[RunRow]:
        """The unfinished attached runs not heard from since ``since`` (a clock time).

        A run counts as heard from when it was created and when this SuperLink started, so
        a restart gives every driver a full grace period to reconnect.
        """
        return [
            run
            for run in self.list()
            if run.attached
            and not run.finished
            and max(self._seen.get(run.run_id, 0.0), run.created_at, self._opened_at) < since
        ]

    def create(
        self, run_config: UserConfig, *, attached: bool, bundle_digest: str = "", bundle_size: int = 0
    ) -> int:
        """Add a running run and return its id (1, 2, 3, ... in creation order)."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO runs (status, attached, run_config, bundle_digest, bundle_size, "
                "created_at) VALUES ('running', ?, ?, ?, ?, ?)",
                (int(attached), json.dumps(run_config), bundle_digest, bundle_size, self._db.clock()),
            )
            run_id = cursor.lastrowid
        assert run_id is not None
        return run_id

    def get(self, run_id: int) -> RunRow | None:
        """Return the run, or None if there is no such run."""
        if not 0 < run_id < 2**63:
            return None
        rows = self._db.query("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        return _row(rows[0]) if rows else None

    def require(self, run_id: int) -> RunRow:
        """Return the run or raise DeployError naming it."""
        run = self.get(run_id)
        if run is None:
            raise DeployError(f"There is no run {run_id} on this SuperLink; list runs with `fedlab ls`.")
        return run

    def list(self) -> list[RunRow]:
        """Return every run, oldest first."""
        return [_row(r) for r in self._db.query("SELECT * FROM runs ORDER BY run_id")]

    def request_stop(self, run_id: int) -> RunRow:
        """Ask a run to stop after its current round (a no-op for a finished run)."""
        self.require(run_id)
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE runs SET stop_requested = 1, status = 'stopping' "
                "WHERE run_id = ? AND status = 'running'",
                (run_id,),
            )
        return self.require(run_id)

    def finish(self, run_id: int, status: str, error: str = "") -> RunRow:
        """Record how a run ended and drop its pending messages.

        A run that completes after a stop was requested is recorded as ``stopped``.
        Finishing an already finished run changes nothing.
        """
        if status not in FINAL_STATUSES:
            raise DeployError(f"A run finishes as one of {', '.join(FINAL_STATUSES)}, not {status!r}.")
        run = self.require(run_id)
        if run.finished:
            return run
        if status == "completed" and run.stop_requested:
            status = "stopped"
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE run_id = ?",
                (status, error, self._db.clock(), run_id),
            )
            conn.execute("DELETE FROM messages WHERE run_id = ?", (run_id,))
        return self.require(run_id)


def _row(row: tuple[int, str, int, str, str, int, float, float, str, int]) -> RunRow:
    run_id, status, attached, config, digest, size, created, finished, error, stop = row
    return RunRow(
        run_id=run_id,
        status=status,
        attached=bool(attached),
        run_config=json.loads(config),
        bundle_digest=digest,
        bundle_size=size,
        created_at=created,
        finished_at=finished,
        error=error,
        stop_requested=bool(stop),
    )
