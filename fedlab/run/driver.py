"""Run a federation's coroutine core in a script, in a running loop, or blocking in a kernel.

The engine (ServerApp and strategy) runs synchronously in its own thread. Its events are
handed to an *inbox* that the coroutine core drains on the caller's thread, where display
subscribers run. Two inboxes share that one core:

- :class:`AsyncInbox` awaits events on the running asyncio loop (``await run_async()``,
  ``start()``, and ``asyncio.run`` in scripts);
- :class:`BlockingInbox` waits on a thread queue and never suspends, so the same coroutine
  can be driven to completion with :func:`drive_blocking` from inside a Jupyter cell whose
  loop is already running, without ``asyncio.run`` and without nest_asyncio.

:func:`run_sync` is the one place that picks between them for a blocking call
(``run()``, ``resume()``, ``deploy()``).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from fedlab.errors import RunError
from fedlab.events import ClientReplied, Event, ReplyRejected

__all__ = ["AsyncInbox", "BlockingInbox", "Inbox", "drive_blocking", "run_sync"]

T = TypeVar("T")

#: How long an inbox waits before giving the core a chance to check on the engine thread;
#: also the most a per-client event waits before the caller's thread picks it up.
POLL_S = 0.05


def _urgent(event: Event) -> bool:
    """Whether ``event`` wakes the caller's thread at once.

    Waking a thread hands it the GIL; doing that for each of thousands of per-client
    events slowed rounds by a third. Client events are picked up with the next urgent
    event (a round's end) or within :data:`POLL_S`, which is sooner than any display
    redraws (at most 10 times a second).
    """
    return not isinstance(event, ClientReplied | ReplyRejected)


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
        self._events: deque[Event] = deque()  # appends and pops are atomic
        self._signal = threading.Event()

    def put(self, event: Event) -> None:
        """Queue ``event``; wake the reader if it is urgent."""
        self._events.append(event)
        if _urgent(event):
            self._signal.set()

    async def get(self) -> Event | None:
        """Return the next event, waiting up to POLL_S (blocking the thread) if none."""
        if not self._events:
            self._signal.wait(POLL_S)
            self._signal.clear()
        try:
            return self._events.popleft()
        except IndexError:
            return None


class AsyncInbox:
    """An inbox read on a running asyncio loop."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._events: deque[Event] = deque()
        self._signal = asyncio.Event()
        # Widget updates must run with the cell's context (ipykernel 7 reads it from contextvars).
        self._context = contextvars.copy_context()

    def put(self, event: Event) -> None:
        """Queue ``event``; wake the loop if it is urgent."""
        self._events.append(event)
        if _urgent(event):
            self._loop.call_soon_threadsafe(self._signal.set, context=self._context)

    async def get(self) -> Event | None:
        """Return the next event, awaiting up to POLL_S if none."""
        if not self._events:
            try:
                await asyncio.wait_for(self._signal.wait(), timeout=POLL_S)
            except asyncio.TimeoutError:
                pass
            self._signal.clear()
        try:
            return self._events.popleft()
        except IndexError:
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
    raise RunError(
        "The run's coroutine awaited a loop-bound object; this is a fedlab bug: please report it "
        "with this traceback."
    )


def run_sync(core: Callable[[Inbox], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine ``core(inbox)`` to completion from synchronous code; return its value.

    In a script (no running loop) it runs on a new loop with an :class:`AsyncInbox`; inside
    a running loop (a notebook cell) it is driven on this thread with a
    :class:`BlockingInbox`, so the cell blocks until the run ends.

    Examples
    --------
    >>> async def core(inbox: Inbox) -> str:
    ...     return type(inbox).__name__
    >>> run_sync(core)
    'AsyncInbox'
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:

        async def on_new_loop() -> T:  # an AsyncInbox must be made on the loop it serves
            return await core(AsyncInbox())

        return asyncio.run(on_new_loop())
    return drive_blocking(core(BlockingInbox()))
