"""`Bulyan` (El Mhamdi et al., 2018): iterated Krum selection, then a trimmed mean around the median."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fedlab.strategy._arrays import Float64Arrays, flatten
from fedlab.strategy._robust import RobustFedAvg

__all__ = ["Bulyan"]


class Bulyan(RobustFedAvg):
    """Select θ = n − 2f replies by repeated Krum, then average, per coordinate, the β = θ − 2f
    selected values closest to their median.

    Selection: Krum is applied to the replies not yet selected (each scored against the
    remaining replies with r − f − 2 neighbours, r being how many remain, and at least one),
    its choice is moved to the selection, and this repeats until θ replies are selected.
    Aggregation: for every coordinate, take the median of the θ selected values and
    average, without weights, the β values nearest to it. Ties go to the earlier reply. The
    guarantee needs **n ≥ 4f + 3**; outside it the strategy raises
    :class:`~fedlab.errors.AggregationError`.

    Parameters
    ----------
    num_malicious_nodes
        f, how many replies per round may be malicious (default 0).
    **fedavg
        Sampling, minimums and keys, as for :class:`FedAvg`.

    Notes
    -----
    Flower's Bulyan selects the θ replies with one round of MultiKrum scores instead of
    iterating Krum (so its numbers differ), and with fewer than 4f + 3 replies it skips the
    round with a log line; here the round is refused with an error.
    """

    bound = "n >= 4f + 3"

    def bound_holds(self, n: int) -> bool:
        """``n >= 4 * num_malicious_nodes + 3``."""
        return n >= 4 * self.num_malicious_nodes + 3

    def combine(self, server_round: int, node_ids: list[int], stacks: Float64Arrays) -> Float64Arrays:
        """Iterated Krum selection, then the coordinate-wise mean of the β values nearest the median."""
        f = self.num_malicious_nodes
        n = len(node_ids)
        theta, beta = n - 2 * f, n - 4 * f
        chosen = _iterated_krum(_pairwise_sq_distances(flatten(stacks)), f, theta)
        self.report(
            server_round,
            selected=[node_ids[i] for i in chosen],
            theta=theta,
            beta=beta,
            aggregated=n,
        )
        return {name: _mean_nearest_median(stack[chosen], beta) for name, stack in stacks.items()}


def _pairwise_sq_distances(flat: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    n = flat.shape[0]
    out = np.empty((n, n))
    for i in range(n):
        out[i] = np.sum(np.square(flat - flat[i]), axis=1)
    return out


def _iterated_krum(distances: npt.NDArray[np.float64], f: int, theta: int) -> list[int]:
    remaining = list(range(distances.shape[0]))
    chosen: list[int] = []
    while len(chosen) < theta:
        sub = distances[np.ix_(remaining, remaining)].copy()
        np.fill_diagonal(sub, np.inf)
        neighbours = max(len(remaining) - f - 2, 1)
        scores = np.sort(sub, axis=1)[:, :neighbours].sum(axis=1)
        winner = remaining[int(np.argmin(scores))]  # argmin returns the first of equal scores
        chosen.append(winner)
        remaining.remove(winner)
    return chosen


def _mean_nearest_median(selected: npt.NDArray[np.float64], beta: int) -> npt.NDArray[np.float64]:
    median = np.median(selected, axis=0)
    order = np.argsort(np.abs(selected - median), axis=0, kind="stable")[:beta]
    nearest: npt.NDArray[np.float64] = np.take_along_axis(selected, order, axis=0).mean(axis=0)
    return nearest
