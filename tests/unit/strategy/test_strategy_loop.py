"""Strategy.start: the round loop, driven on a real SimulationGrid."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from fedlab.client import ClientApp
from fedlab.context import Context
from fedlab.errors import FedlabError, StrategyError
from fedlab.events import ClientReplied, Evaluated, Event, EventBus, RoundAggregated, RoundStarted
from fedlab.message import ErrorCode, Message
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.server import grid as grid_module
from fedlab.simulation import SimulationGrid
from fedlab.strategy import FedAvg

# Every client adds its partition id to each array and reports partition-id + 1 examples, so
# with partitions 0..n-1 a FedAvg round adds sum(p * (p + 1)) / sum(p + 1) = 2(n - 1) / 3.
# With 4 nodes that is 20 / 10 = 2.0 per round.


@dataclass
class _Federation:
    app: ClientApp
    bus: EventBus
    events: list[Event] = field(default_factory=list)
    train_configs: list[dict[str, Any]] = field(default_factory=list)
    evaluate_configs: list[dict[str, Any]] = field(default_factory=list)

    def grid(self, num_nodes: int, seed: int = 0) -> SimulationGrid:
        return SimulationGrid(self.app, num_nodes, seed=seed, events=self.bus)

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def _federation(failing_partitions: Sequence[int] = (), mutate_config: bool = False) -> _Federation:
    app = ClientApp()
    bus = EventBus()
    fed = _Federation(app, bus)
    bus.subscribe(fed.events.append)

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        pid = ctx.node_config["partition-id"]
        assert isinstance(pid, int)
        config = msg.content["config"]
        fed.train_configs.append(dict(config))
        if mutate_config:
            config["lr"] = -1.0
        if pid in failing_partitions:
            raise ValueError(f"partition {pid} is corrupt")
        arrays = msg.content["arrays"]
        assert isinstance(arrays, ArrayRecord)
        trained = ArrayRecord({name: array.numpy() + pid for name, array in arrays.items()})
        metrics = MetricRecord({"loss": float(pid), "num-examples": pid + 1})
        return msg.reply(RecordDict({"arrays": trained, "metrics": metrics}))

    @app.evaluate()
    def evaluate(msg: Message, ctx: Context) -> Message:
        pid = ctx.node_config["partition-id"]
        assert isinstance(pid, int)
        fed.evaluate_configs.append(dict(msg.content["config"]))
        metrics = MetricRecord({"accuracy": pid / 4, "num-examples": pid + 1})
        return msg.reply(RecordDict({"metrics": metrics}))

    return fed


def _initial() -> ArrayRecord:
    return ArrayRecord({"w": np.zeros(2)})


def _fedavg(**settings: Any) -> FedAvg:
    return FedAvg(
        **{"min_train_nodes": 1, "min_evaluate_nodes": 1, "min_available_nodes": 1, **settings}
    )


# --- arrays and metrics ----------------------------------------------------------------------


def test_evaluate_fn_sees_the_initial_arrays_as_round_0_and_each_rounds_aggregate() -> None:
    fed = _federation()
    seen: list[tuple[int, list[float]]] = []

    def evaluate_fn(rnd: int, arrays: ArrayRecord) -> dict[str, float]:
        w = arrays["w"].numpy()
        seen.append((rnd, w.tolist()))
        return {"w0": float(w[0])}

    result = _fedavg().start(fed.grid(4), _initial(), num_rounds=3, evaluate_fn=evaluate_fn, seed=0)

    step = (0 * 1 + 1 * 2 + 2 * 3 + 3 * 4) / (1 + 2 + 3 + 4)  # 2.0
    assert seen == [(r, [r * step, r * step]) for r in range(4)]
    np.testing.assert_array_equal(result.arrays["w"].numpy(), [3 * step, 3 * step])
    assert result.evaluate_metrics_serverapp == {
        r: MetricRecord({"w0": r * step}) for r in range(4)
    }


def test_result_holds_each_rounds_aggregated_client_metrics() -> None:
    fed = _federation()

    result = _fedavg().start(fed.grid(4), _initial(), num_rounds=2, seed=0)

    train = {"num-examples": 1 + 2 + 3 + 4, "loss": (0 * 1 + 1 * 2 + 2 * 3 + 3 * 4) / 10}
    evaluate = {
        "num-examples": 10,
        "accuracy": (0 / 4 * 1 + 1 / 4 * 2 + 2 / 4 * 3 + 3 / 4 * 4) / 10,
    }
    assert result.train_metrics_clientapp == {1: train, 2: train}
    assert result.evaluate_metrics_clientapp == {1: evaluate, 2: evaluate}
    assert result.evaluate_metrics_serverapp == {}
    assert (result.rounds_completed, result.stopped_early) == (2, False)


def test_zero_rounds_only_evaluate_the_initial_arrays_on_the_server() -> None:
    fed = _federation()
    calls: list[int] = []

    result = _fedavg().start(
        fed.grid(3), _initial(), num_rounds=0, evaluate_fn=lambda r, a: calls.append(r)
    )

    assert calls == [0]
    assert result.arrays == _initial()
    assert fed.train_configs == []
    assert (result.rounds_completed, result.stopped_early) == (0, False)


# --- configs ---------------------------------------------------------------------------------


def test_every_message_carries_server_round_beside_the_users_config() -> None:
    fed = _federation()

    _fedavg().start(
        fed.grid(3),
        _initial(),
        num_rounds=2,
        train_config={"lr": 0.1},
        evaluate_config={"batch": 32},
    )

    assert fed.train_configs == [{"lr": 0.1, "server-round": r} for r in (1, 2) for _ in range(3)]
    assert fed.evaluate_configs == [
        {"batch": 32, "server-round": r} for r in (1, 2) for _ in range(3)
    ]


def test_a_config_function_is_called_with_each_round_number() -> None:
    fed = _federation()
    asked: list[int] = []

    def schedule(rnd: int) -> dict[str, float]:
        asked.append(rnd)
        return {"lr": 1.0 / 2**rnd}

    _fedavg(fraction_evaluate=0.0).start(
        fed.grid(2), _initial(), num_rounds=3, train_config=schedule
    )

    assert asked == [1, 2, 3]
    assert [c["lr"] for c in fed.train_configs] == [1.0 / 2**r for r in (1, 2, 3) for _ in range(2)]
    assert [c["server-round"] for c in fed.train_configs] == [1, 1, 2, 2, 3, 3]


def test_the_users_config_is_never_changed_and_a_client_changing_its_copy_affects_no_one() -> None:
    fed = _federation(mutate_config=True)
    fixed = ConfigRecord({"lr": 0.1, "milestones": [2, 4]})
    shared = {"lr": 0.1}

    _fedavg(fraction_evaluate=0.0).start(fed.grid(3), _initial(), num_rounds=2, train_config=fixed)
    _fedavg(fraction_evaluate=0.0).start(
        fed.grid(3), _initial(), num_rounds=2, train_config=lambda rnd: shared
    )

    assert fixed == ConfigRecord({"lr": 0.1, "milestones": [2, 4]})
    assert shared == {"lr": 0.1}
    # Every client of every round saw lr=0.1, although each set its own copy to -1.0.
    assert [c["lr"] for c in fed.train_configs] == [0.1] * 12


# --- sampling --------------------------------------------------------------------------------


def test_fraction_half_samples_half_the_nodes_without_repeats() -> None:
    fed = _federation()
    grid = fed.grid(10)

    _fedavg(fraction_train=0.5, fraction_evaluate=0.0).start(grid, _initial(), num_rounds=3, seed=1)

    started = fed.of(RoundStarted)
    assert [e.phase for e in started] == ["train"] * 3
    for event in started:
        assert len(event.node_ids) == int(10 * 0.5)
        assert len(set(event.node_ids)) == len(event.node_ids)
        assert set(event.node_ids) <= set(grid.get_node_ids())
    assert len(fed.of(ClientReplied)) == 3 * 5


def _sampled_partitions(strategy_seed: int) -> list[list[int | None]]:
    fed = _federation()
    grid = fed.grid(10, seed=0)
    _fedavg(fraction_train=0.5, fraction_evaluate=0.5).start(
        grid, _initial(), num_rounds=3, seed=strategy_seed
    )
    return [[grid.partition_id(n) for n in e.node_ids] for e in fed.of(RoundStarted)]


def test_the_same_seed_samples_the_same_nodes_and_another_seed_other_nodes() -> None:
    first = _sampled_partitions(strategy_seed=7)

    assert _sampled_partitions(strategy_seed=7) == first
    assert _sampled_partitions(strategy_seed=8) != first


def test_fraction_evaluate_zero_sends_no_evaluate_messages() -> None:
    fed = _federation()

    result = _fedavg(fraction_evaluate=0.0).start(fed.grid(3), _initial(), num_rounds=2)

    assert fed.evaluate_configs == []
    assert [e.phase for e in fed.of(RoundStarted)] == ["train", "train"]
    assert {e.phase for e in fed.of(ClientReplied)} == {"train"}
    assert [e for e in fed.of(Evaluated) if e.source == "clients"] == []
    assert result.evaluate_metrics_clientapp == {}


# --- events ----------------------------------------------------------------------------------


def _outline(event: Event) -> tuple[Any, ...]:
    if isinstance(event, RoundStarted | ClientReplied):
        return (type(event).__name__, event.round, event.phase)
    if isinstance(event, Evaluated):
        return (type(event).__name__, event.round, event.source)
    if isinstance(event, RoundAggregated):
        return (type(event).__name__, event.round)
    return (type(event).__name__,)


def test_events_come_in_the_documented_order() -> None:
    fed = _federation()
    grid = fed.grid(3)

    _fedavg().start(grid, _initial(), num_rounds=2, evaluate_fn=lambda r, a: {"r": r})

    expected: list[tuple[Any, ...]] = [("Evaluated", 0, "server")]
    for r in (1, 2):
        expected += [("RoundStarted", r, "train")] + [("ClientReplied", r, "train")] * 3
        expected += [("StrategyReport",), ("RoundAggregated", r)]
        expected += [("RoundStarted", r, "evaluate")] + [("ClientReplied", r, "evaluate")] * 3
        expected += [("Evaluated", r, "clients"), ("Evaluated", r, "server")]
    assert [_outline(e) for e in fed.events] == expected


def test_events_name_the_sampled_nodes_and_carry_the_round_numbers() -> None:
    fed = _federation()
    grid = fed.grid(4)

    _fedavg().start(grid, _initial(), num_rounds=1)

    train_started, evaluate_started = fed.of(RoundStarted)
    assert sorted(train_started.node_ids) == sorted(grid.get_node_ids())
    replied = fed.of(ClientReplied)
    assert [e.node_id for e in replied] == list(train_started.node_ids) + list(
        evaluate_started.node_ids
    )
    assert all(e.run_id == grid.run_id and e.error is None for e in replied)
    assert [e.partition_id for e in replied[:4]] == [
        grid.partition_id(n) for n in train_started.node_ids
    ]
    (aggregated,) = fed.of(RoundAggregated)
    assert (aggregated.num_replies, aggregated.num_failures, aggregated.aggregated) == (4, 0, True)
    assert aggregated.metrics == {"num-examples": 10, "loss": 20 / 10}
    (evaluated,) = fed.of(Evaluated)
    assert (evaluated.source, evaluated.num_replies, evaluated.num_failures) == ("clients", 4, 0)


# --- stopping and failures -------------------------------------------------------------------


def test_request_stop_during_round_2_ends_the_run_after_round_2() -> None:
    fed = _federation()
    grid = fed.grid(4)

    def stop_in_round_2(event: Event) -> None:
        if isinstance(event, RoundStarted) and event.round == 2 and event.phase == "train":
            grid.request_stop()

    fed.bus.subscribe(stop_in_round_2)
    server_rounds: list[int] = []

    result = _fedavg().start(
        grid, _initial(), num_rounds=5, evaluate_fn=lambda r, a: server_rounds.append(r)
    )

    assert (result.rounds_completed, result.stopped_early) == (2, True)
    assert server_rounds == [0, 1, 2]
    assert max(e.round for e in fed.of(RoundStarted)) == 2
    assert sorted(result.evaluate_metrics_clientapp) == [1, 2]
    step = 20 / 10
    np.testing.assert_array_equal(result.arrays["w"].numpy(), [2 * step, 2 * step])


def test_a_client_that_raises_is_reported_and_the_round_aggregates_the_others() -> None:
    fed = _federation(failing_partitions=[3])
    grid = fed.grid(4)

    result = _fedavg(fraction_evaluate=0.0).start(grid, _initial(), num_rounds=1)

    (failed,) = [e for e in fed.of(ClientReplied) if e.error is not None]
    assert grid.partition_id(failed.node_id) == 3
    assert failed.error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
    assert failed.error.reason.splitlines()[0] == "ValueError: partition 3 is corrupt"
    assert failed.metrics == {}
    (aggregated,) = fed.of(RoundAggregated)
    assert (aggregated.num_replies, aggregated.num_failures, aggregated.aggregated) == (3, 1, True)
    step = (0 * 1 + 1 * 2 + 2 * 3) / (1 + 2 + 3)
    np.testing.assert_array_equal(result.arrays["w"].numpy(), [step, step])
    assert result.train_metrics_clientapp[1]["num-examples"] == 1 + 2 + 3


# --- fail fast -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "required"),
    [({"min_available_nodes": 5}, 5), ({"min_train_nodes": 4}, 4), ({"min_evaluate_nodes": 6}, 6)],
)
def test_minimums_above_the_simulated_node_count_fail_at_once_saying_what_to_change(
    setting: dict[str, int], required: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_waiting(seconds: float) -> None:
        raise AssertionError(f"the strategy waited {seconds}s for nodes that can never join")

    monkeypatch.setattr(grid_module.time, "sleep", no_waiting)
    fed = _federation()

    with pytest.raises(FedlabError) as info:
        FedAvg(**setting).start(fed.grid(3), _initial(), num_rounds=1)

    message = str(info.value)
    assert f"{required} nodes are required but the simulation has 3" in message
    assert f"at least {required}" in message
    assert "min_available_nodes, min_train_nodes, min_evaluate_nodes" in message
    assert fed.train_configs == []


# --- arguments -------------------------------------------------------------------------------


def test_initial_arrays_that_are_not_an_array_record_are_refused_with_the_fix() -> None:
    fed = _federation()

    with pytest.raises(
        StrategyError, match=r"got dict; wrap your model's parameters, e\.g\. ArrayRecord"
    ):
        _fedavg().start(fed.grid(2), {"w": np.zeros(2)}, num_rounds=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("num_rounds", [-1, 2.0])
def test_a_num_rounds_that_is_not_a_non_negative_int_is_refused(num_rounds: Any) -> None:
    fed = _federation()

    with pytest.raises(
        StrategyError, match=f"num_rounds must be a non-negative int, got {num_rounds!r}"
    ):
        _fedavg().start(fed.grid(2), _initial(), num_rounds=num_rounds)


def test_the_threads_backend_gives_the_same_result_as_the_inline_backend() -> None:
    results = []
    for backend in ("inline", "threads"):
        fed = _federation()
        grid = SimulationGrid(fed.app, 6, seed=3, events=fed.bus, backend=backend, max_workers=4)
        initial = ArrayRecord({"w": np.array([0.1, 0.2, 0.3], dtype=np.float32)})
        results.append(_fedavg(fraction_train=0.5).start(grid, initial, num_rounds=3, seed=5))
        grid.close()

    inline, threads = results
    assert threads.arrays == inline.arrays
    assert threads.train_metrics_clientapp == inline.train_metrics_clientapp
    assert threads.evaluate_metrics_clientapp == inline.evaluate_metrics_clientapp


def test_the_sampling_rng_survives_a_state_round_trip_through_json() -> None:
    import json

    from fedlab.strategy import StrategyState

    first = _fedavg()
    first.rng.seed(5)
    first.rng.random()
    saved = first.state_dict()
    restored = _fedavg()
    restored.load_state_dict(StrategyState(saved.arrays, json.loads(json.dumps(saved.values))))
    assert [restored.rng.random() for _ in range(3)] == [first.rng.random() for _ in range(3)]


def test_an_evaluation_only_run_reports_no_training_and_no_failures() -> None:
    fed = _federation()
    strategy = _fedavg(fraction_train=0.0)
    result = strategy.start(fed.grid(3), _initial(), num_rounds=2)
    assert fed.of(RoundAggregated) == []
    assert [e.phase for e in fed.of(RoundStarted)] == ["evaluate", "evaluate"]
    assert result.arrays == _initial() and result.rounds_completed == 2
    assert sorted(result.evaluate_metrics_clientapp) == [1, 2]
