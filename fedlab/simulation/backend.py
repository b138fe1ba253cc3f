"""Simulation backends: where the simulated clients' work runs.

A backend does three things for :class:`~fedlab.simulation.SimulationGrid`:

- ``submit(fn)`` schedules a unit of grid work (one client call plus its bookkeeping) and
  returns a future; it decides *when* and on which thread that work runs.
- ``call(message, context)`` runs the ClientApp on one message for one node, from inside
  such a unit, and returns the reply. In-process backends call the app directly; backends
  that run clients elsewhere (``processes``, ``ray``) ship the message and the node's
  Context there, and write the node's new ``context.state`` back into ``context`` before
  returning, so state persists across rounds whatever the backend.
- ``cancel(message_ids)`` gives up on calls that are still running after their deadline
  (the grid has already reported them as timed out): a worker process or actor running
  one is killed, a thread stuck in one is left behind, and in each case a fresh worker
  takes its place, so a client that never returns delays nothing but its own reply.

``start(app)`` is called once before the first call, and again if the grid is reused after
``close()``. ``concurrency`` says how many calls may run at once; the grid keeps about
twice that many messages in flight when it streams a round's replies to the strategy.
Client calls never run on threads that keep the interpreter alive: a script whose client
hangs still exits when its run is over.

Any object with these members is a backend (:class:`Backend` is a runtime-checkable
protocol, so ``isinstance(obj, Backend)`` tells); :func:`missing_backend_members` names
the members an object lacks, for an error that says what to add.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection
from concurrent.futures import Future
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from fedlab.errors import SimulationError
from fedlab.simulation._daemon_pool import DaemonPool

if TYPE_CHECKING:
    from fedlab.client import ClientApp
    from fedlab.context import Context
    from fedlab.message import Message

__all__ = [
    "BACKENDS",
    "Backend",
    "InlineBackend",
    "ThreadBackend",
    "make_backend",
    "missing_backend_members",
]

T = TypeVar("T")


@runtime_checkable
class Backend(Protocol):
    """Runs client calls for a SimulationGrid (see the module documentation)."""

    name: str
    #: True when the grid runs one call at a time and waits for each (inline): it keeps
    #: pushed work queued and submits it one unit at a time, in push order, when the
    #: server waits for replies.
    deferred: bool
    #: True when :meth:`cancel` ends the calls it is given within moments (it kills what
    #: runs them); False when they run on, left behind (a thread cannot be stopped).
    cancel_stops: bool

    @property
    def concurrency(self) -> int:
        """How many client calls may run at the same time."""
        ...

    def start(self, app: ClientApp) -> None:
        """Prepare to run ``app`` (start workers, ship the app to them)."""
        ...

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Schedule ``fn`` and return a future for its result (cancellable until it starts)."""
        ...

    def call(self, message: Message, context: Context) -> Message:
        """Run the app on ``message`` for the node of ``context``; return its reply."""
        ...

    def cancel(self, message_ids: Collection[str]) -> None:
        """Give up on the running calls for ``message_ids`` and replace what runs them.

        Ids of calls not running (finished, never started) are ignored.
        """
        ...

    def close(self) -> None:
        """Release workers; work already started finishes first."""
        ...


# The protocol's members in the order it declares them: attributes, then the rest.
_MEMBERS = (*Backend.__annotations__, *(name for name in vars(Backend) if name[0] != "_"))
_METHODS = frozenset(name for name in _MEMBERS if callable(getattr(Backend, name, None)))


def missing_backend_members(backend: object) -> list[str]:
    """The members of :class:`Backend` that ``backend`` lacks, in the protocol's order.

    Empty exactly when ``isinstance(backend, Backend)``; a method set to ``None``
    counts as missing, as it does for ``isinstance``.

    Examples
    --------
    >>> missing_backend_members(InlineBackend())
    []
    >>> class Old:
    ...     name, deferred, concurrency = "old", False, 1
    ...     def start(self, app): ...
    ...     def submit(self, fn): ...
    ...     def call(self, message, context): ...
    ...     def close(self): ...
    >>> missing_backend_members(Old())
    ['cancel_stops', 'cancel']
    """
    return [
        name
        for name in _MEMBERS
        if not hasattr(backend, name) or (name in _METHODS and getattr(backend, name) is None)
    ]


class _InProcess:
    """Shared by the backends that call the ClientApp in this process, on a DaemonPool.

    A running call cannot be stopped from outside its thread, so :meth:`cancel` retires
    the thread running it: a new one serves the pool, and the stuck one, a daemon, ends
    when its call returns or with the interpreter.
    """

    _app: ClientApp | None = None
    cancel_stops = False
    _size = 1
    _prefix = "fedlab-client"

    def __init__(self) -> None:
        self._pool: DaemonPool | None = None
        self._lock = threading.Lock()
        self._running: dict[str, threading.Thread] = {}  # message id -> thread; under _lock

    def start(self, app: ClientApp) -> None:
        """Remember ``app``: every call runs it here."""
        self._app = app

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Queue ``fn`` on the backend's daemon threads (started on first use)."""
        with self._lock:
            if self._pool is None:
                self._pool = DaemonPool(self._size, self._prefix)
            pool = self._pool
        return pool.submit(fn)

    def call(self, message: Message, context: Context) -> Message:
        """Call the app directly; it updates ``context.state`` in place."""
        if self._app is None:
            raise SimulationError("The backend was not started; call start(app) first.")
        message_id = message.metadata.message_id
        with self._lock:
            self._running[message_id] = threading.current_thread()
        try:
            return self._app(message, context)
        finally:
            with self._lock:
                self._running.pop(message_id, None)

    def cancel(self, message_ids: Collection[str]) -> None:
        """Leave the threads running these calls behind; new threads take their places."""
        with self._lock:
            stuck = [self._running.pop(i) for i in message_ids if i in self._running]
            pool = self._pool
        if pool is not None:
            for thread in stuck:
                pool.retire(thread)

    def close(self) -> None:
        """Drop calls not yet started; threads end once their current call returns."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()


class InlineBackend(_InProcess):
    """Runs client calls one at a time, in push order, while the server waits for each.

    Sequential and deterministic. Calls are deferred: the grid runs each when the server
    waits for its reply, so a round's replies can be aggregated (and dropped) one by one.
    Each call runs on the backend's own daemon thread, so that the server waits for it
    only until the round's deadline: a client that has not returned by then is reported
    as timed out and left running on its own, and later calls run on a fresh thread.
    """

    name = "inline"
    deferred = True

    @property
    def concurrency(self) -> int:
        """One call at a time."""
        return 1


class ThreadBackend(_InProcess):
    """Runs client calls on a pool of daemon threads (torch and numpy release the GIL).

    A thread whose call passed its deadline is replaced, so the pool keeps its size.
    """

    name = "threads"
    deferred = False

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__()
        workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        if workers < 1:
            raise SimulationError(f"max_workers must be at least 1, got {max_workers}.")
        self._size = workers

    @property
    def concurrency(self) -> int:
        """The number of threads."""
        return self._size


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
