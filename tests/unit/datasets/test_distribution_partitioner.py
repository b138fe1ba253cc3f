"""DistributionPartitioner: each class shared out by the weights you give."""

from __future__ import annotations

import numpy as np
import pytest

from fedlab.datasets import DistributionPartitioner
from fedlab.errors import DatasetError
from tests.unit.datasets.partition_checks import assert_partition, labelled, partitions_with, same

LABELS = np.arange(300) % 3
DATA = labelled(300, 3)
WEIGHTS = [[1, 1, 2], [0, 3, 1], [5, 0, 0]]


def test_distribution_gives_each_partition_its_weighted_share_of_each_class() -> None:
    parts = partitions_with(lambda s: DistributionPartitioner(WEIGHTS, "label", seed=s), DATA, 0)
    counts = np.array([np.bincount(LABELS[p], minlength=3) for p in parts])
    # 100 rows per class; partition j gets 100 * w[c, j] / sum_j w[c, j] of class c.
    assert counts.T.tolist() == [[25, 25, 50], [0, 75, 25], [100, 0, 0]]
    assert_partition(parts, 300)


def test_distribution_same_seed_same_partitions_other_seed_other_partitions() -> None:
    make = lambda s: DistributionPartitioner(WEIGHTS, "label", seed=s)
    assert same(partitions_with(make, DATA, 1), partitions_with(make, DATA, 1))
    assert not same(partitions_with(make, DATA, 1), partitions_with(make, DATA, 2))


def test_distribution_needs_one_row_per_class() -> None:
    partitioner = DistributionPartitioner([[1, 1], [1, 1]], "label")
    partitioner.dataset = DATA
    with pytest.raises(DatasetError, match="2 rows but the column 'label' has 3 classes"):
        partitioner.partition_sizes()


@pytest.mark.parametrize("bad", [[1, 2], [[1, -1]], [[0, 0]], "x"])
def test_distribution_refuses_weights_that_are_not_a_non_negative_matrix(bad: object) -> None:
    with pytest.raises(DatasetError, match="distribution"):
        DistributionPartitioner(bad, "label")  # type: ignore[arg-type]
