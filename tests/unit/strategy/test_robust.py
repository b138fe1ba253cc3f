"""FedMedian, FedTrimmedAvg, Krum, MultiKrum and Bulyan against the papers' formulas, and their bounds.

The references below are written coordinate by coordinate in plain Python (sorted lists,
explicit sums), independently of the numpy code under test.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np
import pytest

from fedlab.errors import AggregationError, StrategyError
from fedlab.events import EventBus, StrategyReport
from fedlab.message import Message
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.server.grid import Grid
from fedlab.strategy import Bulyan, FedMedian, FedTrimmedAvg, Krum, MultiKrum

# Three arrays of mixed shapes and dtypes; replies also report unequal num-examples, which
# the robust rules must ignore.
LAYOUT: dict[str, tuple[tuple[int, ...], Any]] = {
    "conv.weight": ((2, 3), np.float32),
    "fc.bias": ((4,), np.float64),
    "scale": ((), np.float32),
}


def _models(n: int, seed: int, outliers: dict[int, float] | None = None) -> list[dict[str, np.ndarray]]:
    """n models near 0; model i in ``outliers`` is shifted by that amount in every coordinate."""
    rng = np.random.default_rng(seed)
    models = []
    for i in range(n):
        shift = (outliers or {}).get(i, 0.0)
        models.append(
            {
                name: (rng.normal(0.0, 1.0, shape) + shift).astype(dtype)
                for name, (shape, dtype) in LAYOUT.items()
            }
        )
    return models


def _replies(models: list[dict[str, np.ndarray]]) -> list[Message]:
    replies = []
    for i, arrays in enumerate(models):
        instruction = Message(RecordDict(), dst_node_id=100 + i, message_type="train", group_id="1")
        content = RecordDict(
            {"arrays": ArrayRecord(arrays), "metrics": MetricRecord({"num-examples": 10 * (i + 1), "loss": float(i)})}
        )
        replies.append(instruction.reply(content))
    return replies


def _flat(model: dict[str, np.ndarray]) -> list[float]:
    return [float(v) for name in LAYOUT for v in np.asarray(model[name], dtype=np.float64).ravel()]


def _unflat(values: list[float]) -> dict[str, np.ndarray]:
    out, at = {}, 0
    for name, (shape, _) in LAYOUT.items():
        size = int(np.prod(shape))
        out[name] = np.array(values[at : at + size], dtype=np.float64).reshape(shape)
        at += size
    return out


def _assert_model(arrays: ArrayRecord | None, expected: dict[str, np.ndarray]) -> None:
    assert arrays is not None
    assert list(arrays) == list(LAYOUT)
    for name, (shape, dtype) in LAYOUT.items():
        assert arrays[name].dtype == np.dtype(dtype).name and arrays[name].shape == shape
        np.testing.assert_allclose(arrays[name].numpy(), expected[name].astype(dtype), rtol=1e-6, atol=1e-7)


def _sq_dist(a: list[float], b: list[float]) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=True))


def _reports(strategy: Any) -> list[StrategyReport]:
    bus = EventBus()
    seen: list[StrategyReport] = []
    bus.subscribe(lambda e: seen.append(e) if isinstance(e, StrategyReport) else None)
    strategy._events = bus
    return seen


# --- FedMedian and FedTrimmedAvg ----------------------------------------------------------------


@pytest.mark.parametrize("n", [5, 6])
def test_fedmedian_takes_the_unweighted_median_of_every_coordinate(n: int) -> None:
    models = _models(n, seed=n)
    flats = [_flat(m) for m in models]
    expected = [statistics.median(column) for column in zip(*flats, strict=True)]

    arrays, metrics = FedMedian().aggregate_train(1, _replies(models))

    _assert_model(arrays, _unflat(expected))
    assert metrics is not None and metrics["num-examples"] == sum(10 * (i + 1) for i in range(n))


def test_fedmedian_ignores_a_minority_of_huge_replies() -> None:
    models = _models(7, seed=1, outliers={0: 1e6, 3: -1e6, 5: 1e6})
    arrays, _ = FedMedian(num_malicious_nodes=3).aggregate_train(1, _replies(models))
    assert arrays is not None
    assert max(abs(float(a.numpy().max())) for a in arrays.values()) < 10


def test_fedtrimmedavg_cuts_floor_beta_n_values_at_each_end_and_averages_the_rest() -> None:
    models = _models(10, seed=3)
    flats = [_flat(m) for m in models]
    k = int(0.25 * 10)  # 2 at each end
    expected = [sum(sorted(column)[k : 10 - k]) / (10 - 2 * k) for column in zip(*flats, strict=True)]
    strategy = FedTrimmedAvg(beta=0.25, num_malicious_nodes=2)
    reports = _reports(strategy)

    arrays, _ = strategy.aggregate_train(4, _replies(models))

    _assert_model(arrays, _unflat(expected))
    assert reports[-1].round == 4
    assert dict(reports[-1].info) == {"aggregated": 10, "trimmed_per_end": 2, "kept": 6, "beta": 0.25}


def test_fedtrimmedavg_with_beta_0_is_the_unweighted_mean() -> None:
    models = _models(4, seed=9)
    flats = [_flat(m) for m in models]
    expected = [sum(column) / 4 for column in zip(*flats, strict=True)]
    arrays, _ = FedTrimmedAvg(beta=0.0).aggregate_train(1, _replies(models))
    _assert_model(arrays, _unflat(expected))


@pytest.mark.parametrize("beta", [-0.1, 0.5, 0.7, True, "0.2"])
def test_fedtrimmedavg_refuses_a_beta_outside_0_to_one_half(beta: Any) -> None:
    with pytest.raises(StrategyError, match=r"beta must be a number in \[0, 0.5\)"):
        FedTrimmedAvg(beta=beta)


# --- Krum and MultiKrum ------------------------------------------------------------------------


def _krum_scores(flats: list[list[float]], f: int) -> list[float]:
    n = len(flats)
    scores = []
    for i in range(n):
        others = sorted(_sq_dist(flats[i], flats[j]) for j in range(n) if j != i)
        scores.append(sum(others[: n - f - 2]))
    return scores


def test_krum_returns_the_reply_whose_n_minus_f_minus_2_nearest_neighbours_are_nearest() -> None:
    models = _models(7, seed=11, outliers={1: 8.0, 4: -6.0})
    flats = [_flat(m) for m in models]
    scores = _krum_scores(flats, f=2)
    best = min(range(7), key=lambda i: scores[i])
    strategy = Krum(num_malicious_nodes=2)
    reports = _reports(strategy)

    arrays, _ = strategy.aggregate_train(1, _replies(models))

    assert arrays is not None
    for name in LAYOUT:  # the winner's arrays, bit for bit
        np.testing.assert_array_equal(arrays[name].numpy(), models[best][name])
    info = reports[-1].info
    assert info["selected"] == [100 + best]
    assert info["node_ids"] == [100 + i for i in range(7)]
    np.testing.assert_allclose(info["scores"], scores, rtol=1e-12)


def test_multikrum_averages_the_m_lowest_scoring_replies_without_weights() -> None:
    models = _models(9, seed=5, outliers={0: 5.0, 7: -5.0})
    flats = [_flat(m) for m in models]
    scores = _krum_scores(flats, f=2)
    chosen = sorted(range(9), key=lambda i: (scores[i], i))[:4]
    expected = [sum(flats[i][c] for i in chosen) / 4 for c in range(len(flats[0]))]
    strategy = MultiKrum(num_malicious_nodes=2, num_nodes_to_select=4)
    reports = _reports(strategy)

    arrays, _ = strategy.aggregate_train(1, _replies(models))

    _assert_model(arrays, _unflat(expected))
    assert reports[-1].info["selected"] == [100 + i for i in chosen]
    assert 100 not in reports[-1].info["selected"] and 107 not in reports[-1].info["selected"]


def test_multikrum_keeps_n_minus_f_replies_by_default() -> None:
    models = _models(8, seed=6, outliers={2: 50.0})
    flats = [_flat(m) for m in models]
    scores = _krum_scores(flats, f=1)
    chosen = sorted(range(8), key=lambda i: (scores[i], i))[:7]
    expected = [sum(flats[i][c] for i in chosen) / 7 for c in range(len(flats[0]))]

    arrays, _ = MultiKrum(num_malicious_nodes=1).aggregate_train(1, _replies(models))

    _assert_model(arrays, _unflat(expected))
    assert 2 not in chosen


def test_multikrum_refuses_to_average_more_than_n_minus_f_replies() -> None:
    with pytest.raises(AggregationError, match=r"num_nodes_to_select=7 .* n=8 replies succeeded this round and with f=2 .* n - f = 6"):
        MultiKrum(num_malicious_nodes=2, num_nodes_to_select=7).aggregate_train(1, _replies(_models(8, seed=0)))


# --- Bulyan ---------------------------------------------------------------------------------------


def _bulyan_reference(flats: list[list[float]], f: int) -> tuple[list[int], list[float]]:
    n = len(flats)
    theta, beta = n - 2 * f, n - 4 * f
    remaining, selected = list(range(n)), []
    while len(selected) < theta:  # El Mhamdi et al.: apply Krum to what is left, move its choice
        k = max(len(remaining) - f - 2, 1)
        scores, totals = {}, {}
        for i in remaining:
            others = sorted(_sq_dist(flats[i], flats[j]) for j in remaining if j != i)
            scores[i], totals[i] = sum(others[:k]), sum(others)
        # An exact tie goes to the one nearer to all remaining, then to the smaller node id.
        winner = min(remaining, key=lambda i: (scores[i], totals[i], i))
        selected.append(winner)
        remaining.remove(winner)
    out = []
    for c in range(len(flats[0])):
        values = [flats[i][c] for i in selected]
        median = statistics.median(values)
        nearest = sorted(range(theta), key=lambda j: (abs(values[j] - median), j))[:beta]
        out.append(sum(values[j] for j in nearest) / beta)
    return selected, out


@pytest.mark.parametrize(("n", "f"), [(7, 1), (12, 2), (11, 2)])
def test_bulyan_selects_by_iterated_krum_and_averages_the_beta_values_nearest_the_median(n: int, f: int) -> None:
    models = _models(n, seed=n, outliers={0: 30.0, n - 1: -20.0} if f == 2 else {3: 40.0})
    flats = [_flat(m) for m in models]
    selected, expected = _bulyan_reference(flats, f)
    strategy = Bulyan(num_malicious_nodes=f)
    reports = _reports(strategy)

    arrays, _ = strategy.aggregate_train(2, _replies(models))

    _assert_model(arrays, _unflat(expected))
    info = reports[-1].info
    assert info["selected"] == [100 + i for i in selected]
    assert (info["theta"], info["beta"]) == (n - 2 * f, n - 4 * f)


# --- bounds ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "n", "message"),
    [
        (FedMedian(num_malicious_nodes=3), 6, r"FedMedian needs n > 2f replies \(f=3 .*\), i\.e\. n >= 7, but only n=6"),
        (Krum(num_malicious_nodes=2), 6, r"Krum needs n > 2f \+ 2 replies \(f=2 .*\), i\.e\. n >= 7, but only n=6"),
        (MultiKrum(num_malicious_nodes=4), 10, r"MultiKrum needs n > 2f \+ 2 replies \(f=4 .*\), i\.e\. n >= 11, but only n=10"),
        (Bulyan(num_malicious_nodes=2), 10, r"Bulyan needs n >= 4f \+ 3 replies \(f=2 .*\), i\.e\. n >= 11, but only n=10"),
        (
            FedTrimmedAvg(beta=0.2, num_malicious_nodes=4),
            20,
            (
                r"FedTrimmedAvg needs beta \* n > f replies \(f=4 declared malicious nodes, "
                r"beta=0\.2\), i\.e\. n >= 21, but only n=20"
            ),
        ),
    ],
)
def test_each_robust_rule_refuses_to_aggregate_outside_its_bound_and_states_the_numbers(
    strategy: Any, n: int, message: str
) -> None:
    with pytest.raises(AggregationError, match=message):
        strategy.aggregate_train(1, _replies(_models(n, seed=n)))


@pytest.mark.parametrize(
    ("strategy", "n"),
    [
        (FedMedian(num_malicious_nodes=3), 7),
        (Krum(num_malicious_nodes=2), 7),
        (Bulyan(num_malicious_nodes=2), 11),
        (FedTrimmedAvg(beta=0.2, num_malicious_nodes=4), 21),
        (FedTrimmedAvg(beta=0.25, num_malicious_nodes=4), 20),
    ],
)
def test_each_robust_rule_aggregates_exactly_at_its_bound(strategy: Any, n: int) -> None:
    arrays, _ = strategy.aggregate_train(1, _replies(_models(n, seed=n)))
    assert arrays is not None


def test_a_robust_rule_refuses_a_sample_too_small_for_its_bound_before_anyone_trains() -> None:
    from fedlab.client import ClientApp
    from fedlab.simulation import SimulationGrid

    grid: Grid = SimulationGrid(ClientApp(), 10, seed=0)
    strategy = Krum(num_malicious_nodes=2, fraction_train=0.5, min_train_nodes=2)
    with pytest.raises(AggregationError, match=r"n >= 7, but only n=5 nodes were sampled"):
        strategy.configure_train(1, ArrayRecord(_models(1, seed=0)[0]), ConfigRecord(), grid)


def test_failed_replies_do_not_count_towards_the_bound() -> None:
    from fedlab.message import Error, ErrorCode

    replies = _replies(_models(7, seed=2))
    replies[3] = Message(RecordDict(), dst_node_id=103, message_type="train").reply(
        Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, "boom")
    )
    with pytest.raises(AggregationError, match=r"but only n=6 replies succeeded"):
        Krum(num_malicious_nodes=2, min_train_nodes=1).aggregate_train(1, replies)


@pytest.mark.parametrize("f", [-1, 1.5, True])
def test_num_malicious_nodes_must_be_a_non_negative_int(f: Any) -> None:
    with pytest.raises(StrategyError) as info:
        Krum(num_malicious_nodes=f)

    assert str(info.value) == f"num_malicious_nodes must be a non-negative int, got {f!r}."


def test_krum_on_one_dimensional_values_picks_the_hand_computed_winner() -> None:
    # f=1, n=5: 2 neighbours each. Scores: 0.2 -> .16+.25, 0.7 -> .01+.09, 1.0 -> .09+.16,
    # 0.6 -> .01+.16, 5.0 -> 16+18.49; 0.7 has the lowest.
    replies = []
    for i, v in enumerate([0.2, 0.7, 1.0, 0.6, 5.0]):
        instruction = Message(RecordDict(), dst_node_id=i + 1, message_type="train")
        content = RecordDict({"arrays": ArrayRecord({"w": np.array([v])}), "metrics": MetricRecord({"num-examples": 1})})
        replies.append(instruction.reply(content))
    strategy = Krum(num_malicious_nodes=1)
    reports = _reports(strategy)

    arrays, _ = strategy.aggregate_train(1, replies)

    assert arrays is not None and arrays["w"].numpy().tolist() == [0.7]
    assert reports[-1].info["selected"] == [2]
    np.testing.assert_allclose(reports[-1].info["scores"], [0.41, 0.10, 0.25, 0.17, 16.0 + 18.49])


def test_multikrum_refuses_to_select_more_than_n_minus_f_of_the_sample_before_any_client_trains() -> None:
    from fedlab import ClientApp, Federation

    calls: list[int] = []
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Any) -> Message:
        calls.append(ctx.node_id)
        return msg.reply(RecordDict({"arrays": msg.content["arrays"], "metrics": MetricRecord({"num-examples": 1})}))

    strategy = MultiKrum(num_malicious_nodes=1, num_nodes_to_select=9, fraction_train=0.9, fraction_evaluate=0.0)
    fed = Federation(app, strategy=strategy, num_clients=10, initial_arrays=[np.zeros(2)], seed=0, display="none")
    with pytest.raises(AggregationError) as caught:
        fed.run(rounds=1)
    assert str(caught.value) == (
        "MultiKrum was asked to average num_nodes_to_select=9 replies, but n=9 nodes were sampled "
        "this round and with f=1 at most n - f = 8 can be kept without admitting a malicious one; "
        "lower num_nodes_to_select or sample more nodes."
    )
    assert calls == []
