"""Simulation backends: where the simulated clients' work runs.

A backend does two things for :class:`~fedlab.simulation.SimulationGrid`:

- ``submit(fn)`` schedules a unit of grid work (one client call plus its bookkeeping) and
  returns a future; it decides *when* and on which thread that work runs.
- ``call(message, context)`` runs the ClientApp on one message for one node, from inside
  such a unit, and returns the reply. In-process backends call the app directly; backends
  that run clients elsewhere (``processes``, ``ray``) ship the message and the node's
  Context there, and write the node's new ``context.state`` back into ``context`` before
  returning, so state persists across rounds whatever the backend.

``start(app)`` is called once before the first call, and again if the grid is reused after
``close()``. ``concurrency`` says how many calls may run at once; the grid keeps about
twice that many messages in flight when it streams a round's replies to the strategy.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol, TypeVar

from fedlab.errors import SimulationError

if TYPE_CHECKING:
    from fedlab.client import ClientApp
    from fedlab.context import Context
    from fedlab.message import Message

__all__ = ["BACKENDS", "Backend", "InlineBackend", "ThreadBackend", "make_backend"]

T = TypeVar("T")


class Backend(Protocol):
    """Runs client calls for a SimulationGrid (see the module documentation)."""

    name: str
    #: True when ``submit`` runs nothing by itself: the grid runs queued work on demand.
    deferred: bool

    @property
    def concurrency(self) -> int:
        """How many client calls may run at the same time."""
        ...

    def start(self, app: ClientApp) -> None:
        """Prepare to run ``app`` (start workers, ship the app to them)."""
        ...

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Schedule ``fn`` and return a future for its result."""
        ...

    def call(self, message: Message, context: Context) -> Message:
        """Run the app on ``message`` for the node of ``context``; return its reply."""
        ...

    def close(self) -> None:
        """Release workers; work already started finishes first."""
        ...


class _InProcess:
    """Shared by the backends that call the ClientApp in this process."""

    _app: ClientApp | None = None

    def start(self, app: ClientApp) -> None:
        """Remember ``app``: every call runs it here."""
        self._app = app

    def call(self, message: Message, context: Context) -> Message:
        """Call the app directly; it updates ``context.state`` in place."""
        if self._app is None:
            raise SimulationError("The backend was not started; call start(app) first.")
        return self._app(message, context)


class InlineBackend(_InProcess):
    """Runs client calls one at a time, in the thread that asks for the replies.

    Sequential and deterministic. Calls are deferred: the grid runs each when the server
    waits for its reply, so a round's replies can be aggregated (and dropped) one by one.
    """

    name = "inline"
    deferred = True

    @property
    def concurrency(self) -> int:
        """One call at a time."""
        return 1

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` now and return a completed future (used for work not deferred)."""
        future: Future[T] = Future()
        try:
            future.set_result(fn())
        except BaseException as exc:  # the grid turns this into an error reply
            future.set_exception(exc)
        return future

    def close(self) -> None:
        """Nothing to release."""


class ThreadBackend(_InProcess):
    """Runs client calls on a pool of threads (torch and numpy release the GIL)."""

    name = "threads"
    deferred = False

    def __init__(self, max_workers: int | None = None) -> None:
        workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        if workers < 1:
            raise SimulationError(f"max_workers must be at least 1, got {max_workers}.")
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None

    @property
    def concurrency(self) -> int:
        """The number of threads."""
        return self._workers

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Queue ``fn`` on the pool (started on first use)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="fedlab-client")
        return self._pool.submit(fn)

    def close(self) -> None:
        """Stop accepting work and drop calls not yet started."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _processes(max_workers: int | None) -> Backend:
    from fedlab.simulation.processes import ProcessBackend

    return ProcessBackend(max_workers)


def _ray(max_workers: int | None) -> Backend:
    from fedlab.simulation.ray_backend import RayBackend

    return RayBackend(max_workers=max_workers)


#: The backends available by name (``processes`` and ``ray`` are imported when first built).
BACKENDS: dict[str, Callable[[int | None], Backend]] = {
    "inline": lambda _workers: InlineBackend(),
    "threads": ThreadBackend,
    "processes": _processes,
    "ray": _ray,
}


def make_backend(name: str, max_workers: int | None = None) -> Backend:
    """Build the backend called ``name`` (see :data:`BACKENDS`)."""
    factory = BACKENDS.get(name)
    if factory is None:
        raise SimulationError(
            f"Unknown simulation backend {name!r}; choose one of {', '.join(map(repr, BACKENDS))}."
        )
    return factory(max_workers)
