"""`InnerDirichletPartitioner`: fixed partition sizes, each with its own Dir(alpha) label mix."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from fedlab.datasets._hf import column, require_column
from fedlab.datasets.partitioner._checks import (
    check_enough_rows,
    check_seed,
    concentration,
    labels_of,
    sizes_list,
)
from fedlab.datasets.partitioner.partitioner import Indices, RowPartitioner

__all__ = ["InnerDirichletPartitioner"]

#: Each partition fills up in about this many turns, so partitions take turns drawing and
#: none empties a class before the others had a go at it.
_TURNS = 10


class InnerDirichletPartitioner(RowPartitioner):
    """Partitions of given sizes whose label mixes are each drawn from ``Dir(alpha)``.

    Every partition ``j`` draws its own class proportions ``q_j ~ Dir(alpha)``. Partitions
    then take turns, in a random order, drawing about a tenth of their size at a time
    from the classes by ``q_j``; once a class runs out it is dropped from every mix and
    the remaining proportions renormalised. Partition ``j`` ends with exactly
    ``partition_sizes[j]`` rows; rows beyond ``sum(partition_sizes)`` stay unassigned.

    Parameters
    ----------
    partition_sizes
        The number of rows of each partition.
    partition_by
        The label column.
    alpha
        Concentration: one positive number, or one per class (in sorted label order).
    seed
        Seed of the draws.
    """

    def __init__(
        self,
        partition_sizes: Sequence[int],
        partition_by: str,
        alpha: float | Sequence[float],
        *,
        seed: int = 42,
    ) -> None:
        super().__init__()
        self.partition_sizes_requested = sizes_list("partition_sizes", partition_sizes)
        self.partition_by = partition_by
        self.alpha = alpha
        self.seed = check_seed(seed)

    @property
    def num_partitions(self) -> int:
        """How many partitions there are."""
        return len(self.partition_sizes_requested)

    def _assign(self) -> list[Indices]:
        dataset = self.dataset
        require_column(dataset, self.partition_by, "InnerDirichletPartitioner")
        sizes = np.asarray(self.partition_sizes_requested, dtype=np.int64)
        check_enough_rows(
            len(dataset),
            int(sizes.sum()),
            "InnerDirichletPartitioner",
            "make partition_sizes add up to at most that",
        )
        classes, codes = labels_of(column(dataset, self.partition_by))
        rng = np.random.default_rng(self.seed)
        alpha = concentration(
            self.alpha, len(classes), "class of the label column, in sorted order"
        )
        mixes = rng.dirichlet(alpha, size=len(sizes))
        pools = [rng.permutation(np.flatnonzero(codes == c)) for c in range(len(classes))]
        taken = np.zeros(len(classes), dtype=np.int64)
        available = np.array([len(p) for p in pools], dtype=np.int64)
        pieces: list[list[Indices]] = [[] for _ in sizes]
        need = sizes.copy()
        while need.any():
            for j in rng.permutation(np.flatnonzero(need > 0)):
                left = available - taken
                weights = mixes[j] * (left > 0)
                if weights.sum() <= 0:  # this mix has no mass on the classes still available
                    weights = left.astype(np.float64)
                chunk = min(int(need[j]), max(1, math.ceil(sizes[j] / _TURNS)))
                draw = np.minimum(rng.multinomial(chunk, weights / weights.sum()), left)
                for c in np.flatnonzero(draw):
                    pieces[j].append(pools[c][taken[c] : taken[c] + draw[c]])
                    taken[c] += draw[c]
                need[j] -= int(draw.sum())
        return [np.concatenate(p) if p else np.empty(0, dtype=np.int64) for p in pieces]
