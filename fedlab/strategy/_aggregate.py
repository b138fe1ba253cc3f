"""Weighted averaging of replies, as running sums so memory does not grow with clients."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from fedlab.errors import AggregationError
from fedlab.message import Message
from fedlab.records import Array, ArrayRecord, MetricRecord, RecordDict

__all__ = [
    "MetricsAggregationFn",
    "WeightedSum",
    "reply_weight",
    "single_record",
    "weighted_average_arrays",
    "weighted_average_metrics",
    "without_arrays",
]

#: Combines the replies' contents into one MetricRecord: ``fn(contents, weighted_by_key)``.
#: FedAvg passes the successful training replies' contents without their ArrayRecords
#: (the arrays were summed and let go as each reply arrived); the default is
#: :func:`weighted_average_metrics`.
MetricsAggregationFn = Callable[[Sequence[RecordDict], str], MetricRecord]


def single_record(reply: Message, kind: type[ArrayRecord | MetricRecord]) -> tuple[str, Any]:
    """Return the one record of ``kind`` in a reply, or explain what is wrong with it."""
    found = [(k, v) for k, v in reply.content.items() if isinstance(v, kind)]
    if len(found) != 1:
        raise AggregationError(
            f"The reply of node {reply.metadata.src_node_id} holds {len(found)} {kind.__name__}s "
            f"({[k for k, _ in found]}); built-in strategies need exactly one. "
            f"Reply with RecordDict({{'arrays': ArrayRecord(...), 'metrics': MetricRecord(...)}})."
        )
    return found[0]


def without_arrays(content: RecordDict) -> RecordDict:
    """Return ``content`` without its ArrayRecords (what metrics aggregation needs)."""
    return RecordDict({k: v for k, v in content.items() if not isinstance(v, ArrayRecord)})


def reply_weight(reply: Message, key: str) -> float:
    """Return the weight a reply reports under ``key`` (e.g. ``num-examples``)."""
    _, metrics = single_record(reply, MetricRecord)
    value = metrics.get(key)
    if isinstance(value, list) or value is None:
        raise AggregationError(
            f"The reply of node {reply.metadata.src_node_id} has no scalar metric {key!r} "
            f"(its metrics: {sorted(metrics)}); report it, e.g. "
            f"MetricRecord({{{key!r}: len(train_data), ...}})."
        )
    if value < 0:
        raise AggregationError(
            f"Node {reply.metadata.src_node_id} reported {key}={value}; weights must be >= 0."
        )
    return float(value)


def weighted_average_arrays(items: Iterable[tuple[int, ArrayRecord, float]]) -> ArrayRecord:
    """Average ``(node_id, arrays, weight)`` items; keys and shapes must match.

    Sums run in float64 (complex128 for complex arrays) and in the order given, so the
    result is reproducible; it is cast back to each array's dtype (integers are rounded).
    Only one accumulator per array is held, however many items there are.
    """
    running = WeightedSum()
    for node_id, record, weight in items:
        running.add(node_id, record, weight)
    return running.average()


class WeightedSum:
    """A running weighted sum of ArrayRecords: add replies one by one, then :meth:`average`.

    Holds one float64 accumulator per array and at most a few records not yet summed, so
    a caller that drops each reply after :meth:`add` keeps memory flat however many
    clients reply. The arithmetic is the same element by element as summing
    ``float64(x) * weight`` in the order of the calls.

    Summing is memory-bound: each pass over a float64 accumulator reads and writes twice
    the reply's size. So up to :attr:`MAX_PENDING` records (at most
    :attr:`PENDING_BYTES` in all) are held back and added together, block by block,
    while each block of the accumulator is in cache: the same additions in the same
    order, for a fraction of the memory traffic.
    """

    #: Most records held back before they are added to the sums.
    MAX_PENDING = 2
    #: Most bytes of records held back.
    PENDING_BYTES = 64 * 2**20
    #: Accumulator elements per block (256 KiB of float64).
    BLOCK = 32768

    def __init__(self) -> None:
        self._sums: dict[str, npt.NDArray[Any]] = {}
        # The first record's node and layout (not the record: its arrays are let go).
        self._reference: tuple[int, dict[str, _Layout]] | None = None
        self._pending: list[tuple[ArrayRecord, float]] = []
        self._limit = 1
        #: The sum of the weights added so far.
        self.total = 0.0
        #: How many records were added.
        self.count = 0

    def add(self, node_id: int, record: ArrayRecord, weight: float) -> None:
        """Add ``weight * record`` (``node_id`` names the sender in errors)."""
        if self._reference is None:
            self._reference = (node_id, {k: _Layout(a.shape, a.dtype) for k, a in record.items()})
            size = sum(a.nbytes for a in record.values())
            self._limit = max(1, min(self.MAX_PENDING, self.PENDING_BYTES // max(size, 1)))
            for name, array in record.items():
                self._sums[name] = _as_accumulator(array) * weight
        else:
            _check_same_layout(self._reference, node_id, record)
            self._pending.append((record, weight))
            if len(self._pending) >= self._limit:
                self._flush()
        self.total += weight
        self.count += 1

    def average(self) -> ArrayRecord:
        """Return the weighted mean, cast back to each array's dtype."""
        if self._reference is None:
            raise AggregationError("There are no replies to aggregate.")
        if self.total <= 0:
            raise AggregationError(
                "Every reply reported a weight of 0, so the weighted average is undefined; "
                "make clients report how many examples they trained on."
            )
        self._flush()
        out = ArrayRecord()
        for name, array in self._reference[1].items():
            out[name] = _from_accumulator(self._sums[name] / self.total, array.dtype)
        return out

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        scratch = np.empty(self.BLOCK, dtype=np.float64)
        for name, acc in self._sums.items():
            dtype = pending[0][0][name].dtype
            kind = np.dtype(dtype).kind if dtype != "bfloat16" else ""
            if kind not in ("f", "i", "u") or not isinstance(acc, np.ndarray) or acc.ndim == 0:
                for record, weight in pending:
                    # Not `acc += ...` on a local: a 0-d array's running sum is a numpy
                    # scalar, which += rebinds (BatchNorm's num_batches_tracked).
                    self._sums[name] += _as_accumulator(record[name]) * weight
                continue
            flat = acc.reshape(-1)
            values = [(record[name].numpy().reshape(-1), weight) for record, weight in pending]
            for start in range(0, flat.size, self.BLOCK):
                part = flat[start : start + self.BLOCK]
                for vector, weight in values:
                    _add_scaled(part, vector[start : start + self.BLOCK], weight, scratch)


def _add_scaled(
    acc: npt.NDArray[Any], values: npt.NDArray[Any], weight: float, scratch: npt.NDArray[np.float64]
) -> None:
    """``acc += float64(values) * weight`` (``scratch``: at least ``acc.size`` float64s)."""
    if weight == 1.0:  # x * 1.0 is exact: add with the cast inside the loop
        np.add(acc, values, out=acc)
        return
    scaled = scratch[: acc.size]
    np.multiply(values, weight, out=scaled, dtype=np.float64)
    np.add(acc, scaled, out=acc)


def weighted_average_metrics(contents: Sequence[RecordDict], weighted_by_key: str) -> MetricRecord:
    """Average every metric across replies, weighted by ``weighted_by_key``.

    The weight key itself is summed (the total number of examples). A metric missing from
    some replies is averaged over the replies that have it; list metrics are averaged
    element-wise. A reply without the weight key counts with weight 1.
    """
    sums: dict[str, npt.NDArray[np.float64]] = {}
    weights: dict[str, float] = {}
    is_list: dict[str, bool] = {}
    total: float = 0
    saw_weight_key = False
    for content in contents:
        merged: dict[str, Any] = {}
        for record in content.metric_records.values():
            merged.update(record)
        raw_weight = merged.pop(weighted_by_key, None)
        saw_weight_key |= raw_weight is not None
        weight = 1.0 if raw_weight is None or isinstance(raw_weight, list) else float(raw_weight)
        total += weight if raw_weight is not None else 0
        for key, value in merged.items():
            vec = np.asarray(value, dtype=np.float64)
            if key in sums and sums[key].shape != vec.shape:
                raise AggregationError(
                    f"Metric {key!r} has {vec.size} values in one reply and {sums[key].size} in "
                    "another; a list metric must have the same length in every reply."
                )
            sums[key] = sums.get(key, np.zeros_like(vec)) + vec * weight
            weights[key] = weights.get(key, 0.0) + weight
            is_list[key] = isinstance(value, list)
    result = MetricRecord()
    if saw_weight_key:
        result[weighted_by_key] = int(total) if float(total).is_integer() else total
    for key, acc in sums.items():
        mean = acc / weights[key] if weights[key] > 0 else np.full_like(acc, np.nan)
        result[key] = [float(v) for v in mean] if is_list[key] else float(mean)
    return result


def _as_accumulator(array: Array) -> npt.NDArray[Any]:
    if array.dtype == "bfloat16":  # bfloat16 is the top half of a float32
        raw = np.frombuffer(array.data, dtype="<u2").astype(np.uint32) << 16
        return raw.view(np.float32).reshape(array.shape).astype(np.float64)
    values = array.numpy()
    kind = np.complex128 if np.iscomplexobj(values) else np.float64
    return values.astype(kind)


def _from_accumulator(values: npt.NDArray[Any], dtype: str) -> Array:
    if dtype == "bfloat16":  # round to nearest-even bfloat16, once, from the float64 value
        as32 = np.asarray(values.astype(np.float32))
        bits = as32.view(np.uint32).astype(np.uint64)
        low = bits & 0xFFFF
        # float32 rounding may land exactly on a bfloat16 midpoint that the float64 value
        # is not on; then the float64 value says which way to go, not ties-to-even.
        tie = np.where(as32 == values, (bits >> 16) & 1, np.abs(values) > np.abs(as32))
        up = (low > 0x8000) | ((low == 0x8000) & tie.astype(bool))
        rounded = ((bits >> 16) + up).astype("<u2")
        return Array("bfloat16", as32.shape, rounded.tobytes())
    if dtype == "bool":
        return Array.from_numpy(values >= 0.5)
    if np.issubdtype(np.dtype(dtype), np.integer):
        return Array.from_numpy(np.rint(values).astype(dtype))
    return Array.from_numpy(values.astype(dtype))


class _Layout(NamedTuple):
    shape: tuple[int, ...]
    dtype: str


def _check_same_layout(
    reference: tuple[int, Mapping[str, _Layout] | ArrayRecord], node_id: int, record: ArrayRecord
) -> None:
    ref_node, ref = reference
    missing = [k for k in ref if k not in record]
    extra = [k for k in record if k not in ref]
    if missing or extra:
        raise AggregationError(
            f"Node {node_id} replied with arrays that do not match node {ref_node}'s: "
            f"missing keys {missing}, extra keys {extra}. Every client must return the same model."
        )
    for name, array in record.items():
        if array.shape != ref[name].shape:
            raise AggregationError(
                f"Array {name!r} has shape {array.shape} from node {node_id} but "
                f"{ref[name].shape} from node {ref_node}. Every client must return the same model."
            )
        if array.dtype != ref[name].dtype:
            # Averaging would silently take the dtype of whichever reply came first.
            raise AggregationError(
                f"Array {name!r} has dtype {array.dtype} from node {node_id} but "
                f"{ref[name].dtype} from node {ref_node}. Cast it back before replying, "
                f"e.g. arr.astype({ref[name].dtype!r})."
            )
