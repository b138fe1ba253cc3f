"""What changed in the dashboard's arrays since the last send, as one small message.

The live view keeps its grids in the browser and applies each delta in place. A delta is
a custom comm message: JSON content naming the changed arrays, plus binary buffers. Its
``seq`` is one more than the state the browser holds; the full state travels as widget
traits with a ``seq`` of its own, and the numbering is shared, so the browser sees a gap
(a lost message, a page reloaded mid-run) and asks for the full state again.

Content ``{"type": "delta", "seq": 7, "parts": [part, ...]}``, and for each part in order:

- ``{"name": "values", "cells": k}``: two buffers, ``k`` uint32 flat indices into the
  array and ``k`` new elements of the array's own type (float32 or uint8). Any cell can
  change, not only new ones: a late reply or a failure rewrites a past round's cell.
- ``{"name": "central", "whole": true}``: one buffer, the array's new contents (its
  length changed, or most of it did).
- ``{"name": "failures", "drop": d, "append": [row, ...]}``: no buffer; a list (of JSON
  rows) loses its ``d`` oldest items and gains these at its end. Lists only grow at the
  end and lose their oldest items, so a new failure costs one row, not the whole list;
  ``{"name": "failures", "items": [...]}`` replaces a list that changed otherwise.

Cells are compared bit by bit, so NaN (no value) equals NaN and a delta applied to the
state before it reproduces the state after it exactly. List items are compared by
identity: the caller hands the same object for an item that did not change.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["DeltaEncoder"]

#: The arrays that travel as deltas, in the order a delta lists them.
PARTS = ("values", "participation", "band", "timing", "central")

_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _changed(old: npt.NDArray[Any], new: npt.NDArray[Any]) -> npt.NDArray[np.uint32]:
    kind = _UNSIGNED[new.dtype.itemsize]
    return np.flatnonzero(old.view(kind) != new.view(kind)).astype(np.uint32)


class DeltaEncoder:
    """Remembers the arrays last sent and turns the current ones into a delta message.

    Examples
    --------
    >>> encoder = DeltaEncoder()
    >>> encoder.reset({"values": np.array([1.0, np.nan, np.nan, np.nan], np.float32)})
    1
    >>> content, buffers = encoder.delta({"values": np.array([1.0, 2.0, np.nan, np.nan], np.float32)})
    >>> content, np.frombuffer(buffers[0], np.uint32).tolist(), np.frombuffer(buffers[1], np.float32)
    ({'type': 'delta', 'seq': 2, 'parts': [{'name': 'values', 'cells': 1}]}, [1], array([2.], dtype=float32))
    >>> encoder.delta({"values": np.array([1.0, 2.0, np.nan, np.nan], np.float32)}) is None
    True
    """

    def __init__(self) -> None:
        self.seq = 0
        self._full_seq = -1
        self._sent: dict[str, npt.NDArray[Any]] = {}
        self._lists: dict[str, list[Any]] = {}

    def reset(self, arrays: dict[str, npt.NDArray[Any]], lists: dict[str, list[Any]] | None = None) -> int:
        """Note that ``arrays`` and ``lists`` went out in full; return the state's number.

        The number stays the same when nothing changed since the last full state and no
        delta followed it: the browser then has nothing to rebuild.
        """
        fresh = {name: np.array(a, copy=True).ravel() for name, a in arrays.items()}
        kept = {name: list(items) for name, items in (lists or {}).items()}
        if self.seq == self._full_seq and self._same(fresh) and kept.keys() == self._lists.keys() and all(
            _identical(self._lists[name], items) for name, items in kept.items()
        ):
            return self.seq
        self._sent, self._lists = fresh, kept
        self.seq += 1
        self._full_seq = self.seq
        return self.seq

    def _same(self, arrays: dict[str, npt.NDArray[Any]]) -> bool:
        if arrays.keys() != self._sent.keys():
            return False
        for name, new in arrays.items():
            old = self._sent[name]
            if old.shape != new.shape or old.dtype != new.dtype or _changed(old, new).size:
                return False
        return True

    def delta(
        self, arrays: dict[str, npt.NDArray[Any]], lists: dict[str, list[Any]] | None = None
    ) -> tuple[dict[str, Any], list[bytes]] | None:
        """The message that brings the last sent state up to this; None if nothing changed."""
        parts: list[dict[str, Any]] = []
        buffers: list[bytes] = []
        for name, items in (lists or {}).items():
            part = _list_part(name, self._lists.get(name, []), items)
            if part is not None:
                parts.append(part)
                self._lists[name] = list(items)
        for name in [p for p in PARTS if p in arrays] + sorted(set(arrays) - set(PARTS)):
            new = np.ascontiguousarray(arrays[name]).ravel()
            old = self._sent.get(name)
            if old is not None and old.shape == new.shape and old.dtype == new.dtype:
                cells = _changed(old, new)
                if not cells.size:
                    continue
                if cells.size * (4 + new.dtype.itemsize) < new.nbytes:
                    parts.append({"name": name, "cells": int(cells.size)})
                    buffers += [cells.tobytes(), new[cells].tobytes()]
                    old[cells] = new[cells]
                    continue
            parts.append({"name": name, "whole": True})
            buffers.append(new.tobytes())
            self._sent[name] = new.copy()
        if not parts:
            return None
        self.seq += 1
        return {"type": "delta", "seq": self.seq, "parts": parts}, buffers


def _identical(old: list[Any], new: list[Any]) -> bool:
    return len(old) == len(new) and all(a is b for a, b in zip(old, new))


def _list_part(name: str, old: list[Any], new: list[Any]) -> dict[str, Any] | None:
    if _identical(old, new):
        return None
    # The oldest ``drop`` items are gone, the rest are still there, new ones follow.
    first = next((k for k, item in enumerate(old) if new and item is new[0]), len(old))
    kept = len(old) - first
    if kept <= len(new) and _identical(old[first:], new[:kept]):
        return {"name": name, "drop": first, "append": new[kept:]}
    return {"name": name, "items": list(new)}
