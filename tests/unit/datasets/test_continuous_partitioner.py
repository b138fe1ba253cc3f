"""ContinuousPartitioner: partitions ordered by a numeric feature, strictness sets the overlap."""

from __future__ import annotations

import itertools

import datasets
import numpy as np
import pytest

from fedlab.datasets import ContinuousPartitioner
from fedlab.errors import DatasetError
from tests.unit.datasets.partition_checks import assert_partition, partitions_with, same

VALUES = np.random.default_rng(2024).normal(size=600)
DATA = datasets.Dataset.from_dict({"age": VALUES, "name": [str(i) for i in range(600)]})


def test_strictness_one_sorts_rows_by_the_feature_into_equal_parts() -> None:
    parts = partitions_with(lambda s: ContinuousPartitioner(4, "age", 1.0, seed=s), DATA, 0)
    assert_partition(parts, 600)
    assert [len(p) for p in parts] == [150] * 4
    for lower, upper in itertools.pairwise(parts):
        assert VALUES[lower].max() <= VALUES[upper].min()


def test_partition_means_rise_with_the_id_and_strictness_zero_is_iid() -> None:
    strict = partitions_with(lambda s: ContinuousPartitioner(4, "age", 0.7, seed=s), DATA, 0)
    means = [VALUES[p].mean() for p in strict]
    assert means == sorted(means)
    iid = partitions_with(lambda s: ContinuousPartitioner(4, "age", 0.0, seed=s), DATA, 0)
    assert max(abs(VALUES[p].mean()) for p in iid) < 0.25


def test_continuous_same_seed_same_partitions_other_seed_other_partitions() -> None:
    make = lambda s: ContinuousPartitioner(4, "age", 0.5, seed=s)
    assert same(partitions_with(make, DATA, 1), partitions_with(make, DATA, 1))
    assert not same(partitions_with(make, DATA, 1), partitions_with(make, DATA, 2))


def test_continuous_refuses_a_text_column_and_a_strictness_outside_zero_to_one() -> None:
    partitioner = ContinuousPartitioner(2, "name", 0.5)
    partitioner.dataset = DATA
    with pytest.raises(DatasetError, match="numeric column"):
        partitioner.partition_sizes()
    with pytest.raises(DatasetError, match="strictness"):
        ContinuousPartitioner(2, "age", 1.5)
