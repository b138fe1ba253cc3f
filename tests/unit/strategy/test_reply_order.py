"""Rules that do not depend on the order of the replies give the same model whatever it is.

Replies arrive in the order nodes were sampled (or finished), so an order-free rule must not
let that order leak into the result: Krum, MultiKrum, Bulyan, FedMedian and FedTrimmedAvg
give bit-identical arrays and selections for every permutation, FedAvg the same mean up to
float rounding. The sets below include exact ties, which are what used to leak.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from fedlab.events import EventBus, StrategyReport
from fedlab.message import Message
from fedlab.records import ArrayRecord, MetricRecord, RecordDict
from fedlab.strategy import Bulyan, FedAvg, FedMedian, FedTrimmedAvg, Krum, MultiKrum, Strategy

ORDER_FREE: dict[str, Callable[[], Strategy]] = {
    "Bulyan": lambda: Bulyan(num_malicious_nodes=1),
    "FedMedian": lambda: FedMedian(num_malicious_nodes=1),
    "FedTrimmedAvg": lambda: FedTrimmedAvg(beta=0.3, num_malicious_nodes=1),
    "Krum": lambda: Krum(num_malicious_nodes=1),
    "MultiKrum": lambda: MultiKrum(num_malicious_nodes=1, num_nodes_to_select=3),
}
#: Six honest replies on a line and an attacker (node 106) that mimics the outermost one.
#: Once one neighbour is left, 10 and 11 score the same exactly (their distance, 1).
MIMIC = [0.0, 1.0, 3.0, 4.0, 6.0, 10.0, 11.0]
ATTACKER = 106
#: Mirror-symmetric: x and −x tie in every score and every sum of distances.
MIRRORED = [-6.0, -2.0, -1.0, 0.0, 1.0, 2.0, 6.0]


def _replies(models: list[dict[str, np.ndarray]]) -> list[Message]:
    replies = []
    for i, arrays in enumerate(models):
        instruction = Message(RecordDict(), dst_node_id=100 + i, message_type="train", group_id="1")
        metrics = MetricRecord({"num-examples": 10 * (i + 1), "loss": 0.1 * i})
        replies.append(instruction.reply(RecordDict({"arrays": ArrayRecord(arrays), "metrics": metrics})))
    return replies


def _on_a_line(values: list[float]) -> list[dict[str, np.ndarray]]:
    """Models whose every coordinate is a multiple of one value (so their distances are too)."""
    return [{"w": np.array([v, 2 * v, -v], np.float32), "b": np.array([v / 4])} for v in values]


def _random(seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    models = [{"w": rng.normal(0, 1, (2, 3)).astype(np.float32), "b": rng.normal(0, 1, 4)} for _ in range(7)]
    models[4] = {name: value + 5.0 for name, value in models[4].items()}  # an outlier
    models[5] = {name: value.copy() for name, value in models[2].items()}  # a duplicate
    return models


DATASETS: dict[str, list[dict[str, np.ndarray]]] = {
    "mimic": _on_a_line(MIMIC),
    "mirrored": _on_a_line(MIRRORED),
    "random": _random(3),
}


def _permutations(n: int, count: int, seed: int = 0) -> list[tuple[int, ...]]:
    rng = random.Random(seed)
    orders = {tuple(range(n)), tuple(reversed(range(n)))}
    while len(orders) < count:
        orders.add(tuple(rng.sample(range(n), n)))
    return sorted(orders)


def _aggregate(strategy: Strategy, replies: list[Message]) -> tuple[ArrayRecord, MetricRecord, dict[str, Any]]:
    seen: list[StrategyReport] = []
    bus = EventBus()
    bus.subscribe(lambda e: seen.append(e) if isinstance(e, StrategyReport) else None)
    strategy._events = bus  # the reports a grid's bus would carry
    arrays, metrics = strategy.aggregate_train(1, replies)
    assert arrays is not None and metrics is not None
    return arrays, metrics, dict(seen[-1].info)


def _selected(info: dict[str, Any]) -> Any:
    return info.get("selected")


@pytest.mark.parametrize("data", sorted(DATASETS))
@pytest.mark.parametrize("name", sorted(ORDER_FREE))
def test_an_order_free_rule_gives_bit_identical_arrays_for_every_order_of_the_replies(name: str, data: str) -> None:
    replies = _replies(DATASETS[data])
    reference, reference_metrics, reference_info = _aggregate(ORDER_FREE[name](), replies)
    for order in _permutations(len(replies), 40):
        arrays, metrics, info = _aggregate(ORDER_FREE[name](), [replies[i] for i in order])
        assert arrays == reference, order  # keys, dtypes, shapes and bytes
        assert _selected(info) == _selected(reference_info), order
        assert metrics.keys() == reference_metrics.keys()
        assert all(metrics[k] == pytest.approx(reference_metrics[k], rel=1e-12) for k in metrics)


@pytest.mark.parametrize("data", sorted(DATASETS))
def test_fedavg_gives_the_same_mean_for_every_order_up_to_float_rounding(data: str) -> None:
    replies = _replies(DATASETS[data])
    reference, _, _ = _aggregate(FedAvg(), replies)
    for order in _permutations(len(replies), 40):
        arrays, _, _ = _aggregate(FedAvg(), [replies[i] for i in order])
        for key in reference:
            np.testing.assert_allclose(arrays[key].numpy(), reference[key].numpy(), rtol=1e-6, atol=1e-7)


def _every_order_through_bulyan(values: list[float]) -> set[tuple[tuple[int, ...], bytes]]:
    """(selection, arrays) of Bulyan(f=1) over the models on a line, for all 5040 orders."""
    stacks = {name: np.stack([m[name] for m in _on_a_line(values)]).astype(np.float64) for name in ("w", "b")}
    strategy = Bulyan(num_malicious_nodes=1)
    seen: list[StrategyReport] = []
    strategy._events = EventBus()
    strategy._events.subscribe(lambda e: seen.append(e) if isinstance(e, StrategyReport) else None)
    outcomes = set()
    for order in itertools.permutations(range(len(values))):
        rows = list(order)
        combined = strategy.combine(1, [100 + i for i in rows], {k: v[rows] for k, v in stacks.items()})
        raw = b"".join(combined[k].tobytes() for k in ("w", "b"))
        outcomes.add((tuple(seen[-1].info["selected"]), raw))
    return outcomes


def test_bulyan_selects_the_same_replies_in_all_5040_orders_and_never_the_mimicking_attacker() -> None:
    outcomes = _every_order_through_bulyan(MIMIC)
    assert len(outcomes) == 1
    # θ = 5 of 7: 0 and one of the tied pair (10, 11) go; 10 stays, nearer to the rest.
    ((selected, _),) = outcomes
    assert sorted(selected) == [101, 102, 103, 104, 105] and ATTACKER not in selected


def test_bulyan_selects_the_same_replies_in_all_5040_orders_of_a_mirror_symmetric_set() -> None:
    outcomes = _every_order_through_bulyan(MIRRORED)
    assert len(outcomes) == 1
    ((selected, _),) = outcomes
    assert sorted(selected) == [101, 102, 103, 104, 105]  # −6 and 6 go, whatever the order


def test_an_exact_krum_tie_goes_to_the_reply_nearer_the_rest_then_to_the_smaller_node_id() -> None:
    # f=1, n=5: two neighbours (distances in units of the squared gap). 1 and 2 both score
    # 1 + 1 = 2; their distances to all the others sum to 1+1+4+64 = 70 and 4+1+1+49 = 55.
    line = _replies(_on_a_line([0.0, 1.0, 2.0, 3.0, 9.0]))
    for order in _permutations(5, 20):
        _, _, info = _aggregate(Krum(num_malicious_nodes=1), [line[i] for i in order])
        assert info["selected"] == [102]
    mirror = _replies(_on_a_line([-2.0, -1.0, 1.0, 2.0, 0.0]))  # ±1 tie in score and in total
    for order in _permutations(5, 20):
        _, _, info = _aggregate(MultiKrum(num_malicious_nodes=1, num_nodes_to_select=2), [mirror[i] for i in order])
        # 0, −1 and 1 all score 2; 0 sums 10 to the others, ±1 sum 15 each: node 101 before 102.
        assert info["selected"] == [104, 101]


@pytest.mark.parametrize("name", ["Bulyan", "Krum", "MultiKrum"])
def test_a_reply_of_nan_is_never_selected_and_the_others_ties_are_still_broken_by_distance(name: str) -> None:
    # The mimicking attacker (11) now has the smaller node id (105) than the reply it mimics.
    replies = _replies(_on_a_line([np.nan, 1.0, 3.0, 4.0, 6.0, 11.0, 10.0]))
    reference, _, reference_info = _aggregate(ORDER_FREE[name](), replies)
    assert 100 not in reference_info["selected"] and 105 not in reference_info["selected"]
    assert all(np.isfinite(array.numpy()).all() for array in reference.values())
    for order in _permutations(len(replies), 40):
        arrays, _, info = _aggregate(ORDER_FREE[name](), [replies[i] for i in order])
        assert arrays == reference and info["selected"] == reference_info["selected"], order
    if name == "Bulyan":  # NaN and the attacker go; 10 wins the tie, nearer to the rest
        assert sorted(reference_info["selected"]) == [101, 102, 103, 104, 106]
