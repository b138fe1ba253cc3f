"""Signed SuperNode requests: every Fleet call proves which node sent it, and when.

A SuperNode signs each request with its Ed25519 key over the method path, its node id, a
timestamp, a random nonce and the SHA-256 of the serialised request body; the signature
and those fields travel as gRPC metadata. The SuperLink (:class:`NodeVerifier`) refuses a
request whose signature does not verify, whose key is not on its allow-list, whose node
id is not the one bound to that key, whose timestamp is more than :data:`WINDOW_S` seconds
off, or whose nonce it has already seen. A client-streaming request (an upload) signs an
empty body; its chunks are bound by the object's SHA-256, which the SuperLink checks.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fedlab.deploy.security.keys import raw_public
from fedlab.errors import DeployError

__all__ = ["AuthFailure", "EMPTY_BODY", "NodeSigner", "NodeVerifier", "SignedRequest", "WINDOW_S"]

#: How far a request's timestamp may be from the SuperLink's clock (seconds).
WINDOW_S = 60.0
#: The body digest of a client-streaming request.
EMPTY_BODY = hashlib.sha256(b"").digest()
_KEY, _NODE, _TIME, _NONCE, _SIG = (
    "fedlab-node-key", "fedlab-node-id", "fedlab-timestamp", "fedlab-nonce", "fedlab-signature",
)  # fmt: skip
_MAX_NONCES = 1_000_000


class AuthFailure(DeployError):
    """A request that is not authenticated; its message says why (sent as UNAUTHENTICATED)."""


def _payload(method: str, node_id: int, timestamp: str, nonce: str, body_digest: bytes) -> bytes:
    return f"fedlab-fleet-v1\n{method}\n{node_id}\n{timestamp}\n{nonce}\n{body_digest.hex()}".encode()


class NodeSigner:
    """Signs a SuperNode's requests with its key; :attr:`node_id` is set once registered."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_hex = raw_public(key.public_key()).hex()
        self.node_id = 0

    def metadata(self, method: str, body: bytes | None) -> tuple[tuple[str, str], ...]:
        """The metadata for one call of ``method`` with serialised request ``body`` (None: a stream)."""
        timestamp = f"{time.time():.3f}"
        nonce = secrets.token_hex(16)
        digest = EMPTY_BODY if body is None else hashlib.sha256(body).digest()
        signature = self._key.sign(_payload(method, self.node_id, timestamp, nonce, digest))
        return (
            (_KEY, self.public_hex), (_NODE, str(self.node_id)), (_TIME, timestamp),
            (_NONCE, nonce), (_SIG, signature.hex()),
        )  # fmt: skip


class SignedRequest:
    """What a verified request proved: its key (raw bytes) and the node id it claims."""

    __slots__ = ("key", "node_id")

    def __init__(self, key: bytes, node_id: int) -> None:
        self.key = key
        self.node_id = node_id


class NodeVerifier:
    """Checks signed Fleet requests against an allow-list; remembers nonces to refuse replays.

    Parameters
    ----------
    allowed
        True if a raw public key is on the allow-list.
    clock
        Seconds since the epoch (injectable for tests).
    """

    def __init__(self, allowed: Callable[[bytes], bool], clock: Callable[[], float] = time.time) -> None:
        self._allowed = allowed
        self._clock = clock
        self._nonces: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, method: str, body_digest: bytes, metadata: Mapping[str, str]) -> SignedRequest:
        """Return what a request proves, or raise :class:`AuthFailure` saying what is wrong."""
        try:
            key_hex, node, stamp, nonce, sig = (metadata[k] for k in (_KEY, _NODE, _TIME, _NONCE, _SIG))
        except KeyError:
            raise AuthFailure(
                "This SuperLink admits only authenticated SuperNodes: start the SuperNode with "
                "--node-key FILE (make one with `fedlab keys NAME`) and have the operator add "
                "its .pub with `fedlab node add`."
            ) from None
        try:
            raw = bytes.fromhex(key_hex)
            key = Ed25519PublicKey.from_public_bytes(raw)
            node_id, timestamp, signature = int(node), float(stamp), bytes.fromhex(sig)
        except ValueError:
            raise AuthFailure("The request's authentication metadata is malformed.") from None
        if len(nonce) != 32:
            raise AuthFailure("The request's nonce is malformed.")
        now = self._clock()
        if abs(now - timestamp) > WINDOW_S:
            raise AuthFailure(
                f"The request's timestamp is {now - timestamp:+.0f} s off this SuperLink's clock (at "
                f"most {WINDOW_S:.0f} s allowed); synchronise the node's clock (NTP)."
            )
        try:
            key.verify(signature, _payload(method, node_id, stamp, nonce, body_digest))
        except InvalidSignature:
            raise AuthFailure("The request's signature does not verify; it was altered or forged.") from None
        if not self._allowed(raw):
            raise AuthFailure(
                "This node's key is not on the SuperLink's allow-list; ask the operator to run "
                "`fedlab node add NODE.pub`."
            )
        self._remember(nonce, timestamp, now)
        return SignedRequest(raw, node_id)

    def _remember(self, nonce: str, timestamp: float, now: float) -> None:
        with self._lock:
            while self._nonces and (
                next(iter(self._nonces.values())) < now - WINDOW_S or len(self._nonces) >= _MAX_NONCES
            ):
                self._nonces.popitem(last=False)
            if nonce in self._nonces:
                raise AuthFailure("This request was already received once; a replayed request is refused.")
            self._nonces[nonce] = max(timestamp, now)
