"""`Array`: one tensor as a dtype name, a shape and raw little-endian bytes."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from fedlab.errors import RecordError

__all__ = ["ALLOWED_DTYPES", "Array"]

#: The dtypes an Array may hold, by canonical name, with their size in bytes.
#: ``bfloat16`` has no numpy equivalent: it travels as raw bytes and converts to torch only.
ALLOWED_DTYPES: dict[str, int] = {
    "bool": 1,
    "int8": 1,
    "int16": 2,
    "int32": 4,
    "int64": 8,
    "uint8": 1,
    "uint16": 2,
    "uint32": 4,
    "uint64": 8,
    "float16": 2,
    "bfloat16": 2,
    "float32": 4,
    "float64": 8,
    "complex64": 8,
    "complex128": 16,
}

Buffer = bytes | bytearray | memoryview


class Array:
    """An immutable n-dimensional array: dtype name, shape and raw bytes.

    Arrays are what an :class:`~fedlab.ArrayRecord` holds. They never reference the
    numpy array or tensor they were made from, so changing the source afterwards does not
    change the Array, and they can be shared read-only between simulated clients.

    Parameters
    ----------
    dtype
        One of :data:`ALLOWED_DTYPES`, e.g. ``"float32"``.
    shape
        The dimensions; ``()`` for a scalar.
    data
        Exactly ``prod(shape) * itemsize`` bytes in C order, little-endian.

    Examples
    --------
    >>> a = Array.from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3))
    >>> a.dtype, a.shape, a.nbytes
    ('float32', (2, 3), 24)
    >>> a.numpy()[1, 2]
    np.float32(5.0)
    """

    __slots__ = ("_data", "_dtype", "_shape")

    def __init__(self, dtype: str, shape: Sequence[int], data: Buffer) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise RecordError(
                f"Array data has type {type(data).__name__}; expected bytes, bytearray or memoryview. "
                "Use Array.from_numpy(...) to build an Array from a numpy array."
            )
        view = memoryview(data).cast("B") if isinstance(data, memoryview) else memoryview(data)
        self._dtype, self._shape = _checked_layout(dtype, shape, view.nbytes)
        # Keep immutable bytes as they are (zero copy); copy mutable buffers so nobody can change us.
        # A read-only memoryview may still look at a bytearray or a writable numpy array, so only
        # a view of a bytes object is kept.
        immutable = isinstance(data, memoryview) and isinstance(data.obj, bytes)
        if isinstance(data, bytes) or immutable:
            self._data: bytes | memoryview = data if isinstance(data, bytes) else view
        else:
            self._data = bytes(view)

    @classmethod
    def over_frozen_buffer(cls, dtype: str, shape: Sequence[int], data: memoryview) -> Array:
        """Wrap ``data`` without copying it, for a buffer that nobody will ever write again.

        The constructor copies every buffer but ``bytes``, because a bytearray or a numpy
        array could change under the Array. Use this only where the buffer is frozen by
        construction, e.g. a read-only mapping of shared memory that its writer has let go.
        dtype, shape and size are checked as by the constructor.
        """
        if not isinstance(data, memoryview) or not data.readonly:
            raise RecordError("over_frozen_buffer takes a read-only memoryview.")
        view = data.cast("B")
        array = cls.__new__(cls)
        array._dtype, array._shape = _checked_layout(dtype, shape, view.nbytes)
        array._data = view
        return array

    @classmethod
    def from_numpy(cls, array: npt.ArrayLike) -> Array:
        """Copy a numpy array (or anything ``np.asarray`` accepts) into a new Array."""
        arr = np.asarray(array)
        name = _canonical_dtype_name(arr.dtype)
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        return cls(name, arr.shape, np.ascontiguousarray(arr).tobytes())

    @classmethod
    def from_torch(cls, tensor: Any) -> Array:
        """Copy a torch tensor (detached, moved to CPU) into a new Array; bfloat16 is kept."""
        torch = sys.modules.get("torch")
        if torch is None or not isinstance(tensor, torch.Tensor):
            raise RecordError(f"Array.from_torch expects a torch.Tensor, got {type(tensor).__name__}.")
        name = str(tensor.dtype).removeprefix("torch.")
        if name not in ALLOWED_DTYPES:
            raise RecordError(
                f"torch dtype {tensor.dtype} is not allowed in an Array; allowed dtypes are "
                f"{', '.join(ALLOWED_DTYPES)}. Convert it first, e.g. tensor.float()."
            )
        # resolve_conj/resolve_neg materialise lazy views that .numpy() refuses.
        t = tensor.detach().cpu().resolve_conj().resolve_neg().contiguous()
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().astype("<i2", copy=False).tobytes()
            return cls("bfloat16", tuple(t.shape), raw)
        return cls.from_numpy(t.numpy())

    @property
    def dtype(self) -> str:
        """The canonical dtype name, e.g. ``"float32"``."""
        return self._dtype

    @property
    def shape(self) -> tuple[int, ...]:
        """The dimensions of the array."""
        return self._shape

    @property
    def nbytes(self) -> int:
        """The size of the raw data in bytes."""
        return math.prod(self._shape) * ALLOWED_DTYPES[self._dtype]

    @property
    def data(self) -> bytes | memoryview:
        """The raw bytes (C order, little-endian); read-only."""
        return self._data

    def numpy(self) -> npt.NDArray[Any]:
        """Return the array as numpy, without copying: the result is read-only.

        Call ``.copy()`` on the result to get an array you may change.
        """
        if self._dtype == "bfloat16":
            raise RecordError(
                "numpy has no bfloat16 dtype; use ArrayRecord.to_torch_state_dict() or "
                "convert the tensor to float32 before building the record."
            )
        arr = np.frombuffer(self._data, dtype=np.dtype(self._dtype).newbyteorder("<"))
        return arr.reshape(self._shape)

    def torch(self) -> Any:
        """Return the array as a new torch tensor (a copy that the caller may change)."""
        torch = sys.modules.get("torch")
        if torch is None:
            raise RecordError("Array.torch() needs torch to be imported first: import torch")
        if self._dtype == "bfloat16":
            raw = np.frombuffer(self._data, dtype="<i2").reshape(self._shape).copy()
            return torch.from_numpy(raw).view(torch.bfloat16)
        return torch.from_numpy(self.numpy().copy())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Array):
            return NotImplemented
        return (
            self._dtype == other._dtype
            and self._shape == other._shape
            and bytes(self._data) == bytes(other._data)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Array(dtype={self._dtype!r}, shape={self._shape}, nbytes={self.nbytes})"


def _canonical_dtype_name(dtype: np.dtype[Any]) -> str:
    # A dtype's name does not depend on its byte order ('>f4' and '<f4' are both 'float32').
    name: str = dtype.name
    if name not in ALLOWED_DTYPES:
        raise RecordError(
            f"numpy dtype {dtype} is not allowed in an Array; allowed dtypes are "
            f"{', '.join(ALLOWED_DTYPES)}. Convert it first, e.g. arr.astype('float32')."
        )
    return name


def _checked_layout(dtype: str, shape: Sequence[int], nbytes: int) -> tuple[str, tuple[int, ...]]:
    """Check an Array's dtype, shape and data size; return the dtype and the shape as ints."""
    if not isinstance(dtype, str) or dtype not in ALLOWED_DTYPES:
        raise RecordError(
            f"Array dtype {dtype!r} is not allowed; allowed dtypes are "
            f"{', '.join(ALLOWED_DTYPES)}. Convert the array first, e.g. arr.astype('float32')."
        )
    dims = tuple(shape)
    if not all(isinstance(d, int | np.integer) and not isinstance(d, bool) and d >= 0 for d in dims):
        raise RecordError(f"Array shape {shape!r} must be a sequence of non-negative ints.")
    expected = math.prod(dims) * ALLOWED_DTYPES[dtype]
    if nbytes != expected:
        raise RecordError(
            f"Array of dtype {dtype} and shape {dims} needs {expected} bytes of data, got {nbytes}."
        )
    return dtype, tuple(int(d) for d in dims)
