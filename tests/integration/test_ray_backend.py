"""RayBackend against a real Ray cluster: 2 CPUs on 127.0.0.1, started once for the session.

The ClientApps are built inside functions, so Ray ships their code by value (as it does
for a notebook's); what the clients exchange travels as fedlab codec frames.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from fedlab.client import ClientApp
from fedlab.context import Context
from fedlab.errors import MissingDependencyError
from fedlab.message import ErrorCode, Message
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.server import Result
from fedlab.simulation import SimulationGrid
from fedlab.simulation.ray_backend import SHARE_MIN_BYTES, RayBackend
from fedlab.strategy import FedAvg
from tests.integration.ray_cluster import RAY_ENV


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    # Ray's unix sockets live under its temp dir and their paths must stay short.
    path = Path(tempfile.mkdtemp(prefix="fl-ray-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _fedavg_app() -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        pid = ctx.node_config["partition-id"]
        assert isinstance(pid, int)
        rnd = msg.content["config"]["server-round"]
        assert isinstance(rnd, int)
        noise = np.random.default_rng(100 * pid + rnd)
        trained = {
            name: (a.numpy() * 0.9 + noise.standard_normal(a.shape)).astype(np.float32)
            for name, a in msg.content.array_records["arrays"].items()
        }
        rounds = ctx.state.metric_records.get("seen")
        ctx.state["seen"] = MetricRecord(
            {"rounds": 1 if rounds is None else int(rounds["rounds"]) + 1}
        )
        ctx.state["last"] = ArrayRecord({"b": trained["b"]})
        metrics = {"num-examples": pid + 1, "loss": float(np.abs(trained["w"]).mean())}
        return msg.reply(
            RecordDict({"arrays": ArrayRecord(trained), "metrics": MetricRecord(metrics)})
        )

    @app.evaluate()
    def evaluate(msg: Message, ctx: Context) -> Message:
        w = msg.content.array_records["arrays"]["w"].numpy()
        pid = ctx.node_config["partition-id"]
        assert isinstance(pid, int)
        loss = float(np.square(w[pid::6]).mean())
        return msg.reply(RecordDict({"metrics": MetricRecord({"num-examples": 2, "loss": loss})}))

    return app


def _pid_app() -> ClientApp:
    """Replies with its worker's pid; exits the process when the config says ``crash``."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        if msg.content["config"]["crash"]:
            os._exit(1)
        return msg.reply(RecordDict({"metrics": MetricRecord({"pid": os.getpid()})}))

    return app


def _send(grid: SimulationGrid, crash_node: int | None = None) -> list[Message]:
    messages = [
        grid.create_message(
            RecordDict({"config": ConfigRecord({"crash": node == crash_node})}), "train", node, "1"
        )
        for node in grid.get_node_ids()
    ]
    return grid.send_and_receive(messages, timeout=120)


def _pids(replies: list[Message]) -> set[int]:
    return {int(r.content["metrics"]["pid"]) for r in replies if r.has_content()}


@dataclass
class _Run:
    result: Result
    states: dict[int, RecordDict]
    concurrency: int


def _run_fedavg(backend: str | RayBackend) -> _Run:
    grid = SimulationGrid(_fedavg_app(), 6, backend=backend, seed=0)
    try:
        initial = ArrayRecord(
            {  # "w" is large enough to travel through Ray's object store once per round
                "w": np.linspace(-1, 1, SHARE_MIN_BYTES // 4 + 1000, dtype=np.float32),
                "b": np.arange(3, dtype=np.float32),
            }
        )
        result = FedAvg().start(grid, initial, num_rounds=2, seed=0)
        states = {node: grid.node_state(node) for node in grid.get_node_ids()}
        return _Run(result, states, grid.backend.concurrency)
    finally:
        grid.close()


@pytest.fixture(scope="module")
def fedavg_runs(cluster: str) -> tuple[_Run, _Run]:
    return _run_fedavg("inline"), _run_fedavg(RayBackend(address=cluster))


def test_fedavg_on_ray_gives_the_inline_result_bit_for_bit(fedavg_runs: tuple[_Run, _Run]) -> None:
    inline, ray = fedavg_runs

    assert ray.concurrency == 2  # one actor per CPU of the cluster
    assert ray.result.rounds_completed == 2
    assert ray.result.arrays == inline.result.arrays
    assert ray.result.train_metrics_clientapp == inline.result.train_metrics_clientapp
    assert ray.result.evaluate_metrics_clientapp == inline.result.evaluate_metrics_clientapp
    assert ray.result.train_metrics_clientapp[2]["num-examples"] == 21


def test_each_nodes_state_persists_across_rounds_on_ray(fedavg_runs: tuple[_Run, _Run]) -> None:
    inline, ray = fedavg_runs

    assert [s["seen"]["rounds"] for s in ray.states.values()] == [2] * 6
    assert ray.states == inline.states  # arrays kept in the state included


def test_global_arrays_reach_every_client_whole_and_in_content_order(cluster: str) -> None:
    app = ClientApp()

    @app.query()
    def query(msg: Message, ctx: Context) -> Message:
        sums = {k: float(a.numpy().astype(np.float64).sum()) for k, a in msg.content["big"].items()}
        return msg.reply(
            RecordDict(
                {"seen": ConfigRecord({"keys": list(msg.content)}), "sums": MetricRecord(sums)}
            )
        )

    big = ArrayRecord({"x": np.arange(SHARE_MIN_BYTES // 8, dtype=np.float64), "y": np.ones(5)})
    content = RecordDict(
        {"config": ConfigRecord({"a": 1}), "big": big, "small": ArrayRecord({"z": np.ones(2)})}
    )
    grid = SimulationGrid(app, 4, backend=RayBackend(address=cluster), seed=0)
    try:
        replies = grid.send_and_receive(
            [grid.create_message(content, "query", node) for node in grid.get_node_ids()],
            timeout=120,
        )
    finally:
        grid.close()

    n = SHARE_MIN_BYTES // 8
    for reply in replies:
        assert reply.content["seen"]["keys"] == ["config", "big", "small"]
        assert dict(reply.content["sums"]) == {"x": n * (n - 1) / 2, "y": 5.0}


def test_num_cpus_per_client_sets_how_many_actors_share_the_cluster(cluster: str) -> None:
    grid = SimulationGrid(_pid_app(), 4, backend=RayBackend(address=cluster, num_cpus=2), seed=0)
    try:
        first, second = _send(grid), _send(grid)
        assert grid.backend.concurrency == 1
    finally:
        grid.close()

    assert all(r.has_content() for r in first + second)
    assert len(_pids(first + second)) == 1  # one actor, reused for every call and round


def test_max_workers_caps_the_actors(cluster: str) -> None:
    backend = RayBackend(address=cluster, max_workers=1)
    backend.start(_pid_app())
    try:
        assert backend.concurrency == 1  # the cluster's 2 CPUs would hold 2
    finally:
        backend.close()


def test_a_client_that_kills_its_worker_is_reported_crashed_and_the_next_round_works(
    cluster: str,
) -> None:
    grid = SimulationGrid(_pid_app(), 4, backend=RayBackend(address=cluster), seed=0)
    victim = grid.get_node_ids()[1]
    try:
        crashed = _send(grid, crash_node=victim)
        after = _send(grid)
    finally:
        grid.close()

    error = crashed[1].error
    assert error is not None and error.code == ErrorCode.CLIENT_APP_CRASHED
    assert f"The ClientApp of node {victim} crashed" in error.reason
    assert [r.has_content() for r in crashed] == [True, False, True, True]
    assert all(r.has_content() for r in after)
    assert len(_pids(after)) <= 2  # the dead actor was replaced, not added to


LOCAL_RUN = """
import socket, sys
from fedlab.client import ClientApp
from fedlab.records import MetricRecord, RecordDict
from fedlab.simulation import SimulationGrid
from fedlab.simulation.ray_backend import RayBackend

app = ClientApp()

@app.query()
def query(msg, ctx):
    return msg.reply(RecordDict({"m": MetricRecord({"p": ctx.node_config["partition-id"]})}))

kwargs = {"num_cpus": 2, "object_store_memory": 100 * 2**20, "_temp_dir": sys.argv[1]}
grid = SimulationGrid(app, 3, backend=RayBackend(init_kwargs=kwargs), seed=0)
import ray
gcs = ray.get_runtime_context().gcs_address
messages = [grid.create_message(RecordDict(), "query", n) for n in grid.get_node_ids()]
replies = grid.send_and_receive(messages, timeout=120)
actors = grid.backend.concurrency
grid.close()
host, port = gcs.rsplit(":", 1)
with socket.socket() as sock:
    gone = sock.connect_ex((host, int(port))) != 0
print(host, actors, [r.content["m"]["p"] for r in replies], ray.is_initialized(), gone)
"""


def test_a_local_ray_instance_runs_on_loopback_and_stops_with_the_backend(short_tmp: Path) -> None:
    # A fresh process, without this module's Ray variables: RayBackend sets what it needs.
    env = {k: v for k, v in os.environ.items() if k not in RAY_ENV}
    env["RAY_AUTH_MODE"] = "disabled"  # Ray would otherwise write a token into ~/.ray
    run = subprocess.run(
        [sys.executable, "-c", LOCAL_RUN, str(short_tmp)],
        check=False, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip

    assert run.returncode == 0, run.stderr[-3000:]
    # GCS on loopback, one actor per CPU, every node answered, Ray left and stopped.
    assert run.stdout.split("\n")[-2] == "127.0.0.1 2 [0, 1, 2] False True"


def test_without_ray_the_backend_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if missing

    with pytest.raises(MissingDependencyError, match=r'pip install "fedlab-sdk\[ray\]"'):
        RayBackend()


def test_importing_the_ray_backend_module_does_not_import_ray() -> None:
    code = "import sys, fedlab.simulation.ray_backend; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
