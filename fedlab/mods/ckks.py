"""Homomorphic aggregation, client side: encrypt replies and decrypt aggregates with CKKS.

The clients of a federation share one CKKS key pair (TenSEAL's ``Context``). Each client's
:class:`CkksMod` turns the arrays of its training reply into CKKS ciphertexts before the
reply leaves the node, and turns the encrypted aggregate that the next instruction carries
back into plain arrays before the handler sees them. The server
(:class:`fedlab.privacy.ckks.CkksFedAvg`) holds only the *public* context: it can add
ciphertexts and multiply them by plain numbers, never decrypt.

Keys in a real deployment
-------------------------
:func:`ckks_keys` makes the key pair. One party trusted by the clients (one client, or the
data owners together) runs it and hands the *secret* context to every client out of band
(e.g. in each SuperNode's provisioning, like its TLS key, over an authenticated channel)
and the *public* context to the server. The server must never be given the secret context:
whoever holds it can decrypt every client's update. The secret stays on the nodes: the Mod
holds it in memory and never writes it to the Context state or to a reply.

Record format (bytes in a ConfigRecord, no pickle)
--------------------------------------------------
A reply carries ``content["ckks"]``: ``layout`` (JSON: the arrays' names, dtypes and
shapes, in order) and ``ciphertexts`` (one serialized CKKS vector per ``slots`` values of
the arrays flattened and concatenated). An instruction after round 1 carries
``content["ckks-aggregate"]``: the same two keys and ``total-weight``, the sum of the
weights by which the server multiplied the replies; the Mod divides by it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from fedlab.client.mod import CallNext
from fedlab.context import Context
from fedlab.errors import AggregationError, ConfigurationError, MissingDependencyError
from fedlab.message import Message, MessageType
from fedlab.records import ArrayRecord, ConfigRecord, RecordDict

__all__ = [
    "AGGREGATE_KEY",
    "CkksKeys",
    "CkksMod",
    "REPLY_KEY",
    "ckks_keys",
    "decrypt_arrays",
    "encrypt_arrays",
    "layout_of",
    "load_context",
    "slots_of",
]

#: Where a reply carries its encrypted arrays.
REPLY_KEY = "ckks"
#: Where an instruction carries the encrypted aggregate of the previous round.
AGGREGATE_KEY = "ckks-aggregate"


@dataclass(frozen=True)
class CkksKeys:
    """A CKKS key pair as serialized TenSEAL contexts.

    Attributes
    ----------
    secret
        The context with the secret key: for the clients only.
    public
        The same context without the secret key: for the server.
    poly_modulus_degree, coeff_mod_bit_sizes, global_scale_bits
        The parameters it was made with (``slots = poly_modulus_degree // 2`` values
        fit in one ciphertext).
    """

    secret: bytes
    public: bytes
    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    global_scale_bits: int

    def __repr__(self) -> str:  # never print the secret key
        return (
            f"CkksKeys(poly_modulus_degree={self.poly_modulus_degree}, "
            f"coeff_mod_bit_sizes={self.coeff_mod_bit_sizes}, global_scale_bits={self.global_scale_bits})"
        )


def _tenseal() -> Any:
    try:
        import tenseal  # type: ignore[import-untyped]
    except ImportError:
        raise MissingDependencyError("tenseal", "privacy", "Homomorphic aggregation (CKKS)") from None
    return tenseal


def ckks_keys(
    poly_modulus_degree: int = 8192,
    coeff_mod_bit_sizes: Sequence[int] = (60, 40, 40, 60),
    global_scale_bits: int = 40,
) -> CkksKeys:
    """Make a CKKS key pair for homomorphic FedAvg.

    The defaults (degree 8192, moduli 60-40-40-60 bits, scale 2**40) give 128-bit security,
    4096 values per ciphertext and room for the one plaintext multiplication (by a
    reply's weight) that aggregation needs.

    Examples
    --------
    >>> keys = ckks_keys()
    >>> load_context(keys.public).is_private(), load_context(keys.secret).is_private()
    (False, True)
    """
    ts = _tenseal()
    try:
        ctx = ts.context(
            ts.SCHEME_TYPE.CKKS,
            poly_modulus_degree=poly_modulus_degree,
            coeff_mod_bit_sizes=list(coeff_mod_bit_sizes),
        )
    except ValueError as exc:
        raise ConfigurationError(
            f"No CKKS context for poly_modulus_degree={poly_modulus_degree} and "
            f"coeff_mod_bit_sizes={list(coeff_mod_bit_sizes)}: {exc}. Use the defaults "
            "(8192, (60, 40, 40, 60)) or a larger degree for more moduli."
        ) from None
    ctx.global_scale = 2.0**global_scale_bits
    secret = ctx.serialize(save_secret_key=True)
    ctx.make_context_public()
    return CkksKeys(
        secret=secret,
        public=ctx.serialize(),
        poly_modulus_degree=poly_modulus_degree,
        coeff_mod_bit_sizes=tuple(coeff_mod_bit_sizes),
        global_scale_bits=global_scale_bits,
    )


def load_context(serialized: bytes) -> Any:
    """Return the TenSEAL context serialized in ``serialized`` (secret or public)."""
    return _tenseal().context_from(serialized)


def layout_of(arrays: ArrayRecord) -> str:
    """The JSON layout (name, dtype, shape of each array, in order) that ciphertexts follow."""
    return json.dumps([[name, arr.dtype, list(arr.shape)] for name, arr in arrays.items()])


def encrypt_arrays(arrays: ArrayRecord, context: Any, slots: int) -> ConfigRecord:
    """Encrypt ``arrays`` (flattened, concatenated, in float64) as CKKS vectors of ``slots``.

    ``context`` may be public: encryption needs only the public key. Returns the reply's
    ``ckks`` ConfigRecord (``layout`` and ``ciphertexts``).
    """
    ts = _tenseal()
    flat = np.concatenate([np.asarray(a.numpy(), dtype=np.float64).ravel() for a in arrays.values()] or [np.zeros(0)])
    chunks = [ts.ckks_vector(context, flat[i : i + slots].tolist()).serialize() for i in range(0, flat.size, slots)]
    return ConfigRecord({"layout": layout_of(arrays), "ciphertexts": chunks})


def decrypt_arrays(record: ConfigRecord, secret_context: Any) -> ArrayRecord:
    """Decrypt an aggregate record and divide by its ``total-weight`` (1 if absent).

    Integer arrays are rounded back to their dtype. Raises :class:`AggregationError`
    when the record is malformed: a layout that is not a list of (name, dtype, shape), a
    weight that is not positive, ciphertexts that do not load with this context, or fewer
    or more values than the layout needs.
    """
    ts = _tenseal()
    try:
        layout = [(str(n), np.dtype(d), tuple(int(e) for e in shape)) for n, d, shape in json.loads(str(record["layout"]))]
    except (KeyError, ValueError, TypeError) as exc:
        raise AggregationError(f"The CKKS record has no valid 'layout' ({exc}).") from None
    blobs = record.get("ciphertexts")
    weight = record.get("total-weight", 1.0)
    if not isinstance(blobs, list) or not all(isinstance(b, bytes) for b in blobs):
        raise AggregationError("The CKKS record's 'ciphertexts' must be a list of bytes.")
    if isinstance(weight, list | str | bytes) or not float(weight) > 0 or not np.isfinite(float(weight)):
        raise AggregationError(f"The CKKS record's 'total-weight' must be a positive number, got {weight!r}.")
    try:
        values = [np.asarray(ts.ckks_vector_from(secret_context, b).decrypt(), dtype=np.float64) for b in blobs]
    except (ValueError, RuntimeError, TypeError) as exc:
        raise AggregationError(
            f"The CKKS ciphertexts do not decrypt with this context ({exc}); every party must use the same keys."
        ) from None
    flat = np.concatenate(values) / float(weight) if values else np.zeros(0)
    sizes = [int(np.prod(shape, dtype=np.int64)) for _, _, shape in layout]
    if any(d < 0 for _, _, shape in layout for d in shape) or sum(sizes) != flat.size:
        raise AggregationError(
            f"The CKKS record holds {flat.size} values; its layout describes {sum(sizes)}."
        )
    out: dict[str, np.ndarray[Any, Any]] = {}
    offset = 0
    for (name, kind, shape), size in zip(layout, sizes, strict=True):
        part = flat[offset : offset + size]
        part = np.rint(part) if kind.kind in "iub" else part
        out[name] = part.astype(kind).reshape(shape)
        offset += size
    return ArrayRecord(out)


class CkksMod:
    """Encrypt training replies and decrypt the aggregate each instruction brings.

    Parameters
    ----------
    secret_context
        The serialized context with the secret key (:attr:`CkksKeys.secret`), given to
        every client out of band and never to the server.
    arrayrecord_key
        Where the handler finds and returns its arrays (``"arrays"``).

    Notes
    -----
    On the way in (train and evaluate), an instruction holding ``ckks-aggregate`` gets
    the decrypted, weight-divided arrays under ``arrayrecord_key``. On the way out (train
    only), the reply's ArrayRecord is replaced by the ``ckks`` ConfigRecord of its
    ciphertexts; its metrics (``num-examples`` among them) stay in plain text.
    The context is serialized bytes, so the Mod can be sent to worker processes.

    Examples
    --------
    >>> keys = ckks_keys()
    >>> mod = CkksMod(keys.secret)   # ClientApp(mods=[mod])
    """

    def __init__(self, secret_context: bytes, *, arrayrecord_key: str = "arrays") -> None:
        if not isinstance(secret_context, bytes):
            raise ConfigurationError(
                f"CkksMod needs the serialized secret context (CkksKeys.secret), got {type(secret_context).__name__}."
            )
        self.secret_context = secret_context
        self.arrayrecord_key = arrayrecord_key

    def __repr__(self) -> str:
        return f"CkksMod(arrayrecord_key={self.arrayrecord_key!r})"

    def _context(self) -> Any:
        ctx = _cached_context(self.secret_context)
        if not ctx.is_private():
            raise ConfigurationError(
                "CkksMod was given a public context; clients need the secret one (CkksKeys.secret)."
            )
        return ctx

    def __call__(self, msg: Message, ctx: Context, call_next: CallNext) -> Message:
        """Decrypt the incoming aggregate, run the handler, encrypt a training reply."""
        record = msg.content.get(AGGREGATE_KEY) if not msg.has_error() else None
        if isinstance(record, ConfigRecord):
            content = RecordDict({k: v for k, v in msg.content.items() if k != AGGREGATE_KEY})
            content[self.arrayrecord_key] = decrypt_arrays(record, self._context())
            msg = Message.from_parts(msg.metadata, content)
        reply = call_next(msg, ctx)
        if msg.metadata.message_type != MessageType.TRAIN or reply.has_error():
            return reply
        arrays = reply.content.get(self.arrayrecord_key)
        if not isinstance(arrays, ArrayRecord):
            raise ConfigurationError(
                f"CkksMod encrypts the reply's {self.arrayrecord_key!r} ArrayRecord, but the reply "
                f"holds {sorted(reply.content)}; return the arrays under that name."
            )
        secret = self._context()
        content = RecordDict({k: v for k, v in reply.content.items() if k != self.arrayrecord_key})
        content[REPLY_KEY] = encrypt_arrays(arrays, secret, slots_of(secret))
        return Message.from_parts(reply.metadata, content)


def slots_of(context: Any) -> int:
    """Values per ciphertext for ``context``: half its polynomial modulus degree."""
    return int(context.seal_context().data.first_context_data().parms().poly_modulus_degree() // 2)


@lru_cache(maxsize=4)
def _cached_context(serialized: bytes) -> Any:
    # Parsing a context takes milliseconds and every round needs it: keep a few per process.
    return load_context(serialized)
