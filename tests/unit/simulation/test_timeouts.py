"""A SimulationGrid gives up on calls at their deadline, and what ran them is replaced."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

from fedlab.client import ClientApp
from fedlab.context import Context
from fedlab.errors import SimulationError
from fedlab.message import ErrorCode, Message
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.simulation import SimulationGrid, ThreadBackend

GUARD_S = 30  # how long a test waits for something that must happen at once


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """What the hung clients of a test wait for; set when the test ends, to free them."""
    event = threading.Event()
    yield event
    event.set()


def hanging_app(gate: threading.Event, rendezvous: threading.Barrier | None = None) -> ClientApp:
    """Partition 0 waits for ``gate``; the others meet at ``rendezvous``, then reply."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        if ctx.node_config["partition-id"] == 0:
            gate.wait()
        elif rendezvous is not None:
            rendezvous.wait(GUARD_S)  # only two calls running at once get past this
        return msg.reply(RecordDict({"metrics": MetricRecord({"num-examples": 1})}))

    return app


def message(grid: SimulationGrid, partition: int) -> Message:
    content = RecordDict({"arrays": ArrayRecord({"w": np.zeros(2)}), "config": ConfigRecord()})
    return grid.create_message(content, "train", grid.get_node_ids()[partition], group_id="1")


def codes(replies: list[Message]) -> list[int | None]:
    return [None if r.error is None else r.error.code for r in replies]


@pytest.mark.parametrize("backend", ["inline", "threads"])
def test_a_call_that_overruns_is_a_timeout_and_the_next_calls_are_answered(
    backend: str, gate: threading.Event
) -> None:
    grid = SimulationGrid(hanging_app(gate), 3, backend=backend, max_workers=1, seed=0)
    try:
        first = grid.send_and_receive([message(grid, 0)], timeout=0.5)
        second = grid.send_and_receive([message(grid, 1), message(grid, 2)], timeout=GUARD_S)
    finally:
        grid.close()
    assert codes(first) == [ErrorCode.TIMEOUT]
    assert first[0].error is not None
    assert first[0].error.reason == (
        f"Node {grid.get_node_ids()[0]} did not reply within 0.5s. "
        "Raise the timeout if this client is just slow."
    )
    assert codes(second) == [None, None]  # a fresh thread took the stuck one's place


def test_an_inline_node_stuck_in_an_abandoned_call_is_answered_unavailable_at_once(
    gate: threading.Event,
) -> None:
    grid = SimulationGrid(hanging_app(gate), 2, backend="inline", seed=0)
    stuck = grid.get_node_ids()[0]
    try:
        grid.send_and_receive([message(grid, 0)], timeout=0.5)
        # A deadline far away: only an answer given at once lets the other node reply.
        replies = grid.send_and_receive([message(grid, 0), message(grid, 1)], timeout=3600)
    finally:
        grid.close()
    assert codes(replies) == [ErrorCode.NODE_UNAVAILABLE, None]
    assert replies[0].error is not None
    assert replies[0].error.reason.startswith(
        f"Node {stuck} is still running an earlier call that did not return in time"
    )


def test_a_threads_node_stuck_in_an_abandoned_call_times_out_again_and_frees_its_thread(
    gate: threading.Event,
) -> None:
    grid = SimulationGrid(hanging_app(gate), 3, backend=ThreadBackend(1), seed=0)
    try:
        grid.send_and_receive([message(grid, 0)], timeout=0.5)
        again = grid.send_and_receive([message(grid, 0)], timeout=0.5)
        replies = grid.send_and_receive([message(grid, 1), message(grid, 2)], timeout=GUARD_S)
    finally:
        grid.close()
    assert codes(again) == [ErrorCode.TIMEOUT]
    assert codes(replies) == [None, None]  # the one thread that waited for the node serves on


def test_the_thread_backend_keeps_its_concurrency_after_calls_hang(gate: threading.Event) -> None:
    rendezvous = threading.Barrier(2)
    grid = SimulationGrid(hanging_app(gate, rendezvous), 3, backend=ThreadBackend(2), seed=0)
    try:
        # Partition 0 hangs; the second message to it waits for its node until the deadline.
        grid.send_and_receive([message(grid, 0), message(grid, 0)], timeout=0.5)
        replies = grid.send_and_receive([message(grid, 1), message(grid, 2)], timeout=GUARD_S)
    finally:
        grid.close()
    assert codes(replies) == [None, None]  # both ran at the same time: two threads serve


def test_a_call_queued_behind_a_hung_one_never_runs_once_abandoned(gate: threading.Event) -> None:
    ran: list[int] = []
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        partition = int(ctx.node_config["partition-id"])
        ran.append(partition)
        if partition == 0:
            gate.wait()
        return msg.reply(RecordDict({"metrics": MetricRecord({"num-examples": 1})}))

    grid = SimulationGrid(app, 3, backend=ThreadBackend(1), seed=0)
    try:
        first = grid.send_and_receive([message(grid, 0), message(grid, 1)], timeout=0.5)
        second = grid.send_and_receive([message(grid, 2)], timeout=GUARD_S)
    finally:
        grid.close()
    assert codes(first) == [ErrorCode.TIMEOUT, ErrorCode.TIMEOUT]
    assert codes(second) == [None]
    assert ran == [0, 2]  # partition 1's call was dropped before it started


def test_a_backend_without_the_members_the_grid_needs_is_refused_by_name() -> None:
    class OldBackend:
        name, deferred = "old", False
        concurrency = 1

        def start(self, app: ClientApp) -> None: ...
        def submit(self, fn: object) -> None: ...
        def call(self, message: Message, context: Context) -> None: ...
        def close(self) -> None: ...

    with pytest.raises(SimulationError) as caught:
        SimulationGrid(ClientApp(), 2, backend=OldBackend(), seed=0)  # type: ignore[arg-type]
    assert str(caught.value) == (
        "The backend OldBackend lacks cancel_stops, cancel of the fedlab.simulation.Backend "
        "protocol; add them, or use a built-in backend."
    )
