"""A SuperNode process killed with SIGKILL in the middle of a round."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import numpy as np

from fedlab.deploy.client.grpcgrid import GrpcGrid
from fedlab.events import ClientReplied, Event, EventBus, RoundAggregated, RoundStarted
from fedlab.message import ErrorCode
from fedlab.records import ArrayRecord
from fedlab.server import Result
from fedlab.strategy import FedAvg
from fedlab.deploy.security import INSECURE
from tests.integration.deploy.deploy_cluster import Cluster

ECHO_APP = "tests.integration.deploy.deploy_apps:echo_app"


def test_a_killed_supernode_is_reported_by_id_and_the_rounds_finish_with_the_others(tmp_path: Path) -> None:
    # Heartbeats every 1 s, offline after 3 s of silence: the dead node is noticed fast,
    # and a live node on a busy machine is not mistaken for a dead one.
    cluster = Cluster(tmp_path, patience=3.0)
    events: list[Event] = []
    grid = None
    try:
        cluster.start_superlink()
        procs = [
            cluster.start_node(f"partition-id={i} num-partitions=3", app=ECHO_APP, heartbeat_interval=1.0)
            for i in range(3)
        ]
        node_ids = [cluster.node_id(p) for p in procs]
        cluster.control.wait_for_nodes(3, timeout=60)
        run_id = cluster.control.create_run(b"", {}, attached=True)
        bus = EventBus()
        bus.subscribe(events.append)
        grid = GrpcGrid(cluster.serverappio, run_id, events=bus, security=INSECURE)
        markers = tmp_path / "markers"
        markers.mkdir()
        initial = ArrayRecord({"w": np.arange(12, dtype=np.float32)})
        strategy = FedAvg(fraction_evaluate=0.0, min_train_nodes=2, min_available_nodes=2)
        outcome: dict[str, Result | BaseException] = {}

        def serve() -> None:
            try:
                outcome["result"] = strategy.start(
                    grid, initial, 3, train_config={"marker_dir": str(markers), "sleep": 0.5},
                    timeout=60, seed=0,
                )  # fmt: skip
            except BaseException as exc:  # re-raised below
                outcome["result"] = exc

        server = threading.Thread(target=serve)
        server.start()
        started = markers / "started-2-1"  # partition 2 is training round 1
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert started.exists(), cluster.logs()
        assert cluster.kill(procs[2], signal.SIGKILL) == -signal.SIGKILL
        server.join(timeout=120)
        assert not server.is_alive(), "the federation hung after a node died:\n" + cluster.logs()
        result = outcome["result"]
        assert isinstance(result, Result), result
    finally:
        if grid is not None:
            grid.close()
        cluster.stop()

    assert result.rounds_completed == 3
    failed = [e for e in events if isinstance(e, ClientReplied) and e.error is not None]
    assert [(e.round, e.node_id, e.error.code) for e in failed if e.error] == [
        (1, node_ids[2], ErrorCode.NODE_UNAVAILABLE)
    ]
    assert str(node_ids[2]) in failed[0].error.reason  # type: ignore[union-attr]
    aggregated = [(e.round, e.num_replies, e.num_failures) for e in events if isinstance(e, RoundAggregated)]
    assert aggregated == [(1, 2, 1), (2, 2, 0), (3, 2, 0)]
    later = [set(e.node_ids) for e in events if isinstance(e, RoundStarted) and e.round > 1]
    assert later == [{node_ids[0], node_ids[1]}] * 2
    assert result.arrays["w"].numpy().tolist() == list(range(12))  # the nodes echo the model
