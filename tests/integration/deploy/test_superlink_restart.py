"""A SuperLink killed with SIGKILL and started again."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import numpy as np

from fedlab.deploy.client.grpcgrid import GrpcGrid
from fedlab.message import Message
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.deploy.security import INSECURE
from tests.integration.deploy.deploy_cluster import Cluster

ECHO_APP = "tests.integration.deploy.deploy_apps:echo_app"


def instruction(grid: GrpcGrid, node_id: int, values: np.ndarray, round_: int) -> Message:
    content = RecordDict({"arrays": ArrayRecord({"w": values}), "config": ConfigRecord({"server-round": round_})})
    return grid.create_message(content, "train", node_id, group_id=str(round_))


def wait_for_line(read: object, pattern: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(pattern, read()):  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"never saw {pattern!r}")


def test_a_reply_acknowledged_before_a_superlink_crash_is_pulled_after_its_restart(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, state="sqlite")
    grid = None
    try:
        first = cluster.start_superlink()
        node = cluster.start_node("partition-id=0 num-partitions=1", app=ECHO_APP, heartbeat_interval=1.0)
        node_id = cluster.node_id(node)
        run_id = cluster.control.create_run(b"", {}, attached=True)
        grid = GrpcGrid(cluster.serverappio, run_id, security=INSECURE)
        assert grid.wait_for_nodes(1, timeout=60) == [node_id]
        values = np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32)
        (sent,) = grid.push_messages([instruction(grid, node_id, values, 1)])
        wait_for_line(node.output, f"Reply to {sent} accepted")  # acknowledged: committed
        assert cluster.kill(first, signal.SIGKILL) == -signal.SIGKILL

        cluster.start_superlink()  # same ports, same --state-dir
        replies = grid.pull_any([sent], timeout=60)
        assert [r.metadata.reply_to_message_id for r in replies] == [sent]
        assert np.array_equal(replies[0].content["arrays"]["w"].numpy(), values)
        metrics = replies[0].content["metrics"]
        assert isinstance(metrics, MetricRecord) and metrics["num-examples"] == 1

        # The same SuperNode process reconnected by itself and keeps working.
        (reply,) = grid.send_and_receive([instruction(grid, node_id, values * 2, 2)], timeout=60)
        assert reply.has_content(), reply
        assert np.array_equal(reply.content["arrays"]["w"].numpy(), values * 2)
        assert node.popen.poll() is None
    finally:
        if grid is not None:
            grid.close()
        cluster.stop()


def test_a_supernode_registers_again_when_a_restarted_superlink_has_forgotten_it(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, state="memory")
    try:
        first = cluster.start_superlink()
        node = cluster.start_node("partition-id=0 num-partitions=1", app=ECHO_APP, heartbeat_interval=1.0)
        old_id = cluster.node_id(node)
        cluster.kill(first, signal.SIGKILL)
        cluster.start_superlink()
        wait_for_line(node.output, rf"supernode registered node_id=(?!{old_id}\b)\d+")
        (info,) = cluster.control.wait_for_nodes(1, timeout=60)
        assert info.node_id != old_id and info.node_config == {"device": "cpu", "partition-id": 0, "num-partitions": 1}
        assert node.popen.poll() is None
    finally:
        cluster.stop()
