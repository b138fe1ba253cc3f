"""`SquarePartitioner`: partition sizes grow with the square of the partition id."""

from __future__ import annotations

from fedlab.datasets.partitioner.id_to_size import IdToSizePartitioner

__all__ = ["SquarePartitioner"]


def _square(partition_id: int) -> float:
    return float((partition_id + 1) ** 2)


class SquarePartitioner(IdToSizePartitioner):
    """Partition ``i`` gets a share of the rows proportional to ``(i + 1) ** 2``.

    Parameters
    ----------
    num_partitions
        How many partitions to make.
    seed
        Seed of the shuffle.

    Examples
    --------
    >>> import datasets
    >>> partitioner = SquarePartitioner(num_partitions=3)
    >>> partitioner.dataset = datasets.Dataset.from_dict({"x": list(range(140))})
    >>> partitioner.partition_sizes()
    [10, 40, 90]
    """

    def __init__(self, num_partitions: int, *, seed: int = 42) -> None:
        super().__init__(num_partitions, _square, seed=seed)
