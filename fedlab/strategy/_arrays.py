"""Array plumbing shared by the strategies: float64 views of records, stacks, and back."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from fedlab.errors import AggregationError
from fedlab.message import Message
from fedlab.records import ArrayRecord
from fedlab.strategy._aggregate import (
    _as_accumulator,
    _check_same_layout,
    _from_accumulator,
    single_record,
)

__all__ = [
    "Float64Arrays",
    "check_matches_global",
    "flatten",
    "from_float64",
    "norm",
    "reply_arrays",
    "require_global",
    "stack_replies",
    "to_float64",
    "weighted_mean",
]

#: A model as name -> float64 array, the form every strategy computes in.
Float64Arrays = dict[str, npt.NDArray[np.float64]]


def reply_arrays(reply: Message) -> ArrayRecord:
    """The one ArrayRecord of a reply (an explained AggregationError if there is not one)."""
    record: ArrayRecord = single_record(reply, ArrayRecord)[1]
    return record


def to_float64(record: ArrayRecord) -> Float64Arrays:
    """Return a writable float64 copy of every array (bfloat16 and integers included)."""
    return {name: _real(_as_accumulator(array), name) for name, array in record.items()}


def from_float64(values: Mapping[str, npt.NDArray[Any]], like: ArrayRecord) -> ArrayRecord:
    """Cast ``values`` back to the dtypes of ``like`` (integers rounded), in ``like``'s order."""
    out = ArrayRecord()
    for name, array in like.items():
        out[name] = _from_accumulator(np.asarray(values[name]), array.dtype)
    return out


def check_matches_global(node_id: int, record: ArrayRecord, global_arrays: ArrayRecord) -> None:
    """Refuse a reply whose arrays differ in keys or shapes from the global model."""
    missing = [k for k in global_arrays if k not in record]
    extra = [k for k in record if k not in global_arrays]
    wrong = [k for k in global_arrays if k in record and record[k].shape != global_arrays[k].shape]
    if missing or extra or wrong:
        raise AggregationError(
            f"Node {node_id} replied with arrays that do not match the global model it was sent: "
            f"missing keys {missing}, extra keys {extra}, wrong shapes {wrong}. Every client must "
            "return the model it received, trained."
        )


def require_global(who: str, arrays: ArrayRecord | None) -> ArrayRecord:
    """Return the global arrays sent this round, or explain that none were sent yet."""
    if arrays is None:
        raise AggregationError(
            f"{who} aggregates relative to the global arrays it sent, but configure_train has "
            "not run yet; call configure_train before aggregate_train (Strategy.start does)."
        )
    return arrays


def stack_replies(
    replies: Sequence[Message], arrays_of: Callable[[Message], ArrayRecord] = reply_arrays
) -> tuple[list[int], ArrayRecord, Float64Arrays]:
    """Stack the replies' arrays: ``name -> float64 array of shape (n, *shape)``.

    Returns the node ids in reply order, the first reply's record (for keys and dtypes)
    and the stacks. Keys, shapes and dtypes must agree across replies.
    """
    if not replies:
        raise AggregationError("There are no replies to aggregate.")
    node_ids = [r.metadata.src_node_id for r in replies]
    records = [arrays_of(r) for r in replies]
    reference = (node_ids[0], records[0])
    for node_id, record in zip(node_ids[1:], records[1:], strict=True):
        _check_same_layout(reference, node_id, record)
    stacks: Float64Arrays = {}
    for name in records[0]:
        stacks[name] = np.stack([_real(_as_accumulator(rec[name]), name) for rec in records])
    return node_ids, records[0], stacks


def weighted_mean(
    items: Iterable[tuple[int, ArrayRecord, float]], global_arrays: ArrayRecord
) -> Float64Arrays:
    """Return ``Σ w·x / Σ w`` over ``(node_id, arrays, w)`` items, in float64 and in order.

    Each record must match ``global_arrays`` in keys and shapes. Only one accumulator per
    array is held, however many items there are.
    """
    sums = {name: np.zeros(array.shape) for name, array in global_arrays.items()}
    total = 0.0
    for node_id, record, weight in items:
        check_matches_global(node_id, record, global_arrays)
        for name, acc in sums.items():
            acc += _real(_as_accumulator(record[name]), name) * weight
        total += weight
    if total <= 0:
        raise AggregationError(
            "The replies' weights sum to 0 (or there are none), so their weighted mean is "
            "undefined; make clients report how many examples they trained on."
        )
    return {name: acc / total for name, acc in sums.items()}


def flatten(stacks: Mapping[str, npt.NDArray[np.float64]]) -> npt.NDArray[np.float64]:
    """Concatenate each reply's arrays into one row: shape ``(n, total parameters)``."""
    rows = [s.reshape(s.shape[0], -1) for s in stacks.values()]
    return np.concatenate(rows, axis=1) if rows else np.zeros((0, 0))


def norm(values: Mapping[str, npt.NDArray[np.float64]]) -> float:
    """The L2 norm of a whole model, all arrays together (for reports)."""
    return float(np.sqrt(sum(float(np.sum(np.square(v))) for v in values.values())))


def _real(values: npt.NDArray[Any], name: str) -> npt.NDArray[np.float64]:
    if np.iscomplexobj(values):
        raise AggregationError(
            f"Array {name!r} is complex; this strategy works on real parameters only. "
            "Send the real and imaginary parts as two arrays."
        )
    return values.astype(np.float64, copy=False)
