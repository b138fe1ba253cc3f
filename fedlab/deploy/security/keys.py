"""Ed25519 key pairs for SuperNodes and bundle signers: make, save, load, name.

A private key is stored as PEM (PKCS#8, unencrypted, mode 0600); a public key as one
OpenSSH line (``ssh-ed25519 AAAA... comment``), so that an allow-list of node keys reads
like an ``authorized_keys`` file. Loading accepts PEM or OpenSSH for both.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
    load_ssh_private_key,
    load_ssh_public_key,
)

from fedlab.errors import DeployError

__all__ = [
    "fingerprint",
    "load_private_key",
    "load_public_keys",
    "parse_public_key",
    "public_line",
    "raw_public",
    "write_key_pair",
    "write_private",
]


def raw_public(key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of a public key (what the SuperLink stores and compares)."""
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def fingerprint(key: Ed25519PublicKey | bytes) -> str:
    """A short printable name for a public key: the first 16 hex digits of its SHA-256."""
    raw = key if isinstance(key, bytes) else raw_public(key)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_line(key: Ed25519PublicKey, comment: str = "") -> str:
    """The OpenSSH line of ``key`` (``ssh-ed25519 AAAA... comment``)."""
    line = key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    return f"{line} {comment}".strip()


def write_private(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only (0600), replacing a file there."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def write_key_pair(stem: str | os.PathLike[str], *, overwrite: bool = False) -> tuple[Path, Path]:
    """Make a key pair; write ``STEM.key`` (PEM, 0600) and ``STEM.pub`` (OpenSSH line).

    Raises
    ------
    DeployError
        If either file exists and ``overwrite`` is False.
    """
    stem = Path(stem)
    private_path, public_path = stem.with_name(stem.name + ".key"), stem.with_name(stem.name + ".pub")
    for path in (private_path, public_path):
        if path.exists() and not overwrite:
            raise DeployError(f"{path} exists; pick another name or delete it first.")
    key = Ed25519PrivateKey.generate()
    write_private(private_path, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    public_path.write_text(public_line(key.public_key(), stem.name) + "\n")
    return private_path, public_path


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Read an Ed25519 private key (PEM or OpenSSH) from ``path``.

    Raises
    ------
    DeployError
        If the file cannot be read or holds another kind of key.
    """
    try:
        data = Path(path).read_bytes()
        key = load_ssh_private_key(data, None) if b"OPENSSH PRIVATE" in data else load_pem_private_key(data, None)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise DeployError(f"Cannot read the private key {path}: {err}. Make one with `fedlab keys NAME`.") from err
    if not isinstance(key, Ed25519PrivateKey):
        raise DeployError(f"{path} holds a {type(key).__name__}; fedlab keys are Ed25519 (`fedlab keys NAME`).")
    return key


def parse_public_key(text: str | bytes, where: str = "the key") -> Ed25519PublicKey:
    """Parse one Ed25519 public key given as an OpenSSH line or PEM.

    Raises
    ------
    DeployError
        If it is neither, or another kind of key.
    """
    data = text.encode() if isinstance(text, str) else text
    try:
        key = load_pem_public_key(data) if b"-----BEGIN" in data else load_ssh_public_key(data.strip())
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise DeployError(f"Cannot parse {where} as a public key ({err}); use a .pub file from `fedlab keys`.") from err
    if not isinstance(key, Ed25519PublicKey):
        raise DeployError(f"{where} is a {type(key).__name__}; fedlab keys are Ed25519 (`fedlab keys NAME`).")
    return key


def load_public_keys(paths: Iterable[str | os.PathLike[str]]) -> list[Ed25519PublicKey]:
    """Read Ed25519 public keys: each file holds one PEM key or OpenSSH lines (``#`` comments).

    Raises
    ------
    DeployError
        If a file cannot be read or a line is not an Ed25519 public key.
    """
    keys: list[Ed25519PublicKey] = []
    for path in paths:
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise DeployError(f"Cannot read the public key file {path}: {err}") from err
        if "-----BEGIN" in text:
            keys.append(parse_public_key(text, str(path)))
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip() and not line.lstrip().startswith("#"):
                keys.append(parse_public_key(line, f"{path} line {number}"))
    return keys
