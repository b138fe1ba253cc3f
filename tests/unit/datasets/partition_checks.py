"""Helpers shared by the partitioner tests: small labelled datasets and partition checks."""

from __future__ import annotations

from typing import Any

import datasets
import numpy as np

from fedlab.datasets import RowPartitioner


def labelled(num_rows: int = 1000, num_classes: int = 10) -> datasets.Dataset:
    """A dataset with an ``x`` column (the row number) and ``label = x % num_classes``."""
    rows = np.arange(num_rows)
    return datasets.Dataset.from_dict({"x": rows, "label": (rows % num_classes).astype(np.int64)})


def assign(partitioner: Any, dataset: datasets.Dataset) -> list[np.ndarray]:
    """Give ``partitioner`` the dataset and return every partition's row indices."""
    partitioner.dataset = dataset
    return [partitioner.partition_indices(i) for i in range(partitioner.num_partitions)]


def assert_disjoint(parts: list[np.ndarray]) -> np.ndarray:
    """Assert no row is in two partitions; return all assigned rows, sorted."""
    everything = np.concatenate(parts)
    assert len(np.unique(everything)) == len(everything), "a row is in two partitions"
    return np.sort(everything)


def assert_partition(parts: list[np.ndarray], num_rows: int) -> None:
    """Assert the partitions are disjoint and together hold every row exactly once."""
    assert np.array_equal(assert_disjoint(parts), np.arange(num_rows))


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    """Whether two partitionings are identical."""
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def partitions_with(make: Any, dataset: datasets.Dataset, seed: int) -> list[np.ndarray]:
    """Build ``make(seed)`` on ``dataset`` and return its partitions."""
    partitioner: RowPartitioner = make(seed)
    return assign(partitioner, dataset)


def mean_label_entropy(parts: list[np.ndarray], labels: np.ndarray, num_classes: int) -> float:
    """Mean over partitions of the Shannon entropy (nats) of the partition's label mix."""
    entropies = []
    for rows in parts:
        counts = np.bincount(labels[rows], minlength=num_classes).astype(np.float64)
        p = counts[counts > 0] / counts.sum()
        entropies.append(float(-(p * np.log(p)).sum()))
    return float(np.mean(entropies))
