"""Coordinate-wise robust means: `FedMedian` and `FedTrimmedAvg` (Yin et al., 2018)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from fedlab.errors import StrategyError
from fedlab.strategy._arrays import Float64Arrays
from fedlab.strategy._robust import RobustFedAvg

__all__ = ["FedMedian", "FedTrimmedAvg"]


class FedMedian(RobustFedAvg):
    """Each coordinate of the new model is the median of that coordinate over the replies.

    The median is unweighted (``num-examples`` plays no part), as in Yin et al., 2018
    ("Byzantine-robust distributed learning: towards optimal statistical rates"); with an
    even number of replies it is the mean of the two middle values. It holds while the
    malicious replies are a minority: **n > 2f** for ``num_malicious_nodes=f``; outside
    that bound the strategy raises :class:`~fedlab.errors.AggregationError`.

    Parameters
    ----------
    num_malicious_nodes
        f, how many replies per round may be malicious (default 0).
    **fedavg
        Sampling, minimums and keys, as for :class:`FedAvg`.

    Notes
    -----
    Flower's FedMedian computes the same numbers (unweighted ``np.median``) but checks no
    bound. Train metrics are the weighted mean over every successful reply.
    """

    bound = "n > 2f"

    def bound_holds(self, n: int) -> bool:
        """``n > 2 * num_malicious_nodes`` (and at least one reply)."""
        return n > 2 * self.num_malicious_nodes and n >= 1

    def combine(self, server_round: int, node_ids: list[int], stacks: Float64Arrays) -> Float64Arrays:
        """The coordinate-wise median of each array."""
        self.report(server_round, aggregated=len(node_ids), rule="median")
        return {name: np.median(stack, axis=0) for name, stack in stacks.items()}


class FedTrimmedAvg(RobustFedAvg):
    """Coordinate-wise trimmed mean: drop the k largest and k smallest values, average the rest.

    With n replies, k = ⌊beta·n⌋ values are cut at **each** end of every coordinate and
    the remaining n − 2k are averaged without weights (Yin et al., 2018). fedlab requires
    **beta > f/n** (strictly more trimmed than there may be malicious replies, as this
    project's strategy specification asks); outside that bound the strategy raises
    :class:`~fedlab.errors.AggregationError`.

    Parameters
    ----------
    beta
        Fraction cut at each end, in [0, 0.5) (default 0.2).
    num_malicious_nodes
        f, how many replies per round may be malicious (default 0).
    **fedavg
        Sampling, minimums and keys, as for :class:`FedAvg`.

    Notes
    -----
    Flower's FedTrimmedAvg computes the same numbers (as ``scipy.stats.trim_mean``) but
    checks no bound. Yin et al. state β ≥ f/n; fedlab's bound is the strict β > f/n, which
    keeps a margin when the trimmed count ⌊βn⌋ only just reaches f. With f=4 of n=20 choose
    beta=0.25 (trims 5 per end), not 0.2.
    """

    bound = "beta * n > f"

    def __init__(self, beta: float = 0.2, *, num_malicious_nodes: int = 0, **fedavg: Any) -> None:
        if not isinstance(beta, int | float) or isinstance(beta, bool) or not 0.0 <= beta < 0.5:
            raise StrategyError(f"beta must be a number in [0, 0.5), got {beta!r}.")
        if beta == 0 and num_malicious_nodes:
            raise StrategyError(
                f"beta=0 trims nothing, so it cannot hold off num_malicious_nodes="
                f"{num_malicious_nodes}; choose beta > f/n, e.g. beta=0.25 for f=4 of n=20."
            )
        super().__init__(num_malicious_nodes=num_malicious_nodes, **fedavg)
        self.beta = float(beta)

    def trimmed_per_end(self, n: int) -> int:
        """k = ⌊beta·n⌋, the values cut at each end of a coordinate with ``n`` replies."""
        return int(self.beta * n)

    def bound_holds(self, n: int) -> bool:
        """``beta * n > num_malicious_nodes`` and at least f values trimmed per end."""
        f = self.num_malicious_nodes
        if f == 0:  # nothing declared malicious: any beta, including 0, is within the bound
            return n >= 1
        return self.beta * n > f and self.trimmed_per_end(n) >= f

    def combine(self, server_round: int, node_ids: list[int], stacks: Float64Arrays) -> Float64Arrays:
        """Sort every coordinate, cut k values at each end, average the rest."""
        n = len(node_ids)
        k = self.trimmed_per_end(n)
        self.report(server_round, aggregated=n, trimmed_per_end=k, kept=n - 2 * k, beta=self.beta)
        return {name: _trimmed_mean(stack, k) for name, stack in stacks.items()}

    def _bound_detail(self) -> str:
        return f", beta={self.beta}"


def _trimmed_mean(stack: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.float64]:
    ordered = np.sort(stack, axis=0)
    kept: npt.NDArray[np.float64] = ordered[k : stack.shape[0] - k].mean(axis=0)
    return kept
