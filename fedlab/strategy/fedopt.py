"""Adaptive server optimisers (Reddi et al., 2021): `FedAdagrad`, `FedAdam`, `FedYogi`."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from fedlab.errors import AggregationError, StrategyError
from fedlab.message import Message
from fedlab.records import ArrayRecord, ConfigRecord
from fedlab.server.grid import Grid
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

__all__ = ["ETA_L_KEY", "FedAdagrad", "FedAdam", "FedOpt", "FedYogi"]

#: The config key carrying the client learning rate η_l to the clients.
ETA_L_KEY = "eta-l"

Vector = npt.NDArray[np.float64]


class FedOpt(FedAvg):
    """Base of the adaptive server optimisers: Algorithm 2 of Reddi et al., 2021.

    With x the global model sent this round and x̄ the replies' mean weighted by
    ``weighted_by_key``, each round computes::

        Δ  = x̄ − x
        m ← β₁·m + (1 − β₁)·Δ            (m starts at 0)
        v ← second_moment(v, Δ²)          (v starts at τ²)
        x ← x + η·m / (√v + τ)

    Subclasses define ``second_moment``. The moments are kept in float64 and saved by
    :meth:`state_dict`; the model keeps its dtypes.

    Parameters
    ----------
    eta
        η, the server learning rate.
    eta_l
        η_l, the client learning rate; sent to clients under ``"eta-l"`` in every
        training config (clients decide whether to use it).
    beta_1, beta_2
        Decay rates of the first and second moment, in [0, 1).
    tau
        τ > 0, the adaptivity: larger τ makes the step less adaptive.
    **fedavg
        Sampling, minimums and keys, as for :class:`FedAvg`.

    Notes
    -----
    Reddi et al. ("Adaptive federated optimization", ICLR 2021) write Δ as the uniform
    mean of the client deltas; it is weighted by ``num-examples`` here as in FedAvg (the
    same when every client reports the same count). Flower departs from the paper in two
    ways that change numbers: it starts v at 0 instead of τ², and its FedAdam applies a
    bias correction (with exponent round + 1) that the paper does not have.

    **Choosing η.** While τ is small against the updates, m/(√v + τ) is about ±1 per
    coordinate in the first rounds (up to about 2 once m builds up; for Adagrad it decays
    like 1/√t), so each round moves every parameter by about η whatever the size of Δ.
    η is therefore the per-round step of the parameters, not a multiplier of Δ as in
    FedAvgM. The paper fixes β₁ = 0.9 and β₂ = 0.99, takes τ = 1e-3 unless it studies τ,
    and tunes η and η_l for each task; it has no default η. fedlab's defaults were chosen
    on digits, the tutorials' task; held-out accuracy after 10 rounds with half of 20
    clients sampled per round (seed 0):

    ========================================  ======  ==========  =======  =======
    task                                      FedAvg  FedAdagrad  FedAdam  FedYogi
    ========================================  ======  ==========  =======  =======
    softmax regression, non-IID (tutorial 2)   0.869       0.864    0.902    0.900
    same, with η = 0.01                            —       0.629    0.724    0.727
    MLP 64-64-10, IID (``fedlab.demo``)        0.942       0.891    0.955    0.953
    same, with η = 0.01                            —       0.844    0.886    0.886
    ========================================  ======  ==========  =======  =======

    The clients there train at their own learning rate; η_l is only sent to them.
    """

    def __init__(
        self,
        *,
        eta: float,
        eta_l: float,
        beta_1: float,
        beta_2: float,
        tau: float,
        **fedavg: Any,
    ) -> None:
        super().__init__(**fedavg)
        for name, value in (("eta", eta), ("eta_l", eta_l), ("tau", tau)):
            if isinstance(value, bool) or not value > 0:
                raise StrategyError(f"{name} must be > 0, got {value!r}.")
        for name, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            if isinstance(value, bool) or not 0.0 <= value < 1.0:
                raise StrategyError(f"{name} must be in [0, 1), got {value!r}.")
        self.eta, self.eta_l, self.tau = float(eta), float(eta_l), float(tau)
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self._m: Float64Arrays | None = None
        self._v: Float64Arrays | None = None

    def reset(self) -> None:
        """Start the next run with fresh moments, as a fresh strategy does."""
        super().reset()
        self._m = self._v = None

    @abstractmethod
    def second_moment(self, v: Vector, delta_squared: Vector) -> Vector:
        """Return the new second moment from the previous one and Δ²."""

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """FedAvg's instructions, with ``eta-l`` added to the config."""
        config[ETA_L_KEY] = self.eta_l
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_arrays(self, server_round: int, replies: Sequence[Message]) -> ArrayRecord:
        """One adaptive step along the pseudo-gradient Δ = x̄ − x."""
        current = require_global(type(self).__name__, self.current_arrays)
        mean = weighted_mean(
            ((r.metadata.src_node_id, reply_arrays(r), reply_weight(r, self.weighted_by_key)) for r in replies),
            current,
        )
        x = to_float64(current)
        if self._m is None or self._v is None:
            self._m = {name: np.zeros_like(value) for name, value in x.items()}
            self._v = {name: np.full_like(value, self.tau**2) for name, value in x.items()}
        elif set(self._m) != set(x):
            raise AggregationError(
                f"{type(self).__name__}'s moments cover arrays {sorted(self._m)} but the global "
                f"model has {sorted(x)}; restore the state saved for this model."
            )
        new: Float64Arrays = {}
        delta = {name: mean[name] - x[name] for name in x}
        for name, value in x.items():
            self._m[name] = self.beta_1 * self._m[name] + (1.0 - self.beta_1) * delta[name]
            self._v[name] = self.second_moment(self._v[name], np.square(delta[name]))
            new[name] = value + self.eta * self._m[name] / (np.sqrt(self._v[name]) + self.tau)
        self.report(
            server_round,
            aggregated=len(replies),
            eta=self.eta,
            pseudo_gradient_norm=norm(delta),
            step_norm=norm({name: new[name] - x[name] for name in x}),
        )
        return from_float64(new, current)

    def state_dict(self) -> StrategyState:
        """The sampling RNG and both moments (float64)."""
        state = super().state_dict()
        if self._m is not None and self._v is not None:
            state.arrays["m"] = ArrayRecord(dict(self._m))
            state.arrays["v"] = ArrayRecord(dict(self._v))
        return state

    def load_state_dict(self, state: StrategyState) -> None:
        """Restore what :meth:`state_dict` returned."""
        super().load_state_dict(state)
        m, v = state.arrays.get("m"), state.arrays.get("v")
        self._m = None if m is None else to_float64(m)
        self._v = None if v is None else to_float64(v)


class FedAdagrad(FedOpt):
    """Adagrad on the server: ``v ← v + Δ²``.

    Defaults: η = 0.1, η_l = 0.1, β₁ = 0 (no momentum, as in Adagrad), τ = 1e-3; β₂ is
    unused. They are Flower's; the paper tunes η and η_l per task. See :class:`FedOpt`
    for the update, the parameters and how the defaults do on digits.
    """

    def __init__(
        self, *, eta: float = 1e-1, eta_l: float = 1e-1, beta_1: float = 0.0, tau: float = 1e-3, **fedavg: Any
    ) -> None:
        super().__init__(eta=eta, eta_l=eta_l, beta_1=beta_1, beta_2=0.0, tau=tau, **fedavg)

    def second_moment(self, v: Vector, delta_squared: Vector) -> Vector:
        """``v + Δ²``."""
        return v + delta_squared


class FedAdam(FedOpt):
    """Adam on the server, without bias correction: ``v ← β₂·v + (1 − β₂)·Δ²``.

    Defaults: η = 0.1, η_l = 0.1, β₁ = 0.9, β₂ = 0.99, τ = 1e-3, as in Flower (whose
    bias correction makes its steps differ); the paper fixes the β and τ and tunes η and
    η_l per task. On the tutorials' digits task η = 0.1 reaches 0.902 in 10 rounds where
    FedAvg reaches 0.869 and η = 0.01 only 0.724 (see :class:`FedOpt`).
    """

    def __init__(
        self,
        *,
        eta: float = 1e-1,
        eta_l: float = 1e-1,
        beta_1: float = 0.9,
        beta_2: float = 0.99,
        tau: float = 1e-3,
        **fedavg: Any,
    ) -> None:
        super().__init__(eta=eta, eta_l=eta_l, beta_1=beta_1, beta_2=beta_2, tau=tau, **fedavg)

    def second_moment(self, v: Vector, delta_squared: Vector) -> Vector:
        """``β₂·v + (1 − β₂)·Δ²``."""
        return self.beta_2 * v + (1.0 - self.beta_2) * delta_squared


class FedYogi(FedOpt):
    """Yogi on the server: ``v ← v − (1 − β₂)·Δ²·sign(v − Δ²)``.

    Defaults: η = 0.1, η_l = 0.1, β₁ = 0.9, β₂ = 0.99, τ = 1e-3. Flower's FedYogi uses
    η = 0.01 and η_l = 0.0316 (10^-1.5); the paper fixes the β and τ and tunes η and η_l
    per task. On the tutorials' digits task η = 0.01 reaches 0.727 in 10 rounds, η = 0.1
    0.900 (FedAvg: 0.869); clients that train at the η_l sent to them do better with 0.1
    than with 0.0316 (mean of seeds 0–3 after 30 rounds: 0.949 against 0.934; the demo's
    MLP: 0.953 against 0.936). See :class:`FedOpt`.
    """

    def __init__(
        self,
        *,
        eta: float = 1e-1,
        eta_l: float = 1e-1,
        beta_1: float = 0.9,
        beta_2: float = 0.99,
        tau: float = 1e-3,
        **fedavg: Any,
    ) -> None:
        super().__init__(eta=eta, eta_l=eta_l, beta_1=beta_1, beta_2=beta_2, tau=tau, **fedavg)

    def second_moment(self, v: Vector, delta_squared: Vector) -> Vector:
        """``v − (1 − β₂)·Δ²·sign(v − Δ²)``."""
        return v - (1.0 - self.beta_2) * delta_squared * np.sign(v - delta_squared)
