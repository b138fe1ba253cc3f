"""`PathologicalPartitioner`: every partition holds exactly k classes."""

from __future__ import annotations

from typing import Literal

import numpy as np

from fedlab.datasets._hf import column, require_column
from fedlab.datasets.partitioner._checks import check_seed, labels_of
from fedlab.datasets.partitioner.partitioner import Indices, RowPartitioner
from fedlab.errors import DatasetError
from fedlab.validate import check_int

__all__ = ["ClassAssignment", "PathologicalPartitioner"]

#: How classes are handed to partitions.
ClassAssignment = Literal["random", "deterministic", "first-deterministic"]


class PathologicalPartitioner(RowPartitioner):
    """Extreme label skew: each partition gets exactly ``num_classes_per_partition`` classes.

    First each partition is given its classes: ``"random"`` picks k distinct classes at
    random; ``"deterministic"`` gives partition ``i`` the classes ``i, i+1, …, i+k-1``
    (modulo the number of classes, in sorted label order); ``"first-deterministic"``
    fixes the first class that way and picks the other k-1 at random. Then the rows of
    each class are shuffled and split as evenly as possible among the partitions that
    hold it. Classes no partition holds (possible with random assignment) are left out,
    so the partitions cover exactly the rows of the classes in use.

    Parameters
    ----------
    num_partitions
        How many partitions to make.
    partition_by
        The label column.
    num_classes_per_partition
        k, the number of classes in every partition.
    class_assignment
        ``"random"``, ``"deterministic"`` or ``"first-deterministic"`` (see above).
    seed
        Seed of the class choice and of the row shuffle.
    """

    def __init__(
        self,
        num_partitions: int,
        partition_by: str,
        num_classes_per_partition: int,
        *,
        class_assignment: ClassAssignment = "random",
        seed: int = 42,
    ) -> None:
        super().__init__()
        if class_assignment not in ("random", "deterministic", "first-deterministic"):
            raise DatasetError(
                "class_assignment must be 'random', 'deterministic' or 'first-deterministic', "
                f"got {class_assignment!r}."
            )
        self._num_partitions = check_int("num_partitions", num_partitions, DatasetError, minimum=1)
        self.partition_by = partition_by
        self.num_classes_per_partition = check_int(
            "num_classes_per_partition", num_classes_per_partition, DatasetError, minimum=1
        )
        self.class_assignment = class_assignment
        self.seed = check_seed(seed)
        self._classes_of: list[list[int]] | None = None

    @property
    def num_partitions(self) -> int:
        """How many partitions there are."""
        return self._num_partitions

    def partition_classes(self, partition_id: int) -> list[object]:
        """Return the labels held by partition ``partition_id``, in sorted order."""
        self._assigned()
        assert self._classes_of is not None  # set by _assign
        values = np.unique(column(self.dataset, self.partition_by))
        return [values[c].item() for c in self._classes_of[self._check_partition_id(partition_id)]]

    def _assign(self) -> list[Indices]:
        dataset = self.dataset
        require_column(dataset, self.partition_by, "PathologicalPartitioner")
        classes, codes = labels_of(column(dataset, self.partition_by))
        k, num_classes = self.num_classes_per_partition, len(classes)
        if k > num_classes:
            raise DatasetError(
                f"num_classes_per_partition={k} but the column {self.partition_by!r} has only "
                f"{num_classes} classes; use at most {num_classes}."
            )
        rng = np.random.default_rng(self.seed)
        self._classes_of = [
            sorted(self._choose(i, num_classes, rng)) for i in range(self._num_partitions)
        ]
        pieces: list[list[Indices]] = [[] for _ in range(self._num_partitions)]
        for c in range(num_classes):
            owners = [i for i, held in enumerate(self._classes_of) if c in held]
            if not owners:
                continue
            rows = rng.permutation(np.flatnonzero(codes == c))
            if len(rows) < len(owners):
                raise DatasetError(
                    f"Class {classes[c]!r} has {len(rows)} rows but {len(owners)} partitions must "
                    "each get some of it; lower num_partitions or num_classes_per_partition."
                )
            for owner, part in zip(owners, np.array_split(rows, len(owners)), strict=True):
                pieces[owner].append(part)
        return [np.concatenate(p) for p in pieces]

    def _choose(self, partition_id: int, num_classes: int, rng: np.random.Generator) -> list[int]:
        k = self.num_classes_per_partition
        if self.class_assignment == "deterministic":
            return [(partition_id + j) % num_classes for j in range(k)]
        if self.class_assignment == "random":
            return [int(c) for c in rng.choice(num_classes, size=k, replace=False)]
        first = partition_id % num_classes
        others = [c for c in range(num_classes) if c != first]
        return [first] + [int(c) for c in rng.choice(others, size=k - 1, replace=False)]
