"""`ConfigRecord`: configuration values sent to clients (learning rate, epochs, flags)."""

from __future__ import annotations

from typing import ClassVar

from fedlab.records._typed import TypedRecord

__all__ = ["ConfigRecord", "ConfigValue"]

ConfigScalar = int | float | str | bytes | bool
ConfigValue = ConfigScalar | list[int] | list[float] | list[str] | list[bytes] | list[bool]


class ConfigRecord(TypedRecord[ConfigValue]):
    """A str → ``int | float | str | bytes | bool`` (or a list of one of them) mapping.

    numpy scalars and 0-d numpy arrays or torch tensors are stored as Python values.

    Examples
    --------
    >>> c = ConfigRecord({"lr": 0.05, "optimizer": "sgd", "nesterov": True})
    >>> c["optimizer"]
    'sgd'
    """

    _scalar_types: ClassVar[tuple[type, ...]] = (int, float, str, bytes, bool)
    _kind: ClassVar[str] = "ConfigRecord"
    _allows_bool: ClassVar[bool] = True
