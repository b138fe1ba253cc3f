"""`VerticalEvenPartitioner`: feature columns dealt evenly among the parties."""

from __future__ import annotations

from fedlab.datasets.partitioner._sizes import proportional_sizes
from fedlab.datasets.partitioner.column import ColumnPartitioner
from fedlab.errors import DatasetError

__all__ = ["VerticalEvenPartitioner"]


class VerticalEvenPartitioner(ColumnPartitioner):
    """Every party gets the same number of feature columns (±1, the first parties get more).

    See :class:`ColumnPartitioner` for the columns that are not dealt (labels, shared ids,
    dropped columns) and for the parameters.

    Examples
    --------
    >>> import datasets
    >>> partitioner = VerticalEvenPartitioner(2, active_party_columns=["label"], shuffle=False)
    >>> partitioner.dataset = datasets.Dataset.from_dict(
    ...     {"a": [1], "b": [2], "c": [3], "label": [0]})
    >>> partitioner.partition_columns(0), partitioner.partition_columns(1)
    (['a', 'b', 'label'], ['c'])
    """

    def _counts(self, num_features: int) -> list[int]:
        if num_features < self.num_partitions:
            raise DatasetError(
                f"{num_features} feature columns cannot be dealt to {self.num_partitions} parties "
                "so that each gets one; lower num_partitions."
            )
        return [int(c) for c in proportional_sizes(num_features, [1.0] * self.num_partitions)]
