"""Simulation backends: where the simulated clients' work runs."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol, TypeVar

from fedlab.errors import SimulationError

__all__ = ["BACKENDS", "Backend", "InlineBackend", "ThreadBackend", "make_backend"]

T = TypeVar("T")


class Backend(Protocol):
    """Runs client calls. ``submit`` returns a future; ``close`` waits for running work."""

    name: str

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Schedule ``fn`` and return a future for its result."""
        ...

    def close(self) -> None:
        """Release workers; work already started finishes first."""
        ...


class InlineBackend:
    """Runs each client call at once, in the calling thread: sequential and deterministic."""

    name = "inline"

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` now and return a completed future."""
        future: Future[T] = Future()
        try:
            future.set_result(fn())
        except BaseException as exc:  # the grid turns this into an error reply
            future.set_exception(exc)
        return future

    def close(self) -> None:
        """Nothing to release."""


class ThreadBackend:
    """Runs client calls on a pool of threads (torch and numpy release the GIL)."""

    name = "threads"

    def __init__(self, max_workers: int | None = None) -> None:
        workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        if workers < 1:
            raise SimulationError(f"max_workers must be at least 1, got {max_workers}.")
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fedlab-client")

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Queue ``fn`` on the pool."""
        return self._pool.submit(fn)

    def close(self) -> None:
        """Stop accepting work and drop calls not yet started."""
        self._pool.shutdown(wait=False, cancel_futures=True)


#: The backends available by name.
BACKENDS: dict[str, Callable[[int | None], Backend]] = {
    "inline": lambda _workers: InlineBackend(),
    "threads": ThreadBackend,
}


def make_backend(name: str, max_workers: int | None = None) -> Backend:
    """Build the backend called ``name`` (see :data:`BACKENDS`)."""
    factory = BACKENDS.get(name)
    if factory is None:
        raise SimulationError(
            f"Unknown simulation backend {name!r}; choose one of {', '.join(map(repr, BACKENDS))}."
        )
    return factory(max_workers)
