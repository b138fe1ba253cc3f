"""`ShardPartitioner`: rows sorted by label, cut into shards, shards dealt to partitions."""

from __future__ import annotations

import numpy as np

from fedlab.datasets._hf import column, require_column
from fedlab.datasets.partitioner._checks import check_enough_rows, check_seed
from fedlab.datasets.partitioner._sizes import cut
from fedlab.datasets.partitioner.partitioner import Indices, RowPartitioner
from fedlab.errors import DatasetError
from fedlab.validate import check_int

__all__ = ["ShardPartitioner"]


class ShardPartitioner(RowPartitioner):
    """The shard split of the FedAvg paper: sort by label, cut into shards, deal the shards.

    Rows are shuffled, stably sorted by the label column and cut into consecutive shards
    of ``shard_size`` rows, so a shard holds one or two classes; the shards are then dealt
    to partitions at random. Give one or both of ``num_shards_per_partition`` (s) and
    ``shard_size``:

    - both: every partition gets s shards of ``shard_size`` rows; needs
      ``num_partitions * s * shard_size`` rows, and rows beyond that stay unassigned;
    - only s: ``shard_size = n // (num_partitions * s)``; the ``n mod (num_partitions * s)``
      rows at the end of the sorted order stay unassigned;
    - only ``shard_size``: all ``n // shard_size`` full shards are dealt round-robin, so
      partitions differ by at most one shard; with ``keep_incomplete_shard=True`` the last,
      shorter shard is dealt too and every row is assigned.

    Parameters
    ----------
    num_partitions
        How many partitions to make.
    partition_by
        The label column.
    num_shards_per_partition
        s, the shards each partition gets.
    shard_size
        Rows per shard.
    keep_incomplete_shard
        Deal the last, shorter shard too (only when s is not given).
    seed
        Seed of the shuffle and of the dealing.
    """

    def __init__(
        self,
        num_partitions: int,
        partition_by: str,
        *,
        num_shards_per_partition: int | None = None,
        shard_size: int | None = None,
        keep_incomplete_shard: bool = False,
        seed: int = 42,
    ) -> None:
        super().__init__()
        if num_shards_per_partition is None and shard_size is None:
            raise DatasetError(
                "ShardPartitioner needs num_shards_per_partition, shard_size, or both "
                "(e.g. num_shards_per_partition=2 as in the FedAvg paper)."
            )
        self._num_partitions = check_int("num_partitions", num_partitions, DatasetError, minimum=1)
        self.partition_by = partition_by
        self.num_shards_per_partition = (
            None
            if num_shards_per_partition is None
            else check_int(
                "num_shards_per_partition", num_shards_per_partition, DatasetError, minimum=1
            )
        )
        self.shard_size = (
            None
            if shard_size is None
            else check_int("shard_size", shard_size, DatasetError, minimum=1)
        )
        self.keep_incomplete_shard = keep_incomplete_shard
        self.seed = check_seed(seed)

    @property
    def num_partitions(self) -> int:
        """How many partitions there are."""
        return self._num_partitions

    def _assign(self) -> list[Indices]:
        dataset = self.dataset
        require_column(dataset, self.partition_by, "ShardPartitioner")
        n, k, s = len(dataset), self._num_partitions, self.num_shards_per_partition
        rng = np.random.default_rng(self.seed)
        shuffled = rng.permutation(n)
        labels = column(dataset, self.partition_by)[shuffled]
        ordered = shuffled[np.argsort(labels, kind="stable")]
        if s is not None:
            size = self.shard_size if self.shard_size is not None else n // (k * s)
            check_enough_rows(
                n,
                max(k * s * size, k * s),
                "ShardPartitioner",
                "lower num_partitions, num_shards_per_partition or shard_size",
            )
            shards = cut(ordered, [size] * (k * s))
            owners = rng.permutation(np.repeat(np.arange(k), s))
        else:
            assert self.shard_size is not None  # checked in __init__
            count = n // self.shard_size
            if self.keep_incomplete_shard and n % self.shard_size:
                count += 1
            check_enough_rows(
                count,
                k,
                "ShardPartitioner (counting shards, not rows)",
                "lower shard_size or num_partitions",
            )
            shards = [
                ordered[i * self.shard_size : (i + 1) * self.shard_size] for i in range(count)
            ]
            owners = np.arange(count) % k
            shards = [shards[i] for i in rng.permutation(count)]
        pieces: list[list[Indices]] = [[] for _ in range(k)]
        for owner, shard in zip(owners, shards, strict=True):
            pieces[int(owner)].append(np.asarray(shard, dtype=np.int64))
        return [np.concatenate(p) for p in pieces]
