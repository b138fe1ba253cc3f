"""`PrivacyAccountant`: the (ε, δ) a run of the subsampled Gaussian mechanism has spent.

The arithmetic is Google's ``dp-accounting`` library (imported only when an ε is asked
for, so ``import fedlab`` does not load it); this module only says which mechanism a
round of central DP is:

- ``sampling="fixed-size"``: each round draws exactly ``m`` of the ``N`` eligible clients
  uniformly *without replacement* (what the DP wrappers of :mod:`fedlab.privacy` do).
  Accounted with ``SampledWithoutReplacementDpEvent`` under the *replace-one* neighbouring
  relation (Wang, Balle & Kasiviswanathan 2019), the only relation dp-accounting defines
  for it, and by RDP only. Replacing one client moves the clipped sum by up to ``2C``, so
  the Gaussian is accounted with noise multiplier ``z / 2`` (std ``zC`` over sensitivity
  ``2C``).
- ``sampling="poisson"``: each client joins a round independently with probability
  ``q = m / N`` (``PoissonSampledDpEvent`` with ``GaussianDpEvent(z)``, add-or-remove-one
  relation), by RDP or PLD. This is the DP-SGD accounting of Abadi et al. 2016; the
  wrappers do not sample this way, so they refuse a Poisson accountant.

Every guarantee is *client-level*: neighbouring federations differ in one client's data.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from fedlab.errors import MissingDependencyError, StrategyError

__all__ = ["Accounting", "PrivacyAccountant", "Sampling"]

Sampling = Literal["fixed-size", "poisson"]
Accounting = Literal["rdp", "pld"]


class PrivacyAccountant:
    """Composes one subsampled Gaussian per round and reports the ε spent at ``delta``.

    Parameters
    ----------
    noise_multiplier
        ``z``: the noise std over the clipping norm (the aggregate's noise is ``z·C/m``).
    delta
        The δ at which ε is reported (a rule of thumb: below 1 / number of clients).
    sampling
        ``"fixed-size"`` (default; exactly ``m`` of ``N`` each round, as the DP wrappers
        sample) or ``"poisson"`` (each client independently with probability ``m/N``).
    method
        ``"rdp"`` (Rényi DP, default) or ``"pld"`` (privacy loss distributions: tighter,
        slower; Poisson sampling only).

    Examples
    --------
    >>> accountant = PrivacyAccountant(1.0, delta=1e-5)
    >>> accountant.step(sample_size=10, population=100)
    >>> accountant.steps, round(accountant.epsilon(), 3) > 0
    (1, True)
    """

    def __init__(
        self,
        noise_multiplier: float,
        delta: float,
        *,
        sampling: Sampling = "fixed-size",
        method: Accounting = "rdp",
    ) -> None:
        if not (isinstance(noise_multiplier, int | float) and noise_multiplier >= 0):
            raise StrategyError(f"noise_multiplier must be a number >= 0, got {noise_multiplier!r}.")
        if not (isinstance(delta, int | float) and 0 < delta < 1):
            raise StrategyError(f"delta must be between 0 and 1 (e.g. 1e-5), got {delta!r}.")
        if sampling not in ("fixed-size", "poisson"):
            raise StrategyError(f"sampling must be 'fixed-size' or 'poisson', got {sampling!r}.")
        if method not in ("rdp", "pld"):
            raise StrategyError(f"method must be 'rdp' or 'pld', got {method!r}.")
        if method == "pld" and sampling == "fixed-size":
            raise StrategyError(
                "dp-accounting's PLD accountant has no fixed-size (without replacement) "
                "sampling; use method='rdp' for fixed-size sampling, or sampling='poisson'."
            )
        self.noise_multiplier = float(noise_multiplier)
        self.delta = float(delta)
        self.sampling: Sampling = sampling
        self.method: Accounting = method
        # Rounds as (sample_size, population, count): runs of equal rounds are composed
        # at once, which keeps PLD cheap over many rounds.
        self._rounds: list[list[int]] = []
        self._curves: dict[tuple[int, int], Any] = {}  # one round's RDP at each order
        self._orders: Any = None

    @property
    def steps(self) -> int:
        """How many rounds were accounted."""
        return sum(count for _, _, count in self._rounds)

    def step(self, sample_size: int, population: int, count: int = 1) -> None:
        """Account ``count`` rounds that each sampled ``sample_size`` of ``population`` clients."""
        if not 0 < sample_size <= population:
            raise StrategyError(
                f"a round samples between 1 and all {population} clients, got {sample_size}."
            )
        if self._rounds and self._rounds[-1][:2] == [sample_size, population]:
            self._rounds[-1][2] += count
        else:
            self._rounds.append([sample_size, population, count])

    def reset(self) -> None:
        """Forget every round (a new run starts from ε = 0)."""
        self._rounds = []

    def state(self) -> list[list[int]]:
        """The accounted rounds, JSON-able, for a checkpoint (see :meth:`load_state`)."""
        return [list(r) for r in self._rounds]

    def load_state(self, rounds: list[list[int]]) -> None:
        """Restore what :meth:`state` returned."""
        self._rounds = [[int(a), int(b), int(c)] for a, b, c in rounds]

    def event(self) -> Any:
        """The ``dp_accounting`` DpEvent of every round so far (one ComposedDpEvent)."""
        dp = _dp_accounting()
        events = [dp.SelfComposedDpEvent(self._round_event(m, n), c) for m, n, c in self._rounds]
        return dp.ComposedDpEvent(events)

    def epsilon(self) -> float:
        """The ε spent so far at :attr:`delta` (0 before any round, inf without noise)."""
        if not self._rounds:
            return 0.0
        if self.noise_multiplier == 0:
            return math.inf
        dp = _dp_accounting()
        if self.method == "pld":
            accountant = dp.pld.PLDAccountant()
            accountant.compose(self.event())
            return float(accountant.get_epsilon(self.delta))
        # RDP adds up over rounds: one round's curve is computed once per round shape
        # (it costs a fraction of a second for fixed-size sampling) and scaled, exactly as
        # dp-accounting's own RdpAccountant composes a SelfComposedDpEvent.
        total = None
        for sample_size, population, count in self._rounds:
            curve = count * self._round_rdp(sample_size, population)
            total = curve if total is None else total + curve
        epsilon, _ = dp.rdp.rdp_privacy_accountant.compute_epsilon(self._orders, total, self.delta)
        return float(epsilon)

    def _round_rdp(self, sample_size: int, population: int) -> Any:
        key = (sample_size, population)
        if key not in self._curves:
            dp = _dp_accounting()
            relation = dp.NeighboringRelation.ADD_OR_REMOVE_ONE
            if self.sampling == "fixed-size":
                relation = dp.NeighboringRelation.REPLACE_ONE
            accountant = dp.rdp.RdpAccountant(neighboring_relation=relation)
            accountant.compose(self._round_event(sample_size, population))
            self._orders, self._curves[key] = accountant.orders, accountant.rdp
        return self._curves[key]

    def _round_event(self, sample_size: int, population: int) -> Any:
        dp = _dp_accounting()
        if self.sampling == "fixed-size":
            # Replace-one: the clipped sum's sensitivity is 2C (see the module docstring).
            gaussian = dp.GaussianDpEvent(self.noise_multiplier / 2)
            return dp.SampledWithoutReplacementDpEvent(population, sample_size, gaussian)
        gaussian = dp.GaussianDpEvent(self.noise_multiplier)
        return dp.PoissonSampledDpEvent(sample_size / population, gaussian)

    def __repr__(self) -> str:
        return (
            f"PrivacyAccountant(noise_multiplier={self.noise_multiplier}, delta={self.delta}, "
            f"sampling={self.sampling!r}, method={self.method!r}, steps={self.steps})"
        )


def _dp_accounting() -> Any:
    try:
        import dp_accounting  # type: ignore[import-untyped]
    except ImportError:
        raise MissingDependencyError("dp-accounting", "privacy", "Privacy accounting") from None
    return dp_accounting
