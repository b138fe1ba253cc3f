"""SizePartitioner: partitions of exactly the sizes given."""

from __future__ import annotations

import pytest

from fedlab.datasets import SizePartitioner
from fedlab.errors import DatasetError
from tests.unit.datasets.partition_checks import (
    assert_disjoint,
    assert_partition,
    labelled,
    partitions_with,
    same,
)


def test_size_partitioner_gives_exactly_the_requested_sizes() -> None:
    parts = partitions_with(lambda s: SizePartitioner([10, 0, 35, 5], seed=s), labelled(100), 0)
    assert [len(p) for p in parts] == [10, 0, 35, 5]
    assert len(assert_disjoint(parts)) == 50


def test_size_partitioner_covers_the_data_when_sizes_add_up_to_it() -> None:
    assert_partition(
        partitions_with(lambda s: SizePartitioner([60, 40], seed=s), labelled(100), 0), 100
    )


def test_size_partitioner_without_shuffle_takes_consecutive_rows() -> None:
    parts = partitions_with(lambda s: SizePartitioner([3, 2], shuffle=False), labelled(10), 0)
    assert [p.tolist() for p in parts] == [[0, 1, 2], [3, 4]]


def test_size_partitioner_refuses_sizes_beyond_the_dataset() -> None:
    partitioner = SizePartitioner([60, 60])
    partitioner.dataset = labelled(100)
    with pytest.raises(DatasetError, match="at least 120 rows"):
        partitioner.partition_sizes()


def test_size_partitioner_same_seed_same_partitions_other_seed_other_partitions() -> None:
    data = labelled(300)
    make = lambda s: SizePartitioner([100, 50, 150], seed=s)
    assert same(partitions_with(make, data, 1), partitions_with(make, data, 1))
    assert not same(partitions_with(make, data, 1), partitions_with(make, data, 2))
