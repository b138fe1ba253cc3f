"""The daemon threads that run in-process client calls."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator

import pytest

from fedlab.errors import SimulationError
from fedlab.simulation._daemon_pool import DaemonPool

GUARD_S = 30  # how long a test waits for something that must happen at once


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """An event the stuck calls of a test wait for; set when the test ends."""
    event = threading.Event()
    yield event
    event.set()


def stuck_call(pool: DaemonPool, gate: threading.Event) -> threading.Thread:
    """Submit a call that waits for ``gate``; return the thread running it once it runs."""
    running: list[threading.Thread] = []
    started = threading.Event()

    def call() -> None:
        running.append(threading.current_thread())
        started.set()
        gate.wait()

    pool.submit(call)
    assert started.wait(GUARD_S)
    return running[0]


def test_calls_run_on_daemon_threads_named_after_the_pool() -> None:
    pool = DaemonPool(2, "fedlab-client")
    try:
        thread = pool.submit(threading.current_thread).result(GUARD_S)
    finally:
        pool.shutdown()
    assert thread.daemon
    assert thread.name.startswith("fedlab-client-")


def test_a_retired_thread_is_replaced_so_the_next_call_runs_while_it_is_stuck(
    gate: threading.Event,
) -> None:
    pool = DaemonPool(1, "test")
    try:
        stuck = stuck_call(pool, gate)
        pool.retire(stuck)
        assert pool.submit(lambda: 42).result(GUARD_S) == 42
        assert stuck.is_alive()
        gate.set()
        stuck.join(GUARD_S)
        assert not stuck.is_alive()  # it ended after its call instead of serving again
    finally:
        pool.shutdown()


def test_shutdown_cancels_the_calls_not_started_and_leaves_a_running_one_be(
    gate: threading.Event,
) -> None:
    pool = DaemonPool(1, "test")
    stuck = stuck_call(pool, gate)
    queued = pool.submit(lambda: 1)
    pool.shutdown()
    assert queued.cancelled()
    with pytest.raises(SimulationError, match="start the backend again"):
        pool.submit(lambda: 2)
    gate.set()
    stuck.join(GUARD_S)
    assert not stuck.is_alive()


def test_a_call_sees_the_context_variables_of_the_thread_that_submitted_it() -> None:
    cell: contextvars.ContextVar[str] = contextvars.ContextVar("cell", default="unset")
    pool = DaemonPool(1, "test")
    try:
        cell.set("notebook cell 3")
        assert pool.submit(cell.get).result(GUARD_S) == "notebook cell 3"
    finally:
        pool.shutdown()


def test_an_exception_in_a_call_reaches_its_future_and_the_thread_serves_on() -> None:
    pool = DaemonPool(1, "test")
    try:
        failing = pool.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            failing.result(GUARD_S)
        assert pool.submit(lambda: "next").result(GUARD_S) == "next"
    finally:
        pool.shutdown()
