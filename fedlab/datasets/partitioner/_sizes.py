"""Integer sizes proportional to weights, and cutting index arrays by them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["cut", "proportional_sizes"]


def proportional_sizes(
    total: int, weights: Sequence[float] | npt.NDArray[Any]
) -> npt.NDArray[np.int64]:
    """Split ``total`` into integers proportional to ``weights`` that sum to ``total`` exactly.

    Largest-remainder rounding: each share is floored, and the rows left over go one each
    to the largest fractional parts (ties to the lower index), so no size is more than one
    away from its exact share.

    Examples
    --------
    >>> proportional_sizes(10, [1, 2, 3, 4]).tolist()
    [1, 2, 3, 4]
    >>> proportional_sizes(10, [1, 1, 1]).tolist()
    [4, 3, 3]
    """
    w = np.asarray(weights, dtype=np.float64)
    exact = total * w / w.sum()
    sizes: npt.NDArray[np.int64] = np.floor(exact).astype(np.int64)
    left = int(total - sizes.sum())
    if left:
        # Stable sort on the negated remainder: largest first, lower index first among equals.
        order = np.argsort(-(exact - sizes), kind="stable")
        sizes[order[:left]] += 1
    return sizes


def cut(
    indices: npt.NDArray[Any], sizes: Sequence[int] | npt.NDArray[Any]
) -> list[npt.NDArray[np.int64]]:
    """Cut ``indices`` into consecutive pieces of ``sizes`` (which may sum to less)."""
    ends = np.cumsum(np.asarray(sizes, dtype=np.int64))
    starts = ends - np.asarray(sizes, dtype=np.int64)
    return [np.asarray(indices[s:e], dtype=np.int64) for s, e in zip(starts, ends, strict=True)]
