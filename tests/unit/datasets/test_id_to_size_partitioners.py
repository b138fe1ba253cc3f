"""IdToSizePartitioner and its linear, square and exponential rules: sizes follow the rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedlab.datasets import (
    ExponentialPartitioner,
    IdToSizePartitioner,
    LinearPartitioner,
    SquarePartitioner,
)
from fedlab.errors import DatasetError
from tests.unit.datasets.partition_checks import assert_partition, labelled, partitions_with, same


def largest_remainder(total: int, weights: list[float]) -> list[int]:
    """Sizes as the documentation states them, computed independently of the library."""
    exact = [total * w / sum(weights) for w in weights]
    sizes = [math.floor(e) for e in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - sizes[i]), i))
    for i in by_remainder[: total - sum(sizes)]:
        sizes[i] += 1
    return sizes


@pytest.mark.parametrize(
    ("cls", "weight"),
    [
        (LinearPartitioner, lambda i: i + 1),
        (SquarePartitioner, lambda i: (i + 1) ** 2),
        (ExponentialPartitioner, lambda i: math.exp(i)),
    ],
)
def test_id_to_size_partitioners_follow_their_formula_and_cover_the_data(cls: type, weight) -> None:  # type: ignore[no-untyped-def]
    n, k = 997, 6
    parts = partitions_with(lambda s: cls(k, seed=s), labelled(n), 0)
    assert [len(p) for p in parts] == largest_remainder(n, [weight(i) for i in range(k)])
    assert_partition(parts, n)


def test_linear_sizes_are_proportional_to_id_plus_one() -> None:
    parts = partitions_with(lambda s: LinearPartitioner(4, seed=s), labelled(1000), 0)
    assert [len(p) for p in parts] == [100, 200, 300, 400]


@pytest.mark.parametrize("cls", [LinearPartitioner, SquarePartitioner, ExponentialPartitioner])
def test_id_to_size_same_seed_same_partitions_other_seed_other_partitions(cls: type) -> None:
    data = labelled(300)
    make = lambda s: cls(4, seed=s)
    assert same(partitions_with(make, data, 1), partitions_with(make, data, 1))
    assert not same(partitions_with(make, data, 1), partitions_with(make, data, 2))


def test_exponential_refuses_to_leave_a_partition_empty() -> None:
    partitioner = ExponentialPartitioner(12)
    partitioner.dataset = labelled(1000)
    with pytest.raises(DatasetError, match="partition 0 empty"):
        partitioner.partition_sizes()


def test_a_custom_size_function_must_be_positive() -> None:
    partitioner = IdToSizePartitioner(3, lambda i: float(i))
    partitioner.dataset = labelled(30)
    with pytest.raises(DatasetError, match="positive finite size"):
        partitioner.partition_sizes()
    custom = IdToSizePartitioner(3, lambda i: [1.0, 1.0, 2.0][i])
    custom.dataset = labelled(40)
    assert np.array_equal(custom.partition_sizes(), [10, 10, 20])
