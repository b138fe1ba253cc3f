"""`DaemonPool`: the threads on which the backends run client calls in this process.

Two differences from :class:`concurrent.futures.ThreadPoolExecutor`, both for clients
that never return. Its threads are daemon threads, which the interpreter does not wait
for at exit (it joins an executor's threads, so one stuck call kept a script alive
forever). And a thread stuck in a call can be *retired*: a new thread takes its place at
once, so the pool keeps its size, and the retired one ends when (if ever) its call
returns.

Each call runs in a copy of the submitting thread's context (:mod:`contextvars`), as
if it ran in that thread.
"""

from __future__ import annotations

import contextvars
import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from fedlab.errors import SimulationError

__all__ = ["DaemonPool"]

T = TypeVar("T")

_Task = tuple[Future[Any], Callable[[], Any], contextvars.Context]


class DaemonPool:
    """``size`` daemon threads taking calls from one queue, started on the first submit.

    Parameters
    ----------
    size
        How many threads serve the queue (retired threads are not counted).
    name
        The threads' name prefix, as shown in tracebacks and debuggers.

    Examples
    --------
    >>> pool = DaemonPool(2, "example")
    >>> pool.submit(lambda: 6 * 7).result()
    42
    >>> pool.shutdown()
    """

    def __init__(self, size: int, name: str) -> None:
        self.size = size
        self._name = name
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._serving: set[threading.Thread] = set()  # guarded by _lock
        self._numbers = itertools.count(1)
        self._closed = False

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Queue ``fn`` and return its future; cancelling it before it starts skips it."""
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise SimulationError(
                    "The backend's threads were stopped; start the backend again."
                )
            if not self._serving:
                for _ in range(self.size):
                    self._start_thread()
            self._tasks.put((future, fn, contextvars.copy_context()))
        return future

    def retire(self, thread: threading.Thread) -> None:
        """Start a thread in place of ``thread``, which ends once its current call returns."""
        with self._lock:
            if thread in self._serving and not self._closed:
                self._serving.discard(thread)
                self._start_thread()

    def shutdown(self, *, wait: float | None = None) -> None:
        """Cancel the calls not started; let the threads end after their current call.

        ``wait``: seconds to wait for the serving threads to end (None: do not wait).
        Retired threads are never waited for.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads, self._serving = self._serving, set()
            while True:
                try:
                    task = self._tasks.get_nowait()
                except queue.Empty:
                    break
                if task is not None:
                    task[0].cancel()
            for _ in threads:
                self._tasks.put(None)  # wakes an idle thread; busy ones see _serving
        if wait is not None:
            for thread in threads:
                thread.join(wait)

    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=self._serve, name=f"{self._name}-{next(self._numbers)}", daemon=True
        )
        self._serving.add(thread)
        thread.start()

    def _serve(self) -> None:
        me = threading.current_thread()
        while True:
            task = self._tasks.get()
            if task is None:
                return
            future, fn, context = task
            del task
            if future.set_running_or_notify_cancel():
                try:
                    result = context.run(fn)
                except BaseException as exc:  # handed to whoever waits on the future
                    future.set_exception(exc)
                else:
                    future.set_result(result)
                    del result
            del future, fn, context  # let go of the call's objects while idle
            with self._lock:
                if me not in self._serving:
                    return  # retired during the call, or the pool was shut down
