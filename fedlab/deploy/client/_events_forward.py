"""Sending a Grid's events to the SuperLink in the background, in batches, in order.

Emitting an event must never wait on the network (the strategy emits them between
rounds), so events are queued and a thread sends them. A failure to send is logged and
the batch dropped: observers are best-effort, the run itself must go on.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from fedlab.events import Event

__all__ = ["EventForwarder"]

_log = logging.getLogger("fedlab.deploy")
_BATCH = 256
_FLUSH = object()
_CLOSE = object()


class EventForwarder:
    """Queues events and hands them, in batches, to ``send`` on a background thread."""

    def __init__(self, send: Callable[[list[Event]], None], *, linger: float = 0.1) -> None:
        self._send = send
        self._linger = linger
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._flushed = threading.Condition()
        self._flushes_done = 0
        self._thread = threading.Thread(target=self._loop, name="fedlab-events", daemon=True)
        self._thread.start()

    def put(self, event: Event) -> None:
        """Queue ``event`` (a bus subscriber: never blocks)."""
        self._queue.put(event)

    def flush(self, timeout: float = 30.0) -> None:
        """Block until every event queued so far was sent (or ``timeout`` passed)."""
        with self._flushed:
            target = self._flushes_done + 1
            self._queue.put(_FLUSH)
            self._flushed.wait_for(lambda: self._flushes_done >= target, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued (waiting at most ``timeout`` s), then stop the thread."""
        self._queue.put(_CLOSE)
        self._thread.join(timeout)

    def _loop(self) -> None:
        batch: list[Event] = []
        while True:
            try:
                item = self._queue.get(timeout=self._linger if batch else None)
            except queue.Empty:
                item = None
            if isinstance(item, Event):
                batch.append(item)
                if len(batch) < _BATCH:
                    continue
            self._deliver(batch)
            batch = []
            if item is _FLUSH:
                with self._flushed:
                    self._flushes_done += 1
                    self._flushed.notify_all()
            elif item is _CLOSE:
                return

    def _deliver(self, batch: list[Event]) -> None:
        if not batch:
            return
        try:
            self._send(batch)
        except Exception as exc:  # the SuperLink is gone: the run goes on without its log
            _log.warning("Could not forward %d event(s) to the SuperLink: %s", len(batch), exc)
