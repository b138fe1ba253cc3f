"""SecAgg+ over the deployment runtime: a SuperLink, four SuperNode processes, a GrpcGrid.

The same FedAvg run is simulated without SecAgg+; the deployed secure run must reach the
same arrays within the quantisation bound, with one client dropping out in round 2
(after sharing its keys), so dropout recovery runs over real processes too.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import fedlab as fl
from fedlab.deploy.bundle import build_bundle
from fedlab.deploy.client.grpcgrid import GrpcGrid
from fedlab.deploy.security import INSECURE
from fedlab.events import Event, EventBus, StrategyReport
from fedlab.privacy.secagg import SecAggPlus
from fedlab.records import ArrayRecord
from fedlab.server import Result
from fedlab.strategy import FedAvg
from tests.integration.deploy.deploy_cluster import Cluster

CLIENT = '''
import numpy as np
from fedlab import ClientApp
from fedlab.mods.secagg import secaggplus_mod
from fedlab.records import ArrayRecord, MetricRecord, RecordDict

app = ClientApp(mods=[secaggplus_mod])


@app.train()
def train(msg, ctx):
    part = int(ctx.node_config["partition-id"])
    rnd = int(msg.content["config"]["server-round"])
    if part == 3 and rnd == 2:
        raise RuntimeError("partition 3 drops out of round 2")
    gen = np.random.default_rng(part + 10 * rnd)
    new = {k: a.numpy() + gen.normal(0, 0.3, a.shape).astype(np.float32) for k, a in msg.content["arrays"].items()}
    return msg.reply(RecordDict({"arrays": ArrayRecord(new), "metrics": MetricRecord({"num-examples": part + 2})}))
'''

NODES = 4


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("project")
    (root / "fedsecagg").mkdir()
    (root / "fedsecagg" / "__init__.py").write_text("")
    (root / "fedsecagg" / "client.py").write_text(CLIENT)
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))
    for name in [m for m in sys.modules if m.startswith("fedsecagg")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("secagg"))
    try:
        cluster.start_superlink()
        for index in range(NODES):
            cluster.start_node(f"partition-id={index} num-partitions={NODES}")
        cluster.control.wait_for_nodes(NODES, timeout=60)
        yield cluster
    finally:
        cluster.stop()


def initial_arrays() -> ArrayRecord:
    rng = np.random.default_rng(5)
    return ArrayRecord({"w": rng.normal(size=(6, 5)).astype(np.float32), "b": np.zeros(5, np.float32)})


def fedavg() -> FedAvg:
    return FedAvg(fraction_evaluate=0.0, min_train_nodes=3, min_available_nodes=NODES)


def test_secaggplus_fedavg_on_real_supernodes_matches_plain_fedavg_within_quantisation(
    cluster: Cluster, app_dir: Path
) -> None:
    from fedsecagg.client import app  # type: ignore[import-not-found]

    plain: Result = fl.Federation(app, fedavg(), num_clients=NODES, initial_arrays=initial_arrays(),
                                  seed=1, display="none").run(rounds=3)  # fmt: skip
    secure = SecAggPlus(fedavg(), num_shares=NODES, reconstruction_threshold=3, clipping_range=4.0, timeout=60)
    bundle = build_bundle("fedsecagg.client:app", project_dir=app_dir)
    run_id = cluster.control.create_run(bundle, {}, attached=True)
    events: list[Event] = []
    bus = EventBus()
    bus.subscribe(events.append)
    grid = GrpcGrid(cluster.serverappio, run_id, events=bus, security=INSECURE)
    try:
        deployed = secure.start(grid, initial_arrays(), 3, seed=1, timeout=60)
    finally:
        grid.close()
    cluster.control.finish_run(run_id, "completed")
    assert deployed.rounds_completed == 3, cluster.logs()
    for name in ("w", "b"):
        gap = np.abs(deployed.arrays[name].numpy() - plain.arrays[name].numpy())
        assert gap.max() <= 3 * (secure.error_bound + 1e-6)
    reports = [e.info["secagg_survivors"] for e in events if isinstance(e, StrategyReport) and e.strategy == "SecAggPlus"]
    assert reports == [4, 3, 4]
