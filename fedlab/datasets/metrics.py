"""Label counts and frequencies per partition, as pandas DataFrames."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from fedlab.datasets._hf import column, require_column
from fedlab.datasets.partitioner import Partitioner, RowPartitioner
from fedlab.datasets.partitioner._checks import labels_of
from fedlab.errors import DatasetError
from fedlab.validate import check_int

if TYPE_CHECKING:
    import pandas as pd

    from fedlab.datasets.federated_dataset import FederatedDataset

__all__ = ["compute_counts", "compute_frequencies"]


def compute_counts(
    source: Partitioner | FederatedDataset,
    column_name: str = "label",
    *,
    split: str | None = None,
    max_partitions: int | None = None,
) -> pd.DataFrame:
    """Count the values of ``column_name`` in every partition.

    Parameters
    ----------
    source
        A partitioner that has its dataset, or a FederatedDataset (then ``split`` picks
        the partitioned split, if it has several).
    column_name
        The column to count, usually the label.
    split
        The split of a FederatedDataset.
    max_partitions
        Count only the first this many partitions.

    Returns
    -------
    pandas.DataFrame
        One row per partition (index ``partition_id``), one column per value of the whole
        dataset's column in sorted order (named by the ClassLabel names if it has them),
        holding integer counts; a value a partition lacks counts 0.

    Examples
    --------
    >>> import datasets
    >>> from fedlab.datasets import SizePartitioner
    >>> partitioner = SizePartitioner([2, 3], shuffle=False)
    >>> partitioner.dataset = datasets.Dataset.from_dict({"label": [0, 1, 1, 1, 2]})
    >>> compute_counts(partitioner)
    label         0  1  2
    partition_id
    0             1  1  0
    1             0  2  1
    """
    import pandas as pd

    partitioner = _partitioner(source, split)
    dataset = partitioner.dataset
    require_column(dataset, column_name, "compute_counts")
    classes, codes = labels_of(column(dataset, column_name))
    count = partitioner.num_partitions
    if max_partitions is not None:
        count = min(count, check_int("max_partitions", max_partitions, DatasetError, minimum=1))
    rows = np.zeros((count, len(classes)), dtype=np.int64)
    for pid in range(count):
        if isinstance(partitioner, RowPartitioner):
            rows[pid] = np.bincount(
                codes[partitioner.partition_indices(pid)], minlength=len(classes)
            )
        else:
            # A vertical party holds every row, but counts the label only if it holds that column.
            part = partitioner.load_partition(pid)
            if column_name in part.column_names:
                rows[pid] = np.bincount(codes, minlength=len(classes))
    index = pd.RangeIndex(count, name="partition_id")
    columns = pd.Index(_names(dataset, column_name, classes), name=column_name)
    frame: pd.DataFrame = pd.DataFrame(rows, index=index, columns=columns)
    return frame


def compute_frequencies(
    source: Partitioner | FederatedDataset,
    column_name: str = "label",
    *,
    split: str | None = None,
    max_partitions: int | None = None,
) -> pd.DataFrame:
    """Like :func:`compute_counts`, with each row divided by its total (an empty row stays 0).

    Examples
    --------
    >>> import datasets
    >>> from fedlab.datasets import SizePartitioner
    >>> partitioner = SizePartitioner([2, 2], shuffle=False)
    >>> partitioner.dataset = datasets.Dataset.from_dict({"label": [0, 1, 1, 1]})
    >>> compute_frequencies(partitioner)
    label           0    1
    partition_id
    0             0.5  0.5
    1             0.0  1.0
    """
    counts = compute_counts(source, column_name, split=split, max_partitions=max_partitions)
    totals = counts.sum(axis=1).replace(0, 1)
    frequencies: pd.DataFrame = counts.div(totals, axis=0).astype(np.float64)
    return frequencies


def _partitioner(source: Partitioner | FederatedDataset, split: str | None) -> Partitioner:
    from fedlab.datasets.federated_dataset import FederatedDataset

    if isinstance(source, FederatedDataset):
        return source.partitioner(split)
    if isinstance(source, Partitioner):
        return source
    raise DatasetError(
        f"Expected a Partitioner or a FederatedDataset, got {type(source).__name__}."
    )


def _names(dataset: Any, column_name: str, classes: Any) -> list[Any]:
    feature = dataset.features.get(column_name)
    names = getattr(feature, "names", None)
    values = [c.item() if hasattr(c, "item") else c for c in classes]
    if names and all(isinstance(v, int) and 0 <= v < len(names) for v in values):
        return [names[v] for v in values]
    return values
