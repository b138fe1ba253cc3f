"""`FedNova` (Wang et al., 2020): average updates normalised by how many local steps made them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from fedlab.errors import AggregationError, StrategyError
from fedlab.message import Message
from fedlab.records import ArrayRecord, MetricRecord
from fedlab.strategy._aggregate import reply_weight, single_record
from fedlab.strategy._arrays import (
    Float64Arrays,
    check_matches_global,
    from_float64,
    reply_arrays,
    require_global,
    to_float64,
)
from fedlab.strategy.fedavg import FedAvg

__all__ = ["FedNova", "local_steps_norm"]


def local_steps_norm(steps: float, momentum: float = 0.0) -> float:
    """‖a_i‖₁ for τ local SGD steps with momentum ρ: ``[τ − ρ(1 − ρ^τ)/(1 − ρ)] / (1 − ρ)``.

    For plain SGD (ρ = 0) this is τ.

    >>> local_steps_norm(5)
    5.0
    >>> round(local_steps_norm(2, momentum=0.5), 10)   # steps weigh 1.5 and 1
    2.5
    """
    if momentum == 0.0:
        return float(steps)
    rho = momentum
    return float((steps - rho * (1.0 - rho**steps) / (1.0 - rho)) / (1.0 - rho))


class FedNova(FedAvg):
    """Normalised averaging: clients that took more local steps do not drag the model further.

    With x the global model sent this round, client i reports its trained model y_i, its
    example count n_i and its number of local steps τ_i (under ``local_steps_key``).
    With p_i = n_i / Σ n_j and a_i = ‖a_i‖₁ (τ_i for plain SGD, see
    :func:`local_steps_norm` for momentum), FedNova (Wang, Liu, Liang, Joshi and Poor,
    2020, "Tackling the objective inconsistency problem in heterogeneous federated
    optimization") sets::

        d_i   = (x − y_i) / a_i            (the client's update per unit of local work)
        τ_eff = Σ_i p_i · a_i
        x    ← x − τ_eff · Σ_i p_i · d_i

    When every client takes the same number of steps this is FedAvg.

    Parameters
    ----------
    local_steps_key
        The metric holding τ_i (default ``"local-steps"``).
    client_momentum
        ρ, the momentum of the clients' local SGD, in [0, 1) (default 0).
    **fedavg
        Sampling, minimums and keys, as for :class:`FedAvg`.
    """

    def __init__(
        self, *, local_steps_key: str = "local-steps", client_momentum: float = 0.0, **fedavg: Any
    ) -> None:
        super().__init__(**fedavg)
        if isinstance(client_momentum, bool) or not 0.0 <= client_momentum < 1.0:
            raise StrategyError(f"client_momentum must be in [0, 1), got {client_momentum!r}.")
        self.local_steps_key = local_steps_key
        self.client_momentum = float(client_momentum)

    def check_train_reply(self, instruction: Message, reply: Message) -> str | None:
        """FedAvg's checks, and a finite number of local steps > 0 under ``local_steps_key``."""
        reason = super().check_train_reply(instruction, reply)
        if reason is not None:
            return reason
        try:
            steps = self._steps(reply)
        except AggregationError as exc:
            return f"Reply of node {reply.metadata.src_node_id} refused: {exc}"
        if not math.isfinite(steps):
            return (
                f"Reply of node {reply.metadata.src_node_id} refused: it reported "
                f"{self.local_steps_key}={steps}; FedNova needs a finite number of local steps."
            )
        return None

    def aggregate_arrays(self, server_round: int, replies: Sequence[Message]) -> ArrayRecord:
        """``x − τ_eff · Σ p_i (x − y_i) / a_i``."""
        current = require_global(type(self).__name__, self.current_arrays)
        x = to_float64(current)
        weights = [reply_weight(r, self.weighted_by_key) for r in replies]
        total = sum(weights)
        if total <= 0:
            raise AggregationError(
                "Every reply reported a weight of 0, so FedNova's p_i are undefined; make "
                "clients report how many examples they trained on."
            )
        steps = [self._steps(r) for r in replies]
        norms = [local_steps_norm(s, self.client_momentum) for s in steps]
        direction: Float64Arrays = {name: np.zeros_like(v) for name, v in x.items()}
        for reply, weight, a_norm in zip(replies, weights, norms, strict=True):
            record = reply_arrays(reply)
            check_matches_global(reply.metadata.src_node_id, record, current)
            y = to_float64(record)
            for name in x:
                direction[name] += (weight / total) * (x[name] - y[name]) / a_norm
        tau_eff = sum(w / total * a for w, a in zip(weights, norms, strict=True))
        new = {name: x[name] - tau_eff * direction[name] for name in x}
        self.report(
            server_round,
            aggregated=len(replies),
            tau_eff=tau_eff,
            node_ids=[r.metadata.src_node_id for r in replies],
            local_steps=steps,
        )
        return from_float64(new, current)

    def _steps(self, reply: Message) -> float:
        _, metrics = single_record(reply, MetricRecord)
        value = metrics.get(self.local_steps_key)
        if isinstance(value, list) or value is None or not value > 0:
            raise AggregationError(
                f"FedNova needs each client's number of local steps under "
                f"{self.local_steps_key!r} (> 0), but node {reply.metadata.src_node_id} reported "
                f"{value!r} (its metrics: {sorted(metrics)}); report "
                f"MetricRecord({{{self.local_steps_key!r}: steps, 'num-examples': n, ...}})."
            )
        return float(value)
