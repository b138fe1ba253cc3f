"""`ContinuousPartitioner`: partitions ordered by a numeric feature, with tunable overlap."""

from __future__ import annotations

import numpy as np

from fedlab.datasets._hf import column, require_column
from fedlab.datasets.partitioner._checks import check_enough_rows, check_seed
from fedlab.datasets.partitioner.partitioner import Indices, RowPartitioner
from fedlab.errors import DatasetError
from fedlab.validate import check_int

__all__ = ["ContinuousPartitioner"]


class ContinuousPartitioner(RowPartitioner):
    """Feature skew: partition 0 gets the lowest values of a numeric column, the last the highest.

    Each row gets the score ``strictness * z + (1 - strictness) * e``, where ``z`` is the
    standardised feature value and ``e ~ N(0, 1)`` is seeded noise; rows are sorted by
    score and cut into ``num_partitions`` parts of equal size (±1). ``strictness=1`` sorts
    by the feature itself (ties kept in dataset order); ``strictness=0`` is an IID split.

    Parameters
    ----------
    num_partitions
        How many partitions to make.
    partition_by
        The numeric column.
    strictness
        Between 0 (IID) and 1 (sorted).
    seed
        Seed of the noise.
    """

    def __init__(
        self, num_partitions: int, partition_by: str, strictness: float, *, seed: int = 42
    ) -> None:
        super().__init__()
        if (
            isinstance(strictness, bool)
            or not isinstance(strictness, int | float)
            or not 0 <= strictness <= 1
        ):
            raise DatasetError(f"strictness must be a number between 0 and 1, got {strictness!r}.")
        self._num_partitions = check_int("num_partitions", num_partitions, DatasetError, minimum=1)
        self.partition_by = partition_by
        self.strictness = float(strictness)
        self.seed = check_seed(seed)

    @property
    def num_partitions(self) -> int:
        """How many partitions there are."""
        return self._num_partitions

    def _assign(self) -> list[Indices]:
        require_column(self.dataset, self.partition_by, "ContinuousPartitioner")
        n = len(self.dataset)
        check_enough_rows(n, self._num_partitions, "ContinuousPartitioner", "lower num_partitions")
        values = column(self.dataset, self.partition_by)
        if values.dtype.kind not in "biuf":
            raise DatasetError(
                f"ContinuousPartitioner needs a numeric column; {self.partition_by!r} holds "
                f"{values.dtype} values. Pick a numeric column."
            )
        x = values.astype(np.float64)
        spread = x.std()
        z = (x - x.mean()) / spread if spread > 0 else np.zeros(n)
        noise = np.random.default_rng(self.seed).standard_normal(n)
        score = self.strictness * z + (1.0 - self.strictness) * noise
        order = np.argsort(score, kind="stable")
        return list(np.array_split(order, self._num_partitions))
