"""divide_split and merge_splits: reshaping splits before partitioning."""

from __future__ import annotations

import datasets
import pytest

from fedlab.datasets import divide_split, merge_splits
from fedlab.errors import DatasetError
from tests.unit.datasets.partition_checks import labelled


def splits(train: int = 100, test: int = 0) -> datasets.DatasetDict:
    parts = {"train": labelled(train)}
    if test:
        parts["test"] = labelled(test)
    return datasets.DatasetDict(parts)


def sizes(data: datasets.DatasetDict) -> dict[str, int]:
    return {name: len(rows) for name, rows in data.items()}


def test_divide_split_by_fractions_is_disjoint_and_keeps_other_splits() -> None:
    out = divide_split("train", {"train": 0.6, "valid": 0.3, "test2": 0.1}, seed=0)(splits(100, 7))
    assert sizes(out) == {"test": 7, "train": 60, "valid": 30, "test2": 10}
    seen = [x for name in ("train", "valid", "test2") for x in out[name]["x"][:]]
    assert sorted(seen) == list(range(100))


def test_divide_split_by_row_counts_may_leave_rows_out() -> None:
    out = divide_split("train", {"a": 10, "b": 5})(splits(100))
    assert sizes(out) == {"a": 10, "b": 5}


def test_divide_split_is_reproducible_for_a_seed() -> None:
    def test_rows(seed: int) -> list[int]:
        return list(
            divide_split("train", {"train": 0.8, "test": 0.2}, seed=seed)(splits())["test"]["x"][:]
        )

    assert test_rows(3) == test_rows(3) != test_rows(4)


def test_stratified_division_gives_every_class_its_share() -> None:
    out = divide_split("train", {"train": 0.7, "test": 0.3}, stratify_by="label")(splits(200))
    test_labels = list(out["test"]["label"][:])
    assert [test_labels.count(c) for c in range(10)] == [6] * 10


@pytest.mark.parametrize(
    ("parts", "match"),
    [
        ({}, "at least one"),
        ({"a": 0.5, "b": 3}, "all fractions"),
        ({"a": 0.7, "b": 0.7}, "more than 1"),
        ({"a": -1}, "non-negative"),
    ],
)
def test_divide_split_refuses_bad_sizes(parts: dict[str, float], match: str) -> None:
    with pytest.raises(DatasetError, match=match):
        divide_split("train", parts)


def test_divide_split_names_the_splits_when_the_source_is_missing() -> None:
    with pytest.raises(DatasetError, match=r"has only \['train'\]"):
        divide_split("valid", {"a": 0.5})(splits())
    with pytest.raises(DatasetError, match="asks for 150 rows"):
        divide_split("train", {"a": 150})(splits())


def test_merge_splits_concatenates_and_drops_the_merged_ones() -> None:
    out = merge_splits({"all": ["train", "test"]})(splits(10, 4))
    assert sizes(out) == {"all": 14}
    assert list(out["all"]["x"][:]) == list(range(10)) + list(range(4))
    with pytest.raises(DatasetError, match=r"Cannot merge splits \['valid'\]"):
        merge_splits({"all": ["train", "valid"]})(splits(10, 4))
    with pytest.raises(DatasetError, match="lists of splits"):
        merge_splits({"all": "train"})  # type: ignore[dict-item]
