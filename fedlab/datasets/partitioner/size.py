"""`SizePartitioner`: partitions of exactly the sizes you give."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedlab.datasets.partitioner._checks import check_enough_rows, check_seed, sizes_list
from fedlab.datasets.partitioner._sizes import cut
from fedlab.datasets.partitioner.partitioner import Indices, RowPartitioner

__all__ = ["SizePartitioner"]


class SizePartitioner(RowPartitioner):
    """Partition ``i`` gets exactly ``partition_sizes[i]`` rows, drawn at random.

    If the sizes add up to fewer rows than the dataset has, the rows left over belong to
    no partition.

    Parameters
    ----------
    partition_sizes
        The number of rows of each partition.
    shuffle
        Draw rows at random (the default) or take them in dataset order.
    seed
        Seed of the shuffle.

    Examples
    --------
    >>> import datasets
    >>> partitioner = SizePartitioner([5, 1, 2], shuffle=False)
    >>> partitioner.dataset = datasets.Dataset.from_dict({"x": list(range(10))})
    >>> partitioner.partition_indices(2).tolist()
    [6, 7]
    """

    def __init__(
        self, partition_sizes: Sequence[int], *, shuffle: bool = True, seed: int = 42
    ) -> None:
        super().__init__()
        self.partition_sizes_requested = sizes_list("partition_sizes", partition_sizes)
        self.shuffle = shuffle
        self.seed = check_seed(seed)

    @property
    def num_partitions(self) -> int:
        """How many partitions there are."""
        return len(self.partition_sizes_requested)

    def _assign(self) -> list[Indices]:
        n = len(self.dataset)
        total = sum(self.partition_sizes_requested)
        check_enough_rows(
            n, total, "SizePartitioner", "make partition_sizes add up to at most that"
        )
        order = np.random.default_rng(self.seed).permutation(n) if self.shuffle else np.arange(n)
        return cut(order, self.partition_sizes_requested)
