"""FedAvg across a real SuperLink and three real SuperNodes, compared with the simulation.

The nodes are started without ``--app``: they fetch each run's code as a bundle.

Why "equal" is meaningful here: node ids differ between the simulation and the deployment,
so replies are aggregated in a different order. The client below keeps every array value
in [0.5, 2) and weights are 1, 2 and 3, so each weighted term is a float32 times a small
integer and the float64 sums FedAvg accumulates are exact: the average, rounded once to
float32, does not depend on the order. Equality is then bit for bit.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import fedlab as fl
from fedlab.deploy.bundle import build_bundle
from fedlab.deploy.client.grpcgrid import GrpcGrid
from fedlab.deploy.security import INSECURE
from fedlab.events import ClientReplied, Event, EventBus, RoundAggregated, RunFinished, RunStarted
from fedlab.records import ArrayRecord
from fedlab.server import Result
from fedlab.strategy import FedAvg
from tests.integration.deploy.deploy_cluster import Cluster

CLIENT = '''
import numpy as np
from fedlab import ClientApp
from fedlab.records import ArrayRecord, MetricRecord, RecordDict

app = ClientApp()


@app.train()
def train(msg, ctx):
    part = int(ctx.node_config["partition-id"])
    shift = np.float32(float(ctx.run_config["shift"]) * (part + 1))
    new = {k: a.numpy() * np.float32(0.5) + shift for k, a in msg.content["arrays"].items()}
    metrics = MetricRecord({"num-examples": part + 1, "shift": float(shift)})
    return msg.reply(RecordDict({"arrays": ArrayRecord(new), "metrics": metrics}))


@app.evaluate()
def evaluate(msg, ctx):
    part = int(ctx.node_config["partition-id"])
    first = float(msg.content["arrays"]["w"].numpy().flat[0])
    return msg.reply(RecordDict({"metrics": MetricRecord({"num-examples": part + 1, "first": first})}))
'''

SERVER = '''
import numpy as np
from fedlab import ServerApp
from fedlab.records import ArrayRecord
from fedlab.strategy import FedAvg

app = ServerApp()


@app.main()
def main(grid, context):
    initial = ArrayRecord({"w": np.linspace(1.0, 1.5, 8, dtype=np.float32)})
    rounds = int(context.run_config["num-server-rounds"])
    return FedAvg(fraction_evaluate=0.0).start(grid, initial, rounds, seed=3, timeout=60)
'''


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("project")
    (root / "fedexact").mkdir()
    (root / "fedexact" / "__init__.py").write_text("")
    (root / "fedexact" / "client.py").write_text(CLIENT)
    (root / "fedexact" / "server.py").write_text(SERVER)
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))
    for name in [m for m in sys.modules if m.startswith("fedexact")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("fedavg"))
    try:
        cluster.start_superlink()
        for index in range(3):
            cluster.start_node(f"partition-id={index} num-partitions=3")
        cluster.control.wait_for_nodes(3, timeout=60)
        yield cluster
    finally:
        cluster.stop()


def initial_arrays(seed: int) -> ArrayRecord:
    rng = np.random.default_rng(seed)
    return ArrayRecord({
        "w": rng.uniform(1.0, 2.0, (4, 5)).astype(np.float32),
        "b": rng.uniform(1.0, 2.0, 5).astype(np.float32),
    })  # fmt: skip


def simulate(shift: float, seed: int) -> Result:
    from fedexact.client import app  # type: ignore[import-not-found]

    fed = fl.Federation(app, FedAvg(), num_clients=3, initial_arrays=initial_arrays(seed),
                        run_config={"shift": shift}, seed=seed, display="none")  # fmt: skip
    return fed.run(rounds=3)


def deploy(cluster: Cluster, bundle: bytes, shift: float, seed: int, events: list[Event]) -> Result:
    run_id = cluster.control.create_run(bundle, {"shift": shift}, attached=True)
    bus = EventBus()
    bus.subscribe(events.append)
    grid = GrpcGrid(cluster.serverappio, run_id, events=bus, security=INSECURE)
    try:
        result = FedAvg().start(grid, initial_arrays(seed), 3, seed=seed, timeout=60)
    finally:
        grid.close()
    cluster.control.finish_run(run_id, "completed")
    return result


def assert_same_result(deployed: Result, simulated: Result) -> None:
    assert deployed.rounds_completed == simulated.rounds_completed == 3
    assert dict(deployed.arrays.items()) == dict(simulated.arrays.items())
    assert deployed.train_metrics_clientapp == simulated.train_metrics_clientapp
    assert deployed.evaluate_metrics_clientapp == simulated.evaluate_metrics_clientapp


def test_fedavg_on_three_real_supernodes_equals_the_simulation_bit_for_bit(cluster: Cluster, app_dir: Path) -> None:
    bundle = build_bundle("fedexact.client:app", project_dir=app_dir)
    events: list[Event] = []
    deployed = deploy(cluster, bundle, shift=0.25, seed=11, events=events)
    assert_same_result(deployed, simulate(shift=0.25, seed=11))
    rounds = [e for e in events if isinstance(e, RoundAggregated)]
    assert [(e.round, e.num_replies, e.num_failures) for e in rounds] == [(1, 3, 0), (2, 3, 0), (3, 3, 0)]
    partitions = {e.partition_id for e in events if isinstance(e, ClientReplied)}
    assert partitions == {0, 1, 2}


def test_two_runs_submitted_at_once_both_complete_with_their_own_results(cluster: Cluster, app_dir: Path) -> None:
    bundle = build_bundle("fedexact.client:app", project_dir=app_dir)
    results: dict[float, Result] = {}
    errors: list[BaseException] = []

    def one_run(shift: float, seed: int) -> None:
        try:
            results[shift] = deploy(cluster, bundle, shift, seed, [])
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=one_run, args=args) for args in ((0.25, 1), (0.125, 2))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not errors and not any(t.is_alive() for t in threads), (errors, cluster.logs())
    assert_same_result(results[0.25], simulate(0.25, 1))
    assert_same_result(results[0.125], simulate(0.125, 2))
    assert not np.array_equal(results[0.25].arrays["w"].numpy(), results[0.125].arrays["w"].numpy())


def test_a_run_the_superlink_drives_itself_streams_its_events_and_completes(cluster: Cluster, app_dir: Path) -> None:
    bundle = build_bundle("fedexact.client:app", "fedexact.server:app", project_dir=app_dir)
    control = cluster.control
    run_id = control.create_run(bundle, {"num-server-rounds": 2, "shift": 0.25}, attached=False)
    events = list(control.stream_events(run_id))  # follows the run until it has finished
    run = control.wait_for_run(run_id, timeout=60)
    assert run.status == "completed", (run, "\n".join(control.stream_logs(run_id, follow=False)))
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    assert events[-1].rounds_completed == 2 and events[-1].error is None
    aggregated = [e for e in events if isinstance(e, RoundAggregated)]
    # Each node reports shift * (partition + 1); the mean weighted by (partition + 1) is
    # 0.25 * (1*1 + 2*2 + 3*3) / (1 + 2 + 3).
    assert [e.metrics["shift"] for e in aggregated] == [0.25 * 14 / 6] * 2
    assert all(e.run_id == run_id for e in events)
    assert run_id in [r.run_id for r in control.list_runs()]


def test_stopping_a_run_ends_it_after_its_current_round_as_stopped(cluster: Cluster, app_dir: Path) -> None:
    bundle = build_bundle("fedexact.client:app", "fedexact.server:app", project_dir=app_dir)
    control = cluster.control
    run_id = control.create_run(bundle, {"num-server-rounds": 100_000, "shift": 0.25}, attached=False)
    for event in control.stream_events(run_id):
        if isinstance(event, RoundAggregated):
            control.stop_run(run_id)
            break
    run = control.wait_for_run(run_id, timeout=60)
    assert run.status == "stopped"
    finished = [e for e in control.stream_events(run_id, follow=False) if isinstance(e, RunFinished)]
    assert len(finished) == 1 and finished[0].stopped_early
    assert 1 <= finished[0].rounds_completed < 100_000
