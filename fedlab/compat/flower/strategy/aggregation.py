"""How Flower's strategies combine replies, computed as Flower 1.42 computes it.

Weights are ``w_k / Σw`` as Python floats; arrays are accumulated in the replies' own
dtype (float32 stays float32, NumPy 2 promotion rules), in reply order, and metrics as
Python numbers. fedlab's own strategies sum in float64 instead; here the point is to get
Flower's numbers for a ported app.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from fedlab.compat.flower.records import Array, ArrayRecord, MetricRecord
from fedlab.errors import AggregationError
from fedlab.message import Message
from fedlab.records import Array as _Array
from fedlab.records import RecordDict

__all__ = [
    "aggregate_arrayrecords",
    "aggregate_metricrecords",
    "check_replies",
    "reply_arrays",
    "reply_weights",
]


def check_replies(replies: Sequence[Message], weighted_by_key: str, *, with_arrays: bool) -> None:
    """Refuse replies that Flower's strategies refuse, naming the node and the fix.

    Each must hold one MetricRecord with a scalar ``weighted_by_key`` (and, for training,
    exactly one ArrayRecord), and all must use the same record and array names.
    """
    layouts = set()
    for reply in replies:
        content = reply.content
        node = reply.metadata.src_node_id
        metrics = list(content.metric_records.values())
        arrays = list(content.array_records.values())
        if len(metrics) != 1 or (with_arrays and len(arrays) != 1):
            raise AggregationError(
                f"The reply of node {node} holds {len(arrays)} ArrayRecord(s) and {len(metrics)} "
                "MetricRecord(s); Flower's strategies need exactly one of each "
                "(RecordDict({'arrays': ArrayRecord(...), 'metrics': MetricRecord(...)}))."
            )
        weight = metrics[0].get(weighted_by_key)
        if isinstance(weight, list) or weight is None:
            raise AggregationError(
                f"The reply of node {node} has no scalar metric {weighted_by_key!r} (its metrics: "
                f"{sorted(metrics[0])}); report it, e.g. MetricRecord({{{weighted_by_key!r}: len(data)}})."
            )
        layouts.add((tuple(content), tuple(arrays[0]) if with_arrays else ()))
    if len(layouts) > 1:
        raise AggregationError(
            f"The replies do not share one layout of records and arrays: {sorted(layouts)}; "
            "every client must reply with the same record and array names."
        )


def reply_weights(contents: Sequence[RecordDict], weighted_by_key: str) -> list[float]:
    """Each content's share ``w_k / Σw`` of the weight reported under ``weighted_by_key``."""
    weights = [next(iter(c.metric_records.values()))[weighted_by_key] for c in contents]
    total = sum(weights)  # type: ignore[arg-type]
    return [w / total for w in weights]  # type: ignore[operator]


def reply_arrays(content: RecordDict) -> ArrayRecord:
    """The one ArrayRecord of a reply's content."""
    return next(iter(content.array_records.values()))  # type: ignore[return-value]


def aggregate_arrayrecords(contents: Sequence[RecordDict], weighted_by_key: str) -> ArrayRecord:
    """The weighted mean of the contents' arrays, accumulated in their dtype in order.

    Examples
    --------
    >>> from fedlab.compat.flower.records import RecordDict
    >>> def reply(x, n):
    ...     return RecordDict({"arrays": ArrayRecord([np.array([x], np.float32)]),
    ...                        "metrics": MetricRecord({"num-examples": n})})
    >>> aggregate_arrayrecords([reply(1.0, 1), reply(4.0, 3)], "num-examples").to_numpy_ndarrays()
    [array([3.25], dtype=float32)]
    """
    sums: dict[str, npt.NDArray[Any]] = {}
    for content, weight in zip(contents, reply_weights(contents, weighted_by_key), strict=True):
        for record in content.array_records.values():
            for key, array in record.items():
                term = _Array.numpy(array) * weight  # a read-only view: no copy
                if key in sums:
                    sums[key] += term
                else:
                    sums[key] = term
    return ArrayRecord({k: Array(np.asarray(v)) for k, v in sums.items()})


def aggregate_metricrecords(contents: Sequence[RecordDict], weighted_by_key: str) -> MetricRecord:
    """The weighted mean of every metric but ``weighted_by_key`` (lists element-wise).

    Examples
    --------
    >>> from fedlab.compat.flower.records import RecordDict
    >>> rds = [RecordDict({"m": MetricRecord({"loss": 1.0, "num-examples": 1})}),
    ...        RecordDict({"m": MetricRecord({"loss": 3.0, "num-examples": 3})})]
    >>> dict(aggregate_metricrecords(rds, "num-examples"))
    {'loss': 2.5}
    """
    out: dict[str, Any] = {}
    for content, weight in zip(contents, reply_weights(contents, weighted_by_key), strict=True):
        for record in content.metric_records.values():
            for key, value in record.items():
                if key == weighted_by_key:
                    continue
                if isinstance(value, list):
                    scaled = [v * weight for v in value]
                    out[key] = (
                        [a + b for a, b in zip(out[key], scaled, strict=True)]
                        if key in out
                        else scaled
                    )
                else:
                    out[key] = out[key] + value * weight if key in out else value * weight
    return MetricRecord(out)
