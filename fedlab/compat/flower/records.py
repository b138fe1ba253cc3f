"""Flower's records (``flwr.app``): fedlab's records with Flower's constructors and methods.

Each class derives from fedlab's own, so everything fedlab does with a record (the codec,
strategies, the dashboard) works with these, and adds what Flower apps call:
``Array(ndarray)``, ``ArrayRecord(numpy_ndarrays=...)``, ``ArrayRecord(torch_state_dict=...)``,
``to_numpy_ndarrays()``, ``from_numpy_ndarrays(...)``, ``from_torch_state_dict(...)``.
Records that arrive from fedlab (a client's copy of an instruction, a reply pulled from a
Grid) are turned into these by :func:`as_flower_content`, sharing the arrays' bytes.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from fedlab.compat.flower.error import FlowerCompatError, unknown_arguments
from fedlab.records import Array as _Array
from fedlab.records import ArrayRecord as _ArrayRecord
from fedlab.records import ConfigRecord as _ConfigRecord
from fedlab.records import MetricRecord as _MetricRecord
from fedlab.records import Record
from fedlab.records import RecordDict as _RecordDict

__all__ = [
    "Array",
    "ArrayRecord",
    "ConfigRecord",
    "MetricRecord",
    "RecordDict",
    "as_flower_arrays",
    "as_flower_content",
    "as_flower_record",
]

#: Flower's serialisation type of an Array made from numpy (``np.save`` bytes).
NUMPY_STYPE = "numpy.ndarray"


class Array(_Array):
    """One tensor, built as Flower builds it: ``Array(ndarray)``, ``Array(tensor)`` or fields.

    ``Array(dtype, shape, stype, data)`` takes Flower's ``np.save`` bytes when ``stype`` is
    ``"numpy.ndarray"``, and raw little-endian bytes otherwise. :meth:`numpy` returns a
    new, writable array, as Flower's does.
    """

    __slots__ = ()

    def __init__(
        self,
        *args: Any,
        dtype: str | None = None,
        shape: Sequence[int] | None = None,
        stype: str | None = None,
        data: bytes | None = None,
        ndarray: npt.NDArray[Any] | None = None,
        torch_tensor: Any = None,
    ) -> None:
        if len(args) == 1 and not any(v is not None for v in (dtype, shape, stype, data)):
            ndarray, torch_tensor = _split_tensor(args[0], ndarray, torch_tensor)
        elif args:
            if len(args) > 4:
                raise FlowerCompatError(
                    f"Array() takes an ndarray, a torch tensor or (dtype, shape, stype, data); got {len(args)} values."
                )
            dtype, shape, stype, data = (list(args) + [None] * 4)[:4]
        if ndarray is not None:
            source = _Array.from_numpy(ndarray)
        elif torch_tensor is not None:
            source = _Array.from_torch(torch_tensor)
        elif dtype is not None and shape is not None and data is not None:
            if stype == NUMPY_STYPE and bytes(data[:6]) == b"\x93NUMPY":
                source = _Array.from_numpy(np.load(io.BytesIO(bytes(data)), allow_pickle=False))
            else:
                source = _Array(str(dtype), tuple(shape), data)
        else:
            raise FlowerCompatError(
                "Array() needs an ndarray (Array(arr)), a torch tensor (Array(tensor)) or all of "
                "dtype, shape, stype and data."
            )
        super().__init__(source.dtype, source.shape, bytes(source.data))

    @classmethod
    def from_numpy_ndarray(cls, ndarray: npt.NDArray[Any]) -> Array:
        """Build an Array from a numpy array (copied)."""
        return cls(ndarray=ndarray)

    @classmethod
    def from_torch_tensor(cls, tensor: Any) -> Array:
        """Build an Array from a torch tensor (detached, copied to CPU)."""
        return cls(torch_tensor=tensor)

    @property
    def stype(self) -> str:
        """Flower's serialisation type; fedlab keeps raw bytes of a numpy layout."""
        return NUMPY_STYPE

    def numpy(self) -> npt.NDArray[Any]:
        """Return the array as a new numpy array that the caller may change."""
        fresh: npt.NDArray[Any] = super().numpy().copy()
        return fresh


def _split_tensor(value: Any, ndarray: Any, torch_tensor: Any) -> tuple[Any, Any]:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return ndarray, value
    if isinstance(value, np.ndarray | np.generic):
        return value, torch_tensor
    raise FlowerCompatError(
        f"Array() got a {type(value).__name__}; pass a numpy array, a torch tensor, or "
        "dtype=, shape=, stype=, data=."
    )


def _as_flower_array(array: _Array) -> Array:
    if isinstance(array, Array):
        return array
    data = array.data
    if isinstance(data, memoryview) and data.readonly:
        # Frozen already (a view of bytes or of released shared memory): share it.
        return cast(Array, Array.over_frozen_buffer(array.dtype, array.shape, data))
    return Array(array.dtype, array.shape, None, bytes(data))


class ArrayRecord(_ArrayRecord):
    """Named arrays, built as Flower builds them.

    ``ArrayRecord(list_of_ndarrays)``, ``ArrayRecord(numpy_ndarrays=...)``,
    ``ArrayRecord(state_dict)``, ``ArrayRecord(torch_state_dict=...)`` or
    ``ArrayRecord(array_dict=...)``; lists get the keys ``"0"``, ``"1"``, ….
    ``keep_input`` is accepted and has no effect (fedlab always copies the input).

    Examples
    --------
    >>> rec = ArrayRecord(numpy_ndarrays=[np.ones(2, np.float32)])
    >>> out = rec.to_numpy_ndarrays()
    >>> out[0] += 1
    >>> out[0].tolist(), rec.to_numpy_ndarrays()[0].tolist()
    ([2.0, 2.0], [1.0, 1.0])
    """

    def __init__(
        self,
        *args: Any,
        numpy_ndarrays: Sequence[npt.NDArray[Any]] | None = None,
        torch_state_dict: Mapping[str, Any] | None = None,
        array_dict: Mapping[str, _Array] | None = None,
        keep_input: bool = True,
        **unknown: Any,
    ) -> None:
        unknown_arguments(
            "ArrayRecord",
            unknown,
            ["numpy_ndarrays", "torch_state_dict", "array_dict", "keep_input"],
        )
        given = [v for v in (*args, numpy_ndarrays, torch_state_dict, array_dict) if v is not None]
        if len(args) > 1 or len(given) > 1:
            raise FlowerCompatError(
                "ArrayRecord() takes one source: a list of ndarrays, a state_dict or a dict of "
                "Arrays (positionally, or as numpy_ndarrays=, torch_state_dict=, array_dict=)."
            )
        super().__init__(given[0] if given else None)

    def __setitem__(self, name: str, value: _Array) -> None:
        if isinstance(value, _Array):
            super().__setitem__(name, _as_flower_array(value))
            return
        try:
            array = Array(value)
        except FlowerCompatError:
            raise FlowerCompatError(
                f"ArrayRecord[{name!r}] got a value of type {type(value).__name__}; allowed "
                "types are Array, numpy.ndarray and torch.Tensor."
            ) from None
        super().__setitem__(name, array)

    @classmethod
    def from_numpy_ndarrays(
        cls, ndarrays: Sequence[npt.NDArray[Any]], *, keep_input: bool = True
    ) -> ArrayRecord:
        """Build a record from a list of numpy arrays named ``"0"``, ``"1"``, …."""
        return cls(numpy_ndarrays=list(ndarrays))

    @classmethod
    def from_torch_state_dict(
        cls, state_dict: Mapping[str, Any], *, keep_input: bool = True
    ) -> ArrayRecord:
        """Build a record from a torch ``state_dict`` (tensors are copied to CPU)."""
        return cls(torch_state_dict=state_dict)

    @classmethod
    def from_array_dict(
        cls, array_dict: Mapping[str, _Array], *, keep_input: bool = True
    ) -> ArrayRecord:
        """Build a record from a dict of name → Array."""
        return cls(array_dict=array_dict)

    def to_numpy_ndarrays(self, *, keep_input: bool = True) -> list[npt.NDArray[Any]]:
        """Return the arrays as a list of new numpy arrays (the caller may change them)."""
        return [array.numpy() for array in self.values()]  # Array.numpy() copies

    def copy(self) -> ArrayRecord:
        """Return a shallow copy sharing the (immutable) Arrays."""
        new = ArrayRecord()
        new.update(self)
        return new


class MetricRecord(_MetricRecord):
    """Numeric metrics: ``MetricRecord({"loss": 0.1, "num-examples": 32})``."""

    def __init__(
        self, metric_dict: Mapping[str, Any] | None = None, keep_input: bool = True
    ) -> None:
        super().__init__(metric_dict)


class ConfigRecord(_ConfigRecord):
    """Configuration values: ``ConfigRecord({"lr": 0.01, "local-epochs": 1})``."""

    def __init__(
        self, config_dict: Mapping[str, Any] | None = None, keep_input: bool = True
    ) -> None:
        super().__init__(config_dict)


class RecordDict(_RecordDict):
    """The content of a Message: ``RecordDict({"arrays": ..., "metrics": ..., "config": ...})``.

    Records put in are turned into this layer's record types (sharing arrays), so
    ``content["arrays"].to_numpy_ndarrays()`` works whatever made the record.
    """

    def __init__(self, records: Mapping[str, Record] | None = None, **unknown: Any) -> None:
        hint = "pass one dict of name -> record: RecordDict({'arrays': ..., 'metrics': ...})."
        unknown_arguments(
            "RecordDict",
            unknown,
            ["records"],
            dict.fromkeys(["parameters_records", "metrics_records", "configs_records"], hint),
        )
        super().__init__(records)

    def __setitem__(self, name: str, record: Record) -> None:
        super().__setitem__(name, record)
        stored = super().__getitem__(name)
        if type(stored) not in _FLOWER_TYPES:
            super().__setitem__(name, as_flower_record(stored))

    def copy(self) -> RecordDict:
        """Return a copy with copied records that share the (immutable) Arrays."""
        return RecordDict({k: v.copy() for k, v in self.items()})


_FLOWER_TYPES = (ArrayRecord, MetricRecord, ConfigRecord)


def as_flower_record(record: Record) -> Record:
    """Return ``record`` as this layer's type of the same kind (arrays shared, not copied)."""
    if type(record) in _FLOWER_TYPES:
        return record
    if isinstance(record, _ArrayRecord):
        return as_flower_arrays(record)
    if isinstance(record, _MetricRecord):
        return MetricRecord(record)
    if isinstance(record, _ConfigRecord):
        return ConfigRecord(record)
    raise FlowerCompatError(f"Not a record: {type(record).__name__}.")


def as_flower_arrays(record: _ArrayRecord) -> ArrayRecord:
    """Return an ArrayRecord of this layer holding ``record``'s arrays (bytes shared)."""
    if isinstance(record, ArrayRecord):
        return record
    new = ArrayRecord()
    for name, array in record.items():
        new[name] = _as_flower_array(array)
    return new


def as_flower_content(content: _RecordDict) -> RecordDict:
    """Return ``content`` as this layer's RecordDict, records converted, arrays shared."""
    if isinstance(content, RecordDict) and all(type(r) in _FLOWER_TYPES for r in content.values()):
        return content
    return RecordDict(dict(content))
