"""`ArrayRecord`: an ordered name → Array mapping, the shape of a model's parameters."""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from fedlab.errors import RecordError
from fedlab.records._ownership import adopted_buffer, calibrate, record
from fedlab.records.array import Array

__all__ = ["ArrayRecord"]


class ArrayRecord(MutableMapping[str, Array]):
    """Named arrays in a fixed order, e.g. a model's ``state_dict``.

    Parameters
    ----------
    arrays
        One of: a dict of name → :class:`Array`, numpy array or torch tensor (a torch
        ``state_dict`` is such a dict); or a list of numpy arrays, which are named
        ``"0"``, ``"1"``, … in order. ``None`` makes an empty record.

    Notes
    -----
    Values are copied, so changing a source array afterwards never changes the record.
    One exception costs nothing and changes nothing you can observe: a numpy array in the
    list or tuple that nothing else references (a temporary such as
    ``ArrayRecord([w + delta])``, which dies with the call) is not copied; the record
    keeps its buffer, read-only. Whether an array is referenced elsewhere is read from its
    reference count, so a variable, a view, a ``torch.from_numpy`` tensor or any other
    holder makes it a copy again. This happens on CPython 3.10–3.13 (checked when fedlab
    is imported); other interpreters always copy. To get it in a client, build the reply
    array inside the call: ``ArrayRecord([received + update])``.

    Examples
    --------
    >>> rec = ArrayRecord([np.zeros((2, 2), np.float32), np.ones(3, np.float32)])
    >>> list(rec), rec["1"].shape
    (['0', '1'], (3,))
    >>> [a.sum() for a in rec.to_numpy()]
    [np.float32(0.0), np.float32(3.0)]
    """

    def __init__(
        self, arrays: Mapping[str, Any] | Sequence[npt.ArrayLike] | None = None
    ) -> None:
        self._arrays: dict[str, Array] = {}
        if arrays is None:
            return
        if isinstance(arrays, Mapping):
            for name, value in arrays.items():
                self[name] = value
        elif isinstance(arrays, list | tuple):
            for index in range(len(arrays)):
                # Ask before binding the item to a local name, which would count as a holder.
                view = adopted_buffer(arrays, index)
                if view is None:
                    self[str(index)] = _to_array(str(index), arrays[index])
                else:
                    source = arrays[index]
                    self._arrays[str(index)] = Array.over_frozen_buffer(source.dtype.name, source.shape, view)
        else:
            raise RecordError(
                f"ArrayRecord cannot be built from {type(arrays).__name__}; pass a dict of "
                "name -> Array/numpy array/torch tensor (e.g. model.state_dict()), "
                "or a list of numpy arrays."
            )

    @classmethod
    def from_numpy(cls, arrays: Sequence[npt.ArrayLike]) -> ArrayRecord:
        """Build a record from a list of numpy arrays named ``"0"``, ``"1"``, …."""
        return cls(list(arrays))

    @classmethod
    def from_torch(cls, state_dict: Mapping[str, Any]) -> ArrayRecord:
        """Build a record from a torch ``state_dict`` (tensors are copied to CPU)."""
        return cls(state_dict)

    def __setitem__(self, name: str, value: Array) -> None:
        if not isinstance(name, str):
            raise RecordError(f"ArrayRecord keys must be str, got {type(name).__name__} ({name!r}).")
        self._arrays[name] = _to_array(name, value)

    def __getitem__(self, name: str) -> Array:
        return self._arrays[name]

    def __delitem__(self, name: str) -> None:
        del self._arrays[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ArrayRecord):
            return NotImplemented
        return list(self._arrays.items()) == list(other._arrays.items())

    __hash__ = None  # type: ignore[assignment]

    def to_numpy(self) -> list[npt.NDArray[Any]]:
        """Return the arrays as a list of read-only numpy arrays, in order (no copies)."""
        return [a.numpy() for a in self._arrays.values()]

    def to_torch_state_dict(self) -> OrderedDict[str, Any]:
        """Return a torch ``state_dict`` of new tensors (copies the model may change).

        torch must already be imported by the caller; fedlab never imports it.
        """
        if "torch" not in sys.modules:
            raise RecordError(
                "to_torch_state_dict() needs torch: import torch before calling it "
                '(install it with pip install "fedlab-sdk[torch]").'
            )
        return OrderedDict((name, array.torch()) for name, array in self._arrays.items())

    def count_bytes(self) -> int:
        """Return the total size of the arrays' data in bytes."""
        return sum(a.nbytes for a in self._arrays.values())

    def copy(self) -> ArrayRecord:
        """Return a shallow copy: a new mapping sharing the (immutable) Arrays."""
        new = ArrayRecord()
        new._arrays = dict(self._arrays)
        return new

    def __repr__(self) -> str:
        inner = ", ".join(f"{k!r}: {v.dtype}{list(v.shape)}" for k, v in self._arrays.items())
        return f"ArrayRecord({{{inner}}})"


def _to_array(name: str, value: Any) -> Array:
    if isinstance(value, Array):
        return value
    if isinstance(value, np.ndarray | np.generic):
        return Array.from_numpy(value)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return Array.from_torch(value)
    raise RecordError(
        f"ArrayRecord[{name!r}] got a value of type {type(value).__name__}; "
        "allowed types are Array, numpy.ndarray and torch.Tensor."
    )


def _calibrate() -> None:
    """Measure what a temporary, a held list and a held array count on this interpreter."""
    cases: dict[str, tuple[int, int]] = {}
    try:
        record(cases, "temporary")
        ArrayRecord([np.zeros(1, np.float32)])
        record(cases, "held-list")
        held_list = [np.zeros(1, np.float32)]
        ArrayRecord(held_list)
        record(cases, "held-array")
        held_array = np.zeros(1, np.float32)
        ArrayRecord([held_array])
    finally:
        record(None)
    calibrate(cases)


_calibrate()
