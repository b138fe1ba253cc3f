"""Starting and supervising the ServerApp processes of runs the SuperLink drives itself.

A run created with ``attached=False`` gets its own process,
``python -m fedlab.deploy.serverapp --serverappio ADDR --run-id N``, which loads the run's
bundle and drives it through a GrpcGrid. Its output lines become the run's log. If it
exits before finishing the run, the run fails with its exit code; a run asked to stop
gets ``stop_grace`` seconds to finish its round before its process is terminated.
Each process is also recorded in the state directory, so that a SuperLink restarted after
a crash supervises it again (:mod:`fedlab.deploy.superlink.orphans`).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Sequence

from fedlab.deploy.superlink.orphans import OrphanSupervisor
from fedlab.deploy.superlink.state import LinkState

__all__ = ["ServerAppLauncher"]

_log = logging.getLogger("fedlab.superlink")


class ServerAppLauncher:
    """One ServerApp process per unattached run.

    Parameters
    ----------
    state
        The SuperLink's state (runs are finished and logs written through it).
    serverappio_address
        Where the processes reach the ServerAppIo API.
    stop_grace
        Seconds a run asked to stop may take before its process is terminated.
    command
        The command before ``--serverappio``; defaults to this Python running
        ``-m fedlab.deploy.serverapp``.
    """

    def __init__(
        self,
        state: LinkState,
        serverappio_address: str,
        *,
        stop_grace: float = 10.0,
        command: Sequence[str] | None = None,
    ) -> None:
        self.state = state
        self.address = serverappio_address
        self.stop_grace = stop_grace
        self.command = list(command or [sys.executable, "-m", "fedlab.deploy.serverapp"])
        self._processes: dict[int, subprocess.Popen[str]] = {}
        self._lock = threading.Lock()
        self.orphans = OrphanSupervisor(state)

    def adopt_orphans(self) -> list[int]:
        """Supervise again the processes a crashed SuperLink left running (see ``orphans``)."""
        return self.orphans.adopt()

    def launch(self, run_id: int) -> None:
        """Start the ServerApp process of ``run_id``."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        process = subprocess.Popen(
            [*self.command, "--serverappio", self.address, "--run-id", str(run_id), "--insecure"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=env,
        )
        with self._lock:
            self._processes[run_id] = process
        self.orphans.record(run_id, process)
        _log.info("Run %d: started its ServerApp (pid %d)", run_id, process.pid)
        threading.Thread(
            target=self._supervise, args=(run_id, process), name=f"serverapp-{run_id}", daemon=True
        ).start()

    def stop(self, run_id: int) -> None:
        """Terminate ``run_id``'s process if it has not finished ``stop_grace`` s from now."""
        timer = threading.Timer(self.stop_grace, self._terminate_any, args=(run_id,))
        timer.daemon = True
        timer.start()

    def running(self) -> list[int]:
        """The runs whose process is alive."""
        with self._lock:
            mine = [r for r, p in self._processes.items() if p.poll() is None]
        return sorted(mine + self.orphans.running())

    def shutdown(self, timeout: float = 5.0) -> None:
        """Terminate every ServerApp process (the SuperLink is stopping)."""
        self.orphans.shutdown(timeout)
        with self._lock:
            processes = list(self._processes.items())
        for _, process in processes:
            if process.poll() is None:
                process.terminate()
        for run_id, process in processes:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            self._finish(run_id, "failed", "The SuperLink shut down while the run was in progress.")

    def _terminate_any(self, run_id: int) -> None:
        if run_id in self.orphans.running():
            _log.info("Run %d: still running %.0fs after the stop request; terminating it", run_id, self.stop_grace)
            self._finish(run_id, "stopped", "")
            self.orphans.terminate(run_id)
        else:
            self._terminate(run_id)

    def _terminate(self, run_id: int) -> None:
        with self._lock:
            process = self._processes.get(run_id)
        if process is None or process.poll() is not None:
            return
        _log.info("Run %d: still running %.0fs after the stop request; terminating it", run_id, self.stop_grace)
        self._finish(run_id, "stopped", "")
        process.terminate()
        try:
            process.wait(5.0)
        except subprocess.TimeoutExpired:
            process.kill()

    def _supervise(self, run_id: int, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        tail: list[str] = []
        for line in process.stdout:
            text = line.rstrip("\n")
            tail = (tail + [text])[-20:]
            try:
                self.state.journal.add_logs(run_id, [text])
            except Exception:  # the state closed under us during shutdown
                break
        code = process.wait()
        with self._lock:
            self._processes.pop(run_id, None)
        self.orphans.forget(run_id)
        if code != 0:
            last = "\n".join(tail[-5:])
            self._finish(
                run_id,
                "failed",
                f"The ServerApp process exited with code {code} before finishing the run. "
                f"Its last lines:\n{last}\n(see them all with `fedlab log {run_id}`)",
            )
        else:
            self._finish(run_id, "failed", "The ServerApp process exited without finishing the run.")
        _log.info("Run %d: ServerApp process exited with code %d", run_id, code)

    def _finish(self, run_id: int, status: str, error: str) -> None:
        # A no-op when the process already finished the run itself, as it normally does.
        try:
            self.state.finish_run(run_id, status, error)
        except Exception as exc:  # the state closed under us during shutdown
            _log.debug("Run %d: could not record its end: %s", run_id, exc)
