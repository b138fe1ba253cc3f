"""`NodeTurns`: calls to one simulated node never overlap; each waits for its node's turn."""

from __future__ import annotations

import threading
import time
from collections.abc import Container
from typing import Literal

__all__ = ["NodeTurns", "Turn"]

#: What a call asking for its node's turn gets (see :meth:`NodeTurns.claim`).
Turn = Literal["ok", "stuck", "given up"]


class NodeTurns:
    """Which call each node is running, guarded by the grid's own lock.

    Parameters
    ----------
    lock
        The grid's lock: the abandoned calls and deadlines that :meth:`claim` reads are
        guarded by it too, so one lock keeps them consistent.
    """

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._busy: dict[int, str] = {}  # node id -> message id of the call it runs
        self._free = threading.Condition(lock)
        self._waiters = 0

    def claim(
        self,
        node_id: int,
        message_id: str,
        *,
        deadline: float | None,
        abandoned: Container[str],
        refuse_stuck: bool,
    ) -> Turn:
        """Mark ``node_id`` busy with ``message_id`` once no other call of the node runs.

        Returns ``"ok"``; ``"stuck"`` if ``refuse_stuck`` and the node is busy with an
        abandoned call (one that did not return in time and could not be stopped, so it
        may never end); ``"given up"`` if this call was abandoned or ``deadline`` passed
        while it waited. Call it without holding the lock.
        """
        with self._lock:
            while True:
                holder = self._busy.get(node_id)
                if message_id in abandoned:
                    return "given up"
                if holder is None:
                    self._busy[node_id] = message_id
                    return "ok"
                if refuse_stuck and holder in abandoned:
                    return "stuck"
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return "given up"
                self._waiters += 1
                try:
                    self._free.wait(left)
                finally:
                    self._waiters -= 1

    def release(self, node_id: int) -> None:
        """The node's call ended: the next call waiting for it may run. Takes the lock."""
        with self._lock:
            del self._busy[node_id]
            self.wake()

    def wake(self) -> None:
        """Let waiting calls look again (e.g. one was abandoned). Call it holding the lock."""
        if self._waiters:
            self._free.notify_all()
