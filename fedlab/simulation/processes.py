"""`ProcessBackend`: simulated clients in worker processes, for CPU-heavy Python clients.

Threads run one line of Python at a time (the GIL); a ClientApp that spends its time in
Python, not in numpy or torch kernels, only runs in parallel in several processes.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
from collections.abc import Callable, Collection
from concurrent.futures import Future
from typing import TYPE_CHECKING, TypeVar

from fedlab.errors import CodecError, SimulationError
from fedlab.simulation._daemon_pool import DaemonPool
from fedlab.simulation._fleet import CALLS_PER_WORKER, Fleet
from fedlab.simulation._shm import create_segment
from fedlab.simulation._wire import encode_request

if TYPE_CHECKING:
    from fedlab.client import ClientApp
    from fedlab.context import Context
    from fedlab.message import Message

__all__ = ["ProcessBackend"]

T = TypeVar("T")


class ProcessBackend:
    """Runs client calls in a pool of worker processes, in parallel past the GIL.

    Each worker is a long-lived process that runs the ClientApp on one call at a time;
    workers are started by :meth:`start` and reused across calls and rounds, so whatever a
    ClientApp caches at module level (a dataset, a model) stays loaded in each worker.
    Calls go to whichever worker is free: a node's ``context.state`` travels with each
    call and comes back with the reply, so it persists across rounds wherever the node
    runs next.

    Nothing is pickled on the way: the message and the node's Context cross in fedlab's
    codec, and the array bytes through shared memory, not through the socket. Arrays a
    client receives, and arrays the grid receives in replies, are read in place from
    that shared memory (read-only, as in every backend), except that the state the grid
    keeps for each node is copied out.

    The ClientApp runs in another process: what it changes in Python objects (a list or
    a counter defined in the notebook) stays in that worker. What a client reports goes
    in its reply, what it keeps in ``context.state``.

    A worker that dies during a call (``os._exit``, a segfault, a signal, the out-of-memory
    killer) fails only that call: the grid reports ``CLIENT_APP_CRASHED`` for the node with
    the worker's exit code or signal, and a new worker takes its place for later calls.
    An exception in the ClientApp is an ordinary error reply, as with the other backends.
    A worker whose call is still running at the round's deadline is killed (``SIGKILL``)
    when the grid gives up on the call (:meth:`cancel`), and replaced for later calls,
    so a client that hangs delays no other client.

    Parameters
    ----------
    max_workers
        How many worker processes, hence calls at once; by default the number of CPUs
        this process may use.
    start_method
        How workers start, as in :mod:`multiprocessing`: ``"fork"`` (the default on Linux),
        ``"spawn"`` (the default elsewhere) or ``"forkserver"``.
    stop_timeout
        Seconds :meth:`close` lets a busy worker finish its call before killing it.
    threads_per_worker
        How many threads torch (``torch.set_num_threads``) and OpenMP/BLAS
        (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``) may use in
        each worker; 1 by default, so that ``max_workers`` workers on as many cores do
        not oversubscribe them (torch would otherwise start one thread per core in every
        worker). None leaves the workers' settings as they inherit them; a client may
        still call ``torch.set_num_threads`` itself.

    Notes
    -----
    **Why fork is the default on Linux.** A forked worker is ready in milliseconds and
    starts as a copy of this process at :meth:`start` (when the grid is made): the
    ClientApp and the classes, functions and data a notebook defined in its cells are
    simply there, shared copy-on-write. With ``spawn`` or ``forkserver`` the app must be
    pickled into each worker instead: functions defined in a notebook or in a script's
    ``__main__`` need ``cloudpickle``, which pickles them by value together with the
    globals they use (a dataset loaded in a cell would be copied into every worker),
    and a script must guard its entry point with ``if __name__ == "__main__":``.

    The danger of fork is a lock that another thread of this process holds at that
    moment: it stays locked in the child (Python 3.12+ warns about forking a process
    that has threads, and 3.14 stopped making fork the default for that reason). Here
    the risk is small: all workers are forked at once by :meth:`start`, before the
    backend's own threads exist, and a worker runs nothing of its parent but its loop
    and the ClientApp. Choose ``"spawn"`` (or ``"forkserver"``) when this process has
    initialised CUDA (a forked child cannot use it) or runs threads that may hold locks
    the clients need. macOS defaults to spawn: its system libraries are not fork-safe.

    Workers see the process as it was at :meth:`start`; start again (make a new grid)
    after changing what the clients use. A worker forked later to replace a dead one
    starts from the process as it is then.

    Examples
    --------
    >>> from fedlab.client import ClientApp
    >>> from fedlab.simulation import SimulationGrid
    >>> grid = SimulationGrid(ClientApp(), 8, backend=ProcessBackend(2), seed=0)
    >>> grid.backend.concurrency
    2
    >>> grid.close()
    """

    name = "processes"
    deferred = False
    cancel_stops = True

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        start_method: str | None = None,
        stop_timeout: float = 5.0,
        threads_per_worker: int | None = 1,
    ) -> None:
        if os.name != "posix":
            raise SimulationError(
                "The processes backend needs Linux or macOS; use backend='threads' here."
            )
        workers = _available_cpus() if max_workers is None else max_workers
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise SimulationError(f"max_workers must be an int of at least 1, got {max_workers!r}.")
        method = _default_start_method() if start_method is None else start_method
        methods = multiprocessing.get_all_start_methods()
        if method not in methods:
            raise SimulationError(
                f"start_method {start_method!r} is not available here; choose one of "
                f"{', '.join(map(repr, methods))}."
            )
        if not stop_timeout >= 0:
            raise SimulationError(f"stop_timeout must be >= 0 seconds, got {stop_timeout!r}.")
        if threads_per_worker is not None and (
            not isinstance(threads_per_worker, int) or isinstance(threads_per_worker, bool) or threads_per_worker < 1
        ):
            raise SimulationError(
                f"threads_per_worker must be None or an int of at least 1, got {threads_per_worker!r}."
            )
        self._threads = threads_per_worker
        self._workers = workers
        self._stop_timeout = float(stop_timeout)
        self._context = multiprocessing.get_context(method)
        self._fleet: Fleet | None = None
        self._pool: DaemonPool | None = None

    @property
    def concurrency(self) -> int:
        """The number of worker processes."""
        return self._workers

    @property
    def start_method(self) -> str:
        """How workers are started: ``"fork"``, ``"spawn"`` or ``"forkserver"``."""
        return self._context.get_start_method()

    @property
    def worker_pids(self) -> list[int]:
        """The process ids of the running workers (empty before :meth:`start`)."""
        return [] if self._fleet is None else self._fleet.pids()

    def start(self, app: ClientApp) -> None:
        """Start the worker processes for ``app`` (stopping those of an earlier start)."""
        self.close()
        payload: ClientApp | bytes = app if self.start_method == "fork" else _pickle_app(app)
        self._fleet = Fleet(self._context, payload, self._workers, self._stop_timeout, self._threads)

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Queue ``fn`` on a pool of daemon threads (started on first use).

        There is a thread for each call a worker may hold (the one it runs and the next),
        so that the next call is encoded and waiting while a worker runs one.
        """
        if self._pool is None:
            self._pool = DaemonPool(self._workers * CALLS_PER_WORKER, "fedlab-process")
        return self._pool.submit(fn)

    def call(self, message: Message, context: Context) -> Message:
        """Run the app on ``message`` in a free worker; update ``context.state``; return the reply.

        Raises
        ------
        SimulationError
            If the worker died during the call (the grid reports ``CLIENT_APP_CRASHED``),
            the message or state cannot be encoded, or the backend is not started.
        """
        fleet = self._fleet
        if fleet is None:
            raise SimulationError("The backend was not started; call start(app) first.")
        try:
            request = create_segment(encode_request(message, context))
        except CodecError as err:
            raise SimulationError(
                f"The message for node {context.node_id} or its context cannot be sent to a "
                f"worker process: {err}"
            ) from err
        try:
            reply, state = fleet.call(request, context.node_id, message.metadata)
        finally:
            os.close(request)
        context.state = state
        return reply

    def cancel(self, message_ids: Collection[str]) -> None:
        """Kill the workers running these calls; new workers run the next calls.

        The threads waiting for those calls then report them as crashed, which the grid
        drops: it has reported them as timed out already.
        """
        if self._fleet is not None:
            self._fleet.cancel(message_ids)

    def close(self) -> None:
        """Stop the workers; a busy one gets ``stop_timeout`` seconds to finish, then is killed."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        fleet, self._fleet = self._fleet, None
        if fleet is not None:
            fleet.close()


def _pickle_app(app: ClientApp) -> bytes:
    try:
        import cloudpickle  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:
        dumps: Callable[[object], bytes] = pickle.dumps
        hint = "install cloudpickle (pip install cloudpickle), "
    else:
        dumps = cloudpickle.dumps
        hint = ""
    try:
        return dumps(app)
    except Exception as err:
        raise SimulationError(
            f"The ClientApp cannot be sent to worker processes started with spawn/forkserver "
            f"({type(err).__name__}: {err}). Define it in an importable module, {hint}or use "
            "ProcessBackend(start_method='fork') on Linux."
        ) from err


def _default_start_method() -> str:
    return "fork" if sys.platform.startswith("linux") else "spawn"


def _available_cpus() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1
