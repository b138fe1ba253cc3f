"""FedAvg: what it sends, how it averages replies, and when it declines to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from fedlab.client import ClientApp
from fedlab.context import Context
from fedlab.errors import AggregationError, StrategyError
from fedlab.events import Event, EventBus, RoundAggregated
from fedlab.message import Error, ErrorCode, Message
from fedlab.records import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.simulation import SimulationGrid
from fedlab.strategy import FedAvg


def _instruction(node_id: int, message_type: str = "train") -> Message:
    return Message(RecordDict(), dst_node_id=node_id, message_type=message_type, group_id="1")


def _reply(node_id: int, arrays: dict[str, Any], **metrics: Any) -> Message:
    content = RecordDict(
        {
            "arrays": ArrayRecord(arrays),
            "metrics": MetricRecord({k.replace("_", "-"): v for k, v in metrics.items()}),
        }
    )
    return _instruction(node_id).reply(content)


def _metrics_reply(node_id: int, **metrics: Any) -> Message:
    content = RecordDict(
        {"metrics": MetricRecord({k.replace("_", "-"): v for k, v in metrics.items()})}
    )
    return _instruction(node_id, "evaluate").reply(content)


def _failed(node_id: int) -> Message:
    return _instruction(node_id).reply(
        Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, "ValueError: no data")
    )


def _bf16(bits: list[int]) -> Array:
    """A bfloat16 vector from its raw 16-bit patterns."""
    return Array("bfloat16", (len(bits),), np.array(bits, dtype="<u2").tobytes())


# --- aggregate_train: arrays -----------------------------------------------------------------


def test_fedavg_weights_replies_by_num_examples_for_every_array_dtype() -> None:
    layers = [
        {
            "conv.weight": np.array([[0.5, -1.0, 2.0], [0.1, 0.2, 0.3]], dtype=np.float32),
            "fc.bias": np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float64),
            "bn.num_batches_tracked": np.array(4, dtype=np.int64),
            "emb": np.array([[[1.0]], [[2.0]]], dtype=np.float16),
        },
        {
            "conv.weight": np.array([[1.5, 3.0, -2.0], [0.7, 0.8, 0.9]], dtype=np.float32),
            "fc.bias": np.array([-0.5, 0.25, 1e-3, 7.0], dtype=np.float64),
            "bn.num_batches_tracked": np.array(5, dtype=np.int64),
            "emb": np.array([[[3.0]], [[0.5]]], dtype=np.float16),
        },
        {
            "conv.weight": np.array([[2.5, 0.0, 4.0], [-0.3, 1.1, 2.2]], dtype=np.float32),
            "fc.bias": np.array([1.0, 1.0, 1.0, 1.0], dtype=np.float64),
            "bn.num_batches_tracked": np.array(8, dtype=np.int64),
            "emb": np.array([[[0.25]], [[1.0]]], dtype=np.float16),
        },
    ]
    examples = [10, 30, 60]
    replies = [_reply(11 * (k + 1), layers[k], num_examples=examples[k]) for k in range(3)]

    arrays, _ = FedAvg().aggregate_train(1, replies)

    assert arrays is not None
    assert list(arrays) == ["conv.weight", "fc.bias", "bn.num_batches_tracked", "emb"]
    for name, first in layers[0].items():
        x1, x2, x3 = (np.asarray(layer[name], dtype=np.float64) for layer in layers)
        mean = (10 * x1 + 30 * x2 + 60 * x3) / 100
        expected = np.rint(mean) if first.dtype == np.int64 else mean
        assert arrays[name].dtype == first.dtype.name
        assert arrays[name].shape == first.shape
        np.testing.assert_array_equal(arrays[name].numpy(), expected.astype(first.dtype))
    # spot checks: conv.weight[0, 0] = (10*0.5 + 30*1.5 + 60*2.5)/100 = 2.0;
    # num_batches_tracked = (10*4 + 30*5 + 60*8)/100 = 6.7, rounded to 7
    assert arrays["conv.weight"].numpy()[0, 0] == np.float32(2.0)
    assert arrays["bn.num_batches_tracked"].numpy() == 7


def test_fedavg_averages_bfloat16_arrays() -> None:
    # 0x3F80 = 1.0, 0x4000 = 2.0, 0x4040 = 3.0, 0x3F00 = 0.5
    replies = [
        _reply(1, {"w": _bf16([0x3F80, 0x4000])}, num_examples=1),
        _reply(2, {"w": _bf16([0x4040, 0x3F00])}, num_examples=3),
    ]

    arrays, _ = FedAvg().aggregate_train(1, replies)

    assert arrays is not None
    assert arrays["w"].dtype == "bfloat16"
    # (1*1.0 + 3*3.0)/4 = 2.5 = 0x4020 and (1*2.0 + 3*0.5)/4 = 0.875 = 0x3F60
    assert list(np.frombuffer(arrays["w"].data, dtype="<u2")) == [0x4020, 0x3F60]


def test_fedavg_reads_weights_from_weighted_by_key() -> None:
    replies = [
        _reply(1, {"w": np.array([0.0])}, num_examples=1, batches=3),
        _reply(2, {"w": np.array([4.0])}, num_examples=3, batches=1),
    ]

    arrays, metrics = FedAvg(weighted_by_key="batches").aggregate_train(1, replies)

    assert arrays is not None and metrics is not None
    assert arrays["w"].numpy()[0] == (3 * 0.0 + 1 * 4.0) / 4
    assert metrics == {"batches": 4, "num-examples": (3 * 1 + 1 * 3) / 4}


# --- aggregate_train: metrics ----------------------------------------------------------------


def test_train_metrics_are_weighted_means_except_num_examples_which_is_summed() -> None:
    replies = [
        _reply(1, {"w": np.zeros(1)}, num_examples=10, loss=0.5, per_class=[1.0, 0.0]),
        _reply(2, {"w": np.zeros(1)}, num_examples=30, loss=1.0, per_class=[0.5, 0.25]),
        _reply(3, {"w": np.zeros(1)}, num_examples=60, loss=2.0, per_class=[0.0, 1.0]),
    ]

    _, metrics = FedAvg().aggregate_train(1, replies)

    assert metrics == {
        "num-examples": 100,
        "loss": (10 * 0.5 + 30 * 1.0 + 60 * 2.0) / 100,
        "per-class": [
            (10 * 1.0 + 30 * 0.5 + 60 * 0.0) / 100,
            (10 * 0.0 + 30 * 0.25 + 60 * 1.0) / 100,
        ],
    }


def test_a_custom_train_metrics_aggr_fn_replaces_the_weighted_mean() -> None:
    seen: list[tuple[list[RecordDict], str]] = []

    def worst_loss(contents: Sequence[RecordDict], weighted_by_key: str) -> MetricRecord:
        seen.append((list(contents), weighted_by_key))
        losses = [c["metrics"]["loss"] for c in contents]
        return MetricRecord({"worst-loss": max(losses)})  # type: ignore[type-var]

    replies = [
        _reply(1, {"w": np.zeros(1)}, num_examples=1, loss=0.25),
        _failed(2),
        _reply(3, {"w": np.zeros(1)}, num_examples=1, loss=0.75),
    ]

    _, metrics = FedAvg(train_metrics_aggr_fn=worst_loss).aggregate_train(1, replies)

    assert metrics == {"worst-loss": 0.75}
    # Arrays are already summed and released when metrics are combined: the function
    # gets every successful reply's content without its ArrayRecords.
    assert seen == [
        ([RecordDict({"metrics": r.content["metrics"]}) for r in (replies[0], replies[2])], "num-examples")
    ]


# --- aggregate_train: replies that cannot be averaged ----------------------------------------


def test_a_reply_missing_an_array_is_refused_naming_both_nodes_and_the_key() -> None:
    replies = [
        _reply(11, {"w": np.zeros(2), "b": np.zeros(1)}, num_examples=1),
        _reply(22, {"w": np.zeros(2)}, num_examples=1),
    ]

    with pytest.raises(
        AggregationError, match=r"Node 22 .* node 11's: missing keys \['b'\], extra keys \[\]"
    ):
        FedAvg().aggregate_train(1, replies)


def test_a_reply_with_an_extra_array_is_refused_naming_both_nodes_and_the_key() -> None:
    replies = [
        _reply(11, {"w": np.zeros(2)}, num_examples=1),
        _reply(22, {"w": np.zeros(2), "head": np.zeros(1)}, num_examples=1),
    ]

    with pytest.raises(
        AggregationError, match=r"Node 22 .* node 11's: missing keys \[\], extra keys \['head'\]"
    ):
        FedAvg().aggregate_train(1, replies)


def test_a_reply_with_a_different_shape_is_refused_naming_both_nodes_and_the_key() -> None:
    replies = [
        _reply(11, {"w": np.zeros((2, 2))}, num_examples=1),
        _reply(22, {"w": np.zeros(4)}, num_examples=1),
    ]

    with pytest.raises(
        AggregationError, match=r"Array 'w' has shape \(4,\) from node 22 but \(2, 2\) from node 11"
    ):
        FedAvg().aggregate_train(1, replies)


def test_a_reply_with_two_array_records_is_refused_saying_what_to_send() -> None:
    content = RecordDict(
        {
            "model": ArrayRecord({"w": np.zeros(1)}),
            "optimizer": ArrayRecord({"m": np.zeros(1)}),
            "metrics": MetricRecord({"num-examples": 1}),
        }
    )
    replies = [_reply(11, {"w": np.zeros(1)}, num_examples=1), _instruction(22).reply(content)]

    with pytest.raises(AggregationError) as info:
        FedAvg().aggregate_train(1, replies)

    assert str(info.value) == (
        "The reply of node 22 holds 2 ArrayRecords (['model', 'optimizer']); built-in strategies "
        "need exactly one. Reply with RecordDict({'arrays': ArrayRecord(...), "
        "'metrics': MetricRecord(...)})."
    )


def test_a_reply_without_num_examples_is_refused_saying_what_to_report() -> None:
    replies = [
        _reply(11, {"w": np.zeros(1)}, num_examples=1),
        _reply(22, {"w": np.zeros(1)}, loss=0.5),
    ]

    with pytest.raises(AggregationError) as info:
        FedAvg().aggregate_train(1, replies)

    assert str(info.value) == (
        "The reply of node 22 has no scalar metric 'num-examples' (its metrics: ['loss']); "
        "report it, e.g. MetricRecord({'num-examples': len(train_data), ...})."
    )


def test_a_reply_without_metrics_is_refused_saying_what_to_send() -> None:
    content = RecordDict({"arrays": ArrayRecord({"w": np.zeros(1)})})
    replies = [_reply(11, {"w": np.zeros(1)}, num_examples=1), _instruction(22).reply(content)]

    with pytest.raises(AggregationError, match=r"node 22 holds 0 MetricRecords \(\[\]\)"):
        FedAvg().aggregate_train(1, replies)


# --- aggregate_train: failed replies ---------------------------------------------------------


def test_failed_replies_are_ignored_and_the_others_aggregated() -> None:
    replies = [
        _failed(5),
        _reply(11, {"w": np.array([1.0, 2.0])}, num_examples=1, loss=1.0),
        _failed(6),
        _reply(22, {"w": np.array([3.0, 6.0])}, num_examples=3, loss=3.0),
    ]

    arrays, metrics = FedAvg().aggregate_train(1, replies)

    assert arrays is not None
    np.testing.assert_array_equal(
        arrays["w"].numpy(), [(1 * 1.0 + 3 * 3.0) / 4, (1 * 2.0 + 3 * 6.0) / 4]
    )
    assert metrics == {"num-examples": 4, "loss": (1 * 1.0 + 3 * 3.0) / 4}


def test_fewer_successful_replies_than_min_train_nodes_aggregate_to_nothing() -> None:
    replies = [
        _reply(11, {"w": np.zeros(1)}, num_examples=1),
        _reply(22, {"w": np.zeros(1)}, num_examples=1),
        _failed(33),
    ]

    assert FedAvg(min_train_nodes=3).aggregate_train(1, replies) == (None, None)


def test_a_round_where_every_reply_failed_aggregates_to_nothing() -> None:
    assert FedAvg(min_train_nodes=0).aggregate_train(1, [_failed(1), _failed(2)]) == (None, None)


def _client_app(failing_partitions: Sequence[int]) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        pid = ctx.node_config["partition-id"]
        if pid in failing_partitions:
            raise ValueError(f"partition {pid} is corrupt")
        arrays = msg.content["arrays"]
        assert isinstance(arrays, ArrayRecord)
        trained = ArrayRecord({"w": arrays["w"].numpy() + 1.0})
        return msg.reply(
            RecordDict({"arrays": trained, "metrics": MetricRecord({"num-examples": 5})})
        )

    return app


def test_a_round_with_too_few_replies_keeps_the_arrays_and_says_so_in_its_event() -> None:
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    grid = SimulationGrid(_client_app(failing_partitions=[1]), 3, seed=4, events=bus)
    initial = ArrayRecord({"w": np.array([0.5, -0.5])})
    server_seen: list[tuple[int, list[float]]] = []

    def evaluate_fn(rnd: int, arrays: ArrayRecord) -> None:
        server_seen.append((rnd, arrays["w"].numpy().tolist()))

    strategy = FedAvg(min_train_nodes=3, min_available_nodes=3, fraction_evaluate=0.0)
    result = strategy.start(grid, initial, num_rounds=2, evaluate_fn=evaluate_fn, seed=1)

    aggregated = [e for e in events if isinstance(e, RoundAggregated)]
    assert [(e.round, e.aggregated, e.num_replies, e.num_failures) for e in aggregated] == [
        (1, False, 2, 1),
        (2, False, 2, 1),
    ]
    assert aggregated[0].reason == (
        "2 of 3 replies succeeded, too few to aggregate; the global arrays are unchanged this round"
    )
    assert aggregated[0].metrics == {}
    assert result.arrays == initial
    assert result.train_metrics_clientapp == {}
    assert server_seen == [(0, [0.5, -0.5]), (1, [0.5, -0.5]), (2, [0.5, -0.5])]


# --- aggregate_evaluate ----------------------------------------------------------------------


def test_evaluate_metrics_are_weighted_means_except_num_examples_which_is_summed() -> None:
    replies = [
        _metrics_reply(1, num_examples=20, accuracy=0.5),
        _failed(2),
        _metrics_reply(3, num_examples=80, accuracy=0.75),
    ]

    metrics = FedAvg().aggregate_evaluate(1, replies)

    assert metrics == {"num-examples": 100, "accuracy": (20 * 0.5 + 80 * 0.75) / 100}


def test_a_custom_evaluate_metrics_aggr_fn_replaces_the_weighted_mean() -> None:
    def count(contents: Sequence[RecordDict], weighted_by_key: str) -> MetricRecord:
        return MetricRecord({"answered": len(contents)})

    replies = [_metrics_reply(1, num_examples=1), _metrics_reply(2, num_examples=1)]

    assert FedAvg(evaluate_metrics_aggr_fn=count).aggregate_evaluate(1, replies) == {"answered": 2}


def test_fewer_successful_evaluations_than_min_evaluate_nodes_give_no_metrics() -> None:
    replies = [_metrics_reply(1, num_examples=1, accuracy=0.5), _failed(2)]

    assert FedAvg(min_evaluate_nodes=2).aggregate_evaluate(1, replies) is None


# --- configure_train / configure_evaluate ----------------------------------------------------


def test_configure_train_sends_the_arrays_and_config_to_every_sampled_node() -> None:
    grid = SimulationGrid(ClientApp(), 4, seed=0, run_id=9)
    arrays = ArrayRecord({"w": np.ones(3)})
    config = ConfigRecord({"lr": 0.1, "server-round": 3})
    strategy = FedAvg(arrayrecord_key="weights", configrecord_key="hyper")

    messages = list(strategy.configure_train(3, arrays, config, grid))

    assert sorted(m.metadata.dst_node_id for m in messages) == sorted(grid.get_node_ids())
    for message in messages:
        assert (message.metadata.message_type, message.metadata.group_id) == ("train", "3")
        assert message.metadata.run_id == 9
        assert message.content == RecordDict({"weights": arrays, "hyper": config})


def test_configure_evaluate_sends_evaluate_messages_to_a_fraction_of_the_nodes() -> None:
    grid = SimulationGrid(ClientApp(), 10, seed=0)
    strategy = FedAvg(fraction_evaluate=0.3, min_evaluate_nodes=1)

    messages = list(strategy.configure_evaluate(2, ArrayRecord(), ConfigRecord(), grid))

    assert len(messages) == int(10 * 0.3)
    assert {m.metadata.message_type for m in messages} == {"evaluate"}
    assert len({m.metadata.dst_node_id for m in messages}) == 3


def test_configure_evaluate_sends_nothing_when_fraction_evaluate_is_zero() -> None:
    grid = SimulationGrid(ClientApp(), 4, seed=0)

    assert (
        list(
            FedAvg(fraction_evaluate=0.0).configure_evaluate(1, ArrayRecord(), ConfigRecord(), grid)
        )
        == []
    )


def test_min_train_nodes_raises_the_sample_above_the_fraction() -> None:
    grid = SimulationGrid(ClientApp(), 10, seed=0)
    strategy = FedAvg(fraction_train=0.1, min_train_nodes=4)

    messages = list(strategy.configure_train(1, ArrayRecord(), ConfigRecord(), grid))

    assert len({m.metadata.dst_node_id for m in messages}) == max(int(10 * 0.1), 4)


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"fraction_train": 1.5}, "fraction_train must be between 0 and 1, got 1.5."),
        ({"fraction_train": -0.1}, "fraction_train must be between 0 and 1, got -0.1."),
        ({"fraction_evaluate": 2}, "fraction_evaluate must be between 0 and 1, got 2."),
        ({"min_train_nodes": -1}, "min_train_nodes must be a non-negative int, got -1."),
        ({"min_evaluate_nodes": 1.5}, "min_evaluate_nodes must be a non-negative int, got 1.5."),
        ({"min_available_nodes": "3"}, "min_available_nodes must be a non-negative int, got '3'."),
    ],
)
def test_settings_out_of_range_are_refused_naming_the_setting(
    setting: dict[str, Any], message: str
) -> None:
    with pytest.raises(StrategyError) as info:
        FedAvg(**setting)

    assert str(info.value) == message
