"""`GroupedNaturalIdPartitioner`: partitions that each hold a group of natural ids."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from fedlab.datasets._hf import column, require_column
from fedlab.datasets.partitioner._checks import check_seed, labels_of
from fedlab.datasets.partitioner.partitioner import Indices, RowPartitioner
from fedlab.errors import DatasetError
from fedlab.validate import check_int

__all__ = ["GroupMode", "GroupedNaturalIdPartitioner"]

#: What to do with the ids left over when their count is not a multiple of ``group_size``.
GroupMode = Literal["allow-smaller", "allow-bigger", "drop-remainder", "strict"]


class GroupedNaturalIdPartitioner(RowPartitioner):
    """Like :class:`NaturalIdPartitioner`, but each partition holds ``group_size`` ids.

    The distinct ids (sorted, then shuffled with ``seed`` unless ``shuffle=False``) are cut
    into groups of ``group_size``. With ``m`` ids and ``r = m mod group_size`` left over,
    ``mode`` decides: ``"allow-smaller"`` makes one last group of ``r`` ids;
    ``"allow-bigger"`` adds the ``r`` ids one each to the first groups; ``"drop-remainder"``
    leaves their rows unassigned; ``"strict"`` refuses unless ``r == 0``.

    Parameters
    ----------
    partition_by
        The id column.
    group_size
        Ids per partition.
    mode
        See above.
    shuffle
        Group ids at random (the default) or in sorted order.
    seed
        Seed of the shuffle.
    """

    def __init__(
        self,
        partition_by: str,
        group_size: int,
        *,
        mode: GroupMode = "allow-smaller",
        shuffle: bool = True,
        seed: int = 42,
    ) -> None:
        super().__init__()
        if mode not in ("allow-smaller", "allow-bigger", "drop-remainder", "strict"):
            raise DatasetError(
                "mode must be 'allow-smaller', 'allow-bigger', 'drop-remainder' or 'strict', "
                f"got {mode!r}."
            )
        self.partition_by = partition_by
        self.group_size = check_int("group_size", group_size, DatasetError, minimum=1)
        self.mode = mode
        self.shuffle = shuffle
        self.seed = check_seed(seed)
        self._groups: list[list[Any]] | None = None

    @property
    def num_partitions(self) -> int:
        """How many partitions there are."""
        return len(self._assigned())

    @property
    def partition_id_to_natural_ids(self) -> dict[int, list[Any]]:
        """Which ids each partition holds."""
        self._assigned()
        assert self._groups is not None  # set by _assign
        return dict(enumerate(self._groups))

    def _assign(self) -> list[Indices]:
        require_column(self.dataset, self.partition_by, "GroupedNaturalIdPartitioner")
        ids, codes = labels_of(column(self.dataset, self.partition_by))
        order = (
            np.random.default_rng(self.seed).permutation(len(ids))
            if self.shuffle
            else np.arange(len(ids))
        )
        groups = self._group(order.tolist())
        self._groups = [
            [ids[c].item() if hasattr(ids[c], "item") else ids[c] for c in g] for g in groups
        ]
        group_of = np.full(len(ids), -1, dtype=np.int64)
        for g, members in enumerate(groups):
            group_of[members] = g
        row_group = group_of[codes]
        return [np.flatnonzero(row_group == g) for g in range(len(groups))]

    def _group(self, ids: list[int]) -> list[list[int]]:
        size, count = self.group_size, len(ids)
        full, left = divmod(count, size)
        if self.mode == "strict" and left:
            raise DatasetError(
                f"{count} distinct ids do not split into groups of {size} (remainder {left}); "
                "pick a group_size that divides it or another mode such as 'allow-smaller'."
            )
        if full == 0 and self.mode != "allow-smaller":
            raise DatasetError(
                f"Only {count} distinct ids, fewer than group_size={size}; lower group_size."
            )
        groups = [ids[i * size : (i + 1) * size] for i in range(full)]
        rest = ids[full * size :]
        if rest and self.mode == "allow-smaller":
            groups.append(rest)
        elif rest and self.mode == "allow-bigger":
            for i, extra in enumerate(rest):
                groups[i % full].append(extra)
        return groups
