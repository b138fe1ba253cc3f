"""Flower's ``QFedAvg`` (q-FFL, Li et al. 2020), as Flower 1.42 computes it.

With ``L = 1/client_learning_rate`` and ``F_k`` the loss reply k reports under
``train_loss_key``: ``ΔW_k = L·(w − w_k)``, ``h_k = q·(F_k+1e-10)^(q−1)·‖ΔW_k‖² +
L·(F_k+1e-10)^q``, and ``w ← w − Σ_k (F_k+1e-10)^q·ΔW_k / Σ_k h_k``. num-examples does not
weigh the arrays (only the metrics); the sum of ``h`` is a float64, so the model becomes
float64 from round 1 on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from fedlab.compat.flower.records import Array, ArrayRecord, as_flower_arrays
from fedlab.compat.flower.strategy.aggregation import reply_arrays
from fedlab.compat.flower.strategy.fedavg import FEDAVG_ARGUMENTS, FedAvg
from fedlab.errors import AggregationError
from fedlab.message import Message
from fedlab.records import ArrayRecord as _ArrayRecord
from fedlab.records import ConfigRecord
from fedlab.server import Grid

__all__ = ["QFedAvg"]


class QFedAvg(FedAvg):
    """Flower's QFedAvg: fair aggregation that weighs clients by their reported loss."""

    def __init__(
        self,
        client_learning_rate: float,
        q: float = 0.1,
        train_loss_key: str = "train_loss",
        *args: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.client_learning_rate = client_learning_rate
        self.q = q
        self.train_loss_key = train_loss_key
        self.current_arrays: ArrayRecord | None = None

    @classmethod
    def _arguments(cls) -> Sequence[str]:
        return (*FEDAVG_ARGUMENTS, "client_learning_rate", "q", "train_loss_key")

    def configure_train(
        self, server_round: int, arrays: _ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """As FedAvg; remembers the arrays sent."""
        self.current_arrays = as_flower_arrays(arrays).copy()
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_arrays(self, server_round: int, replies: Sequence[Message]) -> ArrayRecord | None:
        """The q-FFL step from the arrays sent this round."""
        if self.current_arrays is None:
            raise AggregationError("configure_train must run before aggregate_train in QFedAvg.")
        lipschitz = 1.0 / self.client_learning_rate
        names = list(self.current_arrays)
        weights = self.current_arrays.to_numpy_ndarrays()
        total: list[npt.NDArray[Any]] | None = None
        total_h: Any = 0.0
        for reply in replies:
            loss = self._loss(reply)
            grad = [
                lipschitz * (w - local)
                for w, local in zip(
                    weights, reply_arrays(reply.content).to_numpy_ndarrays(), strict=True
                )
            ]
            grad = [g.astype(w.dtype, copy=False) for g, w in zip(grad, weights, strict=True)]
            norm = float(sum(np.sum(np.square(g)) for g in grad))
            scale = np.float_power(loss + 1e-10, self.q)
            for g in grad:
                g *= scale
            total = grad if total is None else [t + g for t, g in zip(total, grad, strict=True)]
            total_h += self.q * np.float_power(loss + 1e-10, self.q - 1) * norm + lipschitz * scale
        assert total is not None  # replies holds at least one successful reply
        return ArrayRecord(
            {
                n: Array(np.asarray(w - d / total_h))
                for n, w, d in zip(names, weights, total, strict=True)
            }
        )

    def _loss(self, reply: Message) -> float:
        metrics = next(iter(reply.content.metric_records.values()))
        loss = metrics.get(self.train_loss_key)
        if not isinstance(loss, int | float):
            raise AggregationError(
                f"The reply of node {reply.metadata.src_node_id} has no number under "
                f"{self.train_loss_key!r} (its metrics: {sorted(metrics)}); QFedAvg needs each "
                f"client's training loss: MetricRecord({{{self.train_loss_key!r}: loss, ...}})."
            )
        return float(loss)
