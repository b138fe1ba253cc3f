"""Flower's adaptive server optimisers: ``FedOpt``, ``FedAdagrad``, ``FedAdam``, ``FedYogi``.

As Flower 1.42 computes them (Reddi et al. differ; see fedlab's :mod:`fedlab.strategy.fedopt`):
``Δ = FedAvg(replies) − x`` with ``x`` the arrays sent this round, ``m = β1·m + (1−β1)·Δ``
from zeros, ``v`` from zeros (not τ²), ``x ← x + η·m / (√v + τ)``. FedAdagrad uses
``β1 = 0`` and ``v += Δ²``; FedYogi ``v −= (1−β2)·Δ²·sign(v − Δ²)``; FedAdam
``v = β2·v + (1−β2)·Δ²`` and the step ``η·√(1−β2^(t+1)) / (1−β1^(t+1))`` with ``t`` the
server round, a float64 scalar, so FedAdam's model is float64 from round 1 on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from fedlab.compat.flower.records import Array, ArrayRecord
from fedlab.compat.flower.strategy.aggregation import aggregate_arrayrecords
from fedlab.compat.flower.strategy.fedavg import FEDAVG_ARGUMENTS, FedAvg
from fedlab.errors import AggregationError
from fedlab.message import Message
from fedlab.records import ArrayRecord as _ArrayRecord
from fedlab.records import ConfigRecord
from fedlab.server import Grid

__all__ = ["FedAdagrad", "FedAdam", "FedOpt", "FedYogi"]

Arrays = dict[str, npt.NDArray[Any]]


class FedOpt(FedAvg):
    """Base of Flower's adaptive optimisers: FedAvg's mean as a pseudo-gradient, then a step."""

    def __init__(
        self,
        *args: Any,
        eta: float = 1e-1,
        eta_l: float = 1e-1,
        beta_1: float = 0.0,
        beta_2: float = 0.0,
        tau: float = 1e-9,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.eta, self.eta_l, self.beta_1, self.beta_2, self.tau = eta, eta_l, beta_1, beta_2, tau
        self.current_arrays: Arrays | None = None
        self.m_t: Arrays | None = None
        self.v_t: Arrays | None = None

    @classmethod
    def _arguments(cls) -> Sequence[str]:
        return (*FEDAVG_ARGUMENTS, "eta", "eta_l", "beta_1", "beta_2", "tau")

    def reset(self) -> None:
        """Forget the moments of an earlier run."""
        super().reset()
        self.current_arrays = self.m_t = self.v_t = None

    def configure_train(
        self, server_round: int, arrays: _ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """As FedAvg; remembers the arrays sent, from which the pseudo-gradient is taken."""
        self.current_arrays = {k: a.numpy().copy() for k, a in arrays.items()}
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_arrays(self, server_round: int, replies: Sequence[Message]) -> ArrayRecord | None:
        """FedAvg of the replies, then this optimiser's step from the arrays sent."""
        averaged = aggregate_arrayrecords([r.content for r in replies], self.weighted_by_key)
        if self.current_arrays is None:
            raise AggregationError("configure_train must run before aggregate_train in FedOpt.")
        new = {k: a.numpy() for k, a in averaged.items()}
        if set(new) != set(self.current_arrays) or any(
            new[k].shape != self.current_arrays[k].shape for k in new
        ):
            raise AggregationError(
                "The averaged replies do not have the names and shapes of the arrays sent; "
                "every client must return the model it was sent, changed in place."
            )
        delta = {k: x - self.current_arrays[k] for k, x in new.items()}
        if not self.m_t:
            self.m_t = {k: np.zeros_like(v) for k, v in new.items()}
        self.m_t = {k: self.beta_1 * m + (1 - self.beta_1) * delta[k] for k, m in self.m_t.items()}
        if not self.v_t:
            self.v_t = {k: np.zeros_like(v) for k, v in new.items()}
        self.v_t = {k: self.second_moment(v, delta[k]) for k, v in self.v_t.items()}
        step = self.step_size(server_round)
        updated = {
            k: x + step * self.m_t[k] / (np.sqrt(self.v_t[k]) + self.tau)
            for k, x in self.current_arrays.items()
        }
        return ArrayRecord({k: Array(np.asarray(v)) for k, v in updated.items()})

    def second_moment(self, v: npt.NDArray[Any], delta: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """The new ``v`` from the old one and this round's pseudo-gradient (FedOpt: unchanged)."""
        return v

    def step_size(self, server_round: int) -> Any:
        """The server learning rate of this round (``eta``; FedAdam corrects it)."""
        return self.eta


class FedAdagrad(FedOpt):
    """Flower's FedAdagrad: ``v += Δ²``, no momentum (β1 = β2 = 0)."""

    def __init__(
        self, *args: Any, eta: float = 1e-1, eta_l: float = 1e-1, tau: float = 1e-3, **kwargs: Any
    ) -> None:
        super().__init__(*args, eta=eta, eta_l=eta_l, beta_1=0.0, beta_2=0.0, tau=tau, **kwargs)

    @classmethod
    def _arguments(cls) -> Sequence[str]:
        return (*FEDAVG_ARGUMENTS, "eta", "eta_l", "tau")

    def second_moment(self, v: npt.NDArray[Any], delta: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """``v + Δ²``."""
        updated: npt.NDArray[Any] = v + delta**2
        return updated


class FedAdam(FedOpt):
    """Flower's FedAdam: ``v = β2·v + (1−β2)·Δ²`` and the bias-corrected step of round t+1."""

    def __init__(
        self,
        *args: Any,
        eta: float = 1e-1,
        eta_l: float = 1e-1,
        beta_1: float = 0.9,
        beta_2: float = 0.99,
        tau: float = 1e-3,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            *args, eta=eta, eta_l=eta_l, beta_1=beta_1, beta_2=beta_2, tau=tau, **kwargs
        )

    def second_moment(self, v: npt.NDArray[Any], delta: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """``β2·v + (1−β2)·Δ²``."""
        return self.beta_2 * v + (1 - self.beta_2) * (delta**2)

    def step_size(self, server_round: int) -> Any:
        """``η·√(1−β2^(t+1)) / (1−β1^(t+1))`` as a float64 scalar, ``t`` the server round."""
        return (
            self.eta
            * np.sqrt(1 - np.power(self.beta_2, server_round + 1.0))
            / (1 - np.power(self.beta_1, server_round + 1.0))
        )


class FedYogi(FedOpt):
    """Flower's FedYogi: ``v −= (1−β2)·Δ²·sign(v − Δ²)`` from zeros, no bias correction."""

    def __init__(
        self,
        *args: Any,
        eta: float = 1e-2,
        eta_l: float = 0.0316,
        beta_1: float = 0.9,
        beta_2: float = 0.99,
        tau: float = 1e-3,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            *args, eta=eta, eta_l=eta_l, beta_1=beta_1, beta_2=beta_2, tau=tau, **kwargs
        )

    def second_moment(self, v: npt.NDArray[Any], delta: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """``v − (1−β2)·Δ²·sign(v − Δ²)``."""
        squared = delta**2
        updated: npt.NDArray[Any] = v - (1.0 - self.beta_2) * squared * np.sign(v - squared)
        return updated
