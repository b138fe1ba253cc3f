"""`QFedAvg`: q-fair federated learning (Li, Sanjabi, Beirami and Smith, 2020)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from fedlab.errors import AggregationError, StrategyError
from fedlab.message import Message
from fedlab.records import ArrayRecord, MetricRecord
from fedlab.strategy._aggregate import single_record
from fedlab.strategy._arrays import (
    Float64Arrays,
    check_matches_global,
    from_float64,
    reply_arrays,
    require_global,
    to_float64,
)
from fedlab.strategy.fedavg import FedAvg

__all__ = ["QFedAvg"]

#: Floor for a reported loss, so that F^(q − 1) stays finite for a client whose loss is 0.
_LOSS_FLOOR = 1e-10


class QFedAvg(FedAvg):
    """q-FedAvg: clients with a higher loss pull the global model harder (fairness knob q).

    Algorithm 3 of Li et al. ("Fair resource allocation in federated learning", ICLR
    2020). With w the global model sent this round, L = 1 / ``client_learning_rate`` and,
    for each reply k, its trained model w_k and F_k the loss of **the global model w on
    client k's data** (reported under ``loss_key``, measured before local training)::

        ΔW_k = L·(w − w_k)
        Δ_k  = F_k^q · ΔW_k
        h_k  = q·F_k^(q−1)·‖ΔW_k‖² + L·F_k^q
        w   ← w − Σ_k Δ_k / Σ_k h_k

    ‖·‖ is the L2 norm of the whole model. ``num-examples`` does not enter (it still
    weights the metrics). q = 0 gives an unweighted FedAvg step with learning rate 1.

    Parameters
    ----------
    client_learning_rate
        The clients' local learning rate η; L = 1/η estimates the Lipschitz constant.
    q
        Fairness parameter q ≥ 0 (default 0.2); larger q favours the worst-off clients.
    loss_key
        The metric holding F_k (default ``"global-model-loss"``).
    **fedavg
        Sampling, minimums and keys, as for :class:`FedAvg`.

    Notes
    -----
    Flower's QFedAvg reads F_k from the client's ``train_loss``, usually the mean loss
    *during* local training, and returns a float64 model; here F_k is whatever the client
    reports under ``loss_key`` (report the received model's loss to follow the paper) and
    the model keeps its dtypes. A loss of exactly 0 is floored at 1e-10.
    """

    def __init__(
        self,
        *,
        client_learning_rate: float,
        q: float = 0.2,
        loss_key: str = "global-model-loss",
        **fedavg: Any,
    ) -> None:
        super().__init__(**fedavg)
        if isinstance(client_learning_rate, bool) or not client_learning_rate > 0:
            raise StrategyError(f"client_learning_rate must be > 0, got {client_learning_rate!r}.")
        if isinstance(q, bool) or not q >= 0:
            raise StrategyError(f"q must be a number >= 0, got {q!r}.")
        self.client_learning_rate = float(client_learning_rate)
        self.q = float(q)
        self.loss_key = loss_key

    #: The step weighs replies by their losses, not by ``num-examples``.
    weighs_arrays = False

    def check_train_reply(self, instruction: Message, reply: Message) -> str | None:
        """FedAvg's checks of the arrays, and a finite loss >= 0 under ``loss_key``."""
        reason = super().check_train_reply(instruction, reply)
        if reason is not None:
            return reason
        try:
            loss = self._loss(reply)
        except AggregationError as exc:
            return f"Reply of node {reply.metadata.src_node_id} refused: {exc}"
        if not math.isfinite(loss):
            return (
                f"Reply of node {reply.metadata.src_node_id} refused: it reported "
                f"{self.loss_key}={loss}; QFedAvg needs a finite loss of the received model."
            )
        return None

    def aggregate_arrays(self, server_round: int, replies: Sequence[Message]) -> ArrayRecord:
        """One q-FedAvg step from the replies' models and losses."""
        current = require_global(type(self).__name__, self.current_arrays)
        w = to_float64(current)
        lipschitz = 1.0 / self.client_learning_rate
        numerator: Float64Arrays = {name: np.zeros_like(v) for name, v in w.items()}
        sum_h = 0.0
        for reply in replies:
            node_id, record = reply.metadata.src_node_id, reply_arrays(reply)
            check_matches_global(node_id, record, current)
            loss = max(self._loss(reply), _LOSS_FLOOR)
            local = to_float64(record)
            delta = {name: lipschitz * (w[name] - local[name]) for name in w}
            sq_norm = sum(float(np.sum(np.square(d))) for d in delta.values())
            for name, d in delta.items():
                numerator[name] += loss**self.q * d
            sum_h += self.q * loss ** (self.q - 1) * sq_norm + lipschitz * loss**self.q
        new = {name: w[name] - numerator[name] / sum_h for name in w}
        self.report(server_round, aggregated=len(replies), q=self.q, lipschitz=lipschitz, sum_h=sum_h)
        return from_float64(new, current)

    def _loss(self, reply: Message) -> float:
        _, metrics = single_record(reply, MetricRecord)
        value = metrics.get(self.loss_key)
        if isinstance(value, list) or value is None or value < 0:
            raise AggregationError(
                f"QFedAvg needs each client's loss of the received global model under "
                f"{self.loss_key!r}, but node {reply.metadata.src_node_id} reported {value!r} "
                f"(its metrics: {sorted(metrics)}); evaluate the received model on the training "
                f"data before training and report MetricRecord({{{self.loss_key!r}: loss, ...}})."
            )
        return float(value)
