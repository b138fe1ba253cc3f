"""Central differential privacy as wrappers around an averaging strategy.

DP-FedAvg (McMahan et al. 2018) with fixed clipping, and with adaptive clipping (Andrew
et al. 2021), clipping on the server or on the clients:

- :class:`DifferentialPrivacyServerSideFixedClipping` (``DPServerFixed``): the server clips
  to a fixed ``C``;
- :class:`DifferentialPrivacyClientSideFixedClipping` (``DPClientFixed``): the clients do;
- :class:`DifferentialPrivacyServerSideAdaptiveClipping` (``DPServerAdaptive``): the server
  clips, ``C`` follows a quantile of the update norms;
- :class:`DifferentialPrivacyClientSideAdaptiveClipping` (``DPClientAdaptive``): the clients
  clip and report whether they had to.

The long names are Flower's; the short ones are the same classes.

Each round every wrapper samples **exactly** ``num_sampled_clients`` (``m``) of the ``N``
eligible clients, uniformly without replacement, and its accountant assumes just that
(:class:`~fedlab.privacy.PrivacyAccountant` with ``sampling="fixed-size"``); the wrapped
strategy must keep ``fraction_train=1.0``. An update is a reply's arrays minus the round's
global arrays; clipped to L2 norm ``C`` over all floating-point arrays together, averaged
by the wrapped strategy, then N(0, (z·C/m)²) is added to every value of the aggregate.
After every aggregated round a :class:`~fedlab.events.PrivacySpent` event reports the ε
spent so far at ``delta``.

The guarantee holds for the *unweighted* mean of ``m`` replies: have clients report equal
weights (``num-examples``), or accept that a weighted mean gives one client more
influence than ``C/m``. Rounds where some sampled clients fail are still accounted as
``m`` replies, while the mean is over fewer: dropouts weaken the guarantee. A seeded run
draws reproducible noise (for experiments); run a real deployment with ``seed=None``.

Client-side variants send ``C`` in the train config under ``"dp-clipping-norm"`` and refuse
a reply whose update exceeds it; adaptive ones also need the reply metric
``"dp-norm-bit"`` (1 if the unclipped update was within ``C``), as
``fixedclipping_mod`` / ``adaptiveclipping_mod`` of :mod:`fedlab.mods` provide.
"""

from __future__ import annotations

import math

from fedlab.errors import StrategyError
from fedlab.privacy._wrapper import CentralDP, adjusted_noise_multiplier, count_noise
from fedlab.strategy import Strategy

__all__ = [
    "DPClientAdaptive",
    "DPClientFixed",
    "DPServerAdaptive",
    "DPServerFixed",
    "DifferentialPrivacyClientSideAdaptiveClipping",
    "DifferentialPrivacyClientSideFixedClipping",
    "DifferentialPrivacyServerSideAdaptiveClipping",
    "DifferentialPrivacyServerSideFixedClipping",
]


class DifferentialPrivacyServerSideFixedClipping(CentralDP):
    """DP-FedAvg with the server clipping every update to a fixed norm ``C``.

    Parameters
    ----------
    strategy
        The averaging strategy to wrap (FedAvg or one built on it), ``fraction_train=1.0``.
    noise_multiplier
        ``z``: the aggregate gets Gaussian noise of std ``z·C/m``.
    clipping_norm
        ``C``: the largest L2 norm an update keeps.
    num_sampled_clients
        ``m``: exactly this many clients are sampled each round.
    delta
        The δ at which ε is reported each round (default 1e-5).

    Examples
    --------
    >>> from fedlab.strategy import FedAvg
    >>> dp = DifferentialPrivacyServerSideFixedClipping(FedAvg(), 1.0, 0.5, num_sampled_clients=10)
    >>> dp.accountant.sampling
    'fixed-size'
    """

    clip_on_server = True

    def __init__(
        self,
        strategy: Strategy,
        noise_multiplier: float,
        clipping_norm: float,
        num_sampled_clients: int,
        *,
        delta: float = 1e-5,
    ) -> None:
        super().__init__(strategy, noise_multiplier, clipping_norm, num_sampled_clients, delta=delta)


class DifferentialPrivacyClientSideFixedClipping(DifferentialPrivacyServerSideFixedClipping):
    """DP-FedAvg with every client clipping its own update to ``C`` (``fixedclipping_mod``).

    Parameters as :class:`DifferentialPrivacyServerSideFixedClipping`. ``C`` travels in
    the train config under ``"dp-clipping-norm"``; a reply whose update is longer is
    refused (the client failed that round).
    """

    clip_on_server = False


class DifferentialPrivacyServerSideAdaptiveClipping(CentralDP):
    """DP-FedAvg whose clipping norm follows a quantile of the update norms (Andrew et al. 2021).

    Each round, with ``b̄`` the noised fraction of updates whose norm was at most ``C``:
    ``C ← C·exp(−η(b̄ − γ))``, so ``C`` moves toward the ``γ``-quantile of the norms.
    The count gets N(0, σ_b²) noise, and the update noise multiplier becomes
    ``z_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2)`` so that both releases together cost what one
    Gaussian of multiplier ``z`` does (what the accountant charges).

    Parameters
    ----------
    strategy, noise_multiplier, num_sampled_clients, delta
        As :class:`DifferentialPrivacyServerSideFixedClipping`.
    initial_clipping_norm
        ``C`` in round 1 (default 0.1).
    target_clipped_quantile
        ``γ``: the share of updates that should be within ``C`` (default 0.5, the median).
    clip_norm_lr
        ``η``, the geometric step (default 0.2).
    clipped_count_stddev
        ``σ_b``; default ``m / 20`` with noise, 0 without (``noise_multiplier=0``).
    """

    adaptive = True

    def __init__(
        self,
        strategy: Strategy,
        noise_multiplier: float,
        num_sampled_clients: int,
        initial_clipping_norm: float = 0.1,
        target_clipped_quantile: float = 0.5,
        clip_norm_lr: float = 0.2,
        clipped_count_stddev: float | None = None,
        *,
        delta: float = 1e-5,
    ) -> None:
        super().__init__(strategy, noise_multiplier, initial_clipping_norm, num_sampled_clients, delta=delta)
        if not 0.0 <= target_clipped_quantile <= 1.0:
            raise StrategyError(
                f"target_clipped_quantile must be between 0 and 1, got {target_clipped_quantile!r}."
            )
        if not clip_norm_lr > 0:
            raise StrategyError(f"clip_norm_lr must be > 0, got {clip_norm_lr!r}.")
        if clipped_count_stddev is None:
            clipped_count_stddev = num_sampled_clients / 20 if noise_multiplier > 0 else 0.0
        if clipped_count_stddev < 0:
            raise StrategyError(f"clipped_count_stddev must be >= 0, got {clipped_count_stddev!r}.")
        self.target_clipped_quantile = float(target_clipped_quantile)
        self.clip_norm_lr = float(clip_norm_lr)
        self.clipped_count_stddev = float(clipped_count_stddev)
        self._update_multiplier = adjusted_noise_multiplier(
            self.noise_multiplier, self.clipped_count_stddev, type(self).__name__
        )

    def update_noise_multiplier(self) -> float:
        """``z_Δ``: the multiplier left for the update once the count has its share."""
        return self._update_multiplier

    def update_clipping_norm(self, bits: list[float]) -> None:
        """``C ← C·exp(−η(b̄ − γ))`` with ``b̄`` the noised count of bits over ``m``."""
        fraction = count_noise(bits, self.clipped_count_stddev, self._noise_rng) / self.num_sampled_clients
        self.clipping_norm *= math.exp(-self.clip_norm_lr * (fraction - self.target_clipped_quantile))


class DifferentialPrivacyClientSideAdaptiveClipping(DifferentialPrivacyServerSideAdaptiveClipping):
    """Adaptive clipping done by the clients (``adaptiveclipping_mod``), as its server-side twin.

    ``C`` travels under ``"dp-clipping-norm"``; each reply reports ``"dp-norm-bit"`` (1 if
    its unclipped update was within ``C``). A reply without the bit, or longer than ``C``,
    is refused.
    """

    clip_on_server = False


#: Short fedlab names: where clipping happens, and whether ``C`` is fixed or adaptive.
DPServerFixed = DifferentialPrivacyServerSideFixedClipping
DPClientFixed = DifferentialPrivacyClientSideFixedClipping
DPServerAdaptive = DifferentialPrivacyServerSideAdaptiveClipping
DPClientAdaptive = DifferentialPrivacyClientSideAdaptiveClipping
