"""A real Ray cluster for the tests: 2 CPUs on 127.0.0.1, started once per test session.

Used by the Ray backend's own tests and by the backend contract suite (the fixture is in
tests/integration/conftest.py).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
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
    """Start the cluster, yield its address, and always run `ray stop` at the end.

    RAY_ENV is set in this process for as long as the cluster runs.
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
    try:
        started = subprocess.run(command, check=False, capture_output=True, text=True, timeout=180)
        if started.returncode != 0:
            raise RuntimeError(f"ray start failed:\n{started.stdout}\n{started.stderr}")
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120, check=False)
        shutil.rmtree(temp, ignore_errors=True)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
