"""FedAdagrad, FedAdam and FedYogi against Algorithm 2 of Reddi et al. (2021), over several rounds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fedlab.client import ClientApp
from fedlab.errors import StrategyError
from fedlab.message import Message
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.simulation import SimulationGrid
from fedlab.strategy import FedAdagrad, FedAdam, FedAvg, FedYogi

LAYOUT: dict[str, tuple[tuple[int, ...], Any]] = {
    "conv.weight": ((2, 3), np.float32),
    "fc.bias": ((4,), np.float64),
    "scale": ((), np.float32),
}
EXAMPLES = [3, 9, 27]


def _initial() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {name: rng.normal(0, 1, shape).astype(dtype) for name, (shape, dtype) in LAYOUT.items()}


def _delta(rank: int, rnd: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(77 * rnd + rank)
    # Rounds alternate direction so that Yogi's sign(v - Δ²) takes both values.
    scale = 1.0 if rnd % 2 else 0.05
    return {name: rng.normal(0.2, scale, shape) for name, (shape, _) in LAYOUT.items()}


def _run(strategy: Any, rounds: int) -> tuple[list[dict[str, np.ndarray]], list[Message]]:
    grid = SimulationGrid(ClientApp(), len(EXAMPLES), seed=3)
    strategy.rng.seed(0)
    ranks = {node: rank for rank, node in enumerate(sorted(grid.get_node_ids()))}
    current = ArrayRecord(_initial())
    history, sent = [], []
    for rnd in range(1, rounds + 1):
        replies = []
        for msg in strategy.configure_train(rnd, current, ConfigRecord(), grid):
            sent.append(msg)
            rank = ranks[msg.metadata.dst_node_id]
            got = msg.content["arrays"]
            trained = {n: (got[n].numpy().astype(np.float64) + d).astype(LAYOUT[n][1]) for n, d in _delta(rank, rnd).items()}
            metrics = MetricRecord({"num-examples": EXAMPLES[rank]})
            replies.append(msg.reply(RecordDict({"arrays": ArrayRecord(trained), "metrics": metrics})))
        arrays, _ = strategy.aggregate_train(rnd, replies)
        assert arrays is not None
        current = arrays
        history.append({n: current[n].numpy() for n in LAYOUT})
    return history, sent


def _reference(kind: str, rounds: int, eta: float, beta_1: float, beta_2: float, tau: float) -> list[dict[str, np.ndarray]]:
    x = _initial()
    m = {n: np.zeros(LAYOUT[n][0]) for n in LAYOUT}
    v = {n: np.full(LAYOUT[n][0], tau**2) for n in LAYOUT}  # v_{-1} = τ², Algorithm 2
    out = []
    for rnd in range(1, rounds + 1):
        new = {}
        for n, (_, dtype) in LAYOUT.items():
            x64 = x[n].astype(np.float64)
            models = [(x64 + _delta(k, rnd)[n]).astype(dtype).astype(np.float64) for k in range(len(EXAMPLES))]
            delta = sum(w * y for w, y in zip(EXAMPLES, models, strict=True)) / sum(EXAMPLES) - x64
            m[n] = beta_1 * m[n] + (1 - beta_1) * delta
            if kind == "adagrad":
                v[n] = v[n] + delta**2
            elif kind == "adam":
                v[n] = beta_2 * v[n] + (1 - beta_2) * delta**2
            else:
                v[n] = v[n] - (1 - beta_2) * delta**2 * np.sign(v[n] - delta**2)
            new[n] = (x64 + eta * m[n] / (np.sqrt(v[n]) + tau)).astype(dtype)
        x = new
        out.append(x)
    return out


@pytest.mark.parametrize(
    ("kind", "strategy", "params"),
    [
        ("adagrad", FedAdagrad(eta=0.3, tau=1e-2, min_train_nodes=1), (0.3, 0.0, 0.0, 1e-2)),
        ("adagrad", FedAdagrad(eta=0.3, beta_1=0.5, tau=1e-2, min_train_nodes=1), (0.3, 0.5, 0.0, 1e-2)),
        ("adam", FedAdam(eta=0.05, beta_1=0.9, beta_2=0.99, tau=1e-3, min_train_nodes=1), (0.05, 0.9, 0.99, 1e-3)),
        ("yogi", FedYogi(eta=0.05, beta_1=0.8, beta_2=0.9, tau=1e-3, min_train_nodes=1), (0.05, 0.8, 0.9, 1e-3)),
    ],
)
def test_adaptive_server_optimisers_follow_algorithm_2_for_four_rounds(kind: str, strategy: Any, params: tuple[float, ...]) -> None:
    history, _ = _run(strategy, 4)
    expected = _reference(kind, 4, *params)
    for got, want in zip(history, expected, strict=True):
        for n, (shape, dtype) in LAYOUT.items():
            assert got[n].dtype == dtype and got[n].shape == shape
            np.testing.assert_allclose(got[n], want[n], rtol=1e-5, atol=1e-6)


def test_fedadam_first_step_uses_v_started_at_tau_squared_and_no_bias_correction() -> None:
    # One scalar, x = 0, every client returns 1: Δ = 1, m = 0.1, v = 0.99·τ² + 0.01.
    strategy = FedAdam(eta=0.5, tau=1e-3, min_train_nodes=1)
    grid = SimulationGrid(ClientApp(), 2, seed=0)
    messages = list(strategy.configure_train(1, ArrayRecord({"w": np.zeros(1)}), ConfigRecord(), grid))
    replies = [
        m.reply(RecordDict({"arrays": ArrayRecord({"w": np.ones(1)}), "metrics": MetricRecord({"num-examples": 1})}))
        for m in messages
    ]

    arrays, _ = strategy.aggregate_train(1, replies)

    assert arrays is not None
    expected = 0.5 * 0.1 / (np.sqrt(0.99 * 1e-6 + 0.01) + 1e-3)
    assert arrays["w"].numpy()[0] == pytest.approx(expected, rel=1e-12)


def test_adaptive_optimisers_send_eta_l_to_clients_and_keep_the_models_dtypes() -> None:
    history, sent = _run(FedYogi(eta_l=0.025, min_train_nodes=1), 2)
    assert {m.content["config"]["eta-l"] for m in sent} == {0.025}
    assert {n: a.dtype for n, a in history[-1].items()} == {n: np.dtype(d) for n, (_, d) in LAYOUT.items()}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"eta": 0.0}, "eta must be > 0"),
        ({"tau": -1.0}, "tau must be > 0"),
        ({"beta_1": 1.0}, r"beta_1 must be in \[0, 1\)"),
        ({"beta_2": -0.1}, r"beta_2 must be in \[0, 1\)"),
    ],
)
def test_adaptive_optimisers_refuse_settings_outside_their_range(settings: dict[str, float], message: str) -> None:
    with pytest.raises(StrategyError, match=message):
        FedAdam(**settings)


def test_the_adaptive_optimisers_defaults() -> None:
    settings = ("eta", "eta_l", "beta_1", "beta_2", "tau")
    assert [getattr(FedAdagrad(), s) for s in settings] == [0.1, 0.1, 0.0, 0.0, 1e-3]
    assert [getattr(FedAdam(), s) for s in settings] == [0.1, 0.1, 0.9, 0.99, 1e-3]
    assert [getattr(FedYogi(), s) for s in settings] == [0.1, 0.1, 0.9, 0.99, 1e-3]


def _digits_accuracy(strategy: Any, rounds: int) -> float:
    """Softmax regression on digits: 10 IID clients, 2 local epochs of SGD at 0.5, seeded."""
    from sklearn.datasets import load_digits

    from fedlab import Federation

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    order = np.random.default_rng(0).permutation(len(x))
    test, parts = order[:360], np.array_split(order[360:], 10)

    def predict(w: np.ndarray, b: np.ndarray, rows: np.ndarray) -> np.ndarray:
        z = x[rows] @ w + b
        p = np.exp(z - z.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Any) -> Message:
        pid, rnd = ctx.node_config["partition-id"], msg.content["config"]["server-round"]
        rows, rng = parts[pid], np.random.default_rng([pid, rnd])
        w, b = (msg.content["arrays"][k].numpy().copy() for k in ("w", "b"))
        for _ in range(2):
            for batch in np.array_split(rng.permutation(len(rows)), len(rows) // 32):
                grad = (predict(w, b, rows[batch]) - np.eye(10)[y[rows[batch]]]) / len(batch)
                w, b = w - 0.5 * x[rows[batch]].T @ grad, b - 0.5 * grad.sum(axis=0)
        trained = ArrayRecord({"w": w, "b": b})
        return msg.reply(RecordDict({"arrays": trained, "metrics": MetricRecord({"num-examples": len(rows)})}))

    fed = Federation(app, strategy=strategy, num_clients=10, seed=0, display="none",
                     initial_arrays=ArrayRecord({"w": np.zeros((64, 10)), "b": np.zeros(10)}))
    arrays = fed.run(rounds=rounds).arrays
    return float((predict(arrays["w"].numpy(), arrays["b"].numpy(), test).argmax(axis=1) == y[test]).mean())


def test_fedadam_with_its_defaults_learns_digits_in_8_rounds_as_well_as_fedavg() -> None:
    sampling = {"fraction_train": 0.5, "fraction_evaluate": 0.0}
    fedavg = _digits_accuracy(FedAvg(**sampling), rounds=8)
    fedadam = _digits_accuracy(FedAdam(**sampling), rounds=8)
    # Measured: FedAvg 0.931, FedAdam 0.947 (with eta=0.01: 0.792).
    assert fedavg > 0.9
    assert fedadam > 0.9 and fedadam >= fedavg - 0.01
