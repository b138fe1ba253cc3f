"""The SecAgg+ stages as messages: names, record keys, and the errors both sides raise.

A SecAgg+ round (Bell et al. 2020, "Secure Single-Server Aggregation with
(Poly)Logarithmic Overhead") is four exchanges of ``train`` messages between the
:class:`~fedlab.privacy.secagg.SecAggPlus` strategy and each client's
:func:`~fedlab.mods.secagg.secaggplus_mod`. Every instruction carries a ConfigRecord
``content["secagg"]`` whose ``"secagg-stage"`` key names the stage:

1. ``setup``: the client's protocol index, its neighbours in the k-regular graph and the
   round's parameters. Reply: two fresh X25519 public keys (``pk-c``, ``pk-s``).
2. ``share-keys``: the public keys of the neighbours that answered (``peers``, ``pk-c``,
   ``pk-s``, the client itself included). The client Shamir-shares its self-mask seed
   and its ``s`` private key among them and replies with one AES-GCM ciphertext per
   neighbour (``dst``, ``ciphertexts``), which only that neighbour can open.
3. ``collect``: the ordinary training instruction (``arrays``, ``config``) plus the
   ciphertexts addressed to this client (``src``, ``ciphertexts``). The mod runs the
   training handler and replies with only the masked, quantised, weighted update
   (ArrayRecord ``secagg``, array ``masked``).
4. ``unmask``: the neighbours whose vectors arrived (``alive``) and those that dropped
   (``dropped``). The client reveals its shares of the self-mask seeds of the alive and
   of the ``s`` private keys of the dropped, never both for one peer.

A client refuses an instruction that breaks the protocol with an error reply (code
``MOD_FAILED_PRECONDITION``) whose reason starts with ``SecAggViolation``.
"""

from __future__ import annotations

from fedlab.errors import AggregationError, ConfigurationError

__all__ = [
    "COLLECT",
    "RECORD",
    "SETUP",
    "SHARE_KEYS",
    "STAGE",
    "SecAggError",
    "SecAggViolation",
    "UNMASK",
]

#: The ConfigRecord (instructions) / ArrayRecord (masked replies) name SecAgg+ uses.
RECORD = "secagg"
#: The key naming the stage in ``content["secagg"]``.
STAGE = "secagg-stage"
SETUP = "setup"
SHARE_KEYS = "share-keys"
COLLECT = "collect"
UNMASK = "unmask"


class SecAggViolation(ConfigurationError):
    """A client refused an instruction that breaks the SecAgg+ protocol."""


class SecAggError(AggregationError):
    """The server could not complete a SecAgg+ round (too many dropouts, bad replies)."""
