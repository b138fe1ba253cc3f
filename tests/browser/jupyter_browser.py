"""Start a Jupyter server on loopback and drive it with Debian's Chromium (no browser download).

Used by the browser tests: JupyterLab or Notebook 7 runs in its own process group on a free
127.0.0.1 port with a random token and throw-away config, runtime and IPython folders;
Playwright drives ``/usr/bin/chromium`` headless with a fresh profile. Everything started
is stopped by PID at the end, and the caller can check that it really died.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
#: True once the notebook open in the page has a kernel that is idle (JupyterLab and Notebook 7).
KERNEL_IDLE = """() => {
    const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const kernel = widget && widget.sessionContext && widget.sessionContext.session
        && widget.sessionContext.session.kernel;
    return !!kernel && kernel.status === 'idle';
}"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, read from /proc (kernels may sit in their own session)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


@dataclass
class Server:
    """A running Jupyter server: where to reach it and which processes belong to it."""

    app: str
    port: int
    token: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, notebook: str) -> str:
        if self.app == "lab":
            return f"http://127.0.0.1:{self.port}/lab/tree/{notebook}?reset&token={self.token}"
        return f"http://127.0.0.1:{self.port}/notebooks/{notebook}?token={self.token}"

    def processes(self) -> list[int]:
        return [self.process.pid, *descendants(self.process.pid)]


@contextlib.contextmanager
def jupyter(app: str, root: Path, stopped: list[int]) -> Iterator[Server]:
    """Run ``jupyter lab`` or ``jupyter notebook`` serving ``root``; stop it by PID after.

    The PIDs of the server and of its kernels are appended to ``stopped`` once they were
    signalled, so the test can check they are gone.
    """
    port, token = free_port(), secrets.token_hex(16)
    home = root / ".jupyter-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "FEDLAB_"))}
    # No "get Jupyter news?" toast over the screenshots (and no attempt to fetch news).
    news = home / "lab-settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True, exist_ok=True)
    news.write_text('{"fetchNews": "false", "checkForUpdates": false}')
    env.update(
        JUPYTERLAB_SETTINGS_DIR=str(home / "lab-settings"),
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        IPYTHONDIR=str(home / "ipython"),
        JUPYTER_PLATFORM_DIRS="1",
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    name = "JupyterNotebookApp" if app == "notebook" else "LabApp"
    command = [
        sys.executable, "-m", "jupyter", app, "--no-browser", "--allow-root",
        "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}", f"--{name}.expose_app_in_browser=True",
        "--ServerApp.port_retries=0",
    ]
    log = root / f"{app}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(app, port, token, root, process, log)
    try:
        _wait_ready(server)
        yield server
    finally:
        _stop(server, stopped)


def _wait_ready(server: Server, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{server.port}/api/status?token={server.token}"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"jupyter {server.app} exited:\n{server.log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"jupyter {server.app} did not start:\n{server.log.read_text()[-3000:]}")


def _stop(server: Server, stopped: list[int]) -> None:
    pids = server.processes()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGTERM)  # the server shuts its kernels down
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids[1:]) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in pids[1:]:
        if alive(pid):  # a kernel in its own session that outlived the server
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    stopped.extend(pids)


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[object]:
    """A headless Debian Chromium page (Playwright), with a fresh profile folder."""
    from playwright.sync_api import sync_playwright

    if shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        raise RuntimeError("Chromium is missing: `make test` installs it with apt-get.")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()
