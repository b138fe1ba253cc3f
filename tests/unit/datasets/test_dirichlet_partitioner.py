"""DirichletPartitioner: label skew set by alpha, every row assigned, minimum sizes enforced."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedlab.datasets import DirichletPartitioner
from fedlab.errors import DatasetError
from tests.unit.datasets.partition_checks import (
    assert_partition,
    labelled,
    mean_label_entropy,
    partitions_with,
    same,
)

LABELS = np.arange(2000) % 10
DATA = labelled(2000, 10)


def dirichlet(alpha: float, **options: object):  # type: ignore[no-untyped-def]
    return lambda seed: DirichletPartitioner(10, "label", alpha, seed=seed, **options)


def test_dirichlet_assigns_every_row_to_exactly_one_partition() -> None:
    for alpha in (0.05, 0.5, 1000.0):
        assert_partition(partitions_with(dirichlet(alpha, min_partition_size=0), DATA, 3), 2000)


def test_dirichlet_with_alpha_1000_is_near_iid_by_mean_label_entropy() -> None:
    parts = partitions_with(dirichlet(1000.0), DATA, 0)
    assert mean_label_entropy(parts, LABELS, 10) > 0.99 * math.log(10)
    assert all(abs(len(p) - 200) < 20 for p in parts)


def test_dirichlet_with_alpha_005_is_highly_skewed_by_mean_label_entropy() -> None:
    parts = partitions_with(dirichlet(0.05, min_partition_size=0), DATA, 0)
    assert mean_label_entropy(parts, LABELS, 10) < 0.5 * math.log(10)


def test_dirichlet_same_seed_same_partitions_other_seed_other_partitions() -> None:
    make = dirichlet(0.5)
    assert same(partitions_with(make, DATA, 1), partitions_with(make, DATA, 1))
    assert not same(partitions_with(make, DATA, 1), partitions_with(make, DATA, 2))


def test_dirichlet_redraws_until_every_partition_has_min_partition_size_rows() -> None:
    parts = partitions_with(dirichlet(0.1, min_partition_size=40, max_attempts=200), DATA, 0)
    assert min(len(p) for p in parts) >= 40


def test_dirichlet_gives_up_after_max_attempts_and_says_what_to_change() -> None:
    partitioner = DirichletPartitioner(
        10, "label", 0.01, min_partition_size=150, max_attempts=2, seed=0
    )
    partitioner.dataset = DATA
    with pytest.raises(DatasetError, match="Raise alpha, lower min_partition_size"):
        partitioner.partition_sizes()


def test_self_balancing_keeps_partitions_closer_to_the_mean_size() -> None:
    plain = partitions_with(dirichlet(0.3, min_partition_size=0), DATA, 5)
    balanced = partitions_with(dirichlet(0.3, min_partition_size=0, self_balancing=True), DATA, 5)
    assert_partition(balanced, 2000)
    assert np.std([len(p) for p in balanced]) < np.std([len(p) for p in plain])


def test_a_per_partition_alpha_gives_the_partition_with_large_alpha_every_class() -> None:
    alpha = [1000.0] + [0.05] * 9
    partitioner = DirichletPartitioner(10, "label", alpha, min_partition_size=0, seed=0)
    partitioner.dataset = DATA
    assert len(np.unique(LABELS[partitioner.partition_indices(0)])) == 10


@pytest.mark.parametrize("alpha", [0, -1.0, [1.0, 2.0], "x", float("nan")])
def test_dirichlet_refuses_an_alpha_that_is_not_positive_per_partition(alpha: object) -> None:
    with pytest.raises(DatasetError, match="alpha"):
        DirichletPartitioner(10, "label", alpha)  # type: ignore[arg-type]


def test_dirichlet_names_the_columns_when_partition_by_is_missing() -> None:
    partitioner = DirichletPartitioner(2, "target", 1.0)
    partitioner.dataset = DATA
    with pytest.raises(DatasetError, match=r"\['x', 'label'\]"):
        partitioner.partition_sizes()
