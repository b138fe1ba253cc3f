"""`ExponentialPartitioner`: partition sizes grow exponentially with the partition id."""

from __future__ import annotations

import math

from fedlab.datasets.partitioner.id_to_size import IdToSizePartitioner

__all__ = ["ExponentialPartitioner"]


def _exponential(partition_id: int) -> float:
    return math.exp(partition_id)


class ExponentialPartitioner(IdToSizePartitioner):
    """Partition ``i`` gets a share of the rows proportional to ``e ** i``.

    Sizes grow fast: with many partitions the first ones get few rows (an error says so
    if one would get none).

    Parameters
    ----------
    num_partitions
        How many partitions to make.
    seed
        Seed of the shuffle.

    Examples
    --------
    >>> import datasets
    >>> partitioner = ExponentialPartitioner(num_partitions=3)
    >>> partitioner.dataset = datasets.Dataset.from_dict({"x": list(range(111))})
    >>> partitioner.partition_sizes()
    [10, 27, 74]
    """

    def __init__(self, num_partitions: int, *, seed: int = 42) -> None:
        super().__init__(num_partitions, _exponential, seed=seed)
