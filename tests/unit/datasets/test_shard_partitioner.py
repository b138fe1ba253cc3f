"""ShardPartitioner: label-sorted shards dealt to partitions, sizes as documented."""

from __future__ import annotations

import numpy as np
import pytest

from fedlab.datasets import ShardPartitioner
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


def test_with_shards_per_partition_each_partition_gets_s_shards_of_n_div_ks_rows() -> None:
    parts = partitions_with(
        lambda s: ShardPartitioner(7, "label", num_shards_per_partition=2, seed=s), DATA, 0
    )
    # 1000 // (7 * 2) = 71 rows per shard, 142 per partition, 6 rows left unassigned.
    assert [len(p) for p in parts] == [142] * 7
    assert len(assert_disjoint(parts)) == 994


def test_shards_hold_one_or_two_classes_so_partitions_hold_few() -> None:
    parts = partitions_with(
        lambda s: ShardPartitioner(10, "label", num_shards_per_partition=2, seed=s), DATA, 0
    )
    assert_partition(parts, 1000)
    assert all(len(np.unique(LABELS[p])) <= 4 for p in parts)


def test_with_both_shard_size_and_count_each_partition_has_their_product() -> None:
    parts = partitions_with(
        lambda s: ShardPartitioner(5, "label", num_shards_per_partition=3, shard_size=40, seed=s),
        DATA,
        0,
    )
    assert [len(p) for p in parts] == [120] * 5


def test_with_only_shard_size_partitions_differ_by_at_most_one_shard() -> None:
    parts = partitions_with(lambda s: ShardPartitioner(3, "label", shard_size=90, seed=s), DATA, 0)
    # 11 full shards of 90 dealt to 3 partitions: 4, 4, 3 shards; 10 rows left over.
    assert sorted(len(p) for p in parts) == [270, 360, 360]
    assert len(assert_disjoint(parts)) == 990


def test_keep_incomplete_shard_assigns_every_row() -> None:
    parts = partitions_with(
        lambda s: ShardPartitioner(3, "label", shard_size=90, keep_incomplete_shard=True, seed=s),
        DATA,
        0,
    )
    assert_partition(parts, 1000)


def test_shard_same_seed_same_partitions_other_seed_other_partitions() -> None:
    make = lambda s: ShardPartitioner(10, "label", num_shards_per_partition=2, seed=s)
    assert same(partitions_with(make, DATA, 1), partitions_with(make, DATA, 1))
    assert not same(partitions_with(make, DATA, 1), partitions_with(make, DATA, 2))


def test_shard_needs_a_shard_count_or_size() -> None:
    with pytest.raises(DatasetError, match="num_shards_per_partition, shard_size"):
        ShardPartitioner(3, "label")


def test_shard_refuses_shards_that_need_more_rows_than_there_are() -> None:
    partitioner = ShardPartitioner(10, "label", num_shards_per_partition=2, shard_size=60)
    partitioner.dataset = DATA
    with pytest.raises(DatasetError, match="at least 1200 rows"):
        partitioner.partition_sizes()
