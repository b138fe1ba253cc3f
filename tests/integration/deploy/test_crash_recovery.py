"""SuperLinks and SuperNodes killed with SIGKILL during a run, then started again.

The run is the seeded ServerApp of :mod:`tests.integration.deploy.recovery_apps`, launched
by the SuperLink in its own process; it writes its final arrays to ``result.npz``. Every
interrupted run must end with arrays bit-identical to those of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedlab.deploy.bundle import build_bundle
from fedlab.deploy.superlink.orphans import ProcessRecord
from tests.integration.deploy.deploy_cluster import REPO, Cluster, Proc

APPS = "tests.integration.deploy.recovery_apps"
NODES = [f"partition-id={i} num-partitions=3" for i in range(3)]
# Partition 0 replies at once, partition 2 last: a kill can fall between their replies.
SLEEPS = {"sleep-0": 0.3, "sleep-1": 0.6, "sleep-2": 1.5}
_ACCEPTED = re.compile(r"Reply to \w+ accepted")


def wait_until(condition: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Deployment:
    """A SuperLink on a state directory, three SuperNodes, and one run of the seeded app.

    ``secure``: over TLS, SuperNode ``i`` signing with node key ``i``.
    """

    def __init__(self, directory: Path, *, secure: bool = False, heartbeat_interval: float = 1.0) -> None:
        self.cluster = Cluster(directory, state="sqlite", secure=secure)
        self.directory = directory
        self.markers = directory
        self.heartbeat_interval = heartbeat_interval
        self.superlink = self.cluster.start_superlink()
        self.nodes = [self.start_node(i) for i in range(len(NODES))]
        self.node_ids = [self.cluster.node_id(p) for p in self.nodes]
        self.cluster.control.wait_for_nodes(3, timeout=60)

    def start_node(self, partition: int) -> Proc:
        """Start the SuperNode of ``partition`` (with that partition's key when secure)."""
        return self.cluster.start_node(NODES[partition], app=f"{APPS}:client",
                                       heartbeat_interval=self.heartbeat_interval, key=partition)  # fmt: skip

    def start_run(self, **config: Any) -> int:
        """Start a run; its markers go to a fresh folder, :attr:`markers`."""
        self.markers = self.directory / f"markers-{len(list(self.directory.glob('markers-*')))}"
        self.markers.mkdir()
        bundle = build_bundle(f"{APPS}:client", f"{APPS}:server")
        run_config = {"marker-dir": str(self.markers), "num-server-rounds": 3, **SLEEPS, **config}
        return self.cluster.control.create_run(bundle, run_config, attached=False)

    def wait_marker(self, name: str) -> None:
        wait_until((self.markers / name).exists, f"{name}\n{self.cluster.logs()}")

    def restart_superlink(self) -> None:
        """SIGKILL the SuperLink, then start it again on the same ports and state directory."""
        assert self.cluster.kill(self.superlink) == -signal.SIGKILL
        self.superlink = self.cluster.start_superlink()

    def finish(self, run_id: int) -> dict[str, np.ndarray]:
        info = self.cluster.control.wait_for_run(run_id, timeout=120)
        assert info.status == "completed", f"{info.error}\n{self.cluster.logs()}"
        with np.load(self.markers / "result.npz") as saved:
            return {name: saved[name] for name in saved.files}

    def serverapp(self, run_id: int) -> ProcessRecord | None:
        """The record of ``run_id``'s ServerApp process in the state directory, if any."""
        path = self.cluster.directory / "state" / "serverapps" / f"{run_id}.json"
        if not path.exists():
            return None
        body = json.loads(path.read_text())
        return ProcessRecord(body["run_id"], body["pid"], tuple(body["cmdline"]), body["start_ticks"])

    def kill_serverapp(self, run_id: int) -> int:
        """SIGKILL ``run_id``'s ServerApp if it is still that process; return its pid."""
        record = self.serverapp(run_id)
        assert record is not None
        if record.is_alive():
            os.kill(record.pid, signal.SIGKILL)
            wait_until(lambda: not record.is_alive(), f"process {record.pid} to die")
        return record.pid


@contextmanager
def running(directory: Path, **options: Any) -> Iterator[Deployment]:
    """A :class:`Deployment`, always stopped, with any ServerApp left behind."""
    started: list[Deployment] = []
    try:
        started.append(Deployment(directory, **options))
        yield started[0]
    finally:
        if started:
            started[0].cluster.stop()  # it also stops the ServerApps it adopted
            for run_id in (1, 2):  # and an orphan no SuperLink adopted, after a failure
                if started[0].serverapp(run_id) is not None:
                    started[0].kill_serverapp(run_id)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    with running(tmp_path) as started:
        yield started


@pytest.fixture
def secure_deployment(tmp_path: Path) -> Iterator[Deployment]:
    # Heartbeats every 5 s: a killed node counts as alive for 15 s, time enough to restart it.
    with running(tmp_path, secure=True, heartbeat_interval=5.0) as started:
        yield started


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """The arrays of the same seeded run, with nothing killed."""
    deployment = Deployment(tmp_path_factory.mktemp("uninterrupted"))
    try:
        return deployment.finish(deployment.start_run())
    finally:
        deployment.cluster.stop()


def assert_identical(arrays: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert sorted(arrays) == sorted(expected)
    for name, value in expected.items():
        assert arrays[name].dtype == value.dtype and arrays[name].tobytes() == value.tobytes(), name


def test_a_superlink_killed_mid_round_and_between_rounds_finishes_the_run_with_identical_arrays(
    deployment: Deployment, uninterrupted: dict[str, np.ndarray]
) -> None:
    run_id = deployment.start_run(**{"gate-after": 2})
    record = deployment.serverapp(run_id)
    assert record is not None and record.is_alive()

    # 1. Round 1's instructions were pushed and every node is training: no reply yet.
    for partition in range(3):
        deployment.wait_marker(f"started-{partition}-1")
    deployment.restart_superlink()

    # 2. Round 2: partition 0's reply was acknowledged, partition 2 is still training.
    deployment.wait_marker("started-2-2")
    first = deployment.nodes[0]
    wait_until(lambda: len(_ACCEPTED.findall(first.output())) >= 2, "partition 0's second reply")
    deployment.restart_superlink()

    # 3. Between rounds 2 and 3: the ServerApp waits for go-2 after aggregating round 2.
    deployment.wait_marker("round-end-2")
    deployment.restart_superlink()
    (deployment.markers / "go-2").touch()

    assert_identical(deployment.finish(run_id), uninterrupted)
    # The same processes carried on: no SuperNode restarted or registered again, and the
    # ServerApp the first SuperLink launched drove the run to its end.
    assert all(p.popen.poll() is None for p in deployment.nodes)
    assert all(len(re.findall("supernode registered", p.output())) == 1 for p in deployment.nodes)
    logs = list(deployment.cluster.control.stream_logs(run_id, follow=False))
    assert sum(f"supervises this ServerApp (pid {record.pid}) again" in line for line in logs) == 3


def test_a_supernode_killed_and_restarted_between_rounds_leaves_the_result_unchanged(
    deployment: Deployment, uninterrupted: dict[str, np.ndarray]
) -> None:
    run_id = deployment.start_run(**{"gate-after": 1})
    deployment.wait_marker("round-end-1")
    old = deployment.node_ids[1]
    assert deployment.cluster.kill(deployment.nodes[1]) == -signal.SIGKILL
    replacement = deployment.cluster.start_node(NODES[1], app=f"{APPS}:client", heartbeat_interval=1.0)
    new = deployment.cluster.node_id(replacement)

    def three_live_nodes() -> bool:
        online = {n.node_id for n in deployment.cluster.control.list_nodes()}
        return online == {deployment.node_ids[0], new, deployment.node_ids[2]}

    wait_until(three_live_nodes, f"node {old} to count as offline")  # 3 missed heartbeats
    (deployment.markers / "go-1").touch()
    assert_identical(deployment.finish(run_id), uninterrupted)


def test_a_supernode_killed_while_training_and_restarted_with_its_key_answers_under_its_old_id(
    secure_deployment: Deployment, uninterrupted: dict[str, np.ndarray]
) -> None:
    deployment = secure_deployment
    run_id = deployment.start_run(**{"hold-1": 2})
    # Partition 1 has its round-2 instruction and is held inside its ClientApp's training.
    deployment.wait_marker("started-1-2")
    node_id = deployment.node_ids[1]
    assert deployment.cluster.kill(deployment.nodes[1]) == -signal.SIGKILL
    (deployment.markers / "release-1-2").touch()
    (deployment.markers / "started-1-2").unlink()
    replacement = deployment.start_node(1)
    assert deployment.cluster.node_id(replacement) == node_id
    deployment.wait_marker("started-1-2")  # the new process trains round 2 again

    assert_identical(deployment.finish(run_id), uninterrupted)
    events = list(deployment.cluster.control.stream_events(run_id, follow=False))
    replied = [e for e in events if type(e).__name__ == "ClientReplied"]
    assert [e.error for e in replied] == [None] * 9, deployment.cluster.logs()
    assert {e.node_id for e in replied} == set(deployment.node_ids)
    # The new process answered the instruction the killed one held, and round 3's.
    assert len(_ACCEPTED.findall(replacement.output())) == 2, replacement.output()
    audit = [json.loads(line) for line in (deployment.directory / "state" / "audit.jsonl").read_text().splitlines()]
    again = [r for r in audit if r["action"] == "node.registered" and r.get("again")]
    assert [(r["actor"], r["redelivered"]) for r in again] == [(f"node:{node_id}", 1)]


def test_a_restarted_superlink_fails_a_run_whose_serverapp_died_with_it_or_after(
    deployment: Deployment,
) -> None:
    control = deployment.cluster.control
    # Died while the SuperLink was down: the run fails as soon as the SuperLink is back.
    first = deployment.start_run(**{"gate-after": 1})
    deployment.wait_marker("round-end-1")
    assert deployment.cluster.kill(deployment.superlink) == -signal.SIGKILL
    deployment.kill_serverapp(first)
    deployment.superlink = deployment.cluster.start_superlink()
    info = control.get_run(first)
    assert info.status == "failed" and "was gone when the SuperLink restarted" in (info.error or "")

    # Died after the restarted SuperLink had adopted it: the run fails once it is gone.
    second = deployment.start_run(**{"gate-after": 1})
    deployment.wait_marker("round-end-1")
    deployment.restart_superlink()
    assert control.get_run(second).status == "running"
    pid = deployment.kill_serverapp(second)
    info = control.wait_for_run(second, timeout=30)
    assert info.status == "failed" and f"process (pid {pid}) exited without finishing" in (info.error or "")
    events = list(control.stream_events(second, follow=False))
    assert type(events[-1]).__name__ == "RunFinished"


def test_an_attached_run_whose_driver_was_killed_fails_after_the_grace_period(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, state="sqlite")
    driver: subprocess.Popen[str] | None = None
    try:
        cluster.start_superlink(extra=("--driver-grace", "2"))
        run_id = cluster.control.create_run(b"", {}, attached=True)
        # A driver (as deploy() would be) that connects, then stays busy without calling:
        # its grid's keep-alive is what tells the SuperLink that it lives.
        script = (
            "import sys, time\n"
            "from fedlab.deploy.client.grpcgrid import GrpcGrid\n"
            "from fedlab.deploy.security import INSECURE\n"
            "grid = GrpcGrid(sys.argv[1], int(sys.argv[2]), keepalive_interval=0.5, security=INSECURE)\n"
            "grid.get_node_ids()\n"
            "print('connected', flush=True)\n"
            "time.sleep(600)\n"
        )
        driver = subprocess.Popen(
            [sys.executable, "-c", script, cluster.serverappio, str(run_id)], stdout=subprocess.PIPE,
            text=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
        )  # fmt: skip
        assert driver.stdout is not None and driver.stdout.readline() == "connected\n"
        busy_until = time.monotonic() + 4.0  # twice the grace: a busy driver is not a dead one
        while time.monotonic() < busy_until:
            assert cluster.control.get_run(run_id).status == "running"
            time.sleep(0.1)
        driver.kill()
        driver.wait(10)
        killed = time.monotonic()
        info = cluster.control.wait_for_run(run_id, timeout=30)
        assert info.status == "failed" and "--driver-grace" in (info.error or "")
        assert time.monotonic() - killed < 10
    finally:
        if driver is not None:
            if driver.poll() is None:
                driver.kill()
                driver.wait(10)
            if driver.stdout is not None:
                driver.stdout.close()
        cluster.stop()

