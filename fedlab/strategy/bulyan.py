"""`Bulyan` (El Mhamdi et al., 2018): iterated Krum selection, then a trimmed mean around the median."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fedlab.strategy._arrays import Float64Arrays, flatten
from fedlab.strategy._robust import RobustFedAvg
from fedlab.strategy.krum import krum_ranking, pairwise_sq_distances

__all__ = ["Bulyan"]


class Bulyan(RobustFedAvg):
    """Select θ = n − 2f replies by repeated Krum, then average, per coordinate, the β = θ − 2f
    selected values closest to their median.

    Selection: Krum is applied to the replies not yet selected (each scored against the
    remaining replies with r − f − 2 neighbours, r being how many remain, and at least one),
    its choice is moved to the selection, and this repeats until θ replies are selected.
    Aggregation: for every coordinate, take the median of the θ selected values and
    average, without weights, the β values nearest to it. The guarantee needs
    **n ≥ 4f + 3**; outside it the strategy raises :class:`~fedlab.errors.AggregationError`.

    Nothing depends on the order replies arrive in. Once r − f − 2 ≤ 1 each score is the
    distance to one nearest neighbour, so the two members of the closest pair tie exactly;
    such a tie goes to the one with the smaller sum of distances to all remaining replies,
    then to the smaller node id (:func:`~fedlab.strategy.krum.krum_ranking`). Values
    equally near the median are taken in the order they were selected.

    Parameters
    ----------
    num_malicious_nodes
        f, how many replies per round may be malicious (default 0).
    **fedavg
        Sampling, minimums and keys, as for :class:`FedAvg`.

    Notes
    -----
    Flower's Bulyan selects the θ replies with one round of MultiKrum scores instead of
    iterating Krum (so its numbers differ), leaves exact ties to the order replies arrived
    in, and with fewer than 4f + 3 replies it skips the round with a log line; here the
    round is refused with an error. Train metrics here are the weighted mean over every
    successful reply, as for :class:`~fedlab.strategy.Krum` (Flower averages only the
    θ selected replies' metrics); the :class:`~fedlab.events.StrategyReport` names the
    selected nodes in the order they were selected.
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
        chosen = _iterated_krum(pairwise_sq_distances(flatten(stacks)), f, theta, node_ids)
        self.report(
            server_round,
            selected=[node_ids[i] for i in chosen],
            theta=theta,
            beta=beta,
            aggregated=n,
        )
        return {name: _mean_nearest_median(stack[chosen], beta) for name, stack in stacks.items()}


def _iterated_krum(
    distances: npt.NDArray[np.float64], f: int, theta: int, node_ids: list[int]
) -> list[int]:
    remaining = list(range(distances.shape[0]))
    chosen: list[int] = []
    while len(chosen) < theta:
        neighbours = max(len(remaining) - f - 2, 1)
        sub = distances[np.ix_(remaining, remaining)]
        ranking, _ = krum_ranking(sub, neighbours, [node_ids[i] for i in remaining])
        winner = remaining[ranking[0]]
        chosen.append(winner)
        remaining.remove(winner)
    return chosen


def _mean_nearest_median(selected: npt.NDArray[np.float64], beta: int) -> npt.NDArray[np.float64]:
    median = np.median(selected, axis=0)
    order = np.argsort(np.abs(selected - median), axis=0, kind="stable")[:beta]
    nearest: npt.NDArray[np.float64] = np.take_along_axis(selected, order, axis=0).mean(axis=0)
    return nearest
