"""ConfigRecord: str -> int | float | str | bytes | bool, or a list of one of them."""

from __future__ import annotations

import numpy as np
import pytest

from fedlab.errors import RecordError
from fedlab.records import ConfigRecord, MetricRecord


def test_every_allowed_scalar_type_and_lists_of_them_are_stored_as_given() -> None:
    values = {
        "epochs": 3,
        "lr": 0.05,
        "optimizer": "sgd",
        "salt": b"\x00\x01",
        "nesterov": True,
        "milestones": [10, 20],
        "betas": [0.9, 0.999],
        "layers": ["fc", "conv"],
        "blobs": [b"a", b"b"],
        "freeze": [True, False],
    }

    record = ConfigRecord(values)

    assert dict(record) == values
    assert list(record) == list(values)
    assert record["nesterov"] is True


def test_bools_are_allowed_and_stay_bools() -> None:
    record = ConfigRecord({"flag": np.bool_(True), "flags": [np.bool_(False), True]})

    assert record["flag"] is True
    assert record["flags"] == [False, True] and all(type(v) is bool for v in record["flags"])


def test_numpy_scalars_are_stored_as_python_values() -> None:
    record = ConfigRecord(
        {
            "lr": np.float32(0.5),
            "epochs": np.int64(3),
            "name": np.str_("sgd"),
            "raw": np.bytes_(b"x"),
        }
    )

    assert dict(record) == {"lr": 0.5, "epochs": 3, "name": "sgd", "raw": b"x"}
    assert [type(v) for v in record.values()] == [float, int, str, bytes]


def test_0_d_tensors_and_arrays_are_stored_as_python_values() -> None:
    import torch

    record = ConfigRecord(
        {"lr": torch.tensor(0.5), "epochs": torch.tensor(2), "flag": torch.tensor(True), "name": np.array("sgd")}
    )

    assert dict(record) == {"lr": 0.5, "epochs": 2, "flag": True, "name": "sgd"}
    assert [type(v) for v in record.values()] == [float, int, bool, str]


def test_a_list_of_strings_may_hold_numpy_strings() -> None:
    record = ConfigRecord({"layers": ["fc", np.str_("conv")]})

    assert record["layers"] == ["fc", "conv"]
    assert all(type(v) is str for v in record["layers"])


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (None, "NoneType"),
        ({"nested": 1}, "dict"),
        (1 + 2j, "complex"),
        (np.zeros(2), "ndarray"),
        (np.datetime64(1, "ns"), "datetime64"),
        (object(), "object"),
    ],
)
def test_values_of_other_types_fail_naming_the_key_the_type_and_the_allowed_types(
    value: object, type_name: str
) -> None:
    with pytest.raises(RecordError) as info:
        ConfigRecord({"opt": value})

    message = str(info.value)
    assert "ConfigRecord['opt']" in message
    assert f"type {type_name}" in message
    assert "allowed types are int | float | str | bytes | bool and lists of them" in message


@pytest.mark.parametrize(
    ("value", "kinds"),
    [([1, "a"], "['int', 'str']"), ([True, 1], "['bool', 'int']"), ([1, 1.5], "['float', 'int']")],
)
def test_lists_mixing_types_are_rejected_naming_the_types(value: list, kinds: str) -> None:
    with pytest.raises(RecordError) as info:
        ConfigRecord({"mix": value})

    assert f"['mix'] is a list mixing {kinds}" in str(info.value)


def test_a_list_item_of_a_wrong_type_fails_as_a_list_item() -> None:
    with pytest.raises(RecordError, match=r"\['xs'\] got a list item of type NoneType"):
        ConfigRecord({"xs": ["a", None]})


def test_non_str_keys_are_rejected() -> None:
    with pytest.raises(RecordError, match="ConfigRecord keys must be str, got bytes"):
        ConfigRecord({b"lr": 0.1})  # type: ignore[dict-item]


def test_values_set_after_construction_are_checked_too() -> None:
    record = ConfigRecord({"lr": 0.1})

    with pytest.raises(RecordError, match="'sched'"):
        record["sched"] = None  # type: ignore[assignment]

    assert dict(record) == {"lr": 0.1}


def test_copy_is_a_config_record_whose_changes_leave_the_original_alone() -> None:
    original = ConfigRecord({"lr": 0.1, "layers": ["fc"]})

    copied = original.copy()
    copied["lr"] = 1.0
    copied["layers"].append("conv")  # type: ignore[union-attr]

    assert type(copied) is ConfigRecord
    assert dict(original) == {"lr": 0.1, "layers": ["fc"]}


def test_a_config_record_is_not_equal_to_a_metric_record_with_the_same_items() -> None:
    assert ConfigRecord({"x": 1}) != MetricRecord({"x": 1})
    assert ConfigRecord({"x": 1}) == {"x": 1}
