"""A round's replies are summed and released one by one; a huge population costs nothing until sampled."""

from __future__ import annotations

import gc
import random
import weakref
from pathlib import Path

import numpy as np
import pytest

import fedlab as fl
from fedlab.context import Context
from fedlab.message import Message
from fedlab.records import ArrayRecord, MetricRecord, RecordDict
from fedlab.simulation import NodeIdList, SimulationGrid, make_node_ids
from fedlab.strategy import FedAvg, FedProx, Krum
from fedlab.strategy._aggregate import WeightedSum

PARAMS = 50_000


def _run(strategy: fl.Strategy, clients: int, backend: str) -> tuple[fl.Result, list[int]]:
    alive: list[weakref.ref[ArrayRecord]] = []
    peak: list[int] = []
    app = fl.ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        gc.collect()
        peak.append(sum(ref() is not None for ref in alive))
        partition = int(ctx.node_config["partition-id"])
        arr = msg.content.array_record("arrays").to_numpy()[0] + np.float32(partition)
        record = ArrayRecord([arr])
        alive.append(weakref.ref(record))
        return msg.reply(
            RecordDict({"arrays": record, "metrics": MetricRecord({"num-examples": partition + 1})})
        )

    fed = fl.Federation(app, strategy, num_clients=clients, seed=0, backend=backend, display="none",
                        initial_arrays=ArrayRecord([np.zeros(PARAMS, np.float32)]))
    result = fed.run(rounds=2)
    assert result.history is not None
    assert all(r["train_failures"] == 0 for r in result.history.rounds)
    return result, peak


def test_fedavg_releases_each_reply_as_soon_as_it_is_summed_with_the_inline_backend() -> None:
    strategy = FedAvg(fraction_evaluate=0.0, min_train_nodes=40, min_available_nodes=40)
    result, peak = _run(strategy, 40, "inline")
    # When a client starts, at most one earlier reply is alive (held back to be summed
    # together with the next one).
    assert max(peak) <= 1
    # And the average is still exact: sum_p (p+1) * p / sum_p (p+1), twice.
    p = np.arange(40, dtype=np.float64)
    step = (p * (p + 1)).sum() / (p + 1).sum()
    expected = np.float32(np.float32(step) + step)
    assert result.arrays.to_numpy()[0][0] == expected


def test_fedprox_like_fedavg_releases_each_reply_as_soon_as_it_is_summed() -> None:
    strategy = FedProx(fraction_evaluate=0.0, min_train_nodes=40, min_available_nodes=40)
    result, peak = _run(strategy, 40, "inline")
    assert max(peak) <= 1
    p = np.arange(40, dtype=np.float64)
    step = (p * (p + 1)).sum() / (p + 1).sum()
    assert result.arrays.to_numpy()[0][0] == np.float32(np.float32(step) + step)


def test_fedavg_holds_a_bounded_window_of_replies_with_the_threads_backend() -> None:
    strategy = FedAvg(fraction_evaluate=0.0, min_train_nodes=60, min_available_nodes=60)
    _, peak = _run(strategy, 60, "threads")
    # At most about twice the pool's size is in flight, never the whole round.
    assert max(peak) <= 2 * 6 + 6


def test_a_strategy_that_needs_every_reply_still_gets_them_all_as_a_list() -> None:
    strategy = Krum(num_malicious_nodes=1, fraction_evaluate=0.0, min_train_nodes=8, min_available_nodes=8)
    result, peak = _run(strategy, 8, "inline")
    assert max(peak) == 7  # the earlier replies wait for Krum's pairwise distances
    assert result.rounds_completed == 2


def test_streaming_sum_equals_summing_float64_products_in_order() -> None:
    rng = np.random.default_rng(0)
    values = [rng.standard_normal(40_000).astype(np.float32) for _ in range(5)]
    weights = [1.0, 3.0, 1.0, 0.25, 7.0]
    running = WeightedSum()
    for node, (v, w) in enumerate(zip(values, weights)):
        running.add(node, ArrayRecord({"w": v, "n": np.arange(3, dtype=np.int64) * node}), w)
    expected = values[0].astype(np.float64) * weights[0]
    for v, w in zip(values[1:], weights[1:]):
        expected = expected + v.astype(np.float64) * w
    out = running.average()
    assert out["w"].numpy().tobytes() == (expected / sum(weights)).astype(np.float32).tobytes()
    ints = sum(np.arange(3, dtype=np.float64) * node * w for node, w in enumerate(weights)) / sum(weights)
    assert out["n"].numpy().tolist() == np.rint(ints).astype(np.int64).tolist()
    assert running.count == 5 and running.total == sum(weights)


def test_a_million_node_population_creates_state_only_for_the_sampled_nodes() -> None:
    app = fl.ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        ctx.state["seen"] = MetricRecord({"round": int(msg.metadata.round)})
        return msg.reply(RecordDict({"arrays": msg.content.array_record("arrays"),
                                     "metrics": MetricRecord({"num-examples": 1})}))

    grid = SimulationGrid(app, 1_000_000, seed=0)
    strategy = FedAvg(fraction_train=100 / 1_000_000, fraction_evaluate=0.0,
                      min_train_nodes=100, min_available_nodes=100)
    result = strategy.start(grid, ArrayRecord([np.zeros(10, np.float32)]), num_rounds=3, seed=0)
    assert result.rounds_completed == 3
    created = grid.created_contexts()
    assert 100 <= len(created) <= 300  # three rounds of 100, with possible repeats
    assert all("seen" in ctx.state for ctx in created.values())
    last = max(result.train_metrics_clientapp)
    assert result.train_metrics_clientapp[last]["num-examples"] == 100
    # Unsampled nodes still answer questions about themselves without being created.
    outsider = next(n for n in grid.get_node_ids()[:1000] if n not in created)
    assert grid.get_node_config(outsider)["num-partitions"] == 1_000_000
    assert outsider not in grid.created_contexts()


def test_node_id_list_behaves_like_the_list_it_replaces() -> None:
    ids = make_node_ids(1000, seed=4)
    nodes = NodeIdList(ids)
    assert len(nodes) == 1000 and list(nodes) == ids and nodes == ids
    assert nodes[3] == ids[3] and nodes[-1] == ids[-1] and nodes[10:13] == ids[10:13]
    assert ids[500] in nodes and (max(ids) + 1) not in nodes and "x" not in nodes  # type: ignore[comparison-overlap]
    assert nodes.index_of(ids[777]) == 777 and nodes.index_of(12345) is None
    assert list(nodes.ascending()) == sorted(ids)
    # Sampling from it draws exactly what sampling from the sorted list would.
    assert random.Random(9).sample(nodes.ascending(), 10) == random.Random(9).sample(sorted(ids), 10)


def test_sampling_draws_the_same_nodes_as_before_the_compact_population() -> None:
    grid = SimulationGrid(fl.ClientApp(), 500, seed=2)
    strategy = FedAvg(fraction_train=0.1)
    strategy.rng.seed(5)
    picked = strategy.sample_nodes(grid, 0.1, 2, 2)
    assert picked == random.Random(5).sample(sorted(make_node_ids(500, seed=2)), 50)


@pytest.mark.parametrize("count", [1, 7])
def test_make_node_ids_gives_distinct_nonzero_ids(count: int) -> None:
    ids = make_node_ids(count, seed=None)
    assert len(set(ids)) == count and 0 not in ids


def test_a_large_population_checkpoints_only_the_sampled_nodes_state_and_resumes_exactly(
    tmp_path: Path,
) -> None:
    from fedlab.checkpoint import load_checkpoint

    app = fl.ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        seen = ctx.state.get("seen", MetricRecord({"n": 0}))
        assert isinstance(seen, MetricRecord)
        seen["n"] = int(seen["n"]) + 1  # type: ignore[arg-type]
        ctx.state["seen"] = seen
        arr = msg.content.array_record("arrays").to_numpy()[0] + np.float32(ctx.node_config["partition-id"])
        return msg.reply(RecordDict({"arrays": ArrayRecord([arr]),
                                     "metrics": MetricRecord({"num-examples": 1, "seen": seen["n"]})}))

    def federation(directory: Path) -> fl.Federation:
        strategy = FedAvg(fraction_train=10 / 50_000, fraction_evaluate=0.0, min_train_nodes=10,
                          min_available_nodes=10)
        return fl.Federation(app, strategy, num_clients=50_000, seed=1, display="none",
                             initial_arrays=ArrayRecord([np.zeros(4, np.float32)]),
                             checkpoint_dir=directory)

    whole = federation(tmp_path / "whole").run(rounds=4)
    federation(tmp_path / "part").run(rounds=2)
    saved = load_checkpoint(tmp_path / "part")
    assert len(saved.node_ids) == 50_000
    assert 10 <= sum(len(state) > 0 for state in saved.node_states) <= 20
    resumed = federation(tmp_path / "part").resume(rounds=4)
    assert resumed.arrays["0"] == whole.arrays["0"]
    assert resumed.train_metrics_clientapp == whole.train_metrics_clientapp


@pytest.mark.parametrize("node_ids", [[5, 6, 5], [0, 6, 7], [5, 6], ["a", "b", "c"]])
def test_given_node_ids_must_be_distinct_nonzero_and_one_per_node(node_ids: list[object]) -> None:
    from fedlab.errors import SimulationError

    with pytest.raises(SimulationError, match="3 distinct non-zero ids"):
        SimulationGrid(fl.ClientApp(), 3, node_ids=node_ids)  # type: ignore[arg-type]


def test_given_node_ids_keep_their_partition_order() -> None:
    grid = SimulationGrid(fl.ClientApp(), 3, node_ids=[30, 10, 20])
    assert list(grid.get_node_ids()) == [30, 10, 20]
    assert [grid.partition_id(n) for n in (10, 20, 30)] == [1, 2, 0]
