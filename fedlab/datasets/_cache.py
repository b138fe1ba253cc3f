"""An in-process cache of loaded data, so simulated clients do not reload it every round."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

__all__ = ["cached", "clear_cache"]

T = TypeVar("T")

#: Loaded datasets kept at most; the least recently used one is dropped first.
MAX_ENTRIES = 16

_entries: OrderedDict[Hashable, Any] = OrderedDict()
_lock = threading.Lock()
# One lock per key being loaded, so two threads wanting the same data load it once while
# other keys load in parallel.
_loading: dict[Hashable, threading.Lock] = {}


def cached(key: Hashable, load: Callable[[], T]) -> T:
    """Return the value cached under ``key``, calling ``load()`` once if there is none."""
    with _lock:
        if key in _entries:
            _entries.move_to_end(key)
            return _entries[key]  # type: ignore[no-any-return]
        gate = _loading.setdefault(key, threading.Lock())
    with gate:
        with _lock:
            if key in _entries:
                return _entries[key]  # type: ignore[no-any-return]
        value = load()
        with _lock:
            _entries[key] = value
            while len(_entries) > MAX_ENTRIES:
                _entries.popitem(last=False)
            _loading.pop(key, None)
    return value


def clear_cache() -> None:
    """Forget every dataset loaded in this process (the next use loads it again).

    Examples
    --------
    >>> from fedlab.datasets import clear_cache
    >>> clear_cache()
    """
    with _lock:
        _entries.clear()
