"""The round loop hands each strategy its training replies as it declared: a stream or a list."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from fedlab.client import ClientApp
from fedlab.context import Context
from fedlab.errors import StrategyError
from fedlab.events import Event, EventBus, RoundAggregated
from fedlab.message import Message, MessageType
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.server import Grid
from fedlab.simulation import SimulationGrid
from fedlab.strategy import FedAvg, FedProx, Krum, Strategy

# Client p adds p to every array and reports p + 1 examples; partition 3 fails.
FAILING = 3


def _app() -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        pid = ctx.node_config["partition-id"]
        assert isinstance(pid, int)
        if pid == FAILING:
            raise ValueError("no data here")
        trained = ArrayRecord({k: a.numpy() + pid for k, a in msg.content["arrays"].items()})
        metrics = MetricRecord({"num-examples": pid + 1})
        return msg.reply(RecordDict({"arrays": trained, "metrics": metrics}))

    return app


def _grid(events: list[Event] | None = None) -> SimulationGrid:
    bus = EventBus()
    if events is not None:
        bus.subscribe(events.append)
    return SimulationGrid(_app(), 5, seed=0, events=bus)


def _initial() -> ArrayRecord:
    return ArrayRecord({"w": np.zeros(3, np.float32)})


def _settings() -> dict[str, Any]:
    return {"fraction_evaluate": 0.0, "min_train_nodes": 1, "min_available_nodes": 1}


class _Kept:
    """What an aggregation hook was given, round by round."""

    def __init__(self) -> None:
        self.kinds: list[type] = []
        self.partitions: list[list[int]] = []


def test_a_fedavg_subclass_writing_aggregate_arrays_gets_the_list_of_successful_replies() -> None:
    kept = _Kept()

    class EveryOtherReply(FedAvg):
        def aggregate_arrays(self, server_round: int, replies: Sequence[Message]) -> ArrayRecord:
            kept.kinds.append(type(replies))
            kept.partitions.append([r.metadata.src_node_id for r in replies])
            return super().aggregate_arrays(server_round, replies[::2])

    grid = _grid()
    result = EveryOtherReply(**_settings()).start(grid, _initial(), num_rounds=1)

    assert kept.kinds == [list]
    (node_ids,) = kept.partitions
    partitions = [grid.partition_id(n) for n in node_ids]
    assert sorted(partitions) == [0, 1, 2, 4]
    # What it returned became the global model: the mean of every other reply, by examples.
    chosen = partitions[::2]
    mean = sum(p * (p + 1) for p in chosen) / sum(p + 1 for p in chosen)
    assert result.arrays["w"].numpy().tolist() == [np.float32(mean)] * 3


def test_fedavg_and_fedprox_take_a_one_pass_stream_and_a_subclass_writing_a_hook_a_list() -> None:
    class Logged(FedAvg):
        def aggregate_train(
            self, server_round: int, replies: Iterable[Message]
        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
            return super().aggregate_train(server_round, replies)

    class Sending(FedAvg):
        def configure_train(
            self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
        ) -> Iterable[Message]:
            config["lr"] = 0.1
            return super().configure_train(server_round, arrays, config, grid)

    streams = {
        cls.__name__: cls.streams_replies for cls in (FedAvg, FedProx, Sending, Logged, Krum)
    }

    assert streams == {
        "FedAvg": True,
        "FedProx": True,
        "Sending": True,
        "Logged": False,
        "Krum": False,
    }


def test_streamed_and_listed_replies_give_fedavg_the_same_bits_and_the_same_report() -> None:
    class Listed(FedAvg):
        streams_replies = False

    runs = []
    for strategy in (FedAvg(**_settings()), Listed(**_settings())):
        events: list[Event] = []
        result = strategy.start(_grid(events), ArrayRecord({"w": np.full(3, 0.1, np.float32)}), 2)
        (last,) = [e for e in events if isinstance(e, RoundAggregated) and e.round == 2]
        runs.append((result.arrays["w"].numpy().tobytes(), dict(result.train_metrics_clientapp),
                     last.num_replies, last.num_failures))

    assert runs[0] == runs[1]
    assert runs[0][2:] == (4, 1)


def test_a_strategy_written_from_scratch_gets_a_list_it_may_go_over_twice() -> None:
    kept = _Kept()
    strategy = _FirstReply()
    strategy.kept = kept

    strategy.start(_grid(), _initial(), num_rounds=1)

    assert kept.kinds == [list]
    assert len(kept.partitions[0]) == 5  # the failed reply too


def test_a_strategy_declaring_streams_replies_gets_a_stream_that_refuses_a_second_pass() -> None:
    kept = _Kept()
    errors: list[str] = []

    class Streaming(_FirstReply):
        streams_replies = True

        def aggregate_train(
            self, server_round: int, replies: Iterable[Message]
        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
            arrays, metrics = super().aggregate_train(server_round, replies)
            try:
                list(replies)
            except StrategyError as exc:
                errors.append(str(exc))
            return arrays, metrics

    strategy = Streaming()
    strategy.kept = kept
    events: list[Event] = []

    strategy.start(_grid(events), _initial(), num_rounds=1)

    (kind,) = kept.kinds
    assert not issubclass(kind, Sequence)
    assert errors == [
        "A round's replies can be iterated only once (they are released as they are used); "
        "take list(replies) first to go over them again."
    ]
    # The replies it did not read were still counted.
    (aggregated,) = [e for e in events if isinstance(e, RoundAggregated)]
    assert (aggregated.num_replies, aggregated.num_failures) == (4, 1)


class _FirstReply(Strategy):
    """Trains every node and keeps the first successful reply's arrays."""

    kept: _Kept

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        content = RecordDict({"arrays": arrays, "config": config})
        return [
            grid.create_message(content, MessageType.TRAIN, node, group_id=str(server_round))
            for node in grid.get_node_ids()
        ]

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        self.kept.kinds.append(type(replies))
        if isinstance(replies, list):
            self.kept.partitions.append([r.metadata.src_node_id for r in replies])
        first = next(r for r in replies if not r.has_error())
        return first.content.array_record("arrays"), None

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return []

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        return None
