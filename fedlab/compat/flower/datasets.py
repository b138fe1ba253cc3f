"""``flwr_datasets.FederatedDataset``: Flower's constructor, building fedlab's FederatedDataset.

``FederatedDataset(dataset="<hub name>", subset=..., partitioners={...}, seed=42,
**load_dataset_kwargs)`` becomes :meth:`fedlab.datasets.FederatedDataset.from_hub`; a
name of one of scikit-learn's bundled datasets (``"digits"``, ``"iris"``...) loads that
one, offline. The partitioners are fedlab's, with Flower's names and arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fedlab.compat.flower.error import FlowerCompatError
from fedlab.datasets import SKLEARN_DATASETS, Partitioner
from fedlab.datasets import FederatedDataset as _FederatedDataset

__all__ = ["FederatedDataset"]


class FederatedDataset(_FederatedDataset):
    """Flower's constructor; the object made is a :class:`fedlab.datasets.FederatedDataset`."""

    def __new__(  # type: ignore[misc]
        cls,
        *,
        dataset: str,
        subset: str | None = None,
        preprocessor: Callable[..., Any] | Mapping[str, Any] | None = None,
        partitioners: Mapping[str, Partitioner | int],
        shuffle: bool = True,
        seed: int | None = 42,
        **load_dataset_kwargs: Any,
    ) -> _FederatedDataset:
        if isinstance(preprocessor, Mapping):
            raise FlowerCompatError(
                "FederatedDataset(preprocessor={...}) (Flower's Divider/Merger settings) is not "
                "supported; pass a function, e.g. fedlab.datasets.divide_split or merge_splits."
            )
        chosen = 42 if seed is None else seed
        if dataset in SKLEARN_DATASETS:
            return _FederatedDataset.from_sklearn(
                dataset, partitioners=partitioners, preprocessor=preprocessor, seed=chosen
            )
        return _FederatedDataset.from_hub(
            dataset,
            name=subset,
            partitioners=partitioners,
            preprocessor=preprocessor,
            seed=chosen,
            **load_dataset_kwargs,
        )
