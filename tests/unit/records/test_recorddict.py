"""RecordDict: the content of a Message, name -> ArrayRecord | MetricRecord | ConfigRecord."""

from __future__ import annotations

import numpy as np
import pytest

from fedlab.errors import RecordError
from fedlab.records import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict


def _content() -> RecordDict:
    return RecordDict(
        {
            "arrays": ArrayRecord(
                {"w": np.zeros((2, 2), np.float32), "b": np.zeros(2, np.float32)}
            ),
            "metrics": MetricRecord({"loss": 0.5, "curve": [1.0, 0.5]}),
            "config": ConfigRecord({"lr": 0.1, "layers": ["fc"]}),
            "optimizer": ArrayRecord([np.ones(2)]),
        }
    )


def test_typed_views_return_each_kind_of_record_by_name() -> None:
    content = _content()

    assert list(content.array_records) == ["arrays", "optimizer"]
    assert list(content.metric_records) == ["metrics"]
    assert list(content.config_records) == ["config"]
    assert content.metric_records["metrics"] is content["metrics"]


def test_typed_views_are_empty_when_there_is_no_record_of_that_kind() -> None:
    content = RecordDict({"metrics": MetricRecord({"loss": 0.1})})

    assert content.array_records == {} and content.config_records == {}


def test_records_keep_their_insertion_order() -> None:
    assert list(_content()) == ["arrays", "metrics", "config", "optimizer"]


@pytest.mark.parametrize(
    "value",
    [{"loss": 0.5}, np.zeros(3), [np.zeros(3)], Array.from_numpy(np.zeros(1)), 0.5, None],
    ids=["dict", "ndarray", "list", "Array", "float", "None"],
)
def test_values_that_are_not_records_fail_naming_the_key_the_type_and_the_allowed_types(
    value: object,
) -> None:
    with pytest.raises(RecordError) as info:
        RecordDict({"metrics": value})  # type: ignore[dict-item]

    message = str(info.value)
    assert "RecordDict['metrics']" in message and type(value).__name__ in message
    assert "ArrayRecord, MetricRecord and ConfigRecord" in message


def test_values_set_after_construction_are_checked_too() -> None:
    content = RecordDict()

    with pytest.raises(RecordError, match="got a value of type dict"):
        content["metrics"] = {"loss": 0.5}  # type: ignore[assignment]

    assert len(content) == 0


def test_non_str_keys_are_rejected() -> None:
    with pytest.raises(RecordError, match="keys must be str, got int"):
        RecordDict({1: MetricRecord()})  # type: ignore[dict-item]


def test_building_from_something_other_than_a_mapping_fails() -> None:
    with pytest.raises(RecordError, match="dict of records, got list"):
        RecordDict([MetricRecord()])  # type: ignore[arg-type]


def test_copy_keeps_names_order_and_record_types() -> None:
    original = _content()

    copied = original.copy()

    assert copied == original
    assert list(copied) == list(original)
    assert [type(copied[k]) for k in copied] == [type(original[k]) for k in original]


def test_copy_shares_the_arrays_themselves() -> None:
    original = _content()

    copied = original.copy()

    for name in ("arrays", "optimizer"):
        for key in original[name]:
            assert copied[name][key] is original[name][key]


def test_changing_a_copied_array_record_leaves_the_original_alone() -> None:
    original = _content()

    copied = original.copy()
    arrays = copied.array_records["arrays"]
    arrays["w"] = Array.from_numpy(np.ones((2, 2), np.float32))
    del arrays["b"]
    arrays["extra"] = Array.from_numpy(np.ones(1))

    assert list(original["arrays"]) == ["w", "b"]
    assert original.array_records["arrays"]["w"].numpy().tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_changing_a_copied_metric_or_config_record_leaves_the_original_alone() -> None:
    original = _content()

    copied = original.copy()
    copied.metric_records["metrics"]["loss"] = 9.0
    copied.metric_records["metrics"]["curve"].append(0.1)  # type: ignore[union-attr]
    copied.config_records["config"]["lr"] = 1.0
    copied.config_records["config"]["layers"].append("conv")  # type: ignore[union-attr]

    assert dict(original["metrics"]) == {"loss": 0.5, "curve": [1.0, 0.5]}
    assert dict(original["config"]) == {"lr": 0.1, "layers": ["fc"]}


def test_adding_or_removing_records_in_a_copy_leaves_the_original_alone() -> None:
    original = _content()

    copied = original.copy()
    del copied["metrics"]
    copied["new"] = MetricRecord()

    assert list(original) == ["arrays", "metrics", "config", "optimizer"]


def test_record_dicts_compare_by_names_records_and_order() -> None:
    a = RecordDict({"m": MetricRecord({"x": 1}), "c": ConfigRecord({"x": 1})})

    assert a == RecordDict({"m": MetricRecord({"x": 1}), "c": ConfigRecord({"x": 1})})
    assert a != RecordDict({"c": ConfigRecord({"x": 1}), "m": MetricRecord({"x": 1})})
    assert a != RecordDict({"m": MetricRecord({"x": 2}), "c": ConfigRecord({"x": 1})})


def test_record_dicts_are_unhashable() -> None:
    with pytest.raises(TypeError):
        hash(RecordDict())


def test_typed_accessors_return_the_named_record_or_say_what_is_there() -> None:
    from fedlab.errors import RecordError
    from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict

    rd = RecordDict({"arrays": ArrayRecord(), "config": ConfigRecord({"lr": 0.1}), "metrics": MetricRecord()})
    assert rd.config_record("config")["lr"] == 0.1
    assert rd.array_record("arrays") is rd["arrays"]
    assert rd.metric_record("metrics") is rd["metrics"]
    with pytest.raises(RecordError, match=r"RecordDict\['config'\] is a ConfigRecord, expected MetricRecord"):
        rd.metric_record("config")
    with pytest.raises(RecordError, match=r"is nothing, expected ArrayRecord.*config: ConfigRecord"):
        rd.array_record("weights")
