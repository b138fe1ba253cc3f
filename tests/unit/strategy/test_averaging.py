"""FedAvgM, FedProx (with its proximal term) and QFedAvg against the papers' formulas."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from fedlab.client import ClientApp
from fedlab.errors import AggregationError, StrategyError
from fedlab.events import EventBus, StrategyReport
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.simulation import SimulationGrid
from fedlab.strategy import FedAvg, FedAvgM, FedProx, QFedAvg, proximal_term

LAYOUT: dict[str, tuple[tuple[int, ...], Any]] = {
    "conv.weight": ((2, 3), np.float32),
    "fc.bias": ((4,), np.float64),
    "scale": ((), np.float32),
}
NUM_NODES = 4
EXAMPLES = [5, 20, 35, 40]  # unequal weights, indexed by the node's rank among sorted node ids


def _initial() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {name: rng.normal(0, 1, shape).astype(dtype) for name, (shape, dtype) in LAYOUT.items()}


def _delta(rank: int, rnd: int) -> dict[str, np.ndarray]:
    """What client ``rank`` adds to the model it receives in round ``rnd``: fixed, hand-seeded."""
    rng = np.random.default_rng(1000 * rnd + rank)
    return {name: rng.normal(0.1 * rank, 0.5, shape) for name, (shape, _) in LAYOUT.items()}


def _loss(rank: int, rnd: int) -> float:
    return 0.5 + rank * 0.75 + 0.1 * rnd


def _run_rounds(
    strategy: Any, rounds: int, extra_metrics: Callable[[int, int], dict[str, Any]] | None = None
) -> list[dict[str, np.ndarray]]:
    """Drive configure_train/aggregate_train by hand; return the global model after each round."""
    grid = SimulationGrid(ClientApp(), NUM_NODES, seed=0)
    strategy.rng.seed(7)  # the reply order, and so the last bit of every sum, follows the sample
    ranks = {node: rank for rank, node in enumerate(sorted(grid.get_node_ids()))}
    current = ArrayRecord(_initial())
    history = []
    for rnd in range(1, rounds + 1):
        replies = []
        for msg in strategy.configure_train(rnd, current, ConfigRecord(), grid):
            rank = ranks[msg.metadata.dst_node_id]
            received = msg.content["arrays"]
            trained = {
                name: (received[name].numpy().astype(np.float64) + d).astype(LAYOUT[name][1])
                for name, d in _delta(rank, rnd).items()
            }
            metrics = {"num-examples": EXAMPLES[rank], **(extra_metrics(rank, rnd) if extra_metrics else {})}
            replies.append(msg.reply(RecordDict({"arrays": ArrayRecord(trained), "metrics": MetricRecord(metrics)})))
        arrays, _ = strategy.aggregate_train(rnd, replies)
        assert arrays is not None
        current = arrays
        history.append({name: current[name].numpy() for name in LAYOUT})
    return history


def _client_models(x: dict[str, np.ndarray], rnd: int) -> list[dict[str, np.ndarray]]:
    """The models the clients return in round ``rnd`` when sent ``x`` (as in _run_rounds)."""
    return [
        {name: (x[name].astype(np.float64) + d).astype(LAYOUT[name][1]).astype(np.float64) for name, d in _delta(k, rnd).items()}
        for k in range(NUM_NODES)
    ]


def _cast(model: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: np.asarray(value, dtype=np.float64).astype(LAYOUT[name][1]) for name, value in model.items()}


def _assert_close(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    for name, (shape, dtype) in LAYOUT.items():
        assert actual[name].dtype == dtype and actual[name].shape == shape
        np.testing.assert_allclose(actual[name], expected[name], rtol=2e-6, atol=1e-6)


# --- FedAvgM ----------------------------------------------------------------------------------


def test_fedavgm_applies_server_momentum_over_several_rounds() -> None:
    lr, beta = 0.7, 0.9
    history = _run_rounds(FedAvgM(server_learning_rate=lr, server_momentum=beta, min_train_nodes=1), 3)

    x = _initial()
    v = {name: 0.0 for name in LAYOUT}
    total = sum(EXAMPLES)
    for rnd in range(1, 4):
        models = _client_models(x, rnd)
        new = {}
        for name in LAYOUT:
            mean = sum(EXAMPLES[k] * models[k][name] for k in range(NUM_NODES)) / total
            v[name] = beta * v[name] + (x[name].astype(np.float64) - mean)  # Hsu et al.: v <- βv + Δw
            new[name] = x[name].astype(np.float64) - lr * v[name]  # w <- w - ηv
        x = _cast(new)
        _assert_close(history[rnd - 1], x)


def test_fedavgm_without_momentum_and_with_rate_1_is_fedavg() -> None:
    plain = _run_rounds(FedAvg(min_train_nodes=1), 2)
    momentum = _run_rounds(FedAvgM(server_momentum=0.0, server_learning_rate=1.0, min_train_nodes=1), 2)
    for a, b in zip(plain, momentum, strict=True):
        _assert_close(b, a)


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"server_momentum": 1.0}, "server_momentum must be in"), ({"server_learning_rate": 0}, "server_learning_rate must be > 0")],
)
def test_fedavgm_refuses_settings_outside_their_range(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(StrategyError, match=message):
        FedAvgM(**settings)


def test_fedavgm_refuses_replies_that_do_not_match_the_global_model() -> None:
    strategy = FedAvgM(min_train_nodes=1)
    grid = SimulationGrid(ClientApp(), 2, seed=0)
    [msg, *_] = strategy.configure_train(1, ArrayRecord(_initial()), ConfigRecord(), grid)
    bad = msg.reply(RecordDict({"arrays": ArrayRecord({"other": np.zeros(2)}), "metrics": MetricRecord({"num-examples": 1})}))
    with pytest.raises(AggregationError, match=r"do not match the global model .* missing keys \['conv.weight'"):
        strategy.aggregate_train(1, [bad])


# --- FedProx ----------------------------------------------------------------------------------


def test_fedprox_sends_proximal_mu_and_aggregates_like_fedavg() -> None:
    grid = SimulationGrid(ClientApp(), 3, seed=0)
    strategy = FedProx(proximal_mu=0.3, min_train_nodes=1)
    reports: list[StrategyReport] = []
    bus = EventBus()
    bus.subscribe(lambda e: reports.append(e) if isinstance(e, StrategyReport) else None)
    strategy._events = bus

    messages = list(strategy.configure_train(2, ArrayRecord(_initial()), ConfigRecord({"lr": 0.1}), grid))

    assert all(m.content["config"] == ConfigRecord({"lr": 0.1, "proximal-mu": 0.3}) for m in messages)
    prox = _run_rounds(FedProx(proximal_mu=0.3, min_train_nodes=1), 2)
    plain = _run_rounds(FedAvg(min_train_nodes=1), 2)
    for a, b in zip(prox, plain, strict=True):
        assert all(np.array_equal(a[name], b[name]) for name in LAYOUT)
    replies = [m.reply(RecordDict({"arrays": m.content["arrays"], "metrics": MetricRecord({"num-examples": 2})})) for m in messages]
    strategy.aggregate_train(2, replies)
    assert reports[-1].info == {"aggregated": 3, "total_weight": 6.0, "proximal_mu": 0.3}


def test_fedprox_refuses_a_negative_mu() -> None:
    with pytest.raises(StrategyError, match="proximal_mu must be a number >= 0, got -1"):
        FedProx(proximal_mu=-1)


def _torch_model() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))


def test_proximal_term_is_half_mu_times_the_squared_distance_and_its_gradient_is_mu_times_the_difference() -> None:
    import torch

    model = _torch_model()
    global_params = [p.detach().clone() + 0.1 * (i + 1) for i, p in enumerate(model.parameters())]
    mu = 0.4

    term = proximal_term(model, global_params, mu)
    term.backward()

    expected = mu / 2 * sum(float(((p.detach() - g) ** 2).sum()) for p, g in zip(model.parameters(), global_params))
    assert float(term.detach()) == pytest.approx(expected, rel=1e-6)
    for p, g in zip(model.parameters(), global_params):
        torch.testing.assert_close(p.grad, mu * (p.detach() - g))


def test_proximal_term_accepts_the_received_arrayrecord_and_ignores_its_buffers() -> None:
    model = _torch_model()
    received = ArrayRecord(model.state_dict())  # includes BatchNorm's running stats
    with torch_no_grad():
        for p in model.parameters():
            p.add_(0.5)
    size = sum(p.numel() for p in model.parameters())

    term = proximal_term(model, received, 2.0)

    assert float(term.detach()) == pytest.approx(2.0 / 2 * 0.25 * size, rel=1e-5)


def test_proximal_term_says_which_parameters_are_missing() -> None:
    model = _torch_model()
    with pytest.raises(StrategyError, match=r"no entry for the model's parameters \['2.weight', '2.bias'\]"):
        proximal_term(model, {k: v for k, v in model.state_dict().items() if not k.startswith("2.")}, 1.0)
    with pytest.raises(StrategyError, match="holds 1 entries but the model has 6 parameters"):
        proximal_term(model, [next(model.parameters())], 1.0)


def torch_no_grad() -> Any:
    import torch

    return torch.no_grad()


# --- QFedAvg ----------------------------------------------------------------------------------


@pytest.mark.parametrize("q", [0.0, 0.2, 1.0, 2.5])
def test_qfedavg_follows_algorithm_3_of_the_q_ffl_paper_over_several_rounds(q: float) -> None:
    lr = 0.05
    history = _run_rounds(
        QFedAvg(client_learning_rate=lr, q=q, min_train_nodes=1),
        3,
        extra_metrics=lambda rank, rnd: {"global-model-loss": _loss(rank, rnd)},
    )

    L = 1 / lr
    x = _initial()
    for rnd in range(1, 4):
        models = _client_models(x, rnd)
        w = {name: x[name].astype(np.float64) for name in LAYOUT}
        numerator = {name: np.zeros(LAYOUT[name][0]) for name in LAYOUT}
        sum_h = 0.0
        for k in range(NUM_NODES):
            F = _loss(k, rnd)
            dW = {name: L * (w[name] - models[k][name]) for name in LAYOUT}
            sq = sum(float((d**2).sum()) for d in dW.values())
            for name in LAYOUT:
                numerator[name] = numerator[name] + F**q * dW[name]
            sum_h += q * F ** (q - 1) * sq + L * F**q
        x = _cast({name: w[name] - numerator[name] / sum_h for name in LAYOUT})
        _assert_close(history[rnd - 1], x)


def test_qfedavg_with_q_0_is_the_unweighted_mean_of_the_replies() -> None:
    history = _run_rounds(
        QFedAvg(client_learning_rate=0.1, q=0.0, min_train_nodes=1), 1, lambda r, n: {"global-model-loss": 1.0}
    )
    models = _client_models(_initial(), 1)
    _assert_close(history[0], _cast({n: sum(m[n] for m in models) / NUM_NODES for n in LAYOUT}))


def test_qfedavg_asks_for_the_global_model_loss_when_a_client_omits_it() -> None:
    with pytest.raises(AggregationError, match=r"under 'global-model-loss', but node \d+ reported None"):
        _run_rounds(QFedAvg(client_learning_rate=0.1, min_train_nodes=1), 1)


def test_qfedavg_needs_a_positive_client_learning_rate() -> None:
    with pytest.raises(StrategyError, match="client_learning_rate must be > 0"):
        QFedAvg(client_learning_rate=0.0)
