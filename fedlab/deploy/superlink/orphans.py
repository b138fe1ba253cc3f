"""Supervising again the ServerApp processes a SuperLink started before it crashed.

A ServerApp process outlives a SuperLink killed with SIGKILL: it keeps retrying its
ServerAppIo calls and carries on with its run once a SuperLink is back on the same
address and state directory. It is no longer a child of the new SuperLink, though, so
nothing would notice if it died. For that, the launcher records every ServerApp it starts
in ``STATE_DIR/serverapps/RUN.json`` (its pid, its command line and its start time in
``/proc``), and a restarted SuperLink calls :meth:`OrphanSupervisor.adopt`:

- a running run whose recorded process is alive *and is that process* (same command line,
  same start time, so a reused pid does not count) is supervised again: its liveness is
  polled, and once it exits without having finished its run, the run fails;
- a running run whose process is gone fails at once, saying so. It is not started again:
  a new process would begin the ServerApp from its first round with none of the old
  process's memory (a strategy's server-side state), which is for its owner to decide
  (``fedlab run`` again).

The new SuperLink cannot read an adopted process's output (the pipe died with the old
SuperLink), so the run's log says from where on its lines are missing. Without a state
directory nothing is recorded: the runs vanish with the SuperLink anyway. Processes are
identified through Linux's ``/proc``; elsewhere none is recorded, so a restarted
SuperLink fails the runs whose ServerApp it had launched.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedlab.deploy.superlink.state import LinkState

__all__ = ["OrphanSupervisor", "ProcessRecord"]

_log = logging.getLogger("fedlab.superlink")
_POLL_S = 0.5


@dataclass(frozen=True)
class ProcessRecord:
    """What identifies one ServerApp process: its pid, command line and start time."""

    run_id: int
    pid: int
    cmdline: tuple[str, ...]
    start_ticks: int

    def is_alive(self) -> bool:
        """True if this very process (not another one with the same pid) is still running."""
        return _start_ticks(self.pid) == self.start_ticks and _cmdline(self.pid) == self.cmdline


class OrphanSupervisor:
    """Records the ServerApp processes of a SuperLink and watches those it inherited.

    Parameters
    ----------
    state
        The SuperLink's state; records live in ``state.state_dir / "serverapps"``.
    poll_interval
        Seconds between two liveness checks of an adopted process.
    """

    def __init__(self, state: LinkState, *, poll_interval: float = _POLL_S) -> None:
        self.state = state
        self.poll_interval = poll_interval
        self.directory = None if state.state_dir is None else state.state_dir / "serverapps"
        self._adopted: dict[int, ProcessRecord] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()

    # -- records of the processes this SuperLink starts -----------------------------------

    def record(self, run_id: int, process: subprocess.Popen[Any]) -> None:
        """Remember that ``process`` is the ServerApp of ``run_id`` (no-op without a state dir).

        Its command line is taken from what it was started with, not from ``/proc``: just
        after ``exec`` the kernel may not have set the new one up yet.
        """
        if self.directory is None:
            return
        pid, args = process.pid, process.args
        argv = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
        cmdline = tuple(os.fsdecode(a) for a in argv)
        ticks = _start_ticks(pid)
        if ticks is None:  # it already exited: nothing to find later
            return
        body = {"run_id": run_id, "pid": pid, "cmdline": list(cmdline), "start_ticks": ticks}
        path = self.directory / f"{run_id}.json"
        temporary = path.with_suffix(".tmp")
        try:
            self.directory.mkdir(mode=0o700, exist_ok=True)
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as out:
                json.dump(body, out)
            os.replace(temporary, path)
        except OSError as err:  # the run goes on; only a crash of this SuperLink would tell
            _log.warning("Run %d: could not record its ServerApp process in %s: %s", run_id, path, err)

    def forget(self, run_id: int) -> None:
        """Drop the record of ``run_id``'s process (it exited under supervision)."""
        if self.directory is not None:
            (self.directory / f"{run_id}.json").unlink(missing_ok=True)

    # -- after a restart -------------------------------------------------------------------

    def adopt(self) -> list[int]:
        """Supervise the live ServerApps of unfinished runs; fail runs whose process is gone.

        Returns the ids of the runs whose process was adopted.
        """
        adopted = []
        for run in self.state.runs.list():
            if run.attached or run.finished:
                if not run.attached:
                    self.forget(run.run_id)
                continue
            record = self.read(run.run_id)
            if record is None or not record.is_alive():
                _log.warning("Run %d: its ServerApp process is gone; the run failed", run.run_id)
                self.forget(run.run_id)
                self._fail(
                    run.run_id,
                    f"The ServerApp process of run {run.run_id} was gone when the SuperLink "
                    "restarted, so the run cannot go on; start it again with `fedlab run`.",
                )
                continue
            with self._lock:
                self._adopted[run.run_id] = record
            self._log_line(
                run.run_id,
                f"The SuperLink restarted and supervises this ServerApp (pid {record.pid}) again; "
                "its output from here on is not recorded.",
            )
            _log.info("Run %d: supervising its ServerApp (pid %d) again", run.run_id, record.pid)
            threading.Thread(
                target=self._watch, args=(record,), name=f"orphan-{run.run_id}", daemon=True
            ).start()
            adopted.append(run.run_id)
        return adopted

    def running(self) -> list[int]:
        """The runs whose adopted process is alive."""
        with self._lock:
            return [r for r, record in self._adopted.items() if record.is_alive()]

    def terminate(self, run_id: int, timeout: float = 5.0) -> bool:
        """Terminate ``run_id``'s adopted process (SIGTERM, then SIGKILL); False if none."""
        with self._lock:
            record = self._adopted.get(run_id)
        if record is None or not record.is_alive():
            return False
        _signal(record, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while record.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if record.is_alive():
            _signal(record, signal.SIGKILL)
        return True

    def shutdown(self, timeout: float = 5.0) -> None:
        """Terminate every adopted process (the SuperLink is stopping)."""
        with self._lock:
            runs = list(self._adopted)
        for run_id in runs:
            if self.terminate(run_id, timeout):
                self._fail(run_id, "The SuperLink shut down while the run was in progress.")
        self._closed.set()

    def _watch(self, record: ProcessRecord) -> None:
        while record.is_alive():
            if self._closed.wait(self.poll_interval):
                return
        with self._lock:
            self._adopted.pop(record.run_id, None)
        _log.info("Run %d: adopted ServerApp process %d exited", record.run_id, record.pid)
        self.forget(record.run_id)  # first: a crash right now still leaves the run failed
        # A no-op when the process finished its run first, as it normally does.
        self._fail(
            record.run_id,
            f"The ServerApp process (pid {record.pid}) exited without finishing the run; it had "
            "outlived a SuperLink restart, so its exit code and last lines are not known.",
        )

    def read(self, run_id: int) -> ProcessRecord | None:
        """The record of ``run_id``'s process, or None if there is none (or it is damaged)."""
        if self.directory is None:
            return None
        try:
            body = json.loads((self.directory / f"{run_id}.json").read_text())
            return ProcessRecord(
                run_id=int(body["run_id"]),
                pid=int(body["pid"]),
                cmdline=tuple(str(a) for a in body["cmdline"]),
                start_ticks=int(body["start_ticks"]),
            )
        except (OSError, ValueError, KeyError, TypeError):  # missing or damaged: no process
            return None

    def _fail(self, run_id: int, error: str) -> None:
        try:
            self.state.finish_run(run_id, "failed", error)
        except Exception as exc:  # the state closed under us during shutdown
            _log.debug("Run %d: could not record its end: %s", run_id, exc)

    def _log_line(self, run_id: int, text: str) -> None:
        try:
            self.state.journal.add_logs(run_id, [text])
        except Exception as exc:  # the state closed under us during shutdown
            _log.debug("Run %d: could not add to its log: %s", run_id, exc)


def _signal(record: ProcessRecord, signum: int) -> None:
    try:
        os.kill(record.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _cmdline(pid: int) -> tuple[str, ...] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    parts: Sequence[bytes] = raw.split(b"\0")
    if parts and parts[-1] == b"":
        parts = parts[:-1]
    return tuple(p.decode(errors="replace") for p in parts) or None  # a zombie has none


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the name in parentheses may hold spaces
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])
