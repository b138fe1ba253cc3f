"""The cryptography SecAgg+ uses: X25519 agreement, HKDF, AES-GCM and an AES-CTR mask PRG.

- **Key agreement**: each client makes two X25519 key pairs per round, ``c`` (to encrypt
  shares for a neighbour) and ``s`` (to agree pairwise mask seeds). The shared secret of
  ``i`` and ``j`` is ``X25519(sk_i, pk_j) == X25519(sk_j, pk_i)``.
- **Key derivation**: HKDF-SHA256 of that secret, with a label per use (``info``), gives
  32-byte keys: an AES-256-GCM key for shares, or a mask seed.
- **Share encryption**: AES-256-GCM, a random 12-byte nonce in front of the ciphertext;
  the associated data binds sender and receiver, so the server cannot redirect a share.
- **Masks**: ``mask(seed, n, M)`` is the AES-256-CTR keystream under ``HKDF(seed)`` read as
  ``n`` little-endian uint64 words, each reduced mod ``M``. ``M`` is a power of two, so each
  word is uniform on ``[0, M)``.
"""

from __future__ import annotations

import os

import numpy as np
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "agree",
    "decrypt",
    "derive",
    "encrypt",
    "generate_keypair",
    "mask",
]


def generate_keypair() -> tuple[bytes, bytes]:
    """Return a fresh X25519 ``(private_key, public_key)`` pair, 32 raw bytes each."""
    key = X25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return private, public


def agree(private_key: bytes, peer_public_key: bytes, label: bytes) -> bytes:
    """Return the 32-byte key ``HKDF(X25519(private_key, peer_public_key), info=label)``."""
    shared = X25519PrivateKey.from_private_bytes(private_key).exchange(
        X25519PublicKey.from_public_bytes(peer_public_key)
    )
    return derive(shared, label)


def derive(secret: bytes, label: bytes) -> bytes:
    """Return ``HKDF-SHA256(secret, salt=None, info=label)``, 32 bytes."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(secret)


def encrypt(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    """AES-256-GCM encrypt: ``nonce (12 bytes) || ciphertext || tag``."""
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated)


def decrypt(key: bytes, blob: bytes, associated: bytes) -> bytes:
    """Invert :func:`encrypt`; raises ``cryptography.exceptions.InvalidTag`` if altered."""
    return AESGCM(key).decrypt(blob[:12], blob[12:], associated)


def mask(seed: bytes, length: int, modulus: int) -> np.ndarray:
    """Return ``length`` uint64 values uniform on ``[0, modulus)`` expanded from ``seed``.

    ``modulus`` must be a power of two (at most 2**62).
    """
    key = derive(seed, b"fedlab secagg+ mask prg")
    stream = Cipher(algorithms.AES(key), modes.CTR(b"\0" * 16)).encryptor().update(bytes(8 * length))
    words = np.frombuffer(stream, dtype="<u8").astype(np.uint64, copy=False)
    out: np.ndarray = words & np.uint64(modulus - 1)
    return out
