"""Adopting a numpy array that nothing else references, instead of copying it.

``ArrayRecord([arr + 1.0])`` builds a temporary that dies as soon as the record exists; the
copy made to protect the record from later changes to the source protects nothing there.
This module decides, from reference counts, whether an item of the list or tuple given to
``ArrayRecord`` is such a temporary, and if so wraps its buffer read-only without copying.

It is exact where it is enabled: a reference count counts every holder (a variable, a view,
a memoryview, a torch tensor from ``torch.from_numpy``, another container), so an array that
anything else can reach is seen as shared and copied. It is enabled only on CPython before
3.14 with the GIL, where every holder on the caller's stack owns its reference, and only
after a check at import time that a held array and a held list count higher than a
temporary on this interpreter; elsewhere every array is copied, as before.
"""

from __future__ import annotations

import sys
import sysconfig
from collections.abc import Sequence
from typing import Any

import numpy as np

from fedlab.records.array import ALLOWED_DTYPES

__all__ = ["adopted_buffer", "calibrate", "enabled", "record"]

# (references to the container, references to the item) for a temporary; None when disabled.
_LIMITS: tuple[int, int] | None = None
# The counts the calibration below observed, by case.
_observed: dict[str, tuple[int, int]] = {}


def _supported_interpreter() -> bool:
    """Whether reference counts here see every holder (no borrowed or deferred references)."""
    return (
        sys.implementation.name == "cpython"
        and sys.version_info < (3, 14)
        and not sysconfig.get_config_var("Py_GIL_DISABLED")
        and sys.byteorder == "little"
    )


def _adoptable(array: Any) -> bool:
    """Whether ``array`` owns a plain, writable, C-ordered little-endian buffer."""
    if type(array) is not np.ndarray:
        return False
    flags = array.flags
    return bool(
        flags.owndata
        and flags.c_contiguous
        and flags.writeable
        and array.base is None
        and array.dtype.byteorder in "=<|"
        and not array.dtype.hasobject
        and array.dtype.fields is None
        and array.dtype.name in ALLOWED_DTYPES
    )


def _counts(container: Sequence[Any], index: int) -> tuple[int, int]:
    """Reference counts of ``container`` and of its item ``index``, as seen from here."""
    item = container[index]
    return sys.getrefcount(container), sys.getrefcount(item)


def adopted_buffer(container: Sequence[Any], index: int) -> memoryview | None:
    """Return a read-only byte view of ``container[index]`` if nothing else references it.

    The array is marked read-only as well. Returns None (the caller copies) when the item
    is not a numpy array that owns its buffer, when anything beyond the container and the
    record's own frames holds the array or the container, or when the interpreter is not
    one where reference counts are exact. Call it only from ``ArrayRecord.__init__`` with
    the list or tuple it was given: the limits are calibrated on exactly that call path.
    """
    container_refs, item_refs = _counts(container, index)
    if _recording is not None:
        _recording[_recording_case] = (container_refs, item_refs)
        return None
    if _LIMITS is None or container_refs > _LIMITS[0] or item_refs > _LIMITS[1]:
        return None
    array = container[index]
    if not _adoptable(array):
        return None
    array.flags.writeable = False
    return memoryview(array).cast("B")


_recording: dict[str, tuple[int, int]] | None = None
_recording_case = ""


def record(sink: dict[str, tuple[int, int]] | None, case: str = "") -> None:
    """Make :func:`adopted_buffer` store its counts in ``sink`` under ``case`` (None: stop)."""
    global _recording, _recording_case
    _recording, _recording_case = sink, case


def calibrate(cases: dict[str, tuple[int, int]]) -> bool:
    """Enable adoption if a temporary counts strictly lower than a held list and a held array.

    ``cases`` maps ``"temporary"``, ``"held-list"`` and ``"held-array"`` to the counts that
    :func:`adopted_buffer` recorded on the real construction path (see
    ``arrayrecord._calibrate``). Returns whether adoption is enabled.
    """
    global _LIMITS
    _observed.clear()
    _observed.update(cases)
    temp, held_list, held_array = cases["temporary"], cases["held-list"], cases["held-array"]
    ok = _supported_interpreter() and held_list[0] > temp[0] and held_array[1] > temp[1]
    _LIMITS = temp if ok else None
    return ok


def enabled() -> bool:
    """Whether temporaries are adopted without a copy on this interpreter."""
    return _LIMITS is not None
