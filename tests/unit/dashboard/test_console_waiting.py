"""Terminal consoles say which client a stalled round waits on, against a fake clock."""

from __future__ import annotations

import io

from rich.console import Console

from fedlab.dashboard import PlainConsole, RichConsole
from fedlab.events import ClientReplied, Event, RoundAggregated, RoundStarted, RunStarted
from fedlab.message import Error, ErrorCode


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def reply(
    node: int, partition: int, at: float, rnd: int = 1, timed_out: bool = False
) -> ClientReplied:
    return ClientReplied(
        run_id=7,
        round=rnd,
        phase="train",
        node_id=node,
        metrics={},
        duration_s=1.0,
        error=Error(ErrorCode.TIMEOUT, "Node did not reply") if timed_out else None,
        partition_id=partition,
        timestamp=at,
    )


def round_one_waiting_on_node_12() -> list[Event]:
    """Nodes 11 and 13 reply by t=101.5; node 12 (sent work second) never does."""
    return [
        RunStarted(
            run_id=7, num_rounds=2, node_ids=(11, 12, 13), strategy="FedAvg", timestamp=99.0
        ),
        RoundStarted(run_id=7, round=1, phase="train", node_ids=(11, 12, 13), timestamp=100.0),
        reply(11, 0, at=101.0),
        reply(13, 2, at=101.5),
    ]


def test_plain_console_names_the_client_a_round_waits_on_after_five_seconds_then_as_the_wait_doubles() -> (
    None
):
    clock, stream = FakeClock(), io.StringIO()
    console = PlainConsole(stream, clock=clock)
    for event in round_one_waiting_on_node_12():
        console(event)
    written = {}
    for now in (102.0, 106.4, 106.5, 107.0, 111.4, 111.5, 112.5, 200.5):
        clock.now = now
        before = len(stream.getvalue().splitlines())
        console.idle()
        new = stream.getvalue().splitlines()[before:]
        if new:
            written[now] = new
    assert written == {
        106.5: ["round 1 train: waiting on node 12 for 5s"],
        111.5: ["round 1 train: waiting on node 12 for 10s"],
        200.5: ["round 1 train: waiting on node 12 for 99s"],
    }


def test_a_client_that_replied_before_is_named_by_its_partition_and_nodes_still_out_are_counted() -> (
    None
):
    clock, stream = FakeClock(), io.StringIO()
    console = PlainConsole(stream, clock=clock)
    events = [
        *round_one_waiting_on_node_12(),
        reply(12, 1, at=103.0, timed_out=True),
        RoundAggregated(
            run_id=7,
            round=1,
            metrics={},
            num_replies=2,
            num_failures=1,
            train_duration_s=3.0,
            aggregate_duration_s=0.0,
            timestamp=103.0,
        ),
        RoundStarted(run_id=7, round=2, phase="train", node_ids=(13, 12, 11), timestamp=104.0),
        reply(13, 2, at=104.5, rnd=2),
    ]
    for event in events:
        console(event)
    clock.now = 116.5
    console.idle()
    assert stream.getvalue().splitlines()[-1] == (
        "round 2 train: waiting on client 1 (node 12) for 12s, 1 more not replied"
    )


def test_a_phase_whose_clients_all_replied_is_not_waiting_while_the_server_aggregates() -> None:
    clock, stream = FakeClock(), io.StringIO()
    console = PlainConsole(stream, clock=clock)
    for event in [*round_one_waiting_on_node_12(), reply(12, 1, at=102.0)]:
        console(event)
    before = stream.getvalue()
    clock.now = 500.0
    console.idle()
    assert stream.getvalue() == before


def test_rich_console_shows_the_wait_under_the_progress_bars_until_the_next_reply() -> None:
    clock = FakeClock()
    console = RichConsole(Console(file=io.StringIO(), force_terminal=True, width=100), clock=clock)
    try:
        for event in round_one_waiting_on_node_12():
            console(event)

        def frame() -> str:
            out = Console(file=io.StringIO(), width=100)
            out.print(console._renderable())
            return out.file.getvalue()  # type: ignore[attr-defined, no-any-return]

        clock.now = 104.0
        console.idle()
        assert "waiting on" not in frame()
        clock.now = 109.5
        console.idle()
        assert "round 1 train: waiting on node 12 for 8s" in frame()
        console(reply(12, 1, at=109.6))
        assert "waiting on" not in frame()
    finally:
        console.close()


def test_the_notebook_dashboard_status_names_the_client_a_round_waits_on() -> None:
    from fedlab.dashboard import Dashboard

    clock = FakeClock()
    view = Dashboard()
    view._wall_clock = clock  # events carry the fake clock's timestamps
    for event in round_one_waiting_on_node_12():
        view(event)
    clock.now = 104.0
    view.idle()
    view.flush()
    assert "waiting on" not in view.status
    clock.now = 107.0
    view.idle()
    view.flush()
    assert view.status.endswith(" · round 1 train: waiting on node 12 for 6s")
    view(reply(12, 1, at=107.5))
    view.flush()
    assert "waiting on" not in view.status
