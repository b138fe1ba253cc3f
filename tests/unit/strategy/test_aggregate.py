"""Weighted averaging of replies' arrays and metrics (fedlab.strategy._aggregate)."""

from __future__ import annotations

import numpy as np
import pytest

from fedlab.errors import AggregationError
from fedlab.message import Message
from fedlab.records import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.strategy._aggregate import (
    reply_weight,
    single_record,
    weighted_average_arrays,
    weighted_average_metrics,
)


def _bf16(bits: list[int], shape: tuple[int, ...]) -> Array:
    """A bfloat16 Array from its raw 16-bit patterns (sign, 8 exponent bits, 7 mantissa bits)."""
    return Array("bfloat16", shape, np.array(bits, dtype="<u2").tobytes())


def _bits(array: Array) -> list[int]:
    return [int(b) for b in np.frombuffer(array.data, dtype="<u2")]


def _reply(node_id: int, content: RecordDict) -> Message:
    instruction = Message(RecordDict(), dst_node_id=node_id, message_type="train", group_id="1")
    return instruction.reply(content)


# --- arrays ----------------------------------------------------------------------------------


def test_float_arrays_are_the_mean_weighted_by_each_replys_weight() -> None:
    x1 = np.array([[0.5, -1.0], [2.0, 8.0]])
    x2 = np.array([[1.5, 3.0], [-2.0, 0.25]])
    x3 = np.array([[0.1, 0.2], [0.3, 0.4]])

    out = weighted_average_arrays(
        [
            (1, ArrayRecord({"w": x1}), 2.0),
            (2, ArrayRecord({"w": x2}), 5.0),
            (3, ArrayRecord({"w": x3}), 13.0),
        ]
    )

    np.testing.assert_array_equal(out["w"].numpy(), (2 * x1 + 5 * x2 + 13 * x3) / 20)
    assert out["w"].dtype == "float64"


def test_a_reply_with_zero_weight_does_not_move_the_average() -> None:
    heavy = np.array([1.25, -3.5], dtype=np.float32)
    ignored = np.array([1000.0, 1000.0], dtype=np.float32)

    out = weighted_average_arrays(
        [(1, ArrayRecord({"w": ignored}), 0.0), (2, ArrayRecord({"w": heavy}), 9.0)]
    )

    np.testing.assert_array_equal(out["w"].numpy(), heavy)


def test_scalar_arrays_get_every_replys_contribution() -> None:
    # 0-d arrays, like BatchNorm's num_batches_tracked or a learned temperature.
    out = weighted_average_arrays(
        [
            (1, ArrayRecord({"t": np.float32(1.0)}), 1.0),
            (2, ArrayRecord({"t": np.float32(2.0)}), 1.0),
            (3, ArrayRecord({"t": np.float32(4.0)}), 2.0),
        ]
    )

    assert out["t"].shape == ()
    assert out["t"].numpy() == np.float32((1 * 1.0 + 1 * 2.0 + 2 * 4.0) / 4)  # 2.75


def test_integer_arrays_are_rounded_to_the_nearest_integer() -> None:
    out = weighted_average_arrays(
        [
            (1, ArrayRecord({"n": np.array(4, np.int64), "v": np.array([1, 10], np.int32)}), 10.0),
            (2, ArrayRecord({"n": np.array(5, np.int64), "v": np.array([2, 20], np.int32)}), 30.0),
            (3, ArrayRecord({"n": np.array(8, np.int64), "v": np.array([2, 21], np.int32)}), 60.0),
        ]
    )

    # n: (10*4 + 30*5 + 60*8) / 100 = 6.7 -> 7 (truncating would give 6)
    assert out["n"].dtype == "int64"
    assert out["n"].numpy() == 7
    # v: (10*1 + 30*2 + 60*2) / 100 = 1.9 -> 2 and (10*10 + 30*20 + 60*21) / 100 = 19.6 -> 20
    assert out["v"].dtype == "int32"
    np.testing.assert_array_equal(out["v"].numpy(), [2, 20])


def test_bool_arrays_take_the_weighted_majority() -> None:
    out = weighted_average_arrays(
        [
            (1, ArrayRecord({"mask": np.array([True, True, False])}), 3.0),
            (2, ArrayRecord({"mask": np.array([False, True, True])}), 1.0),
        ]
    )

    # weighted share of True: 3/4, 4/4, 1/4
    assert out["mask"].dtype == "bool"
    np.testing.assert_array_equal(out["mask"].numpy(), [True, True, False])


def test_complex_arrays_keep_their_imaginary_part() -> None:
    z1 = np.array([1 + 2j, -1j], dtype=np.complex64)
    z2 = np.array([3 - 2j, 4 + 1j], dtype=np.complex64)

    out = weighted_average_arrays(
        [(1, ArrayRecord({"z": z1}), 1.0), (2, ArrayRecord({"z": z2}), 3.0)]
    )

    assert out["z"].dtype == "complex64"
    np.testing.assert_array_equal(
        out["z"].numpy(), [(1 + 2j + 3 * (3 - 2j)) / 4, (-1j + 3 * (4 + 1j)) / 4]
    )


def test_float16_arrays_stay_float16() -> None:
    h1 = np.array([0.5, 1.0], dtype=np.float16)
    h2 = np.array([1.5, 3.0], dtype=np.float16)

    out = weighted_average_arrays(
        [(1, ArrayRecord({"h": h1}), 1.0), (2, ArrayRecord({"h": h2}), 1.0)]
    )

    assert out["h"].dtype == "float16"
    np.testing.assert_array_equal(out["h"].numpy(), np.array([1.0, 2.0], dtype=np.float16))


def test_bfloat16_arrays_are_averaged_as_the_numbers_they_encode() -> None:
    # 0x3F80 = 1.0, 0x4000 = 2.0, 0xBFC0 = -1.5, 0x4040 = 3.0, 0x3F00 = 0.5, 0x3F81 = 1 + 2**-7
    first = _bf16([0x3F80, 0x4000, 0xBFC0, 0x3F80], (2, 2))
    second = _bf16([0x4040, 0x3F00, 0xBFC0, 0x3F81], (2, 2))

    out = weighted_average_arrays(
        [(1, ArrayRecord({"w": first}), 1.0), (2, ArrayRecord({"w": second}), 3.0)]
    )

    assert (out["w"].dtype, out["w"].shape) == ("bfloat16", (2, 2))
    # (1*1.0 + 3*3.0)/4 = 2.5 -> 0x4020; (1*2.0 + 3*0.5)/4 = 0.875 -> 0x3F60; -1.5 -> 0xBFC0;
    # (1*1.0 + 3*(1 + 2**-7))/4 = 1 + 0.75 * 2**-7, nearer 1 + 2**-7 than 1.0 -> 0x3F81
    assert _bits(out["w"]) == [0x4020, 0x3F60, 0xBFC0, 0x3F81]


def test_bfloat16_ties_round_to_the_even_neighbour() -> None:
    # 0x3F80 = 1.0, 0x3F81 = 1 + 2**-7, 0x3F82 = 1 + 2**-6
    first = _bf16([0x3F80, 0x3F81], (2,))
    second = _bf16([0x3F81, 0x3F82], (2,))

    out = weighted_average_arrays(
        [(1, ArrayRecord({"w": first}), 1.0), (2, ArrayRecord({"w": second}), 1.0)]
    )

    # 1 + 2**-8 lies halfway between 0x3F80 and 0x3F81: the even one, 0x3F80, wins;
    # 1 + 3 * 2**-8 lies halfway between 0x3F81 and 0x3F82: 0x3F82 wins.
    assert _bits(out["w"]) == [0x3F80, 0x3F82]


def test_a_bfloat16_mean_just_above_a_tie_rounds_up() -> None:
    # With these weights the mean is 1 + 2**-8 + 2**-30: just above the midpoint between
    # 0x3F80 (1.0) and 0x3F81 (1 + 2**-7). float32 cannot tell it from the midpoint, so
    # rounding to float32 first and then to bfloat16 would wrongly give 0x3F80.
    low, high = float(2**22 - 1), float(2**22 + 1)
    first = _bf16([0x3F80], (1,))
    second = _bf16([0x3F81], (1,))

    out = weighted_average_arrays(
        [(1, ArrayRecord({"w": first}), low), (2, ArrayRecord({"w": second}), high)]
    )

    assert (low * 1.0 + high * (1 + 2**-7)) / (low + high) == 1 + 2**-8 + 2**-30
    assert _bits(out["w"]) == [0x3F81]


def test_the_result_follows_the_first_replys_key_order() -> None:
    a1, b1 = np.array([1.0]), np.array([10.0])
    a2, b2 = np.array([3.0]), np.array([30.0])

    out = weighted_average_arrays(
        [(1, ArrayRecord({"a": a1, "b": b1}), 1.0), (2, ArrayRecord({"b": b2, "a": a2}), 1.0)]
    )

    assert list(out) == ["a", "b"]
    assert (out["a"].numpy()[0], out["b"].numpy()[0]) == ((1.0 + 3.0) / 2, (10.0 + 30.0) / 2)


def test_a_missing_key_is_reported_with_both_nodes_and_the_keys() -> None:
    full = ArrayRecord({"w": np.zeros(2), "b": np.zeros(1)})
    partial = ArrayRecord({"w": np.zeros(2)})

    with pytest.raises(AggregationError) as info:
        weighted_average_arrays([(11, full, 1.0), (22, partial, 1.0)])

    assert str(info.value) == (
        "Node 22 replied with arrays that do not match node 11's: missing keys ['b'], "
        "extra keys []. Every client must return the same model."
    )


def test_an_extra_key_is_reported_with_both_nodes_and_the_keys() -> None:
    plain = ArrayRecord({"w": np.zeros(2)})
    extended = ArrayRecord({"w": np.zeros(2), "head.bias": np.zeros(1)})

    with pytest.raises(
        AggregationError,
        match=r"Node 33 .* node 11's: missing keys \[\], extra keys \['head.bias'\]",
    ):
        weighted_average_arrays([(11, plain, 1.0), (22, plain, 1.0), (33, extended, 1.0)])


def test_a_different_shape_is_reported_with_both_nodes_and_both_shapes() -> None:
    with pytest.raises(AggregationError) as info:
        weighted_average_arrays(
            [
                (11, ArrayRecord({"w": np.zeros((2, 3))}), 1.0),
                (22, ArrayRecord({"w": np.zeros((3, 2))}), 1.0),
            ]
        )

    assert str(info.value) == (
        "Array 'w' has shape (3, 2) from node 22 but (2, 3) from node 11. "
        "Every client must return the same model."
    )


def test_weights_that_are_all_zero_are_refused() -> None:
    with pytest.raises(AggregationError, match="weight of 0"):
        weighted_average_arrays([(1, ArrayRecord({"w": np.ones(2)}), 0.0)])


def test_nothing_to_aggregate_is_refused() -> None:
    with pytest.raises(AggregationError, match="no replies"):
        weighted_average_arrays([])


# --- metrics ---------------------------------------------------------------------------------


def _metrics(**values: object) -> RecordDict:
    return RecordDict(
        {"metrics": MetricRecord({k.replace("_", "-"): v for k, v in values.items()})}
    )


def test_metrics_are_weighted_means_and_the_weight_key_is_summed() -> None:
    contents = [
        _metrics(loss=0.5, accuracy=0.25, num_examples=10),
        _metrics(loss=1.0, accuracy=0.75, num_examples=30),
        _metrics(loss=2.0, accuracy=0.5, num_examples=60),
    ]

    out = weighted_average_metrics(contents, "num-examples")

    assert out == {
        "num-examples": 10 + 30 + 60,
        "loss": (10 * 0.5 + 30 * 1.0 + 60 * 2.0) / 100,
        "accuracy": (10 * 0.25 + 30 * 0.75 + 60 * 0.5) / 100,
    }
    assert isinstance(out["num-examples"], int)


def test_list_metrics_are_averaged_element_wise() -> None:
    contents = [
        _metrics(per_class=[1.0, 0.0, 0.5], num_examples=1),
        _metrics(per_class=[0.0, 1.0, 0.25], num_examples=3),
    ]

    out = weighted_average_metrics(contents, "num-examples")

    assert out["per-class"] == [
        (1 * 1.0 + 3 * 0.0) / 4,
        (1 * 0.0 + 3 * 1.0) / 4,
        (1 * 0.5 + 3 * 0.25) / 4,
    ]


def test_a_metric_missing_from_some_replies_is_averaged_over_those_that_have_it() -> None:
    contents = [
        _metrics(loss=1.0, f1=0.5, num_examples=2),
        _metrics(loss=3.0, num_examples=6),
    ]

    out = weighted_average_metrics(contents, "num-examples")

    assert out == {"num-examples": 8, "loss": (2 * 1.0 + 6 * 3.0) / 8, "f1": 0.5}


def test_replies_without_the_weight_key_count_once_and_no_total_is_reported() -> None:
    out = weighted_average_metrics([_metrics(loss=1.0), _metrics(loss=4.0)], "num-examples")

    assert out == {"loss": (1.0 + 4.0) / 2}


def test_metrics_spread_over_several_metric_records_are_merged() -> None:
    content = RecordDict(
        {"train": MetricRecord({"loss": 0.5}), "meta": MetricRecord({"num-examples": 4})}
    )

    out = weighted_average_metrics([content, _metrics(loss=1.5, num_examples=4)], "num-examples")

    assert out == {"num-examples": 8, "loss": (4 * 0.5 + 4 * 1.5) / 8}


def test_list_metrics_of_different_lengths_are_refused() -> None:
    contents = [
        _metrics(per_class=[1.0, 0.0], num_examples=1),
        _metrics(per_class=[1.0], num_examples=1),
    ]

    with pytest.raises(
        AggregationError, match="'per-class' has 1 values in one reply and 2 in another"
    ):
        weighted_average_metrics(contents, "num-examples")


# --- reading a reply -------------------------------------------------------------------------


def test_a_reply_with_two_array_records_is_refused_with_what_to_send_instead() -> None:
    reply = _reply(
        42,
        RecordDict(
            {"model": ArrayRecord({"w": np.zeros(1)}), "extra": ArrayRecord({"w": np.zeros(1)})}
        ),
    )

    with pytest.raises(AggregationError) as info:
        single_record(reply, ArrayRecord)

    assert str(info.value) == (
        "The reply of node 42 holds 2 ArrayRecords (['model', 'extra']); built-in strategies "
        "need exactly one. Reply with RecordDict({'arrays': ArrayRecord(...), "
        "'metrics': MetricRecord(...)})."
    )


def test_single_record_returns_the_name_and_the_record() -> None:
    arrays = ArrayRecord({"w": np.zeros(1)})
    reply = _reply(42, RecordDict({"weights": arrays, "config": ConfigRecord({"x": 1})}))

    assert single_record(reply, ArrayRecord) == ("weights", arrays)


def test_reply_weight_reads_the_weight_key() -> None:
    reply = _reply(42, _metrics(loss=0.1, num_examples=17))

    assert reply_weight(reply, "num-examples") == 17.0


def test_a_reply_without_the_weight_key_is_refused_with_what_to_report() -> None:
    reply = _reply(42, _metrics(loss=0.1))

    with pytest.raises(AggregationError) as info:
        reply_weight(reply, "num-examples")

    assert str(info.value) == (
        "The reply of node 42 has no scalar metric 'num-examples' (its metrics: ['loss']); "
        "report it, e.g. MetricRecord({'num-examples': len(train_data), ...})."
    )


def test_a_list_weight_is_refused() -> None:
    reply = _reply(42, _metrics(num_examples=[1, 2]))

    with pytest.raises(AggregationError, match="no scalar metric 'num-examples'"):
        reply_weight(reply, "num-examples")


def test_a_negative_weight_is_refused() -> None:
    reply = _reply(42, _metrics(num_examples=-3))

    with pytest.raises(
        AggregationError, match=r"Node 42 reported num-examples=-3; weights must be >= 0"
    ):
        reply_weight(reply, "num-examples")


def test_replies_with_a_different_dtype_are_refused_naming_both_nodes() -> None:
    from fedlab.errors import AggregationError
    from fedlab.records import ArrayRecord
    from fedlab.strategy._aggregate import weighted_average_arrays

    items = [
        (11, ArrayRecord({"w": np.zeros(2, np.float32)}), 1.0),
        (22, ArrayRecord({"w": np.zeros(2, np.float64)}), 1.0),
    ]
    with pytest.raises(AggregationError, match=r"'w' has dtype float64 from node 22 but float32 from node 11"):
        weighted_average_arrays(items)
