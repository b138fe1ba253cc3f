"""Checking a FederatedDataset's options, and turning loaded data into the splits to partition."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fedlab.datasets._hf import as_dataset_dict
from fedlab.datasets.partitioner import IidPartitioner, Partitioner
from fedlab.datasets.preprocessor import Preprocessor, divide_split
from fedlab.errors import DatasetError

if TYPE_CHECKING:
    from datasets import DatasetDict

__all__ = ["check_test_size", "partitioned_split", "partitioner_for", "prepare"]


def prepare(
    raw: Any,
    preprocessor: Preprocessor | None,
    test_size: float | None,
    seed: int,
    partitioned: Sequence[str],
) -> DatasetDict:
    """Apply the preprocessor, then the ``test_size`` division, and check the split names."""
    data = as_dataset_dict(raw)
    if preprocessor is not None:
        data = as_dataset_dict(preprocessor(data))
    if test_size is not None:
        if "train" not in data or "test" in data:
            raise DatasetError(
                "test_size divides 'train' into 'train' and 'test', but the splits are "
                f"{list(data)}; leave test_size out, or reshape the splits with a preprocessor."
            )
        rows = len(data["train"])
        parts: dict[str, float | int] = (
            {"train": 1.0 - test_size, "test": float(test_size)}
            if isinstance(test_size, float)
            else {"train": rows - test_size, "test": test_size}
        )
        data = divide_split("train", parts, seed=seed)(data)
    missing = [s for s in partitioned if s not in data]
    if missing:
        raise DatasetError(
            f"partitioners name splits {missing} that the dataset lacks; it has {list(data)}."
        )
    return data


def partitioner_for(split: object, value: Partitioner | int, seed: int) -> Partitioner:
    """The partitioner given for ``split``, or an IidPartitioner for a number."""
    if isinstance(value, Partitioner):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return IidPartitioner(value, seed=seed)
    raise DatasetError(
        f"partitioners[{split!r}] must be a Partitioner or a positive number of IID partitions, "
        f"got {value!r}."
    )


def check_test_size(test_size: object) -> None:
    """Raise a DatasetError unless ``test_size`` is None, a fraction in (0, 1) or a row count."""
    if test_size is None:
        return
    if isinstance(test_size, float) and 0 < test_size < 1:
        return
    if isinstance(test_size, int) and not isinstance(test_size, bool) and test_size >= 1:
        return
    raise DatasetError(
        f"test_size must be a fraction between 0 and 1 or a number of rows, got {test_size!r}."
    )


def partitioned_split(partitioned: Sequence[str], split: str | None) -> str:
    """Return ``split`` if it is partitioned; ``None`` means the only partitioned split."""
    if split is None:
        if len(partitioned) != 1:
            raise DatasetError(
                f"Several splits are partitioned ({list(partitioned)}); say which, e.g. "
                f"split={partitioned[0]!r}."
            )
        return partitioned[0]
    if split not in partitioned:
        raise DatasetError(
            f"Split {split!r} has no partitioner; partitioned splits are {list(partitioned)}. "
            "Add it to partitioners=..., or use load_split() for the whole split."
        )
    return split
