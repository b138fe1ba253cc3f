"""`IidPartitioner`: rows shuffled and dealt into partitions of (almost) equal size."""

from __future__ import annotations

import numpy as np

from fedlab.datasets.partitioner._checks import check_enough_rows, check_seed
from fedlab.datasets.partitioner.partitioner import Indices, RowPartitioner
from fedlab.errors import DatasetError
from fedlab.validate import check_int

__all__ = ["IidPartitioner"]


class IidPartitioner(RowPartitioner):
    """Independent and identically distributed partitions: a seeded shuffle cut in equal parts.

    With ``n`` rows and ``k`` partitions, the first ``n % k`` partitions get ``n // k + 1``
    rows and the others ``n // k``; every row belongs to exactly one partition.

    Parameters
    ----------
    num_partitions
        How many partitions to make.
    seed
        Seed of the shuffle.

    Examples
    --------
    >>> import datasets
    >>> partitioner = IidPartitioner(num_partitions=3, seed=0)
    >>> partitioner.dataset = datasets.Dataset.from_dict({"x": list(range(10))})
    >>> partitioner.partition_sizes()
    [4, 3, 3]
    """

    def __init__(self, num_partitions: int, *, seed: int = 42) -> None:
        super().__init__()
        self._num_partitions = check_int("num_partitions", num_partitions, DatasetError, minimum=1)
        self.seed = check_seed(seed)

    @property
    def num_partitions(self) -> int:
        """How many partitions there are."""
        return self._num_partitions

    def _assign(self) -> list[Indices]:
        n = len(self.dataset)
        check_enough_rows(n, self._num_partitions, "IidPartitioner", "lower num_partitions")
        order = np.random.default_rng(self.seed).permutation(n)
        return [
            np.asarray(part, dtype=np.int64) for part in np.array_split(order, self._num_partitions)
        ]
