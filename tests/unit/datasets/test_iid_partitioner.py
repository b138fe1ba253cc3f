"""IidPartitioner: a seeded shuffle dealt into near-equal parts."""

from __future__ import annotations

import numpy as np
import pytest

from fedlab.datasets import IidPartitioner
from fedlab.errors import DatasetError
from tests.unit.datasets.partition_checks import assert_partition, labelled, partitions_with, same


def test_iid_partitions_cover_every_row_once_with_sizes_n_div_k_plus_one_first() -> None:
    data = labelled(103)
    parts = partitions_with(lambda s: IidPartitioner(10, seed=s), data, 0)
    assert_partition(parts, 103)
    assert [len(p) for p in parts] == [11, 11, 11] + [10] * 7


def test_iid_same_seed_same_partitions_other_seed_other_partitions() -> None:
    data = labelled(200)
    make = lambda s: IidPartitioner(5, seed=s)
    assert same(partitions_with(make, data, 7), partitions_with(make, data, 7))
    assert not same(partitions_with(make, data, 7), partitions_with(make, data, 8))


def test_iid_partitions_hold_every_class_in_about_its_share() -> None:
    data = labelled(2000, num_classes=4)
    parts = partitions_with(lambda s: IidPartitioner(4, seed=s), data, 1)
    labels = np.arange(2000) % 4
    for rows in parts:
        shares = np.bincount(labels[rows], minlength=4) / len(rows)
        assert np.all(np.abs(shares - 0.25) < 0.06)


def test_iid_refuses_more_partitions_than_rows() -> None:
    partitioner = IidPartitioner(11)
    partitioner.dataset = labelled(10)
    with pytest.raises(DatasetError, match="lower num_partitions"):
        partitioner.partition_sizes()


@pytest.mark.parametrize("bad", [0, -2, 2.5, True])
def test_iid_refuses_a_num_partitions_that_is_not_a_positive_int(bad: object) -> None:
    with pytest.raises(DatasetError, match="num_partitions"):
        IidPartitioner(bad)  # type: ignore[arg-type]
