"""Quantisation of a clipped update into integers, and back.

With clipping range ``c`` and quantisation range ``Q``, every value ``x`` is clipped to
``[-c, c]`` and mapped to an integer in ``[0, Q)``::

    q(x) = round((clip(x, -c, c) + c) * (Q - 1) / (2c))        (round half to even)
    x^(q) = q * 2c / (Q - 1) - c

so ``|x^(q(x)) - clip(x, -c, c)| <= c / (Q - 1)`` (half a step of ``2c / (Q - 1)``). The
map back is affine, so a weighted average of quantised values maps back to the weighted
average of the dequantised values: the average of clipped updates is recovered within
``c / (Q - 1)`` per element (:func:`error_bound`), plus float64 rounding.

A client sends ``w * q`` (its integer weight ``w`` times its quantised update) plus masks,
mod ``M``. The server's sum ``sum_i w_i q_i`` is exact as long as it stays below ``M``:
``n * max_weight * (Q - 1) < M`` (:func:`check_ranges`).
"""

from __future__ import annotations

import numpy as np

from fedlab.errors import StrategyError

__all__ = ["check_ranges", "dequantize", "error_bound", "quantize"]


def quantize(values: np.ndarray, clipping_range: float, quantization_range: int) -> np.ndarray:
    """Return ``q(values)`` as uint64 (see the module docstring)."""
    c = float(clipping_range)
    clipped = np.clip(values.astype(np.float64, copy=False), -c, c)
    scaled = np.rint((clipped + c) * ((quantization_range - 1) / (2.0 * c)))
    return scaled.astype(np.uint64)


def dequantize(values: np.ndarray, clipping_range: float, quantization_range: int) -> np.ndarray:
    """Return ``values * 2c / (Q - 1) - c`` as float64 (``values`` may be averages)."""
    c = float(clipping_range)
    return values.astype(np.float64) * (2.0 * c / (quantization_range - 1)) - c


def error_bound(clipping_range: float, quantization_range: int) -> float:
    """The largest dequantisation error per element: ``c / (Q - 1)``."""
    return float(clipping_range) / (quantization_range - 1)


def check_ranges(
    num_clients: int, max_weight: int, quantization_range: int, modulus_range: int
) -> None:
    """Refuse ranges whose sum could wrap around the modulus."""
    if modulus_range < 4 or modulus_range > 2**62 or modulus_range & (modulus_range - 1):
        raise StrategyError(
            f"modulus_range must be a power of two between 4 and 2**62, got {modulus_range}."
        )
    if quantization_range < 2:
        raise StrategyError(f"quantization_range must be at least 2, got {quantization_range}.")
    largest = num_clients * max_weight * (quantization_range - 1)
    if largest >= modulus_range:
        raise StrategyError(
            f"{num_clients} clients x max_weight {max_weight} x (quantization_range - 1) = "
            f"{largest} does not fit below modulus_range {modulus_range}: the sum would wrap "
            "around. Raise modulus_range (up to 2**62) or lower quantization_range or max_weight."
        )
