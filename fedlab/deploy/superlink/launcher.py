"""Starting and supervising the ServerApp processes of runs the SuperLink drives itself.

A run created with ``attached=False`` gets its own process,
``python -m fedlab.deploy.serverapp --serverappio ADDR --run-id N``, which loads the run's
bundle and drives it through a GrpcGrid. Its output lines become the run's log. If it
exits before finishing the run, the run fails with its exit code; a run asked to stop
gets ``stop_grace`` seconds to finish its round before its process is terminated.

Before starting anything the launcher checks the run's bundle as a SuperNode does
(:func:`fedlab.deploy.bundle.load_run_bundle`): signed by a trusted key for this run's
config, unexpired, a nonce not seen for another run; without trusted keys only with
``allow_unsigned``. A refused bundle fails the run with the reason, and nothing runs.
The process starts without the SuperLink's working directory on its import path and
finds fedlab where the SuperLink did; the bundle's modules come after
the standard library and site-packages, so they cannot shadow them.
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
from pathlib import Path
from typing import Any

from fedlab.deploy.security.audit import AuditLog
from fedlab.deploy.security.settings import RUN_TOKEN_ENV
from fedlab.deploy.superlink.orphans import OrphanSupervisor
from fedlab.deploy.superlink.state import LinkState
from fedlab.errors import BundleError

__all__ = ["ServerAppLauncher"]

_log = logging.getLogger("fedlab.superlink")
# ``python -m fedlab.deploy.serverapp`` without the working directory that -c (or -m) puts
# first on the import path; the same on every Python version (-P exists from 3.11 on).
_ISOLATED_SERVERAPP = (
    "import sys\n"
    "if not getattr(sys.flags, 'safe_path', False): del sys.path[0]\n"
    "from fedlab.deploy.serverapp.process import main\n"
    "sys.exit(main())"
)


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
        ``fedlab.deploy.serverapp`` without the working directory on its import path.
    trusted_keys
        Ed25519 public keys; a run's bundle must be signed by one of them for that run.
    allow_unsigned
        Without trusted keys, launch bundles anyway (``--insecure-allow-unsigned``);
        without either, every run is refused.
    security_args
        How the process connects: ``--insecure``, or ``--root-cert FILE`` (and
        ``--tls-name NAME``). Its per-run secret travels in its environment
        (``FEDLAB_RUN_TOKEN``), never on its command line, which other users can read.
    """

    def __init__(
        self,
        state: LinkState,
        serverappio_address: str,
        *,
        stop_grace: float = 10.0,
        command: Sequence[str] | None = None,
        trusted_keys: Sequence[Any] | None = None,
        allow_unsigned: bool = False,
        audit: AuditLog | None = None,
        security_args: Sequence[str] = ("--insecure",),
    ) -> None:
        self.state = state
        self.address = serverappio_address
        self.stop_grace = stop_grace
        self.command = list(command or [sys.executable, "-c", _ISOLATED_SERVERAPP])
        self.security_args = list(security_args)
        self.trusted_keys = list(trusted_keys) if trusted_keys else None
        self.allow_unsigned = allow_unsigned
        self.audit = audit if audit is not None else AuditLog(None)
        self._nonces: dict[str, int] = {}
        self._processes: dict[int, subprocess.Popen[str]] = {}
        self._lock = threading.Lock()
        self.orphans = OrphanSupervisor(state)

    def adopt_orphans(self) -> list[int]:
        """Supervise again the processes a crashed SuperLink left running (see ``orphans``)."""
        return self.orphans.adopt()

    def launch(self, run_id: int, token: str | None = None) -> None:
        """Check ``run_id``'s bundle and start its ServerApp process (or fail the run).

        ``token`` is the process's ServerAppIo secret.
        """
        refused = self.check(run_id)
        if refused is not None:
            _log.error("Run %d: refused its bundle: %s", run_id, refused)
            self.audit.record("bundle.refused", "superlink", run_id=run_id, reason=refused)
            try:
                self.state.journal.add_logs(run_id, [f"error: {refused}"])
            except Exception as exc:  # the state closed under us during shutdown
                _log.debug("Run %d: could not log the refusal: %s", run_id, exc)
            self._finish(run_id, "failed", refused)
            return
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(_fedlab_path()))
        env.pop(RUN_TOKEN_ENV, None)
        if token is not None:
            env[RUN_TOKEN_ENV] = token
        process = subprocess.Popen(
            [*self.command, "--serverappio", self.address, "--run-id", str(run_id), *self.security_args],
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

    def check(self, run_id: int) -> str | None:
        """Return why ``run_id``'s bundle must not run here, or None if it may."""
        from fedlab.deploy.bundle import load_run_bundle

        run = self.state.runs.get(run_id)
        if run is None or not run.bundle_digest:
            return None  # the process reports the missing run or bundle itself
        size = self.state.objects.size(run.bundle_digest)
        if size is None:
            return f"The bundle {run.bundle_digest[:12]} of run {run_id} is not stored on the SuperLink."
        data = b"".join(bytes(c) for c in self.state.objects.read(run.bundle_digest, 0, 1 << 20))
        try:
            load_run_bundle(
                data,
                run_id=run_id,
                run_config=run.run_config,
                trusted_keys=self.trusted_keys,
                allow_unsigned=self.allow_unsigned,
                seen_nonces=self._nonces,
            )
        except BundleError as err:
            return f"The SuperLink refused to run the bundle of run {run_id}: {err}"
        return None

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


def _fedlab_path() -> list[str]:
    # With -P the process finds fedlab where the SuperLink found it, then PYTHONPATH.
    import fedlab

    home = str(Path(fedlab.__file__).resolve().parent.parent)
    existing = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return [home, *[p for p in existing if p != home]]
