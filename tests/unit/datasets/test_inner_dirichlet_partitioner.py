"""InnerDirichletPartitioner: exact sizes, each partition with its own Dir(alpha) label mix."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedlab.datasets import InnerDirichletPartitioner
from fedlab.errors import DatasetError
from tests.unit.datasets.partition_checks import (
    assert_disjoint,
    assert_partition,
    labelled,
    mean_label_entropy,
    partitions_with,
    same,
)

LABELS = np.arange(1000) % 10
DATA = labelled(1000, 10)


def inner(sizes: list[int], alpha: float):  # type: ignore[no-untyped-def]
    return lambda seed: InnerDirichletPartitioner(sizes, "label", alpha, seed=seed)


def test_inner_dirichlet_partitions_have_exactly_the_requested_sizes_and_cover_the_data() -> None:
    sizes = [50, 100, 150, 200, 500]
    parts = partitions_with(inner(sizes, 0.5), DATA, 0)
    assert [len(p) for p in parts] == sizes
    assert_partition(parts, 1000)


def test_inner_dirichlet_with_smaller_sizes_leaves_the_remaining_rows_unassigned() -> None:
    parts = partitions_with(inner([100, 200], 0.5), DATA, 0)
    assert len(assert_disjoint(parts)) == 300


def test_inner_dirichlet_skew_follows_alpha() -> None:
    sizes = [100] * 10
    near_iid = mean_label_entropy(partitions_with(inner(sizes, 1000.0), DATA, 0), LABELS, 10)
    skewed = mean_label_entropy(partitions_with(inner(sizes, 0.05), DATA, 0), LABELS, 10)
    assert near_iid > 0.97 * math.log(10)
    assert skewed < 0.6 * math.log(10)


def test_inner_dirichlet_same_seed_same_partitions_other_seed_other_partitions() -> None:
    make = inner([300, 300, 400], 0.5)
    assert same(partitions_with(make, DATA, 4), partitions_with(make, DATA, 4))
    assert not same(partitions_with(make, DATA, 4), partitions_with(make, DATA, 5))


def test_inner_dirichlet_refuses_sizes_adding_up_to_more_rows_than_the_dataset_has() -> None:
    partitioner = InnerDirichletPartitioner([600, 600], "label", 1.0)
    partitioner.dataset = DATA
    with pytest.raises(DatasetError, match="at least 1200 rows"):
        partitioner.partition_sizes()


def test_inner_dirichlet_takes_one_alpha_per_class_and_refuses_the_wrong_count() -> None:
    ok = InnerDirichletPartitioner([100, 100], "label", [1.0] * 10)
    ok.dataset = DATA
    assert ok.partition_sizes() == [100, 100]
    wrong = InnerDirichletPartitioner([100, 100], "label", [1.0] * 3)
    wrong.dataset = DATA
    with pytest.raises(DatasetError, match="10 positive numbers"):
        wrong.partition_sizes()
