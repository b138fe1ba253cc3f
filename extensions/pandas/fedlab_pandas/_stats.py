"""The numerics: per-client aggregates and their exact combination (no fedlab, no messages).

Mean and variance are combined with the parallel algorithm of Chan, Golub and LeVeque
(1979): every client sends ``(n, mean, M2)`` with ``M2 = sum((x - mean) ** 2)`` computed
around its own mean, and two parts merge as

    delta = mean_b - mean_a,  n = n_a + n_b,
    mean = mean_a + delta * n_b / n,  M2 = M2_a + M2_b + delta ** 2 * n_a * n_b / n.

Unlike adding sums of squares, this never subtracts two large, nearly equal numbers. One
more loss remains: ``delta`` is a difference of two means each rounded to a double, so for
data far from 0 (values near 1e6 that differ by tens) it carries an absolute error of about
``1e-16 * |mean|``. Each mean is therefore kept as a double-double ``mean + mean_lo``
(``mean_lo`` is the mean of ``x - mean``, computed around it), and the merge adds in that
precision; the combined mean and variance then agree with the pooled two-pass ones to about
1e-15 relative on such data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Moments:
    """Count, mean and ``M2`` (sum of squared deviations from the mean) of some values."""

    count: int
    mean: float
    m2: float
    mean_lo: float = 0.0

    @staticmethod
    def of(values: NDArray[np.float64]) -> Moments:
        """The moments of ``values`` (NaNs must already be removed)."""
        if values.size == 0:
            return Moments(0, 0.0, 0.0)
        mean = float(values.mean())
        deviations = values - mean
        lo = float(deviations.mean())  # what rounding the mean to a double lost
        return Moments(int(values.size), mean, float(((deviations - lo) ** 2).sum()), lo)

    def merge(self, other: Moments) -> Moments:
        """Combine with ``other`` exactly (Chan et al.'s pairwise update)."""
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        n = self.count + other.count
        delta = (other.mean - self.mean) + (other.mean_lo - self.mean_lo)
        step = self.mean_lo + delta * other.count / n
        mean = self.mean + step  # a double-double sum: keep what the rounding drops
        lo = (self.mean - mean) + step
        m2 = self.m2 + other.m2 + delta * delta * self.count * other.count / n
        return Moments(n, mean, m2, lo)

    def variance(self, ddof: int = 1) -> float:
        """``M2 / (count - ddof)``, NaN when ``count <= ddof`` (as pandas answers)."""
        return self.m2 / (self.count - ddof) if self.count > ddof else math.nan


def common_edges(low: float, high: float, bins: int) -> list[float]:
    """``bins + 1`` equal-width edges over ``[low, high]`` (widened by 0.5 when they are equal)."""
    if low == high:
        low, high = low - 0.5, high + 0.5
    return [float(e) for e in np.linspace(low, high, bins + 1)]


@dataclass(frozen=True)
class QuantileEstimate:
    """A quantile read from a merged fixed-bin histogram, with its guaranteed error.

    Attributes
    ----------
    value
        The estimate ``v``.
    q
        The quantile asked for, in ``[0, 1]``.
    rank
        ``k = max(1, ceil(q * n))``: the estimate stands for the ``k``-th smallest value
        (numpy's ``method="inverted_cdf"``).
    value_error
        A bound on ``|v - x_(k)|``: the bin width ``(max - min) / bins``.
    rank_error
        A bound on ``|#{x <= v} - k|``: the count of the bin holding ``x_(k)``.
    """

    value: float
    q: float
    rank: int
    value_error: float
    rank_error: int


def quantile_from_histogram(
    counts: Sequence[int], edges: Sequence[float], q: float, low: float, high: float
) -> QuantileEstimate:
    """Estimate the ``q``-quantile from histogram ``counts`` over ``edges``.

    ``low`` and ``high`` are the exact minimum and maximum the edges were built from. The
    ``k``-th smallest value lies in the bin where the cumulative count first reaches ``k``;
    the estimate interpolates inside that bin, away from its edges, so it is within one bin
    width of ``x_(k)``, and the number of values at or below it is within that bin's count
    of ``k`` (values in earlier bins are below it, values in later bins above it).
    """
    c = np.asarray(counts, dtype=np.int64)
    n = int(c.sum())
    if n == 0:
        raise ValueError("no values to take a quantile of")
    k = max(1, math.ceil(q * n))
    width = float(edges[1] - edges[0])
    cumulative = np.cumsum(c)
    j = int(np.searchsorted(cumulative, k))  # first bin whose cumulative count is >= k
    before = int(cumulative[j] - c[j])
    if k == 1:
        value = low
    elif k == n:
        value = high
    else:
        fraction = (k - before - 0.5) / int(c[j])
        value = min(max(float(edges[j]) + width * fraction, low), high)
    return QuantileEstimate(value, q, k, width, int(c[j]))
