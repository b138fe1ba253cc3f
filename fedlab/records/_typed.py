"""A mapping from str to values of checked types: the base of MetricRecord and ConfigRecord."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import numpy as np

from fedlab.errors import RecordError

if TYPE_CHECKING:
    from typing_extensions import Self

V = TypeVar("V")

# numpy scalars stored as the equivalent Python value. Not datetime64/timedelta64, whose
# .item() may silently become an int, nor complex/longdouble, which have no allowed equivalent.
_NUMPY_SCALARS = (np.bool_, np.integer, np.floating, np.str_, np.bytes_)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _is_array(value: Any) -> bool:
    """True for a numpy array or a torch tensor (torch found only if already imported)."""
    if isinstance(value, np.ndarray):
        return True
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _single_value(value: Any) -> Any:
    """The one element of a 0-d numpy array or torch tensor; anything else unchanged."""
    if _is_array(value) and tuple(value.shape) == ():
        return value[()] if isinstance(value, np.ndarray) else value.item()
    return value


class TypedRecord(MutableMapping[str, V], Generic[V]):
    """An ordered str → value mapping that checks every value on the way in.

    Subclasses set ``_scalar_types`` (the Python types allowed as values and as list items)
    and ``_kind`` (the name used in error messages).
    """

    _scalar_types: ClassVar[tuple[type, ...]]
    _kind: ClassVar[str]
    _allows_bool: ClassVar[bool]

    def __init__(self, data: Mapping[str, V] | None = None) -> None:
        self._data: dict[str, V] = {}
        if data is not None:
            if not isinstance(data, Mapping):
                raise RecordError(
                    f"{self._kind} must be built from a dict of str keys, got {type(data).__name__}."
                )
            for key, value in data.items():
                self[key] = value

    def _normalise(self, key: str, value: Any) -> Any:
        """Return ``value`` converted to a plain Python type, or raise naming ``key``."""
        if isinstance(value, list | tuple):
            items = [self._normalise_scalar(key, v, in_list=True) for v in value]
            kinds = {type(v) for v in items}
            if len(kinds) > 1:
                raise RecordError(
                    f"{self._kind}[{key!r}] is a list mixing {sorted(k.__name__ for k in kinds)}; "
                    "a list must hold values of one type."
                )
            return items
        return self._normalise_scalar(key, value, in_list=False)

    def _normalise_scalar(self, key: str, value: Any, *, in_list: bool) -> Any:
        # numpy scalars and 0-d arrays or tensors (a loss, an accuracy) are accepted and
        # stored as the equivalent Python value.
        converted = _single_value(value)
        if isinstance(converted, _NUMPY_SCALARS) and not isinstance(converted, np.timedelta64):
            converted = converted.item()
        if isinstance(converted, bool) and not self._allows_bool:
            raise self._type_error(key, value, in_list)
        if isinstance(converted, int) and not isinstance(converted, bool) and not (
            _INT64_MIN <= converted <= _INT64_MAX
        ):
            # Checked here, not only in the codec, so a simulation fails where a deployment would.
            raise RecordError(
                f"{self._kind}[{key!r}] holds {converted}, outside the 64-bit integer range; "
                "store it as a float or a str."
            )
        if isinstance(converted, self._scalar_types):
            return converted
        raise self._type_error(key, value, in_list)

    def _type_error(self, key: str, value: Any, in_list: bool) -> RecordError:
        allowed = " | ".join(t.__name__ for t in self._scalar_types)
        where = "a list item" if in_list else "a value"
        kind, fix = type(value).__name__, ""
        if _is_array(value) and tuple(value.shape) != ():
            kind += f" (shape {tuple(value.shape)})"
            fix = " Convert it with .tolist() (.item() for one number), or send arrays in an ArrayRecord."
        return RecordError(
            f"{self._kind}[{key!r}] got {where} of type {kind}; "
            f"allowed types are {allowed} and lists of them.{fix}"
        )

    def __setitem__(self, key: str, value: V) -> None:
        if not isinstance(key, str):
            raise RecordError(f"{self._kind} keys must be str, got {type(key).__name__} ({key!r}).")
        self._data[key] = self._normalise(key, value)

    def __getitem__(self, key: str) -> V:
        return self._data[key]

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TypedRecord):
            return type(self) is type(other) and self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def copy(self) -> Self:
        """Return a shallow copy (lists are copied too)."""
        new = type(self)()
        data: dict[str, Any] = {
            k: list(v) if isinstance(v, list) else v for k, v in self._data.items()
        }
        new._data = data
        return new

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._data!r})"
