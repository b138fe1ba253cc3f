"""`MetricRecord`: numeric metrics reported by clients or computed by the server."""

from __future__ import annotations

from typing import ClassVar

from fedlab.records._typed import TypedRecord

__all__ = ["MetricRecord", "MetricValue"]

MetricValue = int | float | list[int] | list[float]


class MetricRecord(TypedRecord[MetricValue]):
    """A str → ``int | float | list[int] | list[float]`` mapping.

    numpy scalars and 0-d numpy arrays or torch tensors (``loss.item()`` left out) are
    stored as Python numbers; bools are refused (use 0/1).

    Examples
    --------
    >>> m = MetricRecord({"loss": 0.25, "num-examples": 72})
    >>> m["loss"]
    0.25
    >>> MetricRecord({"acc": "high"})
    Traceback (most recent call last):
    ...
    fedlab.errors.RecordError: MetricRecord['acc'] got a value of type str; allowed types are int | float and lists of them.
    """

    _scalar_types: ClassVar[tuple[type, ...]] = (int, float)
    _kind: ClassVar[str] = "MetricRecord"
    _allows_bool: ClassVar[bool] = False
