"""`LinkState`: everything the SuperLink remembers, in SQLite plus an object store.

With a state directory, the database is ``DIR/superlink.db`` and objects are files under
``DIR/objects``; a restarted SuperLink picks up its nodes, runs, undelivered instructions
and acknowledged replies. Without one, both live in memory and vanish with the process.
A lock file keeps two SuperLinks from sharing one directory.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import IO, TypeVar

from fedlab.deploy.superlink._db import Clock, Database
from fedlab.deploy.superlink.journal import Journal
from fedlab.deploy.superlink.messages import Messages
from fedlab.deploy.superlink.nodes import DEFAULT_PATIENCE, Nodes
from fedlab.deploy.superlink.objects import DirectoryObjectStore, MemoryObjectStore, ObjectStore
from fedlab.deploy.superlink.runs import FINAL_STATUSES, RunRow, Runs
from fedlab.deploy.transport.events_json import event_to_json
from fedlab.errors import DeployError
from fedlab.events import RunFinished

__all__ = ["DEFAULT_DRIVER_GRACE", "LinkState"]

#: Seconds of silence after which an attached run's driver counts as dead.
DEFAULT_DRIVER_GRACE = 300.0

T = TypeVar("T")


class LinkState:
    """The SuperLink's nodes, runs, messages, events and objects.

    Parameters
    ----------
    state_dir
        Where to keep state on disk; None keeps it in memory.
    patience
        Heartbeat intervals a node may stay silent before it counts as offline.
    object_grace
        Seconds an object no message refers to is kept after its last use (an upload
        usually precedes the message that refers to it by milliseconds).
    message_grace
        Seconds an expired message is kept, so a ServerApp still learns that it expired.
    node_retention
        Seconds a node that went offline stays listed (``fedlab ls`` of all nodes).
    driver_grace
        Seconds an attached run may go without any ServerAppIo call before :meth:`sweep`
        marks it failed (the process driving it died).
    clock
        The time source (tests pass a fake one).
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        patience: float = DEFAULT_PATIENCE,
        object_grace: float = 60.0,
        message_grace: float = 600.0,
        node_retention: float = 86400.0,
        driver_grace: float = DEFAULT_DRIVER_GRACE,
        clock: Clock = time.time,
    ) -> None:
        self.state_dir = None if state_dir is None else Path(state_dir)
        self._lock_file: IO[str] | None = None
        self.objects: ObjectStore
        if self.state_dir is None:
            self.db = Database(None, clock=clock)
            self.objects = MemoryObjectStore()
        else:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._lock_file = _lock(self.state_dir / "superlink.lock")
            self.db = Database(self.state_dir / "superlink.db", clock=clock)
            self.objects = DirectoryObjectStore(self.state_dir / "objects")
        self.nodes = Nodes(self.db, patience=patience)
        self.runs = Runs(self.db)
        self.messages = Messages(self.db, self.nodes)
        self.journal = Journal(self.db)
        self.object_grace = object_grace
        self.message_grace = message_grace
        self.node_retention = node_retention
        self.driver_grace = driver_grace
        if self.state_dir is not None:
            self.nodes.extend_all()

    @property
    def persistent(self) -> bool:
        """True if the state survives a restart."""
        return self.state_dir is not None

    def wait_until(
        self,
        probe: Callable[[], T],
        timeout: float,
        *,
        active: Callable[[], bool] | None = None,
        key: Hashable | None = None,
        recheck: float = 0.5,
    ) -> T:
        """Return ``probe()`` once truthy (re-checked on every change), or after ``timeout``.

        With ``key``, only changes signalled for that key wake the probe (see
        :meth:`Database.wait_until`), and :meth:`wake_key` ends such a wait early. Ends early
        when ``active()`` turns False (e.g. ``context.is_active`` of a call whose client
        hung up) or the state is closing.
        """
        return self.db.wait_until(probe, timeout, active=active, key=key, recheck=recheck)

    def wake_key(self, key: Hashable) -> None:
        """Run the probes waiting at ``key`` again now (e.g. their caller hung up)."""
        self.db.ring(key)

    def finish_run(self, run_id: int, status: str, error: str = "") -> RunRow:
        """Finish a run and make sure its event stream ends with one RunFinished event."""
        run = self.runs.finish(run_id, status, error)
        if not self.journal.has_event_type(run_id, "RunFinished"):
            event = RunFinished(
                run_id=run_id,
                rounds_completed=self.journal.count_rounds(run_id),
                duration_s=max(run.finished_at - run.created_at, 0.0),
                stopped_early=run.status != "completed",
                error=run.error or None,
            )
            self.journal.add_events(run_id, [event_to_json(event)])
        return run

    def sweep(self) -> None:
        """Delete long-expired messages, long-gone nodes and objects nothing refers to.

        Also fails the attached runs whose driver stayed silent past ``driver_grace``.
        """
        now = self.db.clock()
        self.messages.expire(now - self.message_grace)
        self.nodes.forget_offline(now - self.node_retention)
        self._fail_silent_attached_runs(now)
        keep = self.messages.referenced_digests()
        keep |= {r.bundle_digest for r in self.runs.list() if r.status not in FINAL_STATUSES}
        for digest in self.objects.unused_since(time.time() - self.object_grace):
            if digest not in keep:
                self.objects.delete(digest)

    def _fail_silent_attached_runs(self, now: float) -> None:
        for run in self.runs.silent_attached(now - self.driver_grace):
            self.finish_run(
                run.run_id,
                "failed",
                f"Run {run.run_id} is attached, and the process driving it made no call for "
                f"{self.driver_grace:.0f} s: it seems to have died. Start the run again; if your "
                "driver pauses longer between calls, raise the SuperLink's --driver-grace.",
            )

    def close(self) -> None:
        """Wake waiters, close the database and release the directory lock."""
        self.db.wake()
        self.db.close()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


def _lock(path: Path) -> IO[str]:
    import fcntl

    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise DeployError(
            f"Another SuperLink is using the state directory {path.parent}; stop it, or give "
            "this one its own --state-dir."
        ) from None
    return handle
