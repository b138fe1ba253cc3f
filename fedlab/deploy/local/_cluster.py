"""A SuperLink and N SuperNodes as child processes on loopback, for one managed run.

The cluster is secured like a real deployment: throwaway TLS certificates, one key per
SuperNode (and only those on the allow-list), an admin token, all in a private temporary
directory (:attr:`LocalCluster.security` is what a client uses to reach it).

Each process gets its own session (process group), so stopping it also ends whatever it
started (a SuperLink's ServerApp process), and on Linux it ends by itself when this
process dies (:mod:`fedlab.deploy.local._child`). Its output goes to log files in a
private temporary directory, whose tail is quoted when a process fails to start.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fedlab.deploy.local._forked import ForkedProcess, template
from fedlab.deploy.security.keys import write_key_pair
from fedlab.deploy.security.settings import INSECURE, ClientSecurity, read_token
from fedlab.deploy.security.tls import make_dev_certs
from fedlab.errors import DeployError

__all__ = ["LocalCluster", "SuperLinkAddresses", "stop_processes"]

#: A process of the cluster: forked by the template (Linux), or started as a subprocess.
Process = subprocess.Popen[bytes] | ForkedProcess

_READY = re.compile(r"superlink ready fleet=(\S+) serverappio=(\S+) control=(\S+)")


class SuperLinkAddresses:
    """Where a SuperLink listens: its Fleet, ServerAppIo and Control APIs."""

    def __init__(self, fleet: str, serverappio: str, control: str) -> None:
        self.fleet = fleet
        self.serverappio = serverappio
        self.control = control

    @classmethod
    def parse(cls, line: str) -> SuperLinkAddresses | None:
        """Read the SuperLink's ``superlink ready ...`` line; None for any other line."""
        match = _READY.search(line)
        return None if match is None else cls(*match.groups())


def stop_processes(processes: Sequence[Process], grace: float = 5.0) -> None:
    """Stop ``processes`` and their process groups: SIGTERM to all, SIGKILL after ``grace`` s."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 30.0)):
        running = [p for p in processes if p.poll() is None]
        for process in running:
            _signal_group(process, sig)
        deadline = time.monotonic() + wait
        for process in running:
            try:
                process.wait(max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                continue
    for process in processes:
        # The leader is gone; make sure nothing it started lingers in its group.
        _signal_group(process, signal.SIGKILL)


def _signal_group(process: Process, sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        if process.poll() is None:
            process.send_signal(sig)


class LocalCluster:
    """Start a SuperLink and ``num_nodes`` SuperNodes; stop them all with :meth:`stop`.

    Use as a context manager; processes are also stopped at interpreter exit. With
    ``insecure=True`` everything runs in plaintext without authentication (tests of the
    insecure mode itself).

    On Linux the processes are forked by a warm template process
    (:mod:`fedlab.deploy.local._template`), which saves each one the interpreter's cold
    start; set :attr:`fork` to False to start them as fresh interpreters instead.
    """

    #: Fork the processes from the template (Linux) rather than start fresh interpreters.
    fork: bool = sys.platform.startswith("linux")

    def __init__(
        self,
        num_nodes: int,
        node_configs: Sequence[str],
        *,
        startup_timeout: float = 120.0,
        trusted_keys: Sequence[Ed25519PublicKey] = (),
        insecure: bool = False,
    ) -> None:
        self.num_nodes = num_nodes
        self.node_configs = list(node_configs)
        self.startup_timeout = startup_timeout
        self.insecure = insecure
        self.directory = Path(tempfile.mkdtemp(prefix="fedlab-local-"))
        self.supernode_args: list[str] = []
        self.superlink_args: list[str] = ["--insecure", "--insecure-allow-unsigned"]
        self.security: ClientSecurity = INSECURE
        if not insecure:
            self._secure()
        for index, key in enumerate(trusted_keys):
            path = self.directory / f"trusted-{index}.pem"
            path.write_bytes(key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
            self.supernode_args += ["--trusted-key", str(path)]
        self.processes: list[Process] = []
        self._logs: list[IO[bytes]] = []
        self.addresses: SuperLinkAddresses | None = None
        atexit.register(self.stop)

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pids(self) -> list[int]:
        """Process ids of the SuperLink (first) and the SuperNodes."""
        return [p.pid for p in self.processes]

    def start(self) -> SuperLinkAddresses:
        """Start the SuperLink, wait until it listens, then start the SuperNodes."""
        addresses = self.start_superlink()
        self.start_nodes()
        return addresses

    def start_superlink(self) -> SuperLinkAddresses:
        """Start the SuperLink and return its addresses once it listens."""
        superlink = self._spawn(
            "superlink",
            [
                "fedlab.deploy.superlink",
                "--fleet-address",
                "127.0.0.1:0",
                "--serverappio-address",
                "127.0.0.1:0",
                "--control-address",
                "127.0.0.1:0",
                # superlink_args may ask for "--state memory" instead.
                *(() if "--state" in self.superlink_args else ("--state-dir", str(self.directory / "state"))),
                *self.superlink_args,
            ],
        )
        self.addresses = self._wait_ready(superlink)
        if not self.insecure:
            token = read_token(self.directory / "admin.token")
            self.security = ClientSecurity(root_certificates=(self.directory / "certs" / "ca.pem").read_bytes(),
                                           token=token)  # fmt: skip
        return self.addresses

    def _secure(self) -> None:
        """Throwaway certificates, a key per node on the allow-list, the admin token's path."""
        certs = make_dev_certs(self.directory / "certs", days=2)
        keys = self.directory / "keys"
        keys.mkdir(mode=0o700)
        lines = []
        for index in range(self.num_nodes):
            _, public = write_key_pair(keys / f"node-{index}")
            lines.append(public.read_text())
        (keys / "allowed.pub").write_text("".join(lines))
        self.superlink_args = [
            "--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key),
            "--node-keys", str(keys / "allowed.pub"), "--admin-token-file", str(self.directory / "admin.token"),
        ]  # fmt: skip

    def start_nodes(self) -> None:
        """Start the SuperNodes (once; later calls do nothing)."""
        assert self.addresses is not None, "start_superlink() first"
        if len(self.processes) > 1:
            return
        for index, node_config in enumerate(self.node_configs):
            self._spawn(
                f"supernode-{index}",
                [
                    "fedlab.deploy.supernode",
                    "--superlink",
                    self.addresses.fleet,
                    "--node-config",
                    node_config,
                    *self._node_security(index),
                    *(self.supernode_args or ["--insecure-allow-unsigned"]),
                ],
            )

    def _node_security(self, index: int) -> list[str]:
        if self.insecure:
            return ["--insecure"]
        certs, keys = self.directory / "certs", self.directory / "keys"
        return [
            "--root-cert",
            str(certs / "ca.pem"),
            "--node-key",
            str(keys / f"node-{index % self.num_nodes}.key"),
        ]

    def stop(self) -> None:
        """Stop every process (SuperNodes first), close logs and remove the directory."""
        # SuperNodes first, so none reconnects in a loop to a SuperLink that is going away.
        stop_processes(self.processes[1:])
        stop_processes(self.processes[:1])
        for log in self._logs:
            log.close()
        self._logs.clear()
        shutil.rmtree(self.directory, ignore_errors=True)
        atexit.unregister(self.stop)

    def log(self, name: str) -> str:
        """The output so far of process ``name`` (``superlink``, ``supernode-0``, ...)."""
        path = self.directory / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _spawn(self, name: str, args: list[str]) -> Process:
        # Temporary files of the children (extracted bundles) land in our directory, so
        # stop() removes them even when a child is killed before it can clean up.
        tmp = self.directory / "tmp"
        tmp.mkdir(exist_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1", TMPDIR=str(tmp))
        if self.fork:  # a warm copy of a process that imported everything already
            forked = template(self.startup_timeout).spawn(
                args[0], args[1:], log=self.directory / f"{name}.log", cwd=self.directory, env=env
            )
            self.processes.append(forked)
            return forked
        log = open(self.directory / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        process = subprocess.Popen(
            [sys.executable, "-m", "fedlab.deploy.local._child", str(os.getpid()), *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            # Not the caller's directory: what the nodes import must come from the bundle,
            # as on a remote machine, so a local run rehearses a remote one faithfully.
            cwd=self.directory,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def _wait_ready(self, superlink: Process) -> SuperLinkAddresses:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            for line in self.log("superlink").splitlines():
                addresses = SuperLinkAddresses.parse(line)
                if addresses is not None:
                    return addresses
            if superlink.poll() is not None:
                break
            time.sleep(0.01)
        tail = "\n".join(self.log("superlink").splitlines()[-20:])
        state = (
            "exited"
            if superlink.poll() is not None
            else f"was not ready after {self.startup_timeout:.0f}s"
        )
        raise DeployError(f"The local SuperLink {state}. Its output:\n{tail}")
