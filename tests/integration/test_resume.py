"""A run killed mid-round and resumed from its checkpoint ends exactly as an uninterrupted one.

The interrupted run lives in a child process whose client SIGKILLs it in the middle of round
``KILL_ROUND``; the test then resumes from the checkpoint the child left behind and compares
arrays (bit for bit), Result metrics and History with a run that was never interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedlab import ArrayRecord, ClientApp, Context, Federation, Message, MetricRecord, RecordDict
from fedlab.checkpoint import load_checkpoint
from fedlab.strategy import FedAdam, FedAvg, Scaffold, ScaffoldClient, Strategy, StrategyState
from fedlab.strategy.scaffold import SERVER_CONTROL_KEY

ROOT = Path(__file__).resolve().parents[2]
ROUNDS, KILL_ROUND, KILLER_PARTITION = 5, 3, 2
STEPS, LR = 4, 0.05


class ServerMomentum(FedAvg):
    """A stateful test strategy: FedAvg plus heavy-ball momentum and an update counter."""

    def __init__(self, **fedavg: Any) -> None:
        super().__init__(**fedavg)
        self._velocity: dict[str, np.ndarray[Any, Any]] | None = None
        self._updates = 0

    def aggregate_train(self, server_round: int, replies: Any) -> Any:
        arrays, metrics = super().aggregate_train(server_round, replies)
        if arrays is None:
            return arrays, metrics
        assert self.current_arrays is not None
        old = {k: v.numpy().astype(np.float64) for k, v in self.current_arrays.items()}
        step = {k: v.numpy().astype(np.float64) - old[k] for k, v in arrays.items()}
        if self._velocity is None:
            self._velocity = step
        else:
            self._velocity = {k: 0.9 * self._velocity[k] + step[k] for k in step}
        self._updates += 1
        new = {
            k: (old[k] + self._velocity[k] / (1 + 0.1 * self._updates)).astype(np.float32)
            for k in old
        }
        return ArrayRecord(new), metrics

    def state_dict(self) -> StrategyState:
        state = super().state_dict()
        state.values["updates"] = self._updates
        if self._velocity is not None:
            state.arrays["velocity"] = ArrayRecord(dict(self._velocity))
        return state

    def load_state_dict(self, state: StrategyState) -> None:
        super().load_state_dict(state)
        self._updates = int(state.values["updates"])
        velocity = state.arrays.get("velocity")
        self._velocity = (
            None if velocity is None else {k: v.numpy().copy() for k, v in velocity.items()}
        )


def make_strategy(name: str) -> Strategy:
    sampling: dict[str, Any] = {
        "fraction_train": 0.5,
        "fraction_evaluate": 0.0,
        "min_train_nodes": 2,
    }
    if name == "fedavg":
        return FedAvg(**sampling)
    if name == "momentum":
        return ServerMomentum(**sampling)
    if name == "fedadam":
        return FedAdam(eta=0.1, eta_l=LR, beta_1=0.9, beta_2=0.99, tau=1e-3, **sampling)
    assert name == "scaffold"
    return Scaffold(**sampling)


def make_app(kill_round: int | None) -> ClientApp:
    """Clients taking STEPS SGD steps on a least-squares problem of their own."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        pid = int(ctx.node_config["partition-id"])
        rnd = msg.content.config_record("config")["server-round"]
        if rnd == kill_round and pid == KILLER_PARTITION:
            os.kill(os.getpid(), signal.SIGKILL)  # the process dies mid-round, as in a crash
        rng = np.random.default_rng(pid)
        x = rng.normal(size=(20, 3))
        y = x @ np.array([1.0, -2.0, 0.5]) + pid  # non-IID: each partition has its own offset
        w = msg.content.array_record("arrays")["w"].numpy().astype(np.float64)
        scaffold = ScaffoldClient(msg, ctx) if SERVER_CONTROL_KEY in msg.content else None
        for _ in range(STEPS):
            grad = {"w": x.T @ (x @ w - y) / len(x)}
            if scaffold is not None:
                grad = scaffold.correct(grad)
            w = w - LR * grad["w"]
        metrics = {"num-examples": 20 + pid, "loss": float(np.mean((x @ w - y) ** 2))}
        trained = ArrayRecord({"w": w.astype(np.float32)})
        if scaffold is not None:
            return msg.reply(
                scaffold.reply_content(trained, num_steps=STEPS, learning_rate=LR, metrics=metrics)
            )
        return msg.reply(RecordDict({"arrays": trained, "metrics": MetricRecord(metrics)}))

    return app


def make_federation(
    strategy: str, directory: str | None, kill_round: int | None = None
) -> Federation:
    return Federation(
        make_app(kill_round),
        strategy=make_strategy(strategy),
        num_clients=8,
        initial_arrays=ArrayRecord({"w": np.zeros(3, np.float32)}),
        evaluate_fn=lambda rnd, arrays: {"w0": float(arrays["w"].numpy()[0])},
        seed=11,
        display="none",
        checkpoint_dir=directory,
    )


def run_until_killed(strategy: str, directory: Path) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        "from tests.integration.test_resume import ROUNDS, KILL_ROUND, make_federation\n"
        "make_federation(sys.argv[1], sys.argv[2], kill_round=KILL_ROUND).run(rounds=ROUNDS)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, strategy, str(directory)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("strategy", ["fedavg", "momentum", "fedadam", "scaffold"])
def test_a_run_killed_mid_round_resumes_to_the_uninterrupted_result(
    strategy: str, tmp_path: Path
) -> None:
    child = run_until_killed(strategy, tmp_path)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert load_checkpoint(tmp_path).round == KILL_ROUND - 1

    resumed = make_federation(strategy, str(tmp_path)).resume()
    uninterrupted = make_federation(strategy, None).run(rounds=ROUNDS)

    assert resumed.arrays == uninterrupted.arrays  # Array equality compares the raw bytes
    assert resumed.arrays["w"].numpy().tobytes() == uninterrupted.arrays["w"].numpy().tobytes()
    assert resumed.train_metrics_clientapp == uninterrupted.train_metrics_clientapp
    assert resumed.evaluate_metrics_serverapp == uninterrupted.evaluate_metrics_serverapp
    assert resumed.history is not None and uninterrupted.history is not None
    assert resumed.history.to_json(include_timings=False) == uninterrupted.history.to_json(
        include_timings=False
    )
    assert resumed.rounds_completed == ROUNDS and load_checkpoint(tmp_path).round == ROUNDS
