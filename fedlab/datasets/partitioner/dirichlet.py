"""`DirichletPartitioner`: label skew, each class spread over partitions by a Dirichlet draw."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedlab.datasets._hf import column, require_column
from fedlab.datasets.partitioner._checks import (
    check_enough_rows,
    check_seed,
    concentration,
    labels_of,
)
from fedlab.datasets.partitioner._sizes import cut, proportional_sizes
from fedlab.datasets.partitioner.partitioner import Indices, RowPartitioner
from fedlab.errors import DatasetError
from fedlab.validate import check_int

__all__ = ["DirichletPartitioner"]


class DirichletPartitioner(RowPartitioner):
    """Non-IID label skew: the rows of each class are shared out by proportions ~ Dir(alpha).

    For every class (in sorted order) the partitioner draws proportions ``p ~ Dir(alpha)``
    over the partitions and gives partition ``j`` a share ``p_j`` of that class's rows
    (largest-remainder rounding, so every row is assigned). A large ``alpha`` (e.g. 1000)
    gives nearly IID partitions; a small one (e.g. 0.05) gives each partition few classes.
    If some partition ends up with fewer than ``min_partition_size`` rows, the whole draw
    is repeated, up to ``max_attempts`` times.

    Parameters
    ----------
    num_partitions
        How many partitions to make.
    partition_by
        The label column.
    alpha
        Concentration: one positive number, or one per partition.
    min_partition_size
        Fewest rows a partition may have.
    self_balancing
        When sharing out a class, leave out partitions that already hold more than
        ``n / num_partitions`` rows, which keeps sizes closer together.
    max_attempts
        How many draws to try before giving up on ``min_partition_size``.
    seed
        Seed of the draws and of which rows of a class go where.
    """

    def __init__(
        self,
        num_partitions: int,
        partition_by: str,
        alpha: float | Sequence[float],
        *,
        min_partition_size: int = 10,
        self_balancing: bool = False,
        max_attempts: int = 10,
        seed: int = 42,
    ) -> None:
        super().__init__()
        self._num_partitions = check_int("num_partitions", num_partitions, DatasetError, minimum=1)
        self.partition_by = partition_by
        self.alpha = concentration(alpha, self._num_partitions, "partition")
        self.min_partition_size = check_int("min_partition_size", min_partition_size, DatasetError)
        self.self_balancing = self_balancing
        self.max_attempts = check_int("max_attempts", max_attempts, DatasetError, minimum=1)
        self.seed = check_seed(seed)

    @property
    def num_partitions(self) -> int:
        """How many partitions there are."""
        return self._num_partitions

    def _assign(self) -> list[Indices]:
        dataset = self.dataset
        require_column(dataset, self.partition_by, "DirichletPartitioner")
        n, k = len(dataset), self._num_partitions
        check_enough_rows(
            n,
            k * max(self.min_partition_size, 1),
            "DirichletPartitioner",
            "lower num_partitions or min_partition_size",
        )
        classes, codes = labels_of(column(dataset, self.partition_by))
        rng = np.random.default_rng(self.seed)
        smallest = 0
        for _ in range(self.max_attempts):
            parts = self._draw(rng, codes, len(classes), n)
            smallest = min(len(p) for p in parts)
            if smallest >= self.min_partition_size:
                return parts
        raise DatasetError(
            f"After {self.max_attempts} Dirichlet draws (alpha={self.alpha.tolist()[:3]}...), some "
            f"partition still had fewer than min_partition_size={self.min_partition_size} rows "
            f"(smallest: {smallest}). Raise alpha, lower min_partition_size or num_partitions, "
            "set self_balancing=True, or raise max_attempts."
        )

    def _draw(
        self, rng: np.random.Generator, codes: Indices, num_classes: int, n: int
    ) -> list[Indices]:
        k = self._num_partitions
        pieces: list[list[Indices]] = [[] for _ in range(k)]
        sizes = np.zeros(k, dtype=np.int64)
        for label in range(num_classes):
            rows = rng.permutation(np.flatnonzero(codes == label))
            proportions = rng.dirichlet(self.alpha)
            if self.self_balancing:
                # Partitions already above the average size get none of this class.
                open_ = sizes < n / k
                if open_.any():
                    proportions = np.where(open_, proportions, 0.0)
                    if proportions.sum() <= 0:  # the open partitions all drew exactly zero
                        proportions = open_.astype(np.float64)
            for j, piece in enumerate(cut(rows, proportional_sizes(len(rows), proportions))):
                pieces[j].append(piece)
                sizes[j] += len(piece)
        return [np.concatenate(p) if p else np.empty(0, dtype=np.int64) for p in pieces]
