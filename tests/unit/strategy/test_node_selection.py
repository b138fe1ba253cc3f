"""Node selection: all nodes by default, explicit ids, or a predicate over node_config; seeded."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import fedlab as fl
from fedlab.client import ClientApp
from fedlab.context import Context
from fedlab.errors import StrategyError
from fedlab.events import RoundStarted
from fedlab.message import Message
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
)

REGIONS = ["eu", "us", "eu", "asia", "eu", "us", "eu", "eu", "us", "asia"]


def _grid(seed: int = 0) -> SimulationGrid:
    return SimulationGrid(ClientApp(), len(REGIONS), seed=seed, node_configs=[{"region": r} for r in REGIONS])


def _sampled(strategy: Any, grid: SimulationGrid, rnd: int = 1) -> list[int]:
    messages = strategy.configure_train(rnd, ArrayRecord({"w": np.zeros(1)}), ConfigRecord(), grid)
    return [m.metadata.dst_node_id for m in messages]


def _region(grid: SimulationGrid, node_id: int) -> Any:
    return grid.get_node_config(node_id)["region"]


def test_by_default_every_node_may_be_sampled_and_the_seed_fixes_the_choice() -> None:
    grid = _grid()
    picks = []
    for _ in range(2):
        strategy = FedAvg(fraction_train=0.5)
        strategy.rng.seed(11)
        picks.append([_sampled(strategy, grid, r) for r in range(1, 21)])
    assert picks[0] == picks[1]
    assert all(len(p) == 5 for p in picks[0])
    assert set().union(*map(set, picks[0])) == set(grid.get_node_ids())  # over 20 rounds every node is drawn


def test_explicit_node_ids_restrict_sampling_to_them_and_ignore_unknown_ids() -> None:
    grid = _grid()
    chosen = sorted(grid.get_node_ids())[:4]
    strategy = FedAvg(fraction_train=0.5, node_ids=[*chosen, 12345])
    strategy.rng.seed(0)
    for rnd in range(1, 6):
        sampled = _sampled(strategy, grid, rnd)
        assert len(sampled) == 2 and set(sampled) <= set(chosen)


def test_a_predicate_over_node_config_restricts_training_and_evaluation() -> None:
    grid = _grid()
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.4, node_filter=lambda cfg: cfg.get("region") == "eu")
    strategy.rng.seed(0)
    trained = _sampled(strategy, grid)
    evaluated = [
        m.metadata.dst_node_id
        for m in strategy.configure_evaluate(1, ArrayRecord({"w": np.zeros(1)}), ConfigRecord(), grid)
    ]
    assert sorted(trained) == sorted(n for n in grid.get_node_ids() if _region(grid, n) == "eu")
    assert len(evaluated) == 2 and {_region(grid, n) for n in evaluated} == {"eu"}  # int(0.4 * 5)


def test_node_ids_and_a_predicate_together_admit_their_intersection() -> None:
    grid = _grid()
    first_six = sorted(grid.get_node_ids(), key=lambda n: grid.get_node_config(n)["partition-id"])[:6]
    strategy = FedAvg(node_ids=first_six, node_filter=lambda cfg: cfg["region"] != "eu", min_train_nodes=1)
    # partitions 0..5 have regions eu, us, eu, asia, eu, us: the non-EU ones are 1, 3 and 5
    assert sorted(grid.get_node_config(n)["partition-id"] for n in _sampled(strategy, grid)) == [1, 3, 5]


def test_a_selection_admitting_too_few_nodes_says_how_many_it_admits() -> None:
    strategy = FedAvg(min_train_nodes=3, node_filter=lambda cfg: cfg["region"] == "asia")
    with pytest.raises(StrategyError, match=r"needs 3 nodes .* node selection \(node_ids/node_filter\) admits only 2 of the 10"):
        _sampled(strategy, _grid())


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: FedAvg(**kw),
        lambda **kw: FedAvgM(**kw),
        lambda **kw: FedProx(**kw),
        lambda **kw: QFedAvg(client_learning_rate=0.1, **kw),
        lambda **kw: FedAdagrad(**kw),
        lambda **kw: FedAdam(**kw),
        lambda **kw: FedYogi(**kw),
        lambda **kw: FedMedian(**kw),
        lambda **kw: FedTrimmedAvg(**kw),
        lambda **kw: Krum(**kw),
        lambda **kw: MultiKrum(**kw),
        lambda **kw: Bulyan(**kw),
        lambda **kw: Scaffold(**kw),
        lambda **kw: FedNova(**kw),
    ],
)
def test_every_strategy_takes_a_node_selection(make: Any) -> None:
    grid = _grid()
    strategy = make(node_filter=lambda cfg: cfg["region"] == "eu", min_train_nodes=1)
    strategy.rng.seed(3)
    assert {_region(grid, n) for n in _sampled(strategy, grid)} == {"eu"}


def _app() -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        arrays = msg.content["arrays"]
        assert isinstance(arrays, ArrayRecord)
        return msg.reply(RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": 1})}))

    return app


def test_a_seeded_federation_samples_the_same_tagged_nodes_on_every_run() -> None:
    runs = []
    for _ in range(2):
        fed = fl.Federation(
            _app(),
            strategy=FedAvg(fraction_train=0.5, fraction_evaluate=0.0, node_filter=lambda c: c["region"] == "eu"),
            num_clients=len(REGIONS),
            node_configs=[{"region": r} for r in REGIONS],
            initial_arrays=[np.zeros(1)],
            seed=5,
            display="none",
        )
        started: list[tuple[int, ...]] = []
        fed.subscribe(lambda e, seen=started: seen.append(e.node_ids) if isinstance(e, RoundStarted) else None)
        fed.run(rounds=3)
        runs.append(started)
    assert runs[0] == runs[1]
    assert all(len(ids) == 2 for ids in runs[0])  # int(0.5 * 5 EU nodes)
