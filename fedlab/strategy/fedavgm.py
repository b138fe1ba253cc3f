"""`FedAvgM`: federated averaging with server momentum (Hsu et al., 2019)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fedlab.errors import StrategyError
from fedlab.message import Message
from fedlab.records import ArrayRecord
from fedlab.strategy._aggregate import reply_weight
from fedlab.strategy._arrays import (
    Float64Arrays,
    from_float64,
    norm,
    reply_arrays,
    require_global,
    to_float64,
    weighted_mean,
)
from fedlab.strategy.fedavg import FedAvg
from fedlab.strategy.strategy import StrategyState

__all__ = ["FedAvgM"]


class FedAvgM(FedAvg):
    """FedAvg whose server applies momentum SGD to the averaged update.

    With x the global model sent this round and x̄ the replies' mean weighted by
    ``weighted_by_key`` (as in FedAvg), each round computes the pseudo-gradient
    Δ = x − x̄, the momentum v ← β·v + Δ (v starts at 0) and the new model
    x ← x − η·v (Hsu, Qi and Brown, 2019, "Measuring the effects of non-identical data
    distribution for federated visual classification"). With β = 0 and η = 1 this is FedAvg.

    Parameters
    ----------
    server_learning_rate
        η (default 1.0).
    server_momentum
        β, in [0, 1) (default 0.9). The effective step is about η / (1 − β) once the
        momentum builds up, so lower η when raising β.
    **fedavg
        Sampling, minimums and keys, as for :class:`FedAvg`.

    Notes
    -----
    Flower initialises the momentum with the first pseudo-gradient, which is the same as
    starting from 0. The momentum is kept in float64 and saved by :meth:`state_dict`.
    """

    def __init__(
        self, *, server_learning_rate: float = 1.0, server_momentum: float = 0.9, **fedavg: Any
    ) -> None:
        super().__init__(**fedavg)
        if not server_learning_rate > 0:
            raise StrategyError(f"server_learning_rate must be > 0, got {server_learning_rate!r}.")
        if not 0.0 <= server_momentum < 1.0:
            raise StrategyError(f"server_momentum must be in [0, 1), got {server_momentum!r}.")
        self.server_learning_rate = float(server_learning_rate)
        self.server_momentum = float(server_momentum)
        self._momentum: Float64Arrays | None = None

    def reset(self) -> None:
        """Start the next run with no momentum (v = 0), as a fresh strategy does."""
        super().reset()
        self._momentum = None

    def aggregate_arrays(self, server_round: int, replies: Sequence[Message]) -> ArrayRecord:
        """One momentum-SGD step along the pseudo-gradient of this round's weighted mean."""
        current = require_global(type(self).__name__, self.current_arrays)
        mean = weighted_mean(
            ((r.metadata.src_node_id, reply_arrays(r), reply_weight(r, self.weighted_by_key)) for r in replies),
            current,
        )
        x = to_float64(current)
        if self._momentum is None:
            self._momentum = {name: value * 0.0 for name, value in x.items()}
        new: Float64Arrays = {}
        for name, value in x.items():
            momentum = self.server_momentum * self._momentum[name] + (value - mean[name])
            self._momentum[name] = momentum
            new[name] = value - self.server_learning_rate * momentum
        self.report(
            server_round,
            aggregated=len(replies),
            server_learning_rate=self.server_learning_rate,
            server_momentum=self.server_momentum,
            momentum_norm=norm(self._momentum),
        )
        return from_float64(new, current)

    def state_dict(self) -> StrategyState:
        """The sampling RNG and the momentum buffer (float64)."""
        state = super().state_dict()
        if self._momentum is not None:
            state.arrays["momentum"] = ArrayRecord(dict(self._momentum))
        return state

    def load_state_dict(self, state: StrategyState) -> None:
        """Restore what :meth:`state_dict` returned."""
        super().load_state_dict(state)
        momentum = state.arrays.get("momentum")
        self._momentum = None if momentum is None else to_float64(momentum)
