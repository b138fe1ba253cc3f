"""Idle deadlines for object streams, so that slow peers cannot hold the worker threads.

gRPC's synchronous server gives each call a thread from a fixed pool for as long as the
call lasts. A PushObject whose sender trickles a byte now and then (or sends nothing after
opening the stream), or a PullObject whose reader never reads, would hold its thread for
ever. :class:`StreamDeadlines` watches every object stream from one background thread and
ends a stream that made no progress (no chunk received, or none sent) for ``idle_s``
seconds with ``DEADLINE_EXCEEDED``; the blocked handler then returns and frees its thread.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, final

import grpc

from fedlab.deploy.superlink._ratelog import peer_of, refusals

__all__ = ["DEFAULT_IDLE_S", "StreamDeadlines", "Watch"]

#: Seconds an object stream may go without progress before it is ended.
DEFAULT_IDLE_S = 30.0
_log = logging.getLogger("fedlab.superlink")


@final
class Watch:
    """One watched stream: call :meth:`progress` whenever bytes move, :meth:`close` at the end."""

    def __init__(self, owner: StreamDeadlines, context: Any, what: str) -> None:
        self._owner = owner
        self.context = context
        self.what = what
        self.last = time.monotonic()
        self.expired = False

    def progress(self) -> None:
        """Note that the stream moved (a chunk arrived or was sent)."""
        self.last = time.monotonic()

    def close(self) -> None:
        """Stop watching (the call ended, one way or another)."""
        self._owner._remove(self)

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StreamDeadlines:
    """Ends watched gRPC streams that made no progress for ``idle_s`` seconds.

    Parameters
    ----------
    idle_s
        Seconds without progress after which a stream is ended with DEADLINE_EXCEEDED.
    """

    def __init__(self, idle_s: float = DEFAULT_IDLE_S) -> None:
        if not idle_s > 0:
            raise ValueError(f"idle_s must be a positive number of seconds, got {idle_s!r}.")
        self.idle_s = idle_s
        self._lock = threading.Condition()
        self._watches: set[Watch] = set()
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, context: Any, what: str) -> Watch:
        """Start watching the call of ``context``; ``what`` names it in the error message."""
        watch = Watch(self, context, what)
        with self._lock:
            if self._closed:
                return watch  # shutting down: the server ends every call anyway
            self._watches.add(watch)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="superlink-deadlines", daemon=True
                )
                self._thread.start()
        return watch

    def close(self) -> None:
        """Stop watching every stream, and the background thread with it."""
        with self._lock:
            self._closed = True
            self._watches.clear()
            self._lock.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _remove(self, watch: Watch) -> None:
        with self._lock:
            self._watches.discard(watch)

    def _run(self) -> None:
        # Checks a few times per idle period: an idle stream ends within idle_s * 1.25. The
        # thread ends when nothing is watched (and the next watch starts a new one), so an
        # idle or stopped SuperLink keeps no thread for this.
        step = min(self.idle_s / 4, 1.0)
        while True:
            with self._lock:
                if self._closed or not self._watches:
                    self._thread = None
                    return
                now = time.monotonic()
                expired = [w for w in self._watches if now - w.last >= self.idle_s]
                for watch in expired:
                    self._watches.discard(watch)
            for watch in expired:
                watch.expired = True
                _end(watch.context, f"{watch.what} made no progress for {self.idle_s:g} s and was ended; "
                     "retry on a faster connection.")  # fmt: skip
            with self._lock:
                if not self._closed:
                    self._lock.wait(step)


def _end(context: Any, message: str) -> None:
    """End the call from outside its handler thread, with DEADLINE_EXCEEDED.

    ``context.abort`` works only from the handler's own thread, which is the one blocked
    waiting for the peer. The server call underneath can be cancelled with a status from
    any thread (gRPC core sends that status to the client and wakes the handler); the
    plain ``context.cancel()`` (status CANCELLED) is the fallback if that call is absent.
    """
    refusals.refused("idle stream", peer_of(context), message)
    call = getattr(getattr(context, "_rpc_event", None), "call", None)
    try:
        if call is not None:
            call.cancel(grpc.StatusCode.DEADLINE_EXCEEDED.value[0], message)
        else:
            context.cancel()
    except (RuntimeError, ValueError, TypeError) as err:  # the call may have ended meanwhile
        _log.debug("Could not end an idle stream: %s", err)
