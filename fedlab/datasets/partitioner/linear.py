"""`LinearPartitioner`: partition sizes grow linearly with the partition id."""

from __future__ import annotations

from fedlab.datasets.partitioner.id_to_size import IdToSizePartitioner

__all__ = ["LinearPartitioner"]


def _linear(partition_id: int) -> float:
    return float(partition_id + 1)


class LinearPartitioner(IdToSizePartitioner):
    """Partition ``i`` gets a share of the rows proportional to ``i + 1``.

    Parameters
    ----------
    num_partitions
        How many partitions to make.
    seed
        Seed of the shuffle.

    Examples
    --------
    >>> import datasets
    >>> partitioner = LinearPartitioner(num_partitions=4)
    >>> partitioner.dataset = datasets.Dataset.from_dict({"x": list(range(100))})
    >>> partitioner.partition_sizes()
    [10, 20, 30, 40]
    """

    def __init__(self, num_partitions: int, *, seed: int = 42) -> None:
        super().__init__(num_partitions, _linear, seed=seed)
