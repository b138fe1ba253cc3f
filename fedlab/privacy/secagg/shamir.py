"""Shamir secret sharing of 32-byte secrets over the prime field GF(2**521 - 1).

A secret ``s`` (32 bytes, read big-endian as an integer ``< 2**256``) is the constant
term of a random polynomial ``f`` of degree ``threshold - 1`` with coefficients drawn
uniformly from ``[0, P)``, ``P = 2**521 - 1`` (the Mersenne prime M521; any prime above
``2**256`` would do, this one is a well-known prime). The share held by the client with
protocol index ``x`` (``1 <= x < P``) is ``f(x)``, written as 66 big-endian bytes. Any
``threshold`` shares give ``s = f(0)`` by Lagrange interpolation at 0; fewer reveal
nothing about ``s`` (every secret is equally likely).

Examples
--------
>>> shares = split(b"k" * 32, [1, 2, 3, 4], threshold=3)
>>> combine({x: shares[x] for x in (1, 3, 4)}, threshold=3) == b"k" * 32
True
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping

from fedlab.errors import AggregationError

__all__ = ["PRIME", "SECRET_BYTES", "SHARE_BYTES", "ShamirError", "combine", "split"]

#: The field's prime, the Mersenne prime 2**521 - 1.
PRIME = 2**521 - 1
#: Length of a secret (an X25519 private key or a mask seed).
SECRET_BYTES = 32
#: Length of one encoded share (a field element, big-endian).
SHARE_BYTES = 66


class ShamirError(AggregationError):
    """A secret cannot be reconstructed: too few shares, or shares that do not fit."""


def split(secret: bytes, holders: Iterable[int], threshold: int) -> dict[int, bytes]:
    """Share ``secret`` among ``holders`` (distinct indices in ``[1, P)``), ``threshold`` needed.

    Returns each holder's share, 66 bytes.
    """
    if len(secret) != SECRET_BYTES:
        raise ShamirError(f"a secret must be {SECRET_BYTES} bytes, got {len(secret)}.")
    xs = sorted(set(holders))
    if not 1 <= threshold <= len(xs):
        raise ShamirError(
            f"cannot split a secret among {len(xs)} holders with threshold {threshold}; "
            "the threshold must be between 1 and the number of holders."
        )
    coefficients = [int.from_bytes(secret, "big")] + [
        secrets.randbelow(PRIME) for _ in range(threshold - 1)
    ]
    shares = {}
    for x in xs:
        if not 1 <= x < PRIME:
            raise ShamirError(f"holder index {x} is outside [1, 2**521 - 1).")
        value = 0
        for c in reversed(coefficients):  # Horner
            value = (value * x + c) % PRIME
        shares[x] = value.to_bytes(SHARE_BYTES, "big")
    return shares


def combine(shares: Mapping[int, bytes], threshold: int) -> bytes:
    """Rebuild the secret from at least ``threshold`` shares (holder index → share).

    Raises
    ------
    ShamirError
        With fewer than ``threshold`` shares, or a share that is not a field element.
    """
    if len(shares) < threshold:
        raise ShamirError(
            f"{len(shares)} share(s) received but {threshold} are needed to reconstruct the "
            "secret; too many clients dropped out this round (lower reconstruction_threshold "
            "or raise num_shares to tolerate more)."
        )
    points = sorted(shares.items())[:threshold]
    ys = []
    for x, raw in points:
        if len(raw) != SHARE_BYTES or not 1 <= x < PRIME:
            raise ShamirError(f"the share of holder {x} is malformed ({len(raw)} bytes).")
        ys.append(int.from_bytes(raw, "big"))
    secret = 0
    for i, (xi, _) in enumerate(points):
        numerator, denominator = 1, 1
        for j, (xj, _) in enumerate(points):
            if i != j:
                numerator = numerator * (-xj) % PRIME
                denominator = denominator * (xi - xj) % PRIME
        secret = (secret + ys[i] * numerator * pow(denominator, -1, PRIME)) % PRIME
    if secret >= 2 ** (8 * SECRET_BYTES):
        raise ShamirError("the shares do not belong to one secret (they were altered or mixed).")
    return secret.to_bytes(SECRET_BYTES, "big")
