"""Argument checks shared by the partitioners; each error names the value and the fix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from fedlab.errors import DatasetError
from fedlab.validate import check_int

__all__ = [
    "check_enough_rows",
    "check_seed",
    "concentration",
    "labels_of",
    "sizes_list",
]


def check_seed(seed: Any) -> int:
    """Return ``seed`` if it is a non-negative int (numpy's generators require one)."""
    return check_int("seed", seed, DatasetError)


def sizes_list(name: str, sizes: Sequence[Any]) -> list[int]:
    """Return ``sizes`` as a non-empty list of non-negative ints."""
    if isinstance(sizes, str | bytes) or not isinstance(sizes, Sequence) or not sizes:
        raise DatasetError(f"{name} must be a non-empty sequence of ints, got {sizes!r}.")
    return [check_int(f"{name}[{i}]", s, DatasetError) for i, s in enumerate(sizes)]


def check_enough_rows(num_rows: int, needed: int, who: str, fix: str) -> None:
    """Raise a DatasetError if the dataset has fewer than ``needed`` rows."""
    if num_rows < needed:
        raise DatasetError(
            f"{who} needs at least {needed} rows but the dataset has {num_rows}; {fix}."
        )


def labels_of(values: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64]]:
    """Return the sorted distinct labels and each row's position among them."""
    classes, codes = np.unique(values, return_inverse=True)
    return classes, codes.astype(np.int64).reshape(-1)


def concentration(alpha: Any, length: int, per: str) -> npt.NDArray[np.float64]:
    """Return a Dirichlet ``alpha`` as ``length`` positive floats (a scalar is repeated)."""
    try:
        values = np.asarray(alpha, dtype=np.float64)
    except (TypeError, ValueError):
        values = np.empty(0)
    if values.ndim == 0:
        values = np.full(length, float(values))
    if values.shape != (length,) or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise DatasetError(
            f"alpha must be a positive number or {length} positive numbers (one per {per}), "
            f"got {alpha!r}."
        )
    return values
