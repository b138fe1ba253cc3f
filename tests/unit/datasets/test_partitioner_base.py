"""What every partitioner shares: one dataset for life, ids checked, partitions computed once."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from fedlab.datasets import IidPartitioner, RowPartitioner
from fedlab.errors import DatasetError
from tests.unit.datasets.partition_checks import labelled


def test_a_partitioner_without_a_dataset_says_how_to_give_it_one() -> None:
    with pytest.raises(DatasetError, match="partitioner.dataset = ds"):
        IidPartitioner(3).load_partition(0)


def test_a_partitioner_refuses_a_second_dataset_but_accepts_the_same_one_again() -> None:
    partitioner, data = IidPartitioner(3), labelled(30)
    partitioner.dataset = data
    partitioner.dataset = data
    with pytest.raises(DatasetError, match="new partitioner"):
        partitioner.dataset = labelled(30)


@pytest.mark.parametrize("bad", [-1, 3, 1.0, True, "0"])
def test_partition_ids_outside_the_range_are_refused_with_the_range(bad: object) -> None:
    partitioner = IidPartitioner(3)
    partitioner.dataset = labelled(30)
    with pytest.raises(DatasetError, match="partition_id"):
        partitioner.load_partition(bad)  # type: ignore[arg-type]


def test_load_partition_returns_exactly_the_rows_of_partition_indices() -> None:
    partitioner = IidPartitioner(4, seed=3)
    partitioner.dataset = labelled(50)
    for pid in range(4):
        rows = partitioner.partition_indices(pid)
        assert partitioner.load_partition(pid)["x"][:] == rows.tolist()


def test_the_assignment_is_computed_once_even_when_threads_ask_together() -> None:
    calls = []

    class Counting(RowPartitioner):
        num_partitions = 2

        def _assign(self) -> list[np.ndarray]:
            calls.append(1)
            return [np.arange(0, 5), np.arange(5, 10)]

    partitioner = Counting()
    partitioner.dataset = labelled(10)
    threads = [
        threading.Thread(target=partitioner.partition_indices, args=(i % 2,)) for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1]
    assert partitioner.partition_sizes() == [5, 5]


def test_a_partitioner_that_overlaps_rows_is_caught_before_anyone_sees_them() -> None:
    class Broken(RowPartitioner):
        num_partitions = 2

        def _assign(self) -> list[np.ndarray]:
            return [np.arange(0, 6), np.arange(5, 10)]

    partitioner = Broken()
    partitioner.dataset = labelled(10)
    with pytest.raises(DatasetError, match="overlapping"):
        partitioner.partition_indices(0)
