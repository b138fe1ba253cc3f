"""`NaturalIdPartitioner`: one partition per distinct value of an id column (e.g. a writer)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fedlab.datasets._hf import column, require_column
from fedlab.datasets.partitioner._checks import labels_of
from fedlab.datasets.partitioner.partitioner import Indices, RowPartitioner

__all__ = ["NaturalIdPartitioner"]


class NaturalIdPartitioner(RowPartitioner):
    """The data's own split: partition ``i`` holds the rows of the ``i``-th distinct id.

    Ids are numbered in sorted order, so the split is fully determined by the data and
    takes no seed. Every row belongs to exactly one partition. Use it for datasets that
    come with a natural client, such as the writer of a handwritten character or the
    speaker of an utterance.

    Parameters
    ----------
    partition_by
        The id column.

    Examples
    --------
    >>> import datasets
    >>> partitioner = NaturalIdPartitioner("writer")
    >>> partitioner.dataset = datasets.Dataset.from_dict({"writer": ["b", "a", "b", "c"]})
    >>> partitioner.num_partitions, partitioner.partition_id_to_natural_id
    (3, {0: 'a', 1: 'b', 2: 'c'})
    >>> partitioner.partition_indices(1).tolist()
    [0, 2]
    """

    def __init__(self, partition_by: str) -> None:
        super().__init__()
        self.partition_by = partition_by
        self._natural_ids: list[Any] | None = None

    @property
    def num_partitions(self) -> int:
        """How many partitions there are: the number of distinct ids."""
        return len(self._assigned())

    @property
    def partition_id_to_natural_id(self) -> dict[int, Any]:
        """Which id each partition holds."""
        self._assigned()
        assert self._natural_ids is not None  # set by _assign
        return dict(enumerate(self._natural_ids))

    def _assign(self) -> list[Indices]:
        require_column(self.dataset, self.partition_by, "NaturalIdPartitioner")
        ids, codes = labels_of(column(self.dataset, self.partition_by))
        self._natural_ids = [value.item() if hasattr(value, "item") else value for value in ids]
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(1, len(ids)))
        return np.split(order, bounds)
