"""Real SuperLink and SuperNode processes on 127.0.0.1 for the deployment tests.

Every wait is bounded; :meth:`Cluster.stop` ends every process it started (SIGTERM, then
SIGKILL), and test fixtures always call it. A cluster is ``--insecure`` unless made with
``secure=True``: then the SuperLink serves TLS with throwaway certificates, admits the
node keys ``keys/node-<i>`` (``node_keys`` of them) and an admin token, and still launches
unsigned ServerApp bundles (``--insecure-allow-unsigned``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from fedlab.deploy.client.control_client import ControlClient
from fedlab.deploy.security import INSECURE, ClientSecurity
from fedlab.deploy.security.keys import write_key_pair
from fedlab.deploy.security.tls import make_dev_certs

REPO = Path(__file__).resolve().parents[3]
_READY = re.compile(r"superlink ready fleet=(\S+) serverappio=(\S+) control=(\S+)")
_REGISTERED = re.compile(r"supernode registered node_id=(\d+)")
STARTUP_S = 60.0


@dataclass
class Proc:
    """A process and the file holding its output."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for(self, pattern: re.Pattern[str], timeout: float = STARTUP_S) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = pattern.search(self.output())
            if found:
                return found
            if self.popen.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.name} never printed {pattern.pattern!r}:\n{self.output()[-3000:]}")


@dataclass
class Cluster:
    """A SuperLink and its SuperNodes, started as subprocesses."""

    directory: Path
    state: str = "memory"  # or "sqlite": --state-dir DIRECTORY/state
    patience: float = 3.0
    secure: bool = False
    node_keys: int = 3
    procs: list[Proc] = field(default_factory=list)
    fleet: str = ""
    serverappio: str = ""
    control_address: str = ""
    _control: ControlClient | None = None

    def _spawn(self, name: str, args: list[str], prefix: tuple[str, ...] = ()) -> Proc:
        log = self.directory / f"{name}-{len(self.procs)}.log"
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                [*prefix, sys.executable, *args], stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def start_superlink(self, *, ports: tuple[str, str, str] | None = None, extra: tuple[str, ...] = ()) -> Proc:
        """Start the SuperLink (on free ports unless ``ports`` = fleet, serverappio, control)."""
        fleet, serverappio, control = ports or (self.fleet or "127.0.0.1:0",
                                                self.serverappio or "127.0.0.1:0",
                                                self.control_address or "127.0.0.1:0")  # fmt: skip
        state = ["--state", "memory"] if self.state == "memory" else ["--state-dir", str(self.directory / "state")]
        proc = self._spawn("superlink", [
            "-m", "fedlab.deploy.superlink", *self._superlink_security(), "--insecure-allow-unsigned", *state,
            "--fleet-address", fleet, "--serverappio-address", serverappio,
            "--control-address", control, "--heartbeat-patience", str(self.patience), *extra,
        ])  # fmt: skip
        ready = proc.wait_for(_READY)
        self.fleet, self.serverappio, self.control_address = ready.groups()
        return proc

    def _superlink_security(self) -> list[str]:
        if not self.secure:
            return ["--insecure"]
        certs, keys = self.directory / "certs", self.directory / "keys"
        if not (certs / "ca.pem").exists():  # once: a restarted SuperLink keeps its keys
            make_dev_certs(certs, days=2)
            keys.mkdir(mode=0o700)
            lines = [write_key_pair(keys / f"node-{i}")[1].read_text() for i in range(self.node_keys)]
            (keys / "allowed.pub").write_text("".join(lines))
        return ["--tls-cert", str(certs / "server.pem"), "--tls-key", str(certs / "server.key"),
                "--node-keys", str(keys / "allowed.pub"), "--admin-token-file", str(self.directory / "admin.token")]  # fmt: skip

    def start_node(
        self, node_config: str, *, app: str | None = None, heartbeat_interval: float = 2.0, extra: tuple[str, ...] = (),
        superlink: str | None = None, prefix: tuple[str, ...] = (), key: int = 0,
    ) -> Proc:
        """Start a SuperNode; ``app`` pins its ClientApp (``--app``).

        ``superlink`` overrides the Fleet address it dials; ``prefix`` goes before the Python
        command (e.g. ``ip netns exec NAME``, which execs it: the pid stays the node's). A
        secure cluster's node signs with ``keys/node-<key>.key``.
        """  # fmt: skip
        if self.secure:
            security = ["--root-cert", str(self.directory / "certs" / "ca.pem"),
                        "--node-key", str(self.directory / "keys" / f"node-{key}.key")]  # fmt: skip
        else:
            security = ["--insecure"]
        args = ["-m", "fedlab.deploy.supernode", *security, "--superlink", superlink or self.fleet,
                "--node-config", node_config, "--heartbeat-interval", str(heartbeat_interval),
                "--max-backoff", "1", *extra]  # fmt: skip
        if "--trusted-key" not in extra:
            args.append("--insecure-allow-unsigned")
        if app is not None:
            args += ["--app", app]
        return self._spawn("supernode", args, prefix)

    @staticmethod
    def node_id(proc: Proc) -> int:
        """The id the SuperNode ``proc`` registered with (waits for it)."""
        return int(proc.wait_for(_REGISTERED).group(1))

    @property
    def control(self) -> ControlClient:
        if self._control is None:
            self._control = ControlClient(self.control_address, security=self.security)
        return self._control

    @property
    def security(self) -> ClientSecurity:
        """What a Control or ServerAppIo client of this cluster presents (the admin's token)."""
        if not self.secure:
            return INSECURE
        token = (self.directory / "admin.token").read_text().strip()
        return ClientSecurity(root_certificates=(self.directory / "certs" / "ca.pem").read_bytes(), token=token)

    def superlink(self) -> Proc:
        return next(p for p in reversed(self.procs) if p.name == "superlink")

    def kill(self, proc: Proc, signum: int = signal.SIGKILL) -> int:
        """Send ``signum`` to ``proc`` and return its exit status."""
        proc.popen.send_signal(signum)
        return proc.popen.wait(30)

    def stop(self) -> None:
        """Stop every process: SuperNodes first, then the SuperLink."""
        if self._control is not None:
            self._control.close()
            self._control = None
        for proc in reversed(self.procs):
            if proc.popen.poll() is None:
                proc.popen.terminate()
        for proc in self.procs:
            try:
                proc.popen.wait(15)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(15)

    def logs(self) -> str:
        """Every process's output, for assertion messages."""
        return "\n".join(f"--- {p.name} ({p.log.name})\n{p.output()[-2000:]}" for p in self.procs)
