"""PathologicalPartitioner: exactly k classes per partition."""

from __future__ import annotations

import numpy as np
import pytest

from fedlab.datasets import PathologicalPartitioner
from fedlab.errors import DatasetError
from tests.unit.datasets.partition_checks import (
    assert_disjoint,
    assert_partition,
    labelled,
    partitions_with,
    same,
)

LABELS = np.arange(1000) % 10
DATA = labelled(1000, 10)


@pytest.mark.parametrize("mode", ["random", "deterministic", "first-deterministic"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_every_partition_holds_exactly_k_classes(mode: str, k: int) -> None:
    partitioner = PathologicalPartitioner(8, "label", k, class_assignment=mode, seed=1)  # type: ignore[arg-type]
    parts = partitions_with(lambda s: partitioner, DATA, 0)
    for pid, rows in enumerate(parts):
        held = np.unique(LABELS[rows])
        assert len(held) == k
        assert held.tolist() == partitioner.partition_classes(pid)
    rows = assert_disjoint(parts)
    # Exactly the rows of the classes some partition holds are used.
    used = sorted({c for pid in range(8) for c in partitioner.partition_classes(pid)})
    assert np.array_equal(rows, np.flatnonzero(np.isin(LABELS, used)))


def test_deterministic_assignment_gives_partition_i_classes_i_to_i_plus_k_minus_1() -> None:
    partitioner = PathologicalPartitioner(12, "label", 2, class_assignment="deterministic")
    partitioner.dataset = DATA
    assert [partitioner.partition_classes(i) for i in (0, 3, 9, 11)] == [
        [0, 1],
        [3, 4],
        [0, 9],
        [1, 2],
    ]


def test_deterministic_assignment_with_every_class_held_covers_the_data_and_splits_classes_evenly() -> (
    None
):
    parts = partitions_with(
        lambda s: PathologicalPartitioner(10, "label", 2, class_assignment="deterministic", seed=s),
        DATA,
        0,
    )
    assert_partition(parts, 1000)
    # Each class (100 rows) is held by two partitions: 50 rows each.
    assert [len(p) for p in parts] == [100] * 10


def test_first_deterministic_fixes_the_first_class_to_the_partition_id() -> None:
    partitioner = PathologicalPartitioner(
        10, "label", 3, class_assignment="first-deterministic", seed=3
    )
    partitioner.dataset = DATA
    assert all(i in partitioner.partition_classes(i) for i in range(10))


def test_pathological_same_seed_same_partitions_other_seed_other_partitions() -> None:
    make = lambda s: PathologicalPartitioner(10, "label", 2, seed=s)
    assert same(partitions_with(make, DATA, 1), partitions_with(make, DATA, 1))
    assert not same(partitions_with(make, DATA, 1), partitions_with(make, DATA, 2))


def test_pathological_refuses_more_classes_per_partition_than_there_are() -> None:
    partitioner = PathologicalPartitioner(2, "label", 11)
    partitioner.dataset = DATA
    with pytest.raises(DatasetError, match="only 10 classes"):
        partitioner.partition_sizes()


def test_pathological_refuses_a_class_too_small_for_the_partitions_holding_it() -> None:
    partitioner = PathologicalPartitioner(30, "label", 10)
    partitioner.dataset = labelled(200, 10)  # 20 rows per class, 30 partitions hold each
    with pytest.raises(DatasetError, match="has 20 rows but 30 partitions"):
        partitioner.partition_sizes()


def test_pathological_refuses_an_unknown_assignment_mode() -> None:
    with pytest.raises(DatasetError, match="class_assignment"):
        PathologicalPartitioner(2, "label", 1, class_assignment="greedy")  # type: ignore[arg-type]
