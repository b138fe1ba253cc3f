"""`DistributionPartitioner`: you say what share of each class every partition gets."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from fedlab.datasets._hf import column, require_column
from fedlab.datasets.partitioner._checks import check_seed, labels_of
from fedlab.datasets.partitioner._sizes import cut, proportional_sizes
from fedlab.datasets.partitioner.partitioner import Indices, RowPartitioner
from fedlab.errors import DatasetError

__all__ = ["DistributionPartitioner"]


class DistributionPartitioner(RowPartitioner):
    """An explicit label distribution: ``distribution[c, j]`` weighs class c for partition j.

    Row ``c`` of ``distribution`` (classes in sorted label order) says how the rows of
    class ``c`` are shared among the partitions: partition ``j`` gets the largest-remainder
    rounding of ``n_c * distribution[c, j] / distribution[c].sum()`` of them, chosen at
    random. Every row is assigned. Use it to reproduce a split from a paper, or to build
    one from your own sampler.

    Parameters
    ----------
    distribution
        Non-negative weights of shape ``(num_classes, num_partitions)``; each row needs a
        positive sum.
    partition_by
        The label column.
    seed
        Seed of which rows of a class go to which partition.

    Examples
    --------
    >>> import datasets
    >>> partitioner = DistributionPartitioner([[3, 1], [0, 1]], "label")
    >>> partitioner.dataset = datasets.Dataset.from_dict({"label": [0] * 8 + [1] * 2})
    >>> partitioner.partition_sizes()
    [6, 4]
    """

    def __init__(
        self,
        distribution: Sequence[Sequence[float]] | npt.NDArray[np.floating],
        partition_by: str,
        *,
        seed: int = 42,
    ) -> None:
        super().__init__()
        try:
            weights = np.asarray(distribution, dtype=np.float64)
        except (TypeError, ValueError):
            weights = np.empty(0)
        if (
            weights.ndim != 2
            or weights.shape[1] < 1
            or not np.all(np.isfinite(weights))
            or (np.any(weights < 0) or np.any(weights.sum(axis=1) <= 0))
        ):
            raise DatasetError(
                "distribution must be a 2-D array of non-negative weights, one row per class and "
                f"one column per partition, each row with a positive sum; got {distribution!r}."
            )
        self.distribution = weights
        self.partition_by = partition_by
        self.seed = check_seed(seed)

    @property
    def num_partitions(self) -> int:
        """How many partitions there are: the columns of ``distribution``."""
        return int(self.distribution.shape[1])

    def _assign(self) -> list[Indices]:
        require_column(self.dataset, self.partition_by, "DistributionPartitioner")
        classes, codes = labels_of(column(self.dataset, self.partition_by))
        if len(classes) != self.distribution.shape[0]:
            raise DatasetError(
                f"distribution has {self.distribution.shape[0]} rows but the column "
                f"{self.partition_by!r} has {len(classes)} classes ({classes.tolist()[:10]}); "
                "give one row per class, in sorted label order."
            )
        rng = np.random.default_rng(self.seed)
        pieces: list[list[Indices]] = [[] for _ in range(self.num_partitions)]
        for c in range(len(classes)):
            rows = rng.permutation(np.flatnonzero(codes == c))
            for j, part in enumerate(
                cut(rows, proportional_sizes(len(rows), self.distribution[c]))
            ):
                pieces[j].append(part)
        return [np.concatenate(p) for p in pieces]
