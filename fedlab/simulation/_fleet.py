"""The worker processes of a :class:`~fedlab.simulation.processes.ProcessBackend`.

A :class:`Fleet` holds the workers of one ``start``; each worker is idle or busy with one
call, and a busy worker belongs to the thread running that call: only that thread talks
to it, reaps it when it dies, or stops it. ``close`` stops the idle workers and kills the
busy ones that do not finish in time, which wakes their threads to reap them; ``cancel``
kills the workers of calls the grid gave up on in the same way.
"""

from __future__ import annotations

import atexit
import multiprocessing.connection
import multiprocessing.util  # registers its exit handler, which must come before ours
import os
import signal
import socket
import threading
import time
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

from fedlab.errors import CodecError, SimulationError
from fedlab.records import RecordDict
from fedlab.simulation._shm import open_segment, receive, send
from fedlab.simulation._wire import decode_reply
from fedlab.simulation._worker import CALL, FAILED, READY, REPLY, serve

if TYPE_CHECKING:
    from collections.abc import Collection

    from fedlab.client import ClientApp
    from fedlab.message import Message, Metadata

__all__ = ["Fleet"]

_POLL_S = 1.0  # how often a waiting call checks that its worker is still alive
_REAP_S = 2.0  # how long to wait for a worker that closed its socket to exit

# A worker sees the grid close its socket only once no other process holds the grid's end,
# and the grid sees a worker die only once no other process holds the worker's end. So
# workers (of every fleet in this process) are forked one at a time, and each forked
# worker closes the grid's ends of all the others' sockets, listed here.
_forking = threading.Lock()
_grid_ends: set[socket.socket] = set()  # guarded by _forking


class _WorkerDied(Exception):
    """The worker's process ended during a call."""


class _CallFailed(SimulationError):
    """The worker could not answer this call (it says why) but is ready for the next."""


class _Worker:
    """A worker process and the grid's end of its socket; used by one thread at a time."""

    def __init__(self, process: BaseProcess, sock: socket.socket) -> None:
        self.process = process
        self.pid = process.pid
        self.sock = sock
        self.ready = False
        self.stopped = False
        self.cancelled = False

    def call(self, request: int) -> tuple[Message, RecordDict]:
        """Send the request segment; return the decoded reply and state."""
        try:
            if not self.ready:
                self._await(READY)
                self.ready = True
            send(self.sock, CALL, request)
            fd = self._await(REPLY)
        except OSError as err:  # the socket broke: the worker is gone
            raise _WorkerDied from err
        assert fd is not None  # _await checked that REPLY came with a segment
        try:
            return decode_reply(open_segment(fd))
        except CodecError as err:
            raise SimulationError(f"The reply from the worker process is damaged: {err}") from err
        finally:
            os.close(fd)

    def _await(self, expected: bytes) -> int | None:
        op, fd = self._receive()
        if not op:
            raise _WorkerDied
        if op == FAILED and fd is not None:
            try:
                text = bytes(open_segment(fd)).decode("utf-8", "replace")
            finally:
                os.close(fd)
            # Before READY, the worker could not load the app and exits; see Fleet.call.
            raise (_CallFailed if expected == REPLY else SimulationError)(text)
        if op != expected or (fd is None) != (expected == READY):
            if fd is not None:
                os.close(fd)
            raise SimulationError(f"A worker process answered {op!r} instead of {expected!r}.")
        return fd

    def _receive(self) -> tuple[bytes, int | None]:
        # Wait for the socket, checking that the process lives: a dead worker's socket may
        # stay open if the client had started processes of its own that inherited it.
        sentinel = self.process.sentinel
        while True:
            ready = multiprocessing.connection.wait([self.sock, sentinel], _POLL_S)
            if self.sock in ready:
                return receive(self.sock)
            if ready or not self.process.is_alive():
                return b"", None

    def end_status(self) -> str:
        """Reap the dead worker and describe how it ended."""
        self.process.join(_REAP_S)
        if self.process.exitcode is None:  # it closed its socket but lives on
            self.process.kill()
            self.process.join(_REAP_S)
        code = self.process.exitcode
        if code is None:
            return "it stopped answering"
        if code < 0:
            try:
                return f"killed by signal {signal.Signals(-code).name} ({-code})"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"

    def kill(self) -> None:
        """Kill the process now (its thread, waiting for the reply, then reaps it)."""
        try:
            self.process.kill()
        except ValueError:  # its thread has just reaped and closed it
            pass

    def close_socket(self) -> None:
        """Close the grid's end of the socket: the worker exits once its call is done."""
        with _forking:
            _grid_ends.discard(self.sock)
            self.sock.close()

    def stop(self, timeout: float) -> None:
        """Close the socket, wait up to ``timeout`` s for the process to end, kill it, reap it."""
        if self.stopped:
            return
        self.close_socket()
        self.process.join(max(timeout, 0.0))
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join(_REAP_S)
        if self.process.exitcode is not None:
            self.process.close()
            self.stopped = True


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
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._missing = 0  # workers that died and could not be replaced yet
        self._calls: dict[str, _Worker] = {}  # message id -> the busy worker running it
        self._closing = False
        # At exit, stop the workers before multiprocessing waits for its children (forever,
        # as workers wait for calls): atexit runs the handlers registered last first.
        atexit.register(self.close)
        try:
            for _ in range(size):
                self._idle.append(self._start_worker())
        except BaseException:
            self.close()
            raise

    def pids(self) -> list[int]:
        with self._changed:
            return sorted(w.pid for w in (*self._idle, *self._busy) if w.pid is not None)

    def call(self, request: int, node_id: int, metadata: Metadata) -> tuple[Message, RecordDict]:
        worker = self._acquire()
        died = False
        with self._changed:
            self._calls[metadata.message_id] = worker
        try:
            return worker.call(request)
        except _CallFailed:
            raise
        except _WorkerDied:
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
            with self._changed:
                del self._calls[metadata.message_id]
            self._release(worker, died)
        if worker.cancelled:
            raise SimulationError(
                f"The worker process running node {node_id} was killed: the call did not "
                "return in time. A new worker runs the next calls."
            )
        message_type = metadata.message_type
        raise SimulationError(
            f"The worker process running node {node_id} ({message_type!r} message) died: "
            f"{how}. A client that calls os._exit(), crashes the interpreter (e.g. a segfault "
            "in native code) or is killed (e.g. by the out-of-memory killer) ends its worker "
            "process; a new one runs the next calls."
        )

    def cancel(self, message_ids: Collection[str]) -> None:
        """Kill the workers running these calls (their threads reap and replace them)."""
        with self._changed:  # held, so that no worker is released to another call meanwhile
            for message_id in message_ids:
                worker = self._calls.get(message_id)
                if worker is not None:
                    worker.cancelled = True
                    worker.kill()

    def close(self) -> None:
        atexit.unregister(self.close)
        with self._changed:
            if self._closing:
                return
            self._closing = True
            idle, self._idle = self._idle, []
            self._changed.notify_all()
        for worker in idle:
            worker.close_socket()  # all exit at once; then reap them one by one
        deadline = time.monotonic() + self._stop_timeout
        with self._changed:
            if not self._changed.wait_for(lambda: not self._busy, self._stop_timeout):
                for worker in self._busy:
                    worker.kill()  # its thread wakes up, reaps and releases it
                self._changed.wait_for(lambda: not self._busy, _REAP_S + 2 * _POLL_S)
        for worker in idle:
            worker.stop(deadline - time.monotonic())

    def _acquire(self) -> _Worker:
        # A worker that died and could not be replaced then is started first, so that calls
        # run on all workers again.
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._idle or self._missing or self._closing)
                if self._closing:
                    raise SimulationError("The processes backend was closed; start it again.")
                if not self._missing:
                    return self._take_idle()
                self._missing -= 1
            try:
                worker = self._start_worker()
            except BaseException as err:
                with self._changed:
                    self._missing += 1
                    if self._idle:
                        return self._take_idle()
                raise SimulationError(f"A worker process could not be started: {err}") from err
            with self._changed:
                if not self._closing:
                    self._busy.add(worker)
                    return worker
            worker.stop(self._stop_timeout)

    def _take_idle(self) -> _Worker:
        worker = self._idle.pop()
        self._busy.add(worker)
        return worker

    def _release(self, worker: _Worker, died: bool) -> None:
        with self._changed:
            closing = self._closing
            if not (died or closing):
                self._busy.discard(worker)
                self._idle.append(worker)
                self._changed.notify_all()
                return
        # Stopped before it leaves the busy set, so that close() returns once it is reaped.
        worker.stop(0.0 if died else self._stop_timeout)
        # Its successor starts now, while the others serve calls, and is lent out after
        # the workers already running, so that its start-up delays no call.
        fresh = None
        if died and not closing:
            try:
                fresh = self._start_worker()
            except Exception:  # counted as missing: the next _acquire tries again
                fresh = None
        with self._changed:
            self._busy.discard(worker)
            if fresh is not None and not self._closing:
                self._idle.insert(0, fresh)
                fresh = None
            elif fresh is None and died and not closing:
                self._missing += 1
            self._changed.notify_all()
        if fresh is not None:  # closed meanwhile
            fresh.stop(self._stop_timeout)

    def _start_worker(self) -> _Worker:
        with _forking:
            ours, theirs = socket.socketpair()
            inherited: list[int] = []
            if self._context.get_start_method() == "fork":
                inherited = [end.fileno() for end in (*_grid_ends, ours)]
            process = self._context.Process(  # type: ignore[attr-defined]
                target=serve,
                args=(theirs, self._app, inherited, self._threads),
                name="fedlab-client-worker",
            )
            try:
                process.start()
            except BaseException:
                ours.close()
                raise
            finally:
                theirs.close()
            _grid_ends.add(ours)
            return _Worker(process, ours)
