"""`Krum` and `MultiKrum` (Blanchard et al., 2017): keep the replies closest to their peers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from fedlab.errors import AggregationError, StrategyError
from fedlab.strategy._arrays import Float64Arrays, flatten
from fedlab.strategy._robust import RobustFedAvg
from fedlab.validate import check_int

__all__ = ["Krum", "MultiKrum", "krum_ranking", "krum_scores", "pairwise_sq_distances"]


def pairwise_sq_distances(flat: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Squared L2 distances between the rows of ``flat`` (one flattened model per row).

    They are computed as differences in float64, so the matrix is symmetric bit for bit
    and a row's distance to itself is exactly 0; each entry depends only on its two rows,
    not on where they sit.
    """
    n = flat.shape[0]
    out = np.empty((n, n))
    with np.errstate(invalid="ignore", over="ignore"):  # a hostile reply may hold inf or NaN
        for i in range(n):
            out[i] = np.sum(np.square(flat - flat[i]), axis=1)
    return out


def krum_ranking(
    distances: npt.NDArray[np.float64], neighbours: int, node_ids: Sequence[int]
) -> tuple[list[int], npt.NDArray[np.float64]]:
    """Rank candidates by Krum score, best first, in a way that ignores their order.

    The score of candidate i is the sum of its squared distances to its ``neighbours``
    nearest other candidates (``distances`` is their pairwise matrix). Exact ties, which
    are certain with one neighbour (the two members of the closest pair score the same),
    go to the candidate with the smaller sum of distances to all the others, then to the
    smaller node id. Every sum runs over sorted values, so permuting the candidates
    permutes the scores and leaves the ranking of node ids unchanged. A candidate with
    non-finite values (NaN distances) ranks last, and the others' sums leave it out.

    Returns the candidates' indices, best first, and their scores.

    >>> d = pairwise_sq_distances(np.array([[0.0], [1.0], [1.5], [4.0]]))
    >>> ranking, scores = krum_ranking(d, 1, [10, 11, 12, 13])
    >>> ranking, scores.tolist()   # 1.0 and 1.5 tie; 1.5 is nearer to the rest (8.75 < 10.25)
    ([2, 1, 0, 3], [1.0, 0.25, 0.25, 6.25])
    """
    n = len(node_ids)
    # Each row's distances to the others, ascending (NaN last).
    ordered = np.sort(distances[~np.eye(n, dtype=bool)].reshape(n, n - 1), axis=1)
    scores: npt.NDArray[np.float64] = ordered[:, :neighbours].sum(axis=1)
    totals = np.where(np.isnan(ordered), 0.0, ordered).sum(axis=1)
    # lexsort sorts by its last key first, and puts NaN scores last.
    ranking = np.lexsort((np.asarray(node_ids, dtype=np.int64), totals, scores))
    return [int(i) for i in ranking], scores


def krum_scores(flat: npt.NDArray[np.float64], num_malicious: int) -> npt.NDArray[np.float64]:
    """Krum score of each row: the sum of its squared L2 distances to its n − f − 2 nearest rows.

    ``flat`` holds one flattened model per row; a row's distance to itself is never counted.
    """
    n = flat.shape[0]
    neighbours = n - num_malicious - 2
    if neighbours < 1:
        raise AggregationError(
            f"Krum scores need n - f - 2 >= 1 neighbours, but n={n} and f={num_malicious}."
        )
    return krum_ranking(pairwise_sq_distances(flat), neighbours, range(n))[1]


class Krum(RobustFedAvg):
    """The new model is the one reply whose n − f − 2 nearest replies are nearest.

    Each reply i gets the score s(i) = Σ ‖V_i − V_j‖² over its n − f − 2 closest other
    replies V_j (the models are compared whole, every array flattened and concatenated);
    Krum returns the reply with the lowest score, unchanged. An exact tie goes to the reply
    with the smaller sum of distances to all the others, then to the smaller node id
    (:func:`krum_ranking`), so the result does not depend on the order replies arrive in.
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
    ``max(1, n − f − 2)`` neighbours), computes distances as ``‖x‖² + ‖y‖² − 2x·y`` in
    float32 and leaves exact ties to the order replies arrived in; without ties both select
    the same replies. Train metrics here are the weighted mean over every successful reply
    (Flower averages only the selected replies' metrics); the
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
        n = len(node_ids)
        keep = self.num_to_select(n)
        # Within the bound n > 2f + 2 there is always at least one neighbour.
        neighbours = n - self.num_malicious_nodes - 2
        ranking, scores = krum_ranking(pairwise_sq_distances(flatten(stacks)), neighbours, node_ids)
        chosen = ranking[:keep]
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
    **n > 2f + 2**, and m may not exceed n − f (more would have to include malicious replies);
    both are checked on the nodes sampled, before anyone trains, and again on the
    successful replies, and outside them the strategy raises
    :class:`~fedlab.errors.AggregationError`.

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
    is not the paper's rule; here the mean is unweighted. Ties and train metrics are as
    for :class:`Krum`.
    """

    def __init__(
        self, *, num_nodes_to_select: int | None = None, num_malicious_nodes: int = 0, **fedavg: Any
    ) -> None:
        super().__init__(num_malicious_nodes=num_malicious_nodes, **fedavg)
        self.num_nodes_to_select = (
            None
            if num_nodes_to_select is None
            else check_int("num_nodes_to_select", num_nodes_to_select, StrategyError, minimum=1)
        )

    def num_to_select(self, n: int) -> int:
        """m: ``num_nodes_to_select``, or n − f if it is None; refused above n − f."""
        self._check_selectable(n, "replies were given")
        return n - self.num_malicious_nodes if self.num_nodes_to_select is None else self.num_nodes_to_select

    def _check_bound(self, n: int, what: str) -> None:
        # Checked on the sample too, so that a too-large m is refused before anyone trains.
        super()._check_bound(n, what)
        self._check_selectable(n, what)

    def _check_selectable(self, n: int, what: str) -> None:
        limit = n - self.num_malicious_nodes
        if self.num_nodes_to_select is not None and self.num_nodes_to_select > limit:
            raise AggregationError(
                f"MultiKrum was asked to average num_nodes_to_select={self.num_nodes_to_select} "
                f"replies, but n={n} {what} this round and with f={self.num_malicious_nodes} at "
                f"most n - f = {limit} can be kept without admitting a malicious one; lower "
                "num_nodes_to_select or sample more nodes."
            )
