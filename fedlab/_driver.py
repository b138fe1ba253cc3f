"""Run a federation's coroutine core in a script, in a running loop, or blocking in a kernel.

The engine (ServerApp and strategy) runs synchronously in its own thread. Its events are
handed to an *inbox* that the coroutine core drains on the caller's thread, where display
subscribers run. Two inboxes share that one core:

- :class:`AsyncInbox` awaits events on the running asyncio loop (``await run_async()``,
  ``start()``, and ``asyncio.run`` in scripts);
- :class:`BlockingInbox` waits on a thread queue and never suspends, so the same coroutine
  can be driven to completion with :func:`drive_blocking` from inside a Jupyter cell whose
  loop is already running, without ``asyncio.run`` and without nest_asyncio.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

from fedlab.errors import FederationError
from fedlab.events import Event

T = TypeVar("T")

#: How long an inbox waits before giving the core a chance to check on the engine thread.
POLL_S = 0.1


class Inbox(Protocol):
    """Where the engine thread drops events for the caller's thread."""

    def put(self, event: Event) -> None:
        """Hand over ``event``; called from any thread."""
        ...

    async def get(self) -> Event | None:
        """Return the next event, or None after a short wait without one."""
        ...


class BlockingInbox:
    """An inbox that blocks the calling thread; its ``get`` never suspends."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Event] = queue.SimpleQueue()

    def put(self, event: Event) -> None:
        """Queue ``event``."""
        self._queue.put(event)

    async def get(self) -> Event | None:
        """Wait up to POLL_S for an event, blocking the thread."""
        try:
            return self._queue.get(timeout=POLL_S)
        except queue.Empty:
            return None


class AsyncInbox:
    """An inbox read on a running asyncio loop; events hop there with the caller's context."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        # Widget updates must run with the cell's context (ipykernel 7 reads it from contextvars).
        self._context = contextvars.copy_context()

    def put(self, event: Event) -> None:
        """Schedule ``event`` onto the loop thread."""
        self._loop.call_soon_threadsafe(self._queue.put_nowait, event, context=self._context)

    async def get(self) -> Event | None:
        """Await the next event for up to POLL_S."""
        try:
            return await asyncio.wait_for(self._queue.get(), timeout=POLL_S)
        except asyncio.TimeoutError:
            return None


def drive_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on this thread, without an event loop.

    Works for coroutines that only await a :class:`BlockingInbox` (which never suspends).
    """
    try:
        coro.send(None)
    except StopIteration as finished:
        return finished.value  # type: ignore[no-any-return]
    coro.close()
    raise FederationError("The run's coroutine awaited a loop-bound object; this is a fedlab bug.")
