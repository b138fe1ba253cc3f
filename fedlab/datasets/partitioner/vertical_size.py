"""`VerticalSizePartitioner`: feature columns dealt to parties in counts or fractions you give."""

from __future__ import annotations

from collections.abc import Sequence

from fedlab.datasets.partitioner._sizes import proportional_sizes
from fedlab.datasets.partitioner.column import ColumnPartitioner
from fedlab.errors import DatasetError

__all__ = ["VerticalSizePartitioner"]


class VerticalSizePartitioner(ColumnPartitioner):
    """Party ``i`` gets ``partition_sizes[i]`` feature columns.

    The sizes are either ints, which must add up to the number of feature columns, or
    fractions adding up to 1, turned into column counts by largest-remainder rounding.
    See :class:`ColumnPartitioner` for the other parameters.

    Examples
    --------
    >>> import datasets
    >>> partitioner = VerticalSizePartitioner([0.25, 0.75], shuffle=False)
    >>> partitioner.dataset = datasets.Dataset.from_dict({c: [0] for c in "abcd"})
    >>> partitioner.partition_columns(1)
    ['b', 'c', 'd']
    """

    def __init__(
        self,
        partition_sizes: Sequence[int] | Sequence[float],
        *,
        active_party_columns: Sequence[str] = (),
        active_party_id: int = 0,
        shared_columns: Sequence[str] = (),
        drop_columns: Sequence[str] = (),
        shuffle: bool = True,
        seed: int = 42,
    ) -> None:
        if (
            isinstance(partition_sizes, str)
            or not isinstance(partition_sizes, Sequence)
            or not partition_sizes
        ):
            raise DatasetError(
                f"partition_sizes must be a non-empty list of ints or fractions, got {partition_sizes!r}."
            )
        super().__init__(
            len(partition_sizes),
            active_party_columns=active_party_columns,
            active_party_id=active_party_id,
            shared_columns=shared_columns,
            drop_columns=drop_columns,
            shuffle=shuffle,
            seed=seed,
        )
        self.partition_sizes_requested = list(partition_sizes)
        all_ints = all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in partition_sizes
        )
        all_fractions = all(isinstance(s, float) and 0 <= s <= 1 for s in partition_sizes)
        if not all_ints and not (all_fractions and abs(sum(partition_sizes) - 1.0) < 1e-9):
            raise DatasetError(
                "partition_sizes must be all non-negative ints, or all floats between 0 and 1 "
                f"adding up to 1; got {partition_sizes!r}."
            )

    def _counts(self, num_features: int) -> list[int]:
        sizes = self.partition_sizes_requested
        if all(isinstance(s, int) for s in sizes):
            if sum(sizes) != num_features:
                raise DatasetError(
                    f"partition_sizes {sizes} add up to {sum(sizes)} columns but there are "
                    f"{num_features} feature columns; make them add up, or give fractions."
                )
            return [int(s) for s in sizes]
        return [int(c) for c in proportional_sizes(num_features, sizes)]
