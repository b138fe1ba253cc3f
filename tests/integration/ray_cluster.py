"""A real Ray cluster for the tests: 2 CPUs on 127.0.0.1, started once per test session.

Used by the Ray backend's own tests and by the backend contract suite (the fixture is in
tests/integration/conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
RAY_ENV = {
    # Ray turns 127.0.0.1 into the machine's address unless this is off; it is read by
    # the cluster's processes and by this one (when it imports ray).
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    # The same on every machine: no token, whether or not ~/.ray/auth_token exists.
    "RAY_AUTH_MODE": "disabled",
}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def running_cluster() -> Iterator[str]:
    """Start the cluster, yield its address, and always stop exactly that cluster at the end.

    ``ray start`` runs in a session of its own, which every process of the cluster it starts
    (GCS, raylet, workers, agents) inherits; the end kills that session's processes and waits
    until they are gone. ``ray stop`` would kill every Ray process on the machine, including
    clusters that other test runs started. RAY_ENV is set in this process for as long as the
    cluster runs.
    """
    saved = {name: os.environ.get(name) for name in RAY_ENV}
    os.environ.update(RAY_ENV)
    temp = Path(tempfile.mkdtemp(prefix="fl-ray-"))
    port = free_port()
    command = [
        RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
        f"--ray-client-server-port={free_port()}", "--num-cpus=2",
        "--object-store-memory=200000000", "--include-dashboard=false",
        "--disable-usage-stats", f"--temp-dir={temp}",
    ]  # fmt: skip
    starter = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = starter.communicate(timeout=180)
        if starter.returncode != 0:
            raise RuntimeError(f"ray start failed:\n{out}\n{err}")
        yield f"127.0.0.1:{port}"
    finally:
        starter.kill()  # if it is still starting; a no-op once it has exited
        starter.wait()
        stop_session(starter.pid)
        shutil.rmtree(temp, ignore_errors=True)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def session_processes(session: int) -> list[int]:
    """The live (not zombie) processes of the session ``session``, this process excepted."""
    listing = subprocess.run(
        ["ps", "-A", "-o", "pid=", "-o", "stat="], capture_output=True, text=True, check=True
    )
    found = []
    for line in listing.stdout.splitlines():
        pid, stat = line.split(None, 1)
        if stat.startswith("Z") or int(pid) == os.getpid():
            continue
        try:
            if os.getsid(int(pid)) == session:
                found.append(int(pid))
        except (ProcessLookupError, PermissionError):  # gone meanwhile, or not ours
            continue
    return found


def stop_session(session: int, timeout_s: float = 60.0) -> None:
    """SIGKILL the processes of ``session`` (as ``ray stop --force`` would) and wait them out.

    Raises
    ------
    RuntimeError
        If some are still alive after ``timeout_s`` seconds.
    """
    killed: set[int] = set()
    start = time.monotonic()
    while pids := session_processes(session):
        if time.monotonic() - start > timeout_s:
            raise RuntimeError(f"Ray processes {pids} of session {session} did not stop.")
        for pid in set(pids) - killed:  # also any that the cluster started meanwhile
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getsid(pid) == session:  # still that process, not a reused pid
                    os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        time.sleep(0.05)  # polls processes on their way out; the loop ends when none is left
