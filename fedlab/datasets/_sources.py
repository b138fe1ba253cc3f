"""Loaders that turn each kind of source into a ``DatasetDict``: Hub, pandas, numpy, sklearn."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from fedlab.datasets._hf import as_dataset_dict, hf
from fedlab.errors import DatasetError, MissingDependencyError

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

__all__ = ["SKLEARN_DATASETS", "from_hub", "from_numpy", "from_pandas", "from_sklearn"]

#: scikit-learn's bundled datasets that load without a network.
SKLEARN_DATASETS = ("breast_cancer", "digits", "iris", "wine")


def from_hub(path: str, name: str | None, load_dataset_kwargs: Mapping[str, Any]) -> DatasetDict:
    """Load ``path`` with ``datasets.load_dataset`` (downloads, or reads the local HF cache)."""
    # The user's arguments go through untouched; name only when given, as load_dataset's own default.
    options = dict(load_dataset_kwargs) if name is None else {"name": name, **load_dataset_kwargs}
    loaded = hf().load_dataset(path, **options)
    split = load_dataset_kwargs.get("split")
    return as_dataset_dict(loaded, split if isinstance(split, str) else "train")


def from_pandas(frames: Any) -> DatasetDict:
    """One DataFrame (the ``train`` split) or a mapping of split name to DataFrame."""
    import pandas as pd

    if isinstance(frames, pd.DataFrame):
        frames = {"train": frames}
    if (
        not isinstance(frames, Mapping)
        or not frames
        or not all(isinstance(f, pd.DataFrame) for f in frames.values())
    ):
        raise DatasetError(
            "from_pandas takes a pandas DataFrame or a dict of split name to DataFrame, "
            f"got {type(frames).__name__}."
        )
    datasets = hf()
    return datasets.DatasetDict(
        {str(s): datasets.Dataset.from_pandas(f, preserve_index=False) for s, f in frames.items()}
    )


def from_numpy(
    x: Any, y: Any, test: tuple[Any, Any] | None, feature_column: str, label_column: str
) -> DatasetDict:
    """Arrays ``x`` (one row per example, any shape) and optional labels ``y``."""
    splits = {"train": (x, y)} if test is None else {"train": (x, y), "test": test}
    return hf().DatasetDict(
        {s: _arrays(a, b, feature_column, label_column, s) for s, (a, b) in splits.items()}
    )


def _arrays(x: Any, y: Any, feature_column: str, label_column: str, split: str) -> Dataset:
    x = np.asarray(x)
    if x.ndim == 0:
        raise DatasetError(f"The {split} features must have one row per example, got a scalar.")
    columns: dict[str, Any] = {feature_column: x}
    if y is not None:
        y = np.asarray(y)
        if len(y) != len(x):
            raise DatasetError(
                f"The {split} labels have {len(y)} rows but the features have {len(x)}; give one "
                "label per example."
            )
        columns[label_column] = y
    return hf().Dataset.from_dict(columns)


def from_sklearn(name: str, as_columns: bool) -> DatasetDict:
    """One of scikit-learn's bundled datasets, as a ``train`` split with a ClassLabel label."""
    if name not in SKLEARN_DATASETS:
        raise DatasetError(
            f"Unknown scikit-learn dataset {name!r}; choose one of {', '.join(SKLEARN_DATASETS)} "
            "(they ship with scikit-learn and need no network)."
        )
    try:
        from sklearn import datasets as sk
    except ImportError:
        raise MissingDependencyError(
            "scikit-learn", "examples", f"FederatedDataset.from_sklearn({name!r})"
        ) from None
    bunch = getattr(sk, f"load_{name}")()
    data = np.asarray(bunch.data, dtype=np.float32)
    names = [str(t) for t in bunch.target_names]
    datasets = hf()
    label = datasets.ClassLabel(names=names)
    if as_columns:
        feature_names = [str(f) for f in bunch.feature_names]
        columns: dict[str, Any] = {f: data[:, i] for i, f in enumerate(feature_names)}
        features = {f: datasets.Value("float32") for f in feature_names}
    else:
        columns = {"features": data}
        features = {"features": datasets.Sequence(datasets.Value("float32"))}
    columns["label"] = np.asarray(bunch.target, dtype=np.int64)
    features["label"] = label
    dataset = datasets.Dataset.from_dict(columns, features=datasets.Features(features))
    return datasets.DatasetDict({"train": dataset})
