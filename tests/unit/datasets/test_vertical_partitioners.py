"""Vertical partitioners split columns, not rows."""

from __future__ import annotations

import datasets
import pytest

from fedlab.datasets import VerticalEvenPartitioner, VerticalSizePartitioner
from fedlab.errors import DatasetError

COLUMNS = ["id", "f0", "f1", "f2", "f3", "f4", "f5", "f6", "label", "notes"]
DATA = datasets.Dataset.from_dict({c: list(range(5)) for c in COLUMNS})
FEATURES = {f"f{i}" for i in range(7)}


def columns_of(partitioner: VerticalEvenPartitioner | VerticalSizePartitioner) -> list[list[str]]:
    partitioner.dataset = DATA
    return [partitioner.partition_columns(i) for i in range(partitioner.num_partitions)]


def test_vertical_even_splits_columns_not_rows() -> None:
    partitioner = VerticalEvenPartitioner(
        3, active_party_columns=["label"], shared_columns=["id"], drop_columns=["notes"], seed=0
    )
    parts = columns_of(partitioner)
    for pid, names in enumerate(parts):
        loaded = partitioner.load_partition(pid)
        assert len(loaded) == len(DATA)  # every row
        assert loaded.column_names == names
        assert loaded["id"][:] == DATA["id"][:]
    features = [set(p) & FEATURES for p in parts]
    assert sorted(len(f) for f in features) == [2, 2, 3]
    assert (
        set().union(*features) == FEATURES and sum(len(f) for f in features) == 7
    )  # disjoint, covering
    assert all("id" in p for p in parts)
    assert ["label" in p for p in parts] == [True, False, False]
    assert not any("notes" in p for p in parts)


def test_vertical_even_without_shuffle_deals_features_in_order_first_parties_get_more() -> None:
    parts = columns_of(
        VerticalEvenPartitioner(
            3,
            active_party_columns="label",
            active_party_id=2,
            drop_columns=["notes", "id"],
            shuffle=False,
        )
    )
    assert parts == [["f0", "f1", "f2"], ["f3", "f4"], ["f5", "f6", "label"]]


def test_vertical_same_seed_same_columns_other_seed_other_columns() -> None:
    def make(seed: int) -> list[list[str]]:
        return columns_of(VerticalEvenPartitioner(3, drop_columns=["notes"], seed=seed))

    assert make(1) == make(1)
    assert make(1) != make(2)


def test_vertical_size_deals_the_given_counts_or_fractions() -> None:
    counts = columns_of(
        VerticalSizePartitioner(
            [1, 6],
            active_party_columns=["label"],
            shared_columns=["id"],
            drop_columns=["notes"],
            shuffle=False,
        )
    )
    assert counts == [["id", "f0", "label"], ["id", "f1", "f2", "f3", "f4", "f5", "f6"]]
    fractions = columns_of(
        VerticalSizePartitioner([0.25, 0.75], drop_columns=["id", "label", "notes"], seed=3)
    )
    assert [len(p) for p in fractions] == [2, 5]
    assert set(fractions[0]) | set(fractions[1]) == FEATURES


def test_vertical_size_refuses_counts_that_do_not_add_up_and_mixed_sizes() -> None:
    partitioner = VerticalSizePartitioner([2, 2], drop_columns=["notes"])
    partitioner.dataset = DATA
    with pytest.raises(DatasetError, match="add up to 4 columns but there are 9"):
        partitioner.partition_columns(0)
    with pytest.raises(DatasetError, match="all non-negative ints"):
        VerticalSizePartitioner([1, 0.5])


def test_vertical_refuses_unknown_or_repeated_special_columns() -> None:
    partitioner = VerticalEvenPartitioner(2, shared_columns=["nope"])
    partitioner.dataset = DATA
    with pytest.raises(DatasetError, match=r"\['nope'\] are not in the dataset"):
        partitioner.partition_columns(0)
    with pytest.raises(DatasetError, match="more than one"):
        VerticalEvenPartitioner(2, shared_columns=["id"], drop_columns=["id"])
    with pytest.raises(DatasetError, match="active_party_id=2"):
        VerticalEvenPartitioner(2, active_party_id=2)
