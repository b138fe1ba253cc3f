"""`Partitioner` and `RowPartitioner`: how one dataset is split among clients."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from fedlab.errors import DatasetError

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["Indices", "Partitioner", "RowPartitioner"]

#: Row indices of one partition: a sorted 1-D int64 array.
Indices = npt.NDArray[np.int64]


class Partitioner(ABC):
    """Splits one dataset (a Hugging Face ``datasets.Dataset``) into numbered partitions.

    Give the partitioner its dataset once (:class:`~fedlab.datasets.FederatedDataset`
    does this for you), then ask for partitions by id. The split is computed on first
    use and never changes afterwards; seeded partitioners give the same split for the
    same seed and dataset.
    """

    def __init__(self) -> None:
        self._dataset: Dataset | None = None
        self._lock = threading.Lock()

    @property
    def dataset(self) -> Dataset:
        """The dataset being partitioned."""
        if self._dataset is None:
            raise DatasetError(
                f"This {type(self).__name__} has no dataset yet; set partitioner.dataset = ds "
                "or pass it to a FederatedDataset in partitioners={'train': partitioner}."
            )
        return self._dataset

    @dataset.setter
    def dataset(self, value: Dataset) -> None:
        if self._dataset is not None and value is not self._dataset:
            raise DatasetError(
                f"This {type(self).__name__} already partitions another dataset; its partitions "
                "must not change under its users. Create a new partitioner for the new dataset."
            )
        self._dataset = value

    @property
    def has_dataset(self) -> bool:
        """Whether a dataset has been assigned."""
        return self._dataset is not None

    @property
    @abstractmethod
    def num_partitions(self) -> int:
        """How many partitions there are."""

    @abstractmethod
    def load_partition(self, partition_id: int) -> Dataset:
        """Return partition ``partition_id`` as a ``datasets.Dataset``."""

    def _check_partition_id(self, partition_id: int) -> int:
        count = self.num_partitions
        if isinstance(partition_id, bool) or not isinstance(partition_id, int | np.integer):
            raise DatasetError(f"partition_id must be an int, got {partition_id!r}.")
        if not 0 <= int(partition_id) < count:
            raise DatasetError(
                f"partition_id {partition_id} is out of range: this {type(self).__name__} has "
                f"{count} partitions, numbered 0 to {count - 1}."
            )
        return int(partition_id)


class RowPartitioner(Partitioner):
    """A partitioner that gives each partition a set of rows (horizontal federated learning).

    Subclasses implement :meth:`_assign`, which returns the row indices of every partition
    at once; the base class caches them, checks them, and selects the rows.
    """

    def __init__(self) -> None:
        super().__init__()
        self._assignment: list[Indices] | None = None

    def partition_indices(self, partition_id: int) -> Indices:
        """Return the sorted row indices (into :attr:`dataset`) of partition ``partition_id``."""
        return self._assigned()[self._check_partition_id(partition_id)]

    def partition_sizes(self) -> list[int]:
        """Return the number of rows of every partition, in partition order."""
        return [len(rows) for rows in self._assigned()]

    def load_partition(self, partition_id: int) -> Dataset:
        """Return partition ``partition_id``: the dataset's rows at :meth:`partition_indices`."""
        return self.dataset.select(self.partition_indices(partition_id))

    @abstractmethod
    def _assign(self) -> Sequence[npt.NDArray[Any]]:
        """Return the row indices of every partition of :attr:`dataset` (disjoint)."""

    def _assigned(self) -> list[Indices]:
        if self._assignment is None:
            with self._lock:  # threads of a simulation may ask for partitions at once
                if self._assignment is None:
                    dataset = self.dataset
                    parts = [np.sort(np.asarray(p, dtype=np.int64)) for p in self._assign()]
                    self._assignment = _validated(parts, len(dataset), type(self).__name__)
        return self._assignment


def _validated(parts: list[Indices], num_rows: int, name: str) -> list[Indices]:
    everything = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    if len(np.unique(everything)) != len(everything) or (
        len(everything) and (everything.min() < 0 or everything.max() >= num_rows)
    ):
        # A partitioner bug, not a user error; still a clear message rather than wrong data.
        raise DatasetError(f"{name} produced overlapping or out-of-range row indices.")
    return parts
