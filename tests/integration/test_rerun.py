"""A new run starts from a fresh strategy: running twice gives the same result twice.

Every built-in strategy is run on ten clients that fit a least-squares problem of their own
(each partition has its own offset, noise and number of local steps), so momentum, optimiser
moments and control variates all build up. Running the same Federation again, or the same
strategy object in a second Federation, must give bit-identical arrays and History.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest

from fedlab import ArrayRecord, ClientApp, Context, Federation, Message, MetricRecord, RecordDict
from fedlab.server import Result
from fedlab.strategy import (
    Bulyan,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedBuff,
    FedMedian,
    FedNova,
    FedProx,
    FedTrimmedAvg,
    FedYogi,
    Krum,
    MultiKrum,
    QFedAvg,
    Scaffold,
    ScaffoldClient,
    Strategy,
)
from fedlab.strategy.scaffold import SERVER_CONTROL_KEY

NUM_CLIENTS, ROUNDS, LR = 10, 4, 0.05
SAMPLED = {"fraction_train": 0.5, "fraction_evaluate": 0.3, "min_train_nodes": 2}
ROBUST = {"fraction_train": 0.8, "fraction_evaluate": 0.3, "num_malicious_nodes": 1}
STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "Bulyan": lambda: Bulyan(**ROBUST),
    "FedAdagrad": lambda: FedAdagrad(**SAMPLED),
    "FedAdam": lambda: FedAdam(**SAMPLED),
    "FedAvg": lambda: FedAvg(**SAMPLED),
    "FedAvgM": lambda: FedAvgM(server_learning_rate=0.5, **SAMPLED),
    "FedBuff": lambda: FedBuff(buffer_size=3, concurrency=4),
    "FedMedian": lambda: FedMedian(**ROBUST),
    "FedNova": lambda: FedNova(**SAMPLED),
    "FedProx": lambda: FedProx(proximal_mu=0.1, **SAMPLED),
    "FedTrimmedAvg": lambda: FedTrimmedAvg(beta=0.25, **ROBUST),
    "FedYogi": lambda: FedYogi(**SAMPLED),
    "Krum": lambda: Krum(**ROBUST),
    "MultiKrum": lambda: MultiKrum(num_nodes_to_select=4, **ROBUST),
    "QFedAvg": lambda: QFedAvg(client_learning_rate=LR, **SAMPLED),
    "Scaffold": lambda: Scaffold(**SAMPLED),
}


def _problem(pid: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(pid)
    x = rng.normal(size=(12 + pid, 3))
    return x, x @ np.array([1.0, -2.0, 0.5]) + pid  # non-IID: each partition its own offset


def _loss(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((x @ w + b - y) ** 2))


def make_app() -> ClientApp:
    """Clients taking 1 + pid % 3 noisy SGD steps, seeded by partition and round."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        pid = int(ctx.node_config["partition-id"])
        rnd = int(msg.content.config_record("config")["server-round"])  # type: ignore[arg-type]
        x, y = _problem(pid)
        arrays = msg.content.array_record("arrays")
        w, b = arrays["w"].numpy().astype(np.float64), arrays["b"].numpy().copy()
        before = _loss(w, b, x, y)
        noise = np.random.default_rng([pid, rnd])
        scaffold = ScaffoldClient(msg, ctx) if SERVER_CONTROL_KEY in msg.content else None
        steps = 1 + pid % 3
        for _ in range(steps):
            residual = x @ w + b - y
            grad = {"w": x.T @ residual / len(x) + noise.normal(0, 0.1, 3), "b": np.mean(residual, keepdims=True)}
            if scaffold is not None:
                grad = scaffold.correct(grad)
            w, b = w - LR * grad["w"], b - LR * grad["b"]
        trained = ArrayRecord({"w": w.astype(np.float32), "b": b})
        metrics = {
            "num-examples": len(x),
            "local-steps": steps,
            "global-model-loss": before,
            "loss": _loss(w, b, x, y),
        }
        if scaffold is not None:
            return msg.reply(scaffold.reply_content(trained, num_steps=steps, learning_rate=LR, metrics=metrics))
        return msg.reply(RecordDict({"arrays": trained, "metrics": MetricRecord(metrics)}))

    @app.evaluate()
    def evaluate(msg: Message, ctx: Context) -> Message:
        arrays = msg.content.array_record("arrays")
        x, y = _problem(int(ctx.node_config["partition-id"]))
        loss = _loss(arrays["w"].numpy().astype(np.float64), arrays["b"].numpy(), x, y)
        return msg.reply(RecordDict({"metrics": MetricRecord({"num-examples": len(x), "loss": loss})}))

    return app


def make_federation(strategy: Strategy) -> Federation:
    return Federation(
        make_app(),
        strategy=strategy,
        num_clients=NUM_CLIENTS,
        initial_arrays=ArrayRecord({"w": np.zeros(3, np.float32), "b": np.zeros(1)}),
        evaluate_fn=lambda rnd, arrays: {"w0": float(arrays["w"].numpy()[0])},
        seed=5,
        display="none",
    )


def _fingerprint(result: Result, *, run_id: bool = True) -> tuple[dict[str, bytes], str]:
    assert result.history is not None and result.rounds_completed == ROUNDS
    state = json.loads(result.history.to_json(include_timings=False))
    if not run_id:  # every run gets its own id; nothing else may differ
        del state["run"]["run_id"]
    raw = {name: array.numpy().tobytes() for name, array in result.arrays.items()}
    return raw, json.dumps(state)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_running_one_federation_twice_gives_bit_identical_results(name: str) -> None:
    fed = make_federation(STRATEGIES[name]())
    first, second = fed.run(rounds=ROUNDS), fed.run(rounds=ROUNDS)
    fresh = make_federation(STRATEGIES[name]()).run(rounds=ROUNDS)

    assert first.arrays != ArrayRecord({"w": np.zeros(3, np.float32), "b": np.zeros(1)})  # it trained
    assert _fingerprint(second, run_id=False) == _fingerprint(first, run_id=False)
    assert _fingerprint(first) == _fingerprint(fresh)
    assert first.evaluate_metrics_serverapp == second.evaluate_metrics_serverapp


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_one_strategy_object_in_two_federations_gives_bit_identical_results(name: str) -> None:
    strategy = STRATEGIES[name]()
    first = make_federation(strategy).run(rounds=ROUNDS)
    second = make_federation(strategy).run(rounds=ROUNDS)

    assert _fingerprint(second) == _fingerprint(first)  # the History's run id included
    assert first.train_metrics_clientapp == second.train_metrics_clientapp


def test_every_built_in_strategy_is_covered() -> None:
    import fedlab.strategy as package

    built_in = {
        name
        for name in package.__all__
        if isinstance(getattr(package, name), type)
        and issubclass(getattr(package, name), Strategy)
        and not getattr(getattr(package, name), "__abstractmethods__", None)
    }
    assert built_in == set(STRATEGIES)
