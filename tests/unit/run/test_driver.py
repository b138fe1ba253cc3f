"""Driving the run's coroutine without an event loop, as run() does inside a kernel."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from fedlab.run.driver import BlockingInbox, drive_blocking
from fedlab.errors import ConfigurationError, RunError


def test_drive_blocking_returns_what_a_coroutine_on_a_blocking_inbox_returns() -> None:
    async def core(inbox: BlockingInbox) -> int:
        assert await inbox.get() is None  # nothing queued: it waits briefly, never suspends
        return 7

    assert drive_blocking(core(BlockingInbox())) == 7


def test_a_coroutine_that_awaits_a_loop_is_closed_and_reported_as_a_fedlab_bug() -> None:
    loop = asyncio.new_event_loop()
    try:
        future = loop.create_future()

        async def core() -> None:
            await future

        coro = core()
        with pytest.raises(RunError) as info:
            drive_blocking(coro)
    finally:
        loop.close()

    assert str(info.value) == (
        "The run's coroutine awaited a loop-bound object; this is a fedlab bug: please report "
        "it with this traceback."
    )
    assert not isinstance(info.value, ConfigurationError)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
