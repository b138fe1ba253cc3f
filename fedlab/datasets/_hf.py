"""Lazy access to Hugging Face `datasets` and pyarrow, and column helpers built on them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from fedlab.errors import DatasetError, MissingDependencyError

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

__all__ = ["as_dataset_dict", "column", "hf", "require_column", "to_table"]


def hf() -> Any:
    """Return the ``datasets`` module, imported on first use because it is slow to import."""
    try:
        import datasets
    except ImportError:
        raise MissingDependencyError("datasets", "datasets", "fedlab.datasets") from None
    return datasets


def require_column(dataset: Dataset, name: str, who: str) -> None:
    """Raise a DatasetError naming the available columns if ``name`` is not one of them."""
    if name not in dataset.column_names:
        raise DatasetError(
            f"{who} needs the column {name!r}, but the dataset has only {dataset.column_names}; "
            "pass one of those (e.g. partition_by='label')."
        )


def column(dataset: Dataset, name: str) -> npt.NDArray[Any]:
    """Return one column of ``dataset`` as a 1-D numpy array, in row order."""
    # Through Arrow rather than dataset[name]: that is a list in datasets 2.x and a lazy
    # Column object in 5.x, while an Arrow table behaves the same in every version.
    table = dataset.select_columns([name]).with_format("arrow")[:]
    values = table.column(name).to_numpy()
    return np.asarray(values)


def to_table(dataset: Dataset) -> Any:
    """Return the rows of ``dataset`` (after any selection) as one pyarrow Table."""
    return dataset.with_format("arrow")[:]


def as_dataset_dict(data: Any, default_split: str = "train") -> DatasetDict:
    """Wrap a ``Dataset`` into a one-split ``DatasetDict``; pass a ``DatasetDict`` through."""
    datasets = hf()
    if isinstance(data, datasets.DatasetDict):
        return data
    if isinstance(data, datasets.Dataset):
        split = str(data.split) if data.split is not None else default_split
        return datasets.DatasetDict({split: data})
    if isinstance(data, datasets.IterableDataset | datasets.IterableDatasetDict):
        raise DatasetError(
            "A streaming (iterable) dataset cannot be partitioned: partitions need random access. "
            "Load it without streaming=True, or take a slice with split='train[:10%]'."
        )
    raise DatasetError(
        f"Expected a datasets.Dataset or datasets.DatasetDict, got {type(data).__name__}; for "
        "other data use FederatedDataset.from_pandas, from_numpy, from_files, from_sklearn or from_hub."
    )
