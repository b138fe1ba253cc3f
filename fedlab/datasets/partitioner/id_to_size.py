"""Partition sizes given by a function of the partition id.

:class:`IdToSizePartitioner` takes any such function; :class:`LinearPartitioner`,
:class:`SquarePartitioner` and :class:`ExponentialPartitioner` are it with a fixed one.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from fedlab.datasets.partitioner._checks import check_enough_rows, check_seed
from fedlab.datasets.partitioner._sizes import cut, proportional_sizes
from fedlab.datasets.partitioner.partitioner import Indices, RowPartitioner
from fedlab.errors import DatasetError
from fedlab.validate import check_int

__all__ = [
    "ExponentialPartitioner",
    "IdToSizePartitioner",
    "LinearPartitioner",
    "SquarePartitioner",
]


class IdToSizePartitioner(RowPartitioner):
    """Partition ``i`` gets a share of the rows proportional to ``size_fn(i)``.

    Sizes are the largest-remainder rounding of ``n * w_i / sum(w)`` with
    ``w_i = size_fn(i)``: they add up to all ``n`` rows and each is within one row of
    its exact share. Rows are drawn at random. The base of :class:`LinearPartitioner`,
    :class:`SquarePartitioner` and :class:`ExponentialPartitioner`.

    Parameters
    ----------
    num_partitions
        How many partitions to make.
    size_fn
        Relative size of partition ``i``; must be positive.
    seed
        Seed of the shuffle.
    """

    def __init__(
        self, num_partitions: int, size_fn: Callable[[int], float], *, seed: int = 42
    ) -> None:
        super().__init__()
        self._num_partitions = check_int("num_partitions", num_partitions, DatasetError, minimum=1)
        self.size_fn = size_fn
        self.seed = check_seed(seed)

    @property
    def num_partitions(self) -> int:
        """How many partitions there are."""
        return self._num_partitions

    def weights(self) -> list[float]:
        """The relative size ``size_fn(i)`` of every partition."""
        weights = [float(self.size_fn(i)) for i in range(self._num_partitions)]
        bad = [(i, w) for i, w in enumerate(weights) if not np.isfinite(w) or w <= 0]
        if bad:
            raise DatasetError(
                f"size_fn must give a positive finite size for every id; got {bad[:3]}."
            )
        return weights

    def _assign(self) -> list[Indices]:
        n = len(self.dataset)
        check_enough_rows(n, self._num_partitions, type(self).__name__, "lower num_partitions")
        sizes = proportional_sizes(n, self.weights())
        if sizes.min() == 0:
            raise DatasetError(
                f"{type(self).__name__} would leave partition {int(sizes.argmin())} empty with "
                f"{n} rows; lower num_partitions or use a dataset with more rows."
            )
        return cut(np.random.default_rng(self.seed).permutation(n), sizes)


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
