"""Every strategy continues bit-identically after load_state_dict(state_dict()) through JSON."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest

from fedlab.client import ClientApp
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.simulation import SimulationGrid
from fedlab.strategy import (
    Bulyan,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedMedian,
    FedNova,
    FedProx,
    FedTrimmedAvg,
    FedYogi,
    Krum,
    MultiKrum,
    QFedAvg,
    Scaffold,
    Strategy,
    StrategyState,
)

NUM_NODES = 10
COMMON = {"fraction_train": 0.5, "min_train_nodes": 1}
FACTORIES: dict[str, Callable[[], Strategy]] = {
    "FedAvg": lambda: FedAvg(**COMMON),
    "FedAvgM": lambda: FedAvgM(server_learning_rate=0.5, **COMMON),
    "FedProx": lambda: FedProx(**COMMON),
    "QFedAvg": lambda: QFedAvg(client_learning_rate=0.1, **COMMON),
    "FedAdagrad": lambda: FedAdagrad(**COMMON),
    "FedAdam": lambda: FedAdam(**COMMON),
    "FedYogi": lambda: FedYogi(**COMMON),
    "FedMedian": lambda: FedMedian(num_malicious_nodes=1, **COMMON),
    "FedTrimmedAvg": lambda: FedTrimmedAvg(beta=0.25, num_malicious_nodes=1, **COMMON),
    "Krum": lambda: Krum(num_malicious_nodes=1, **COMMON),
    "MultiKrum": lambda: MultiKrum(num_malicious_nodes=1, **COMMON),
    "Bulyan": lambda: Bulyan(**COMMON),
    "Scaffold": lambda: Scaffold(**COMMON),
    "FedNova": lambda: FedNova(**COMMON),
}
STATEFUL = {"FedAvgM": ["momentum"], "FedAdagrad": ["m", "v"], "FedAdam": ["m", "v"], "FedYogi": ["m", "v"], "Scaffold": ["control"]}


def _initial() -> ArrayRecord:
    rng = np.random.default_rng(0)
    return ArrayRecord({"w": rng.normal(0, 1, (3, 2)).astype(np.float32), "b": rng.normal(0, 1, 2)})


def _round(strategy: Strategy, grid: SimulationGrid, rnd: int, current: ArrayRecord) -> tuple[list[int], ArrayRecord]:
    ranks = {node: r for r, node in enumerate(sorted(grid.get_node_ids()))}
    replies, sampled = [], []
    for msg in strategy.configure_train(rnd, current, ConfigRecord(), grid):
        node = msg.metadata.dst_node_id
        sampled.append(node)
        rng = np.random.default_rng(100 * rnd + ranks[node])
        got = msg.content["arrays"]
        trained = {n: (a.numpy() + rng.normal(0.1, 0.3, a.shape)).astype(a.dtype) for n, a in got.items()}
        content = RecordDict(
            {
                "arrays": ArrayRecord(trained),
                "metrics": MetricRecord(
                    {"num-examples": 1 + ranks[node], "global-model-loss": 0.5 + ranks[node], "local-steps": 2 + ranks[node]}
                ),
            }
        )
        if "scaffold-control" in msg.content:
            content["scaffold-control-delta"] = ArrayRecord({n: rng.normal(0, 0.1, a.shape) for n, a in got.items()})
        replies.append(msg.reply(content))
    arrays, _ = strategy.aggregate_train(rnd, replies)
    assert arrays is not None
    return sampled, arrays


def _through_json(state: StrategyState) -> StrategyState:
    arrays = {k: ArrayRecord({n: a.numpy().copy() for n, a in rec.items()}) for k, rec in state.arrays.items()}
    return StrategyState(arrays, json.loads(json.dumps(state.values)))


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_a_strategy_restored_from_its_state_continues_bit_identically(name: str) -> None:
    grid = SimulationGrid(ClientApp(), NUM_NODES, seed=1)
    original = FACTORIES[name]()
    original.rng.seed(9)
    current = _initial()
    for rnd in (1, 2):
        _, current = _round(original, grid, rnd, current)
    restored = FACTORIES[name]()
    restored.load_state_dict(_through_json(original.state_dict()))

    ours, theirs = current, current
    for rnd in (3, 4, 5):
        sampled_a, ours = _round(original, grid, rnd, ours)
        sampled_b, theirs = _round(restored, grid, rnd, theirs)
        assert sampled_a == sampled_b
        assert ours == theirs  # same keys, dtypes, shapes and bytes


@pytest.mark.parametrize("name", sorted(STATEFUL))
def test_a_stateful_strategy_saves_its_memory_and_needs_it_to_continue(name: str) -> None:
    grid = SimulationGrid(ClientApp(), NUM_NODES, seed=1)
    original = FACTORIES[name]()
    original.rng.seed(9)
    assert sorted(original.state_dict().arrays) == []  # nothing to save before round 1
    current = _initial()
    for rnd in (1, 2):
        _, current = _round(original, grid, rnd, current)
    state = original.state_dict()
    assert sorted(state.arrays) == sorted(STATEFUL[name])
    assert all(a.dtype == "float64" for rec in state.arrays.values() for a in rec.values())

    amnesiac = FACTORIES[name]()  # same sampling, but without the strategy's memory
    amnesiac.load_state_dict(StrategyState({}, state.values))
    _round(original, grid, 3, current)
    _round(amnesiac, grid, 3, current)
    assert original.state_dict().arrays != amnesiac.state_dict().arrays


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_reset_leaves_a_strategy_that_continues_as_a_fresh_one(name: str) -> None:
    grid = SimulationGrid(ClientApp(), NUM_NODES, seed=1)
    used, fresh = FACTORIES[name](), FACTORIES[name]()
    current = _initial()
    for rnd in (1, 2):
        _, current = _round(used, grid, rnd, current)
    used.reset()
    assert used.state_dict().arrays == {}  # nothing of the earlier run is left to save

    ours, theirs = _initial(), _initial()
    for strategy in (used, fresh):
        strategy.rng.seed(9)
    for rnd in (1, 2, 3):
        sampled_a, ours = _round(used, grid, rnd, ours)
        sampled_b, theirs = _round(fresh, grid, rnd, theirs)
        assert sampled_a == sampled_b
        assert ours == theirs
