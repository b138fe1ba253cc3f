"""`WorkerLink`: the grid's end of one worker process of the ``processes`` backend.

It sends nothing itself (the fleet sends calls); it reads the worker's answers, tells a
reply from a failure or a death, and reaps, kills or stops the process.
"""

from __future__ import annotations

import multiprocessing.connection
import multiprocessing.util  # registers its exit handler, which must come before the fleet's
import os
import signal
import socket
import threading
from collections.abc import Callable
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

from fedlab.errors import CodecError, SimulationError
from fedlab.records import RecordDict
from fedlab.simulation._shm import open_segment, receive
from fedlab.simulation._wire import decode_reply
from fedlab.simulation._worker import FAILED, READY, REPLY, serve

if TYPE_CHECKING:
    from fedlab.client import ClientApp
    from fedlab.message import Message

__all__ = ["CallFailed", "WorkerDied", "WorkerLink", "start_worker"]

_POLL_S = 1.0  # how often a waiting call checks that its worker is still alive
_REAP_S = 2.0  # how long to wait for a worker that closed its socket to exit

# A worker sees the grid close its socket only once no other process holds the grid's end,
# and the grid sees a worker die only once no other process holds the worker's end. So
# workers (of every fleet in this process) are forked one at a time, and each forked
# worker closes the grid's ends of all the others' sockets, listed here.
_FORKING = threading.Lock()
_GRID_ENDS: set[socket.socket] = set()  # guarded by _FORKING


class WorkerDied(Exception):
    """The worker's process ended during a call."""


class CallFailed(SimulationError):
    """The worker could not answer this call (it says why) but is ready for the next."""


class WorkerLink:
    """A worker process and the grid's end of its socket.

    ``current`` and ``dead`` are guarded by the fleet's lock; the socket is read only by
    the thread of the ``current`` call.
    """

    #: Seconds to wait for a killed worker's thread to notice, reap it and let it go.
    reap_wait_s = _REAP_S + 2 * _POLL_S

    def __init__(self, process: BaseProcess, sock: socket.socket) -> None:
        self.process = process
        self.pid = process.pid
        self.sock = sock
        self.ready = False
        self.stopped = False
        self.dead = False  # died, or stopping: takes no more calls
        self.current: object | None = None  # the fleet's call running here, if any

    def reply(self, arrived: Callable[[], None]) -> tuple[Message, RecordDict]:
        """Wait for the reply to the current call; call ``arrived()``; return it decoded."""
        try:
            if not self.ready:
                self._await(READY)
                self.ready = True
            fd = self._await(REPLY)
        except OSError as err:  # the socket broke: the worker is gone
            raise WorkerDied from err
        assert fd is not None  # _await checked that REPLY came with a segment
        try:
            arrived()
            return decode_reply(open_segment(fd))
        except CodecError as err:
            raise SimulationError(f"The reply from the worker process is damaged: {err}") from err
        finally:
            os.close(fd)

    def _await(self, expected: bytes) -> int | None:
        op, fd = self._receive()
        if not op:
            raise WorkerDied
        if op == FAILED and fd is not None:
            try:
                text = bytes(open_segment(fd)).decode("utf-8", "replace")
            finally:
                os.close(fd)
            # Before READY, the worker could not load the app and exits; see Fleet.call.
            raise (CallFailed if expected == REPLY else SimulationError)(text)
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
        with _FORKING:
            _GRID_ENDS.discard(self.sock)
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


def start_worker(context: BaseContext, app: ClientApp | bytes, threads: int | None) -> WorkerLink:
    """Start one worker process for ``app`` and return the link to it."""
    with _FORKING:
        ours, theirs = socket.socketpair()
        inherited: list[int] = []
        if context.get_start_method() == "fork":
            inherited = [end.fileno() for end in (*_GRID_ENDS, ours)]
        process = context.Process(  # type: ignore[attr-defined]
            target=serve,
            args=(theirs, app, inherited, threads),
            name="fedlab-client-worker",
        )
        try:
            process.start()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        _GRID_ENDS.add(ours)
        return WorkerLink(process, ours)
