"""The worker processes of a :class:`~fedlab.simulation.processes.ProcessBackend`.

A :class:`Fleet` holds the workers of one ``start``; each worker is idle or busy with one
call, and a busy worker belongs to the thread that made that call: only that thread reads
its socket, reaps it when it dies, or stops it. Calls made while every worker is busy
wait, already encoded, in one queue; the moment a worker's reply arrives, the thread
reading it sends the worker the next waiting call, before it decodes its own reply, so a
worker starts its next client without waiting for the grid to take in the last one.
A call is only sent to an idle worker, so none waits behind a client that hangs.
``close`` stops the idle workers and kills the busy ones that do not finish in time,
which wakes their threads to reap them; ``cancel`` kills the workers of calls the grid
gave up on in the same way, and drops those still waiting.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections import deque
from functools import partial
from multiprocessing.context import BaseContext
from typing import TYPE_CHECKING

from fedlab.errors import SimulationError
from fedlab.records import RecordDict
from fedlab.simulation._shm import send
from fedlab.simulation._worker import CALL
from fedlab.simulation._worker_link import CallFailed, WorkerDied, WorkerLink, start_worker

if TYPE_CHECKING:
    from collections.abc import Collection

    from fedlab.client import ClientApp
    from fedlab.message import Message, Metadata

__all__ = ["CALLS_PER_WORKER", "Fleet"]

#: Calls in flight per worker that keep it busy: the one it runs, and the next one,
#: encoded and waiting for the worker to reply.
CALLS_PER_WORKER = 2

_CANCELLED = (
    "The worker process running node {node} was killed: the call did not return in time. "
    "A new worker runs the next calls."
)
_DROPPED = "The call to node {node} was given up before a worker process started it."


class _Call:
    """One call: its request segment, the worker running it, and whether it was given up."""

    __slots__ = ("cancelled", "message_id", "request", "worker")

    def __init__(self, message_id: str, request: int) -> None:
        self.message_id = message_id
        self.request = request
        self.worker: WorkerLink | None = None  # None while it waits for an idle worker
        self.cancelled = False  # the grid gave up on it


class Fleet:
    """The worker processes of one start of the backend (see the module documentation)."""

    def __init__(
        self,
        context: BaseContext,
        app: ClientApp | bytes,
        size: int,
        stop_timeout: float,
        threads: int | None = None,
    ) -> None:
        self._context = context
        self._threads = threads
        self._app = app
        self._stop_timeout = stop_timeout
        self._changed = threading.Condition()
        self._workers: list[WorkerLink] = []  # oldest first; dead ones until they are reaped
        self._waiting: deque[_Call] = deque()  # calls for the next idle worker
        self._missing = 0  # workers that died and could not be replaced yet
        self._calls: dict[str, _Call] = {}  # message id -> call, waiting or running
        self._given_up: set[str] = set()  # cancelled before they reached call()
        self._closing = False
        # At exit, stop the workers before multiprocessing waits for its children (forever,
        # as workers wait for calls): atexit runs the handlers registered last first.
        atexit.register(self.close)
        try:
            for _ in range(size):
                self._workers.append(self._start_worker())
        except BaseException:
            self.close()
            raise

    def pids(self) -> list[int]:
        with self._changed:
            return sorted(w.pid for w in self._workers if not w.dead and w.pid is not None)

    def call(self, request: int, node_id: int, metadata: Metadata) -> tuple[Message, RecordDict]:
        call = _Call(metadata.message_id, request)
        with self._changed:
            self._refuse_if_closing()
            if call.message_id in self._given_up:  # cancelled before it got here
                self._given_up.discard(call.message_id)
                raise SimulationError(_DROPPED.format(node=node_id))
            self._calls[call.message_id] = call
            self._waiting.append(call)
            self._dispatch()
        may_start = True
        while True:
            with self._changed:
                self._changed.wait_for(partial(self._moved, call, may_start))
                worker = call.worker
                if worker is not None:
                    break
                if call.cancelled or self._closing:
                    self._forget(call)
                    self._refuse_if_closing()
                    raise SimulationError(_DROPPED.format(node=node_id))
                self._missing -= 1
            may_start = self._replace_missing(call)
        return self._run(worker, call, node_id, metadata)

    def cancel(self, message_ids: Collection[str]) -> None:
        """Kill the workers running these calls (their threads reap and replace them).

        A call still waiting for a worker is dropped instead, and so is one whose thread
        has not reached :meth:`call` yet.
        """
        with self._changed:  # held, so that no call moves meanwhile
            for message_id in message_ids:
                call = self._calls.get(message_id)
                if call is None:  # finished, or its thread has not reached call() yet
                    self._given_up.add(message_id)
                else:
                    call.cancelled = True
                    if call.worker is not None:
                        call.worker.kill()
            self._changed.notify_all()

    def close(self) -> None:
        atexit.unregister(self.close)
        with self._changed:
            if self._closing:
                return
            self._closing = True
            idle = [w for w in self._workers if w.current is None and not w.dead]
            for worker in idle:
                self._workers.remove(worker)
            self._changed.notify_all()
        for worker in idle:
            worker.close_socket()  # all exit at once; then reap them one by one
        deadline = time.monotonic() + self._stop_timeout
        with self._changed:
            if not self._changed.wait_for(lambda: not self._workers, self._stop_timeout):
                for worker in self._workers:
                    worker.kill()  # its thread wakes up, reaps and releases it
                self._changed.wait_for(lambda: not self._workers, WorkerLink.reap_wait_s)
        for worker in idle:
            worker.stop(deadline - time.monotonic())

    def _moved(self, call: _Call, may_start: bool) -> bool:
        """Whether a waiting ``call`` has something to do: run, give up, or start a worker."""
        return (
            call.worker is not None
            or call.cancelled
            or self._closing
            or bool(self._missing and may_start)
        )

    def _refuse_if_closing(self) -> None:
        if self._closing:
            raise SimulationError("The processes backend was closed; start it again.")

    def _forget(self, call: _Call) -> None:
        self._calls.pop(call.message_id, None)
        if call in self._waiting:
            self._waiting.remove(call)

    def _dispatch(self) -> None:
        """Send waiting calls to idle workers, oldest worker first. Call it holding the lock."""
        while self._waiting and not self._closing:
            worker = next((w for w in self._workers if w.current is None and not w.dead), None)
            if worker is None:
                return
            call = self._waiting.popleft()
            worker.current, call.worker = call, worker
            try:
                send(worker.sock, CALL, call.request)
            except OSError:
                pass  # the worker is gone: the call's thread finds out and reaps it
            self._changed.notify_all()

    def _replace_missing(self, call: _Call) -> bool:
        """Start a worker in place of one that died; False (or raise) if it cannot start."""
        try:
            fresh = self._start_worker()
        except BaseException as err:
            with self._changed:
                self._missing += 1
                if not any(not w.dead for w in self._workers):
                    self._forget(call)
                    raise SimulationError(f"A worker process could not be started: {err}") from err
            return False
        with self._changed:
            if not self._closing:
                self._workers.append(fresh)
                self._dispatch()
                return True
        fresh.stop(self._stop_timeout)
        return True

    def _hand_over(self, worker: WorkerLink, call: _Call) -> None:
        """The reply to ``call`` arrived: ``worker`` is idle, give it the next waiting call."""
        with self._changed:
            if worker.current is call:
                worker.current = None
                self._dispatch()

    def _run(
        self, worker: WorkerLink, call: _Call, node_id: int, metadata: Metadata
    ) -> tuple[Message, RecordDict]:
        died = False
        try:
            return worker.reply(lambda: self._hand_over(worker, call))
        except CallFailed:
            raise
        except WorkerDied:
            died = True
            how = worker.end_status()
        except BaseException:
            # Anything else (the app could not load, a damaged reply, an interrupt while
            # waiting) leaves the worker in an unknown state, maybe with a reply still to
            # come: it must not answer the next call.
            died = True
            worker.kill()
            worker.end_status()
            raise
        finally:
            self._finish(worker, call, died)
        if call.cancelled:
            raise SimulationError(_CANCELLED.format(node=node_id))
        message_type = metadata.message_type
        raise SimulationError(
            f"The worker process running node {node_id} ({message_type!r} message) died: "
            f"{how}. A client that calls os._exit(), crashes the interpreter (e.g. a segfault "
            "in native code) or is killed (e.g. by the out-of-memory killer) ends its worker "
            "process; a new one runs the next calls."
        )

    def _finish(self, worker: WorkerLink, call: _Call, died: bool) -> None:
        """``call`` is over: free its worker, or reap and replace it (stop it, when closing)."""
        with self._changed:
            self._calls.pop(call.message_id, None)
            closing = self._closing
            if worker.current is call:
                worker.current = None
            elif worker.current is not None:  # handed over: the next call's thread owns it now
                if died:
                    worker.kill()
                self._changed.notify_all()
                return
            if not (died or closing):
                self._dispatch()
                self._changed.notify_all()
                return
            worker.dead = True
            self._changed.notify_all()
        worker.stop(0.0 if died else self._stop_timeout)
        # Its successor starts now, while the others serve calls, and is lent out after
        # the workers already running, so that its start-up delays no call.
        fresh = None
        if died and not closing:
            try:
                fresh = self._start_worker()
            except Exception:  # counted as missing: a waiting call tries again
                fresh = None
        with self._changed:
            self._workers.remove(worker)
            if fresh is not None and not self._closing:
                self._workers.append(fresh)
                fresh = None
                self._dispatch()
            elif fresh is None and died and not closing:
                self._missing += 1
            self._changed.notify_all()
        if fresh is not None:  # closed meanwhile
            fresh.stop(self._stop_timeout)

    def _start_worker(self) -> WorkerLink:
        return start_worker(self._context, self._app, self._threads)
