"""A SuperNode cut off from its SuperLink in the middle of a round, then reconnected.

The SuperNodes run in network namespaces of their own, each joined by a veth pair to a
bridge in the test's namespace, where the SuperLink listens on the bridge's address only.
Cutting a node's link (``ip link set DEV down``) drops its packets silently, as a pulled
cable or a dead router would: no connection is reset. The same scenario also runs with
the node's process paused (SIGSTOP/SIGCONT), which needs no privileges.

Either way, the round finishes without that node (reported as unavailable, within
FedAvg's minimums), and once the link is back the node rejoins, under the same id, and
takes part in the next rounds.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import pytest

from fedlab.deploy.client.grpcgrid import GrpcGrid
from fedlab.deploy.security import INSECURE
from fedlab.events import ClientReplied, Event, EventBus, RoundAggregated, RoundStarted
from fedlab.message import ErrorCode
from fedlab.records import ArrayRecord
from fedlab.server import Result
from fedlab.strategy import FedAvg
from tests.integration.deploy.deploy_cluster import Cluster, Proc

APP = "tests.integration.deploy.recovery_apps:client"
NODES = 3
CUT = 2  # the partition whose link is cut


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise AssertionError(
            f"`ip {' '.join(args)}` failed: {done.stderr.strip()}. This test needs root and "
            "network namespaces (`ip netns`)."
        )


class Network:
    """A bridge here, and one namespace per node joined to it by a veth pair."""

    def __init__(self) -> None:
        self.tag = secrets.token_hex(3)  # names stay unique among concurrent runs
        octet = 16 + int(self.tag, 16) % 200
        self.bridge = f"flb{self.tag}"
        self.subnet = f"10.{octet}.{int(self.tag[:2], 16)}"
        self.namespaces: list[str] = []
        self.links: list[str] = []

    @property
    def superlink_host(self) -> str:
        return f"{self.subnet}.1"

    def create(self, nodes: int) -> None:
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.superlink_host}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for i in range(nodes):
            namespace, here, there = f"fl{self.tag}n{i}", f"flh{self.tag}{i}", f"flp{self.tag}{i}"
            ip("netns", "add", namespace)
            self.namespaces.append(namespace)
            ip("link", "add", here, "type", "veth", "peer", "name", there)
            self.links.append(here)
            ip("link", "set", there, "netns", namespace)
            ip("link", "set", here, "master", self.bridge)
            ip("link", "set", here, "up")
            inside = ("netns", "exec", namespace, "ip")
            ip(*inside, "addr", "add", f"{self.subnet}.{i + 2}/24", "dev", there)
            ip(*inside, "link", "set", there, "up")
            ip(*inside, "link", "set", "lo", "up")

    def prefix(self, node: int) -> tuple[str, ...]:
        """The command prefix that runs a program in ``node``'s namespace."""
        return ("ip", "netns", "exec", self.namespaces[node])

    def remove(self) -> None:
        """Delete every namespace and link made (their processes must have ended)."""
        for namespace in self.namespaces:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30)
        for link in self.links:  # gone with its namespace's peer; deleted in case it is not
            subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=30)


class Fault(Protocol):
    def cut(self) -> None: ...
    def restore(self) -> None: ...


class LinkCut:
    """Takes the node's veth link down (packets vanish), then brings it up again."""

    def __init__(self, network: Network, node: int) -> None:
        self.link = network.links[node]

    def cut(self) -> None:
        ip("link", "set", self.link, "down")

    def restore(self) -> None:
        ip("link", "set", self.link, "up")


class Pause:
    """Stops the node's process (SIGSTOP), then lets it go on (SIGCONT)."""

    def __init__(self, proc: Proc) -> None:
        self.proc = proc

    def cut(self) -> None:
        self.proc.popen.send_signal(signal.SIGSTOP)

    def restore(self) -> None:
        self.proc.popen.send_signal(signal.SIGCONT)


def wait_until(condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def network() -> Iterator[Network]:
    made = Network()
    try:
        made.create(NODES)
        yield made
    finally:
        made.remove()


def run_with_a_fault(cluster: Cluster, nodes: list[Proc], fault: Fault, markers: Path) -> list[Event]:
    """Three rounds; the link of partition CUT fails mid round 1 and is back for round 2."""
    node_ids = [cluster.node_id(p) for p in nodes]
    cluster.control.wait_for_nodes(NODES, timeout=30)
    run_id = cluster.control.create_run(b"", {}, attached=True)
    events: list[Event] = []
    bus = EventBus()
    bus.subscribe(events.append)
    grid = GrpcGrid(cluster.serverappio, run_id, events=bus, security=INSECURE)
    strategy = FedAvg(fraction_evaluate=0.0, min_train_nodes=2, min_available_nodes=2)

    def back_online() -> bool:
        return node_ids[CUT] in {n.node_id for n in cluster.control.list_nodes()}

    def round_end(result: Result) -> None:
        if result.rounds_completed == 1:
            fault.restore()
            wait_until(back_online, f"node {node_ids[CUT]} to come back\n{cluster.logs()}")

    outcome: dict[str, Result | BaseException] = {}

    def serve() -> None:
        try:
            outcome["result"] = strategy.start(
                grid, ArrayRecord({"w": np.arange(8, dtype=np.float32)}), 3, timeout=30, seed=0,
                train_config={"marker-dir": str(markers), f"sleep-{CUT}": 1.0}, on_round_end=round_end,
            )  # fmt: skip
        except BaseException as exc:  # re-raised below
            outcome["result"] = exc

    server = threading.Thread(target=serve)
    try:
        server.start()
        wait_until((markers / f"started-{CUT}-1").exists, f"partition {CUT} to start round 1")
        fault.cut()  # while it trains: its reply cannot get through
        server.join(timeout=60)
        assert not server.is_alive(), "the run hung after a link was cut:\n" + cluster.logs()
    finally:
        fault.restore()
        server.join(timeout=60)
        grid.close()
    assert isinstance(outcome["result"], Result), outcome["result"]
    assert outcome["result"].rounds_completed == 3
    return events


def assert_the_node_missed_one_round_only(events: list[Event], cut_id: int) -> None:
    failed = [(e.round, e.node_id, e.error.code) for e in events if isinstance(e, ClientReplied) and e.error]
    assert failed == [(1, cut_id, ErrorCode.NODE_UNAVAILABLE)]
    aggregated = [(e.round, e.num_replies, e.num_failures) for e in events if isinstance(e, RoundAggregated)]
    assert aggregated == [(1, 2, 1), (2, 3, 0), (3, 3, 0)]
    sampled = [cut_id in e.node_ids for e in events if isinstance(e, RoundStarted)]
    assert sampled == [True, True, True]
    replied = [e.round for e in events if isinstance(e, ClientReplied) and e.node_id == cut_id and not e.error]
    assert replied == [2, 3]


def test_a_node_whose_link_is_cut_mid_round_is_left_out_and_rejoins_when_it_is_back(
    tmp_path: Path, network: Network
) -> None:
    cluster = Cluster(tmp_path, patience=3.0)
    markers = tmp_path / "markers"
    markers.mkdir()
    try:
        cluster.start_superlink(ports=(f"{network.superlink_host}:0", "127.0.0.1:0", "127.0.0.1:0"))
        nodes = [
            cluster.start_node(f"partition-id={i} num-partitions={NODES}", app=APP, heartbeat_interval=1.0,
                               superlink=cluster.fleet, prefix=network.prefix(i))
            for i in range(NODES)
        ]  # fmt: skip
        events = run_with_a_fault(cluster, nodes, LinkCut(network, CUT), markers)
        assert_the_node_missed_one_round_only(events, cluster.node_id(nodes[CUT]))
        assert all(p.popen.poll() is None for p in nodes)
    finally:
        cluster.stop()


def test_a_node_paused_mid_round_is_left_out_and_rejoins_when_it_goes_on(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, patience=3.0)
    markers = tmp_path / "markers"
    markers.mkdir()
    try:
        cluster.start_superlink()
        nodes = [
            cluster.start_node(f"partition-id={i} num-partitions={NODES}", app=APP, heartbeat_interval=1.0)
            for i in range(NODES)
        ]
        events = run_with_a_fault(cluster, nodes, Pause(nodes[CUT]), markers)
        assert_the_node_missed_one_round_only(events, cluster.node_id(nodes[CUT]))
    finally:
        for proc in cluster.procs:  # a stopped process ignores SIGTERM until it continues
            if proc.popen.poll() is None:
                os.kill(proc.popen.pid, signal.SIGCONT)
        cluster.stop()
