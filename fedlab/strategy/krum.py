"""`Krum` and `MultiKrum` (Blanchard et al., 2017): keep the replies closest to their peers."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from fedlab.errors import AggregationError
from fedlab.strategy._arrays import Float64Arrays, flatten
from fedlab.strategy._robust import RobustFedAvg, check_count

__all__ = ["Krum", "MultiKrum", "krum_scores"]


def krum_scores(flat: npt.NDArray[np.float64], num_malicious: int) -> npt.NDArray[np.float64]:
    """Krum score of each row: the sum of its squared L2 distances to its n − f − 2 nearest rows.

    ``flat`` holds one flattened model per row. Distances are computed as differences in
    float64, so a row's distance to itself is exactly 0 and is never counted.
    """
    n = flat.shape[0]
    neighbours = n - num_malicious - 2
    if neighbours < 1:
        raise AggregationError(
            f"Krum scores need n - f - 2 >= 1 neighbours, but n={n} and f={num_malicious}."
        )
    scores = np.empty(n)
    for i in range(n):
        distances = np.sum(np.square(flat - flat[i]), axis=1)
        distances[i] = np.inf
        scores[i] = np.sum(np.sort(distances)[:neighbours])
    return scores


class Krum(RobustFedAvg):
    """The new model is the one reply whose n − f − 2 nearest replies are nearest.

    Each reply i gets the score s(i) = Σ ‖V_i − V_j‖² over its n − f − 2 closest other
    replies V_j (the models are compared whole, every array flattened and concatenated);
    Krum returns the reply with the lowest score, unchanged. Ties go to the earlier reply.
    The guarantee needs **n > 2f + 2**; outside it the strategy raises
    :class:`~fedlab.errors.AggregationError`.

    Parameters
    ----------
    num_malicious_nodes
        f, how many replies per round may be malicious (default 0).
    **fedavg
        Sampling, minimums and keys, as for :class:`FedAvg`.

    Notes
    -----
    Flower's Krum scores the same way but checks no bound (it falls back to
    ``max(1, n − f − 2)`` neighbours) and computes distances as ``‖x‖² + ‖y‖² − 2x·y`` in
    float32. Train metrics here are the weighted mean over every successful reply; the
    :class:`~fedlab.events.StrategyReport` names the selected nodes and every score.
    """

    bound = "n > 2f + 2"

    def bound_holds(self, n: int) -> bool:
        """``n > 2 * num_malicious_nodes + 2``."""
        return n > 2 * self.num_malicious_nodes + 2

    def num_to_select(self, n: int) -> int:
        """How many of ``n`` replies are kept: 1 for Krum."""
        return 1

    def combine(self, server_round: int, node_ids: list[int], stacks: Float64Arrays) -> Float64Arrays:
        """Keep the lowest-scoring replies and average them without weights."""
        scores = krum_scores(flatten(stacks), self.num_malicious_nodes)
        chosen = np.argsort(scores, kind="stable")[: self.num_to_select(len(node_ids))]
        self.report(
            server_round,
            selected=[node_ids[i] for i in chosen],
            node_ids=list(node_ids),
            scores=[float(s) for s in scores],
        )
        return {name: stack[chosen].mean(axis=0) for name, stack in stacks.items()}


class MultiKrum(Krum):
    """Krum that keeps the m best-scoring replies and returns their plain mean.

    Scores are computed once, as for :class:`Krum`, and the m replies with the lowest
    scores are averaged without weights, as in Blanchard et al., 2017. The bound is Krum's,
    **n > 2f + 2**, and m may not exceed n − f (more would have to include malicious replies).

    Parameters
    ----------
    num_nodes_to_select
        m; default n − f, every reply Krum cannot rule out.
    num_malicious_nodes
        f, how many replies per round may be malicious (default 0).
    **fedavg
        Sampling, minimums and keys, as for :class:`FedAvg`.

    Notes
    -----
    Flower's MultiKrum averages the selected replies weighted by ``num-examples``, which
    is not the paper's rule; here the mean is unweighted.
    """

    def __init__(
        self, *, num_nodes_to_select: int | None = None, num_malicious_nodes: int = 0, **fedavg: Any
    ) -> None:
        super().__init__(num_malicious_nodes=num_malicious_nodes, **fedavg)
        self.num_nodes_to_select = (
            None if num_nodes_to_select is None else check_count("num_nodes_to_select", num_nodes_to_select, 1)
        )

    def num_to_select(self, n: int) -> int:
        """m: ``num_nodes_to_select``, or n − f if it is None; refused above n − f."""
        limit = n - self.num_malicious_nodes
        if self.num_nodes_to_select is None:
            return limit
        if self.num_nodes_to_select > limit:
            raise AggregationError(
                f"MultiKrum was asked to average num_nodes_to_select={self.num_nodes_to_select} "
                f"replies, but with n={n} replies and f={self.num_malicious_nodes} at most "
                f"n - f = {limit} can be kept without admitting a malicious one; lower "
                "num_nodes_to_select or sample more nodes."
            )
        return self.num_nodes_to_select
