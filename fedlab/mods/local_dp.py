"""`LocalDpMod`: local differential privacy for each client's training update.

After the handler has trained, the Mod clips the update ``u = returned - received``
(all arrays of the model record flattened together) to L2 norm ``clipping_norm`` and
adds independent Gaussian noise ``N(0, sigma^2)`` to every element of the clipped
update, so what leaves the client is ``received + clip(u) + noise``.

The noise
---------
``sigma`` makes the release of the update (epsilon, delta)-DP for a change of the update
by at most ``sensitivity`` in L2 norm (:func:`gaussian_noise_std`):

``mechanism="classical"`` (default)
    The classical Gaussian mechanism (Dwork & Roth 2014, Theorem A.1):
    ``sigma = sensitivity * sqrt(2 * ln(1.25 / delta)) / epsilon``. Its proof holds only
    for ``0 < epsilon < 1``; larger epsilons are refused.
``mechanism="analytic"``
    The analytic Gaussian mechanism (Balle & Wang 2018, Theorem 8): the smallest
    ``sigma`` with ``Phi(s/(2 sigma) - epsilon sigma/s) - e^epsilon Phi(-s/(2 sigma) -
    epsilon sigma/s) <= delta`` (``s`` the sensitivity), found by bisection to a relative
    ``1e-12``. Exact for every ``epsilon > 0`` and smaller than the classical ``sigma``.

Clipping bounds the distance between any two clipped updates by ``2 * clipping_norm``,
so ``sensitivity = 2 * clipping_norm`` protects a client's whole update against any
change of its data; a smaller sensitivity protects less (Flower's ``LocalDpMod`` leaves
this choice to the user too). The guarantee is per release: a client that trains in
``k`` rounds spends ``k`` times (by basic composition). The noise comes from numpy's
PCG64 generator with floating-point sampling, which is fine for research but is not a
hardened DP sampler (Mironov 2012).

Only ``train`` instructions are touched; other messages and error replies pass through.

Examples
--------
>>> round(gaussian_noise_std(1.0, 0.5, 1e-5), 4)
9.6896
>>> mod = LocalDpMod(clipping_norm=1.0, sensitivity=2.0, epsilon=0.5, delta=1e-5)
>>> round(mod.noise_std, 4)
19.3792
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from fedlab.client.mod import CallNext
from fedlab.context import Context
from fedlab.errors import ConfigurationError
from fedlab.message import Message
from fedlab.mods._update import Refusal, arrays_of, is_train, l2_norm, rebuilt, refuse, update_of

__all__ = ["LocalDpMod", "gaussian_noise_std"]

Mechanism = Literal["classical", "analytic"]


def gaussian_noise_std(
    sensitivity: float, epsilon: float, delta: float, mechanism: Mechanism = "classical"
) -> float:
    """The Gaussian noise std that makes a release of L2 sensitivity ``sensitivity`` (ε, δ)-DP.

    Parameters
    ----------
    sensitivity
        The largest L2 distance between two neighbouring inputs' values (> 0).
    epsilon
        The privacy budget ε (> 0; below 1 for the classical mechanism).
    delta
        The failure probability δ, in (0, 1).
    mechanism
        ``"classical"`` or ``"analytic"``; see the module docstring for both formulas.

    Raises
    ------
    ConfigurationError
        If a parameter is outside its range; the message says which and what to use.
    """
    _check(sensitivity=sensitivity, epsilon=epsilon)
    if not (isinstance(delta, int | float) and 0 < delta < 1):
        raise ConfigurationError(
            f"delta must be in (0, 1), got {delta!r}; 1e-5 is a common choice."
        )
    if mechanism == "classical":
        if epsilon >= 1:
            raise ConfigurationError(
                f"The classical Gaussian mechanism holds only for epsilon < 1, got {epsilon!r}; "
                "use mechanism='analytic', which is exact for every epsilon."
            )
        return sensitivity * math.sqrt(2 * math.log(1.25 / delta)) / epsilon
    if mechanism == "analytic":
        return sensitivity * _analytic_unit_std(float(epsilon), float(delta))
    raise ConfigurationError(f"mechanism must be 'classical' or 'analytic', got {mechanism!r}.")


class LocalDpMod:
    """Clip each training update and add Gaussian noise for (ε, δ) local DP.

    Parameters
    ----------
    clipping_norm
        The L2 norm the update is clipped to (> 0).
    sensitivity
        The L2 sensitivity the noise is calibrated to (> 0); ``2 * clipping_norm`` covers
        any change of the client's data.
    epsilon, delta
        The (ε, δ) of each release: ε > 0 (below 1 for the classical mechanism), δ in (0, 1).
    mechanism
        ``"classical"`` (default) or ``"analytic"``; see :func:`gaussian_noise_std`.
    seed
        Make the noise reproducible: each message's noise is drawn from a generator seeded
        with ``(seed, node id, round)``, so clients and rounds get independent noise. By
        default the noise is seeded from the operating system.
    arrayrecord_key
        The name of the model's ArrayRecord in instructions and replies.

    Attributes
    ----------
    noise_std
        The σ added to every element of the update.

    Raises
    ------
    ConfigurationError
        If a parameter is outside its range.
    """

    def __init__(
        self,
        clipping_norm: float,
        sensitivity: float,
        epsilon: float,
        delta: float,
        *,
        mechanism: Mechanism = "classical",
        seed: int | None = None,
        arrayrecord_key: str = "arrays",
    ) -> None:
        _check(clipping_norm=clipping_norm)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ConfigurationError(f"seed must be a non-negative int or None, got {seed!r}.")
        self.noise_std = gaussian_noise_std(sensitivity, epsilon, delta, mechanism)
        self.clipping_norm = float(clipping_norm)
        self.sensitivity = float(sensitivity)
        self.epsilon = float(epsilon)
        self.delta = float(delta)
        self.mechanism = mechanism
        self.seed = seed
        self.arrayrecord_key = arrayrecord_key

    def __call__(self, msg: Message, ctx: Context, call_next: CallNext) -> Message:
        """Run the handler, then clip its update and add noise; see the module docstring."""
        if not is_train(msg) or msg.has_error():
            return call_next(msg, ctx)
        try:
            received = arrays_of(msg.content, self.arrayrecord_key, "train instruction")
        except Refusal as refusal:
            return refuse(msg, f"LocalDpMod: {refusal}")
        reply = call_next(msg, ctx)
        if reply.has_error():
            return reply
        try:
            update = update_of(received, arrays_of(reply.content, self.arrayrecord_key, "reply"))
        except Refusal as refusal:
            return refuse(msg, f"LocalDpMod: {refusal}")
        scale = min(1.0, self.clipping_norm / norm) if (norm := l2_norm(update)) > 0 else 1.0
        rng = self._generator(msg)
        noisy = {
            name: u * scale + rng.normal(0.0, self.noise_std, size=u.shape)
            for name, u in update.items()
        }
        return rebuilt(reply, self.arrayrecord_key, received, noisy)

    def _generator(self, msg: Message) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng()
        return np.random.default_rng([self.seed, msg.metadata.dst_node_id, msg.metadata.round])

    def __repr__(self) -> str:
        return (
            f"LocalDpMod(clipping_norm={self.clipping_norm}, sensitivity={self.sensitivity}, "
            f"epsilon={self.epsilon}, delta={self.delta}, mechanism={self.mechanism!r})"
        )


def _check(**values: object) -> None:
    for name, value in values.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 < value < math.inf
        ):
            raise ConfigurationError(f"{name} must be a finite number above 0, got {value!r}.")


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _analytic_delta(sigma: float, epsilon: float) -> float:
    """The δ the Gaussian mechanism with std ``sigma`` and sensitivity 1 achieves at ``epsilon``."""
    a, b = 1 / (2 * sigma), epsilon * sigma
    tail = _phi(-a - b)
    # e^epsilon * tail in logs, so a large epsilon cannot overflow; 0 if tail underflowed
    # (which overstates delta, so the sigma found errs on the safe side).
    exponent = epsilon + math.log(tail) if tail > 0 else -math.inf
    return _phi(a - b) - (math.exp(exponent) if exponent < 700 else math.inf)


def _analytic_unit_std(epsilon: float, delta: float) -> float:
    low, high = 1.0, 1.0
    while _analytic_delta(high, epsilon) > delta:
        high *= 2
    while _analytic_delta(low, epsilon) <= delta and low > 1e-12:
        low /= 2
    while high - low > 1e-12 * high:
        middle = (low + high) / 2
        if _analytic_delta(middle, epsilon) <= delta:
            high = middle
        else:
            low = middle
    return high
