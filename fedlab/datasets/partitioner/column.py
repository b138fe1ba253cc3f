"""`ColumnPartitioner`: the base of vertical partitioners, which split columns, not rows."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from fedlab.datasets.partitioner._checks import check_seed
from fedlab.datasets.partitioner.partitioner import Partitioner
from fedlab.errors import DatasetError
from fedlab.validate import check_int

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["ColumnPartitioner"]


class ColumnPartitioner(Partitioner):
    """Vertical federated learning: every party sees every row but only some columns.

    The columns other than ``active_party_columns``, ``shared_columns`` and
    ``drop_columns`` are the *feature columns*; they are shuffled with ``seed`` (unless
    ``shuffle=False``) and dealt to the parties in the counts :meth:`_counts` decides.
    ``active_party_columns`` (typically the label) go to party ``active_party_id`` only,
    ``shared_columns`` (typically a row id to align the parties) to every party, and
    ``drop_columns`` to none. Each party's columns keep the dataset's column order.

    Parameters
    ----------
    num_partitions
        How many parties.
    active_party_columns
        Columns only the active party holds.
    active_party_id
        Which party is the active one.
    shared_columns
        Columns every party holds.
    drop_columns
        Columns no party holds.
    shuffle
        Deal feature columns at random (the default) or in dataset order.
    seed
        Seed of the shuffle.
    """

    def __init__(
        self,
        num_partitions: int,
        *,
        active_party_columns: Sequence[str] = (),
        active_party_id: int = 0,
        shared_columns: Sequence[str] = (),
        drop_columns: Sequence[str] = (),
        shuffle: bool = True,
        seed: int = 42,
    ) -> None:
        super().__init__()
        self._num_partitions = check_int("num_partitions", num_partitions, DatasetError, minimum=1)
        self.active_party_columns = _names("active_party_columns", active_party_columns)
        self.active_party_id = check_int("active_party_id", active_party_id, DatasetError)
        if self.active_party_id >= self._num_partitions:
            raise DatasetError(
                f"active_party_id={active_party_id} but there are only {num_partitions} parties "
                f"(0 to {self._num_partitions - 1})."
            )
        self.shared_columns = _names("shared_columns", shared_columns)
        self.drop_columns = _names("drop_columns", drop_columns)
        special = self.active_party_columns + self.shared_columns + self.drop_columns
        if len(set(special)) != len(special):
            raise DatasetError(
                "A column is listed in more than one of active_party_columns, shared_columns and "
                f"drop_columns ({special}); list each column once."
            )
        self.shuffle = shuffle
        self.seed = check_seed(seed)
        self._columns: list[list[str]] | None = None

    @property
    def num_partitions(self) -> int:
        """How many parties there are."""
        return self._num_partitions

    def partition_columns(self, partition_id: int) -> list[str]:
        """Return the column names party ``partition_id`` holds, in dataset order."""
        return list(self._assigned()[self._check_partition_id(partition_id)])

    def load_partition(self, partition_id: int) -> Dataset:
        """Return every row of the dataset, with only party ``partition_id``'s columns."""
        return self.dataset.select_columns(self.partition_columns(partition_id))

    @abstractmethod
    def _counts(self, num_features: int) -> list[int]:
        """Return how many feature columns each party gets (summing to ``num_features``)."""

    def _assigned(self) -> list[list[str]]:
        if self._columns is None:
            with self._lock:
                if self._columns is None:
                    self._columns = self._deal(list(self.dataset.column_names))
        return self._columns

    def _deal(self, names: list[str]) -> list[list[str]]:
        unknown = [
            c
            for c in self.active_party_columns + self.shared_columns + self.drop_columns
            if c not in names
        ]
        if unknown:
            raise DatasetError(
                f"Columns {unknown} are not in the dataset, whose columns are {names}."
            )
        special = set(self.active_party_columns + self.shared_columns + self.drop_columns)
        features = [c for c in names if c not in special]
        if self.shuffle:
            features = [
                features[i] for i in np.random.default_rng(self.seed).permutation(len(features))
            ]
        counts = self._counts(len(features))
        if len(counts) != self._num_partitions or sum(counts) != len(features):
            raise DatasetError(
                f"{type(self).__name__} dealt {counts} columns for {len(features)} feature columns."
            )
        held: list[set[str]] = []
        start = 0
        for party, count in enumerate(counts):
            mine = set(features[start : start + count]) | set(self.shared_columns)
            if party == self.active_party_id:
                mine |= set(self.active_party_columns)
            held.append(mine)
            start += count
        return [[c for c in names if c in mine] for mine in held]


def _names(what: str, names: Sequence[str]) -> list[str]:
    if isinstance(names, str):
        return [names]
    if not all(isinstance(n, str) for n in names):
        raise DatasetError(f"{what} must be column names (strings), got {names!r}.")
    return list(names)
