"""`worker_cache`: build an expensive object (a model, a tokenizer, a dataset) once per worker.

A ClientApp is called once per client per round, but the process or thread that runs it
(a *worker*) lives for the whole run: the inline backend has one worker, the threads
backend one per thread, the processes and ray backends one per worker process or actor,
and a SuperNode one per process. Objects cached here are built the first time a worker
needs them and reused by every later call on that worker, never shared between two
workers, so two clients running at the same time never touch the same object.

Load what differs between clients (the global weights from the message, the node's own
partition) into the cached object at every call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

__all__ = ["clear_worker_cache", "worker_cache"]

T = TypeVar("T")

_local = threading.local()


def worker_cache(key: Hashable, factory: Callable[[], T]) -> T:
    """Return this worker's object for ``key``, calling ``factory()`` to build it the first time.

    Examples
    --------
    >>> built = []
    >>> def make_model() -> list[int]:
    ...     built.append(1)
    ...     return [0, 0, 0]
    >>> worker_cache("model", make_model) is worker_cache("model", make_model)
    True
    >>> len(built)
    1
    >>> clear_worker_cache()
    """
    store: dict[Hashable, Any] | None = getattr(_local, "store", None)
    if store is None:
        store = _local.store = {}
    if key not in store:
        store[key] = factory()
    value: T = store[key]
    return value


def clear_worker_cache() -> None:
    """Forget everything cached by the calling worker."""
    _local.store = {}
