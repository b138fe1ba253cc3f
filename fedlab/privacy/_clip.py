"""Update norms, clipping and Gaussian noise over ArrayRecords (private to fedlab.privacy).

An update is a reply's arrays minus the arrays the round sent. Its norm is the L2 norm of
all floating-point arrays flattened together, computed in float64; integer arrays (counters
such as BatchNorm's ``num_batches_tracked``) are neither clipped nor noised.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from fedlab.message import Message
from fedlab.records import ArrayRecord, RecordDict

__all__ = ["add_noise", "clip_reply", "reply_arrays", "update_norm"]


def _floating(array: npt.NDArray[Any]) -> bool:
    return bool(np.issubdtype(array.dtype, np.floating))


def reply_arrays(reply: Message) -> tuple[str, ArrayRecord]:
    """The name and the one ArrayRecord of a training reply."""
    found = [(k, v) for k, v in reply.content.items() if isinstance(v, ArrayRecord)]
    if len(found) != 1:
        from fedlab.errors import AggregationError

        raise AggregationError(
            f"a DP wrapper needs exactly one ArrayRecord in each training reply, got {len(found)}; "
            "return only the model's arrays."
        )
    return found[0]


def update_norm(arrays: ArrayRecord, base: ArrayRecord) -> float:
    """The L2 norm of ``arrays - base`` over all floating-point arrays together."""
    total = 0.0
    for name, array in arrays.items():
        values = array.numpy()
        if _floating(values):
            diff = values.astype(np.float64) - base[name].numpy().astype(np.float64)
            total += float(np.dot(diff.ravel(), diff.ravel()))
    return math.sqrt(total)


def clip_reply(reply: Message, base: ArrayRecord, clipping_norm: float) -> tuple[Message, float]:
    """Return ``reply`` with its update scaled to norm ``clipping_norm`` if above, and the norm.

    A reply within the norm is returned unchanged (the same object), so clipping that
    never bites leaves aggregation bit for bit as it was.
    """
    key, arrays = reply_arrays(reply)
    norm = update_norm(arrays, base)
    if norm <= clipping_norm:
        return reply, norm
    factor = clipping_norm / norm
    clipped: dict[str, Any] = {}
    for name, array in arrays.items():
        values = array.numpy()
        if _floating(values):
            start = base[name].numpy().astype(np.float64)
            values = (start + (values.astype(np.float64) - start) * factor).astype(values.dtype)
        clipped[name] = values
    content = RecordDict({**reply.content, key: ArrayRecord(clipped)})
    return reply.with_content(content), norm


def add_noise(arrays: ArrayRecord, std: float, rng: np.random.Generator) -> ArrayRecord:
    """Return ``arrays`` plus i.i.d. N(0, std²) noise on every floating-point value.

    With ``std == 0`` the arrays come back untouched (the same object).
    """
    if std == 0:
        return arrays
    noised: dict[str, Any] = {}
    for name, array in arrays.items():
        values = array.numpy()
        if _floating(values):
            noise = rng.normal(0.0, std, size=values.shape)
            values = (values.astype(np.float64) + noise).astype(values.dtype)
        noised[name] = values
    return ArrayRecord(noised)
