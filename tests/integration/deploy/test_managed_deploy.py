"""`Federation.deploy`: the same federation on real SuperLink/SuperNode processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fedlab import ArrayRecord, ClientApp, Context, Federation, Message, MetricRecord, RecordDict
from fedlab.deploy import managed
from fedlab.deploy._managed_cluster import LocalCluster
from fedlab.errors import FederationError
from fedlab.events import ClientReplied, Event
from fedlab.strategy import FedAvg


def make_app() -> ClientApp:
    # Defined in a function, so the bundle captures it by value (as from a notebook).
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        pid = int(ctx.node_config["partition-id"])
        w = msg.content.array_record("arrays").to_numpy()[0] * 0.5 + (pid + 1)
        metrics = MetricRecord({"num-examples": pid + 1, "loss": float(pid)})
        return msg.reply(RecordDict({"arrays": ArrayRecord([w]), "metrics": metrics}))

    return app


def make_fed(num_clients: int = 3, evaluate_fn: object = None) -> Federation:
    strategy = FedAvg(
        fraction_train=1.0,
        fraction_evaluate=0.0,
        min_train_nodes=num_clients,
        min_available_nodes=num_clients,
    )
    return Federation(
        make_app(),
        strategy=strategy,
        num_clients=num_clients,
        initial_arrays=[np.zeros(4, np.float32)],
        evaluate_fn=evaluate_fn,  # type: ignore[arg-type]
        seed=3,
        display="none",
    )


@pytest.fixture
def clusters(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[LocalCluster]]:
    """Every LocalCluster deploy() starts, to check its processes afterwards."""
    started: list[LocalCluster] = []

    class Recorded(LocalCluster):
        def start(self):  # type: ignore[no-untyped-def]
            started.append(self)
            return super().start()

    monkeypatch.setattr(managed, "LocalCluster", Recorded)
    yield started
    for cluster in started:
        cluster.stop()


def assert_gone(pids: list[int]) -> None:
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie awaiting its reaper counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


KILLED_PARENT = """
import time
from fedlab.deploy._managed_cluster import LocalCluster
cluster = LocalCluster(1, ["partition-id=0 num-partitions=1"])
cluster.start()
print(cluster.directory, *cluster.pids, flush=True)
time.sleep(600)
"""


def test_deploy_local_ends_with_the_arrays_of_a_simulation_and_leaves_no_process(
    clusters: list[LocalCluster],
) -> None:
    simulated = make_fed().run(rounds=3)
    events: list[Event] = []
    fed = make_fed()
    fed.subscribe(events.append)
    deployed = fed.deploy(local=3, rounds=3)
    # Round r: w_r = w_{r-1} / 2 + (1*1 + 2*2 + 3*3) / 6, from w_0 = 0.
    expected = 0.0
    for _ in range(3):
        expected = expected / 2 + 14 / 6
    np.testing.assert_allclose(
        deployed.arrays.to_numpy()[0], np.full(4, expected, np.float32), rtol=1e-6
    )
    assert deployed.arrays == simulated.arrays
    assert deployed.train_metrics_clientapp == simulated.train_metrics_clientapp
    assert deployed.history is not None and deployed.history.rounds_completed == 3
    replies = [e for e in events if isinstance(e, ClientReplied)]
    assert sorted(e.partition_id for e in replies if e.round == 1) == [0, 1, 2]  # type: ignore[type-var]
    (cluster,) = clusters
    assert len(cluster.pids) == 4 and not cluster.directory.exists()
    assert_gone(cluster.pids)


@pytest.mark.parametrize("failure", [RuntimeError("evaluation broke"), KeyboardInterrupt()])
def test_a_run_that_fails_or_is_interrupted_still_stops_every_process(
    failure: BaseException, clusters: list[LocalCluster]
) -> None:
    def evaluate_fn(rnd: int, arrays: ArrayRecord) -> dict[str, float]:
        if rnd == 1:
            raise failure
        return {}

    with pytest.raises(type(failure)):
        make_fed(evaluate_fn=evaluate_fn).deploy(local=3, rounds=3)
    (cluster,) = clusters
    assert_gone(cluster.pids)


def test_deploy_to_a_running_superlink_gives_the_simulation_result() -> None:
    with LocalCluster(
        2, ["partition-id=0 num-partitions=2", "partition-id=1 num-partitions=2"]
    ) as cluster:
        assert cluster.addresses is not None
        deployed = make_fed(2).deploy(cluster.addresses.control, rounds=2, insecure=True)
        assert deployed.arrays == make_fed(2).run(rounds=2).arrays
        # The SuperNodes keep serving after the run: the SuperLink recorded it as completed.
        from fedlab.deploy.control import ControlClient

        with ControlClient(cluster.addresses.control) as control:
            (run,) = control.list_runs()
            assert (run.status, run.attached) == ("completed", True)
            assert len(control.list_nodes()) == 2


def test_processes_end_when_the_process_that_started_them_is_killed() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", KILLED_PARENT], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    directory, *pids = parent.stdout.readline().split()
    try:
        assert all(alive(int(pid)) for pid in pids)
        parent.kill()  # as a notebook kernel killed mid-run: no clean-up code runs
        parent.wait()
        deadline = time.monotonic() + 120
        while any(alive(int(pid)) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in pids if alive(int(pid))]
    finally:
        for pid in pids:
            if alive(int(pid)):
                os.kill(int(pid), 9)
        shutil.rmtree(directory, ignore_errors=True)
        parent.stdout.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "Give either local=N"),
        ({"address": "h:1", "local": 2}, "Give either local=N"),
        ({"local": 0}, "positive number of SuperNodes"),
        ({"address": "127.0.0.1:9093"}, "insecure=True"),
    ],
)
def test_deploy_arguments_must_describe_one_deployment(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(FederationError, match=message):
        make_fed().deploy(**kwargs)  # type: ignore[arg-type]


def test_a_checkpointing_federation_cannot_be_deployed(tmp_path: object) -> None:
    fed = make_fed()
    fed.checkpoint_dir = str(tmp_path)
    with pytest.raises(FederationError, match="Checkpoints are for simulations"):
        fed.deploy(local=2)
