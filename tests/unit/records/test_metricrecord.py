"""MetricRecord: str -> int | float | list[int] | list[float]."""

from __future__ import annotations

import numpy as np
import pytest

from fedlab.errors import RecordError
from fedlab.records import ConfigRecord, MetricRecord


def test_ints_floats_and_lists_of_them_are_stored_as_given() -> None:
    record = MetricRecord(
        {"loss": 0.25, "num-examples": 72, "per-class": [0.5, 0.75], "ids": [1, 2]}
    )

    assert dict(record) == {
        "loss": 0.25,
        "num-examples": 72,
        "per-class": [0.5, 0.75],
        "ids": [1, 2],
    }
    assert list(record) == ["loss", "num-examples", "per-class", "ids"]


def test_numpy_scalars_are_accepted_and_stored_as_python_numbers() -> None:
    record = MetricRecord(
        {"f32": np.float32(0.5), "f64": np.float64(0.25), "i64": np.int64(7), "u8": np.uint8(3)}
    )

    assert dict(record) == {"f32": 0.5, "f64": 0.25, "i64": 7, "u8": 3}
    assert [type(v) for v in record.values()] == [float, float, int, int]


def test_numpy_scalars_inside_lists_are_stored_as_python_numbers() -> None:
    record = MetricRecord({"acc": [np.float32(0.5), np.float32(0.25)], "n": (np.int32(1), 2)})

    assert record["acc"] == [0.5, 0.25] and all(type(v) is float for v in record["acc"])
    assert record["n"] == [1, 2] and all(type(v) is int for v in record["n"])


def test_0_d_torch_tensors_and_numpy_arrays_are_stored_as_python_numbers_like_numpy_scalars() -> None:
    import torch

    record = MetricRecord(
        {
            "loss": torch.tensor(0.25),
            "correct": torch.tensor(7),
            "half": torch.tensor(0.5, dtype=torch.float16),
            "grad": torch.tensor(1.5, requires_grad=True),
            "acc": np.array(0.75),
            "n": np.array(3, dtype=np.int32),
            "np": np.float32(0.5),
        }
    )

    assert dict(record) == {
        "loss": 0.25, "correct": 7, "half": 0.5, "grad": 1.5, "acc": 0.75, "n": 3, "np": 0.5
    }
    assert [type(v) for v in record.values()] == [float, int, float, float, float, int, float]


def test_0_d_tensors_inside_lists_are_stored_as_python_numbers() -> None:
    import torch

    record = MetricRecord({"curve": [torch.tensor(1.0), np.float32(2.0), np.array(3.0)]})

    assert record["curve"] == [1.0, 2.0, 3.0] and all(type(v) is float for v in record["curve"])


def test_a_tensor_or_array_with_elements_is_refused_saying_how_to_convert_it() -> None:
    import torch

    with pytest.raises(RecordError) as info:
        MetricRecord({"w": torch.zeros(3)})
    assert str(info.value) == (
        "MetricRecord['w'] got a value of type Tensor (shape (3,)); allowed types are "
        "int | float and lists of them. Convert it with .tolist() (.item() for one number), "
        "or send arrays in an ArrayRecord."
    )
    with pytest.raises(RecordError, match=r"type ndarray \(shape \(2, 2\)\); allowed"):
        MetricRecord({"w": np.zeros((2, 2))})


def test_a_0_d_bool_tensor_is_refused_like_a_bool() -> None:
    import torch

    with pytest.raises(RecordError, match=r"MetricRecord\['done'\] got a value of type Tensor"):
        MetricRecord({"done": torch.tensor(True)})


def test_tuples_are_stored_as_lists() -> None:
    assert MetricRecord({"x": (1.0, 2.0)})["x"] == [1.0, 2.0]


def test_empty_lists_are_allowed() -> None:
    assert MetricRecord({"x": []})["x"] == []


@pytest.mark.parametrize("value", [True, np.bool_(False)], ids=["bool", "numpy-bool"])
def test_bools_are_rejected_naming_the_key_the_type_and_the_allowed_types(value: object) -> None:
    with pytest.raises(RecordError) as info:
        MetricRecord({"converged": value})

    message = str(info.value)
    assert "'converged'" in message and "type bool" in message and "int | float" in message


def test_bools_inside_lists_are_rejected_as_list_items() -> None:
    with pytest.raises(RecordError, match=r"\['flags'\] got a list item of type bool"):
        MetricRecord({"flags": [True, False]})


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ("high", "str"),
        (None, "NoneType"),
        (b"x", "bytes"),
        (1 + 2j, "complex"),
        (np.complex128(1 + 2j), "complex128"),
        (np.zeros(3), "ndarray"),
        ({"a": 1}, "dict"),
        (np.datetime64(5, "ns"), "datetime64"),
        (np.timedelta64(5, "ns"), "timedelta64"),
        (np.str_("x"), "str"),
    ],
)
def test_values_of_other_types_fail_naming_the_key_the_type_and_the_allowed_types(
    value: object, type_name: str
) -> None:
    with pytest.raises(RecordError) as info:
        MetricRecord({"acc": value})

    message = str(info.value)
    assert "MetricRecord['acc']" in message
    assert f"type {type_name}" in message
    assert "allowed types are int | float and lists of them" in message


def test_lists_mixing_ints_and_floats_are_rejected_naming_both_types() -> None:
    with pytest.raises(RecordError, match=r"\['curve'\] is a list mixing \['float', 'int'\]"):
        MetricRecord({"curve": [1, 2.5]})


def test_nested_lists_are_rejected() -> None:
    with pytest.raises(RecordError, match="list item of type list"):
        MetricRecord({"m": [[1, 2], [3, 4]]})


def test_values_set_after_construction_are_checked_too() -> None:
    record = MetricRecord()

    record["loss"] = np.float64(1.5)
    with pytest.raises(RecordError, match="'name'"):
        record["name"] = "x"  # type: ignore[assignment]

    assert dict(record) == {"loss": 1.5}
    assert type(record["loss"]) is float


def test_non_str_keys_are_rejected() -> None:
    with pytest.raises(RecordError, match="keys must be str, got int"):
        MetricRecord({1: 0.5})  # type: ignore[dict-item]


def test_building_from_something_other_than_a_mapping_fails() -> None:
    with pytest.raises(RecordError, match="dict of str keys, got list"):
        MetricRecord([("loss", 0.5)])  # type: ignore[arg-type]


def test_behaves_as_a_mutable_mapping() -> None:
    record = MetricRecord({"a": 1, "b": 2.0})

    del record["a"]
    record.update({"c": 3})

    assert dict(record) == {"b": 2.0, "c": 3} and len(record) == 2 and "a" not in record


def test_copy_is_a_metric_record_whose_changes_leave_the_original_alone() -> None:
    original = MetricRecord({"loss": 0.5, "curve": [1.0, 2.0]})

    copied = original.copy()
    copied["loss"] = 9.0
    copied["curve"].append(3.0)  # type: ignore[union-attr]
    copied["new"] = 1

    assert type(copied) is MetricRecord
    assert dict(original) == {"loss": 0.5, "curve": [1.0, 2.0]}


def test_equals_a_dict_with_the_same_items_but_not_a_config_record() -> None:
    record = MetricRecord({"loss": 0.5})

    assert record == {"loss": 0.5}
    assert record == MetricRecord({"loss": 0.5})
    assert record != ConfigRecord({"loss": 0.5})
    assert record != MetricRecord({"loss": 0.6})


def test_repr_shows_the_class_and_the_items() -> None:
    assert repr(MetricRecord({"loss": 0.5})) == "MetricRecord({'loss': 0.5})"
