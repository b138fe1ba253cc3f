"""Terminal consoles: exact plain lines, the rich live view, and choosing between them."""

from __future__ import annotations

import io
import re
import sys
import threading
import types
from typing import Any

import pytest
import rich.live
from rich.console import Console

from fedlab.dashboard import DISPLAYS, PlainConsole, RichConsole, make_display, select_console
from fedlab.errors import FederationError
from fedlab.events import (
    ClientReplied,
    Evaluated,
    Event,
    EventBus,
    ReplyRejected,
    RoundAggregated,
    RoundStarted,
    RunFinished,
    RunStarted,
    StrategyReport,
)
from fedlab.message import Error, ErrorCode

BOOM = Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, "ValueError: boom\nTraceback (most recent...)")


def train_round(r: int, *, failed: tuple[int, ...] = (), loss: float = 0.5) -> list[Event]:
    replies: list[Event] = [
        ClientReplied(
            run_id=7,
            round=r,
            phase="train",
            node_id=n,
            metrics={} if n in failed else {"loss": loss},
            duration_s=0.5,
            error=BOOM if n in failed else None,
        )
        for n in (1, 2, 3)
    ]
    return [
        RoundStarted(run_id=7, round=r, phase="train", node_ids=(1, 2, 3)),
        *replies,
        RoundAggregated(
            run_id=7,
            round=r,
            metrics={"loss": loss, "num-examples": 30},
            num_replies=3 - len(failed),
            num_failures=len(failed),
            train_duration_s=1.0,
            aggregate_duration_s=0.25,
        ),
    ]


def evaluation(r: int, accuracy: float) -> list[Event]:
    return [
        RoundStarted(run_id=7, round=r, phase="evaluate", node_ids=(1, 2)),
        *[
            ClientReplied(
                run_id=7, round=r, phase="evaluate", node_id=n, metrics={"acc": 1}, duration_s=0.1
            )
            for n in (1, 2)
        ],
        Evaluated(
            run_id=7,
            round=r,
            source="clients",
            metrics={"accuracy": accuracy},
            duration_s=0.5,
            num_replies=2,
        ),
        Evaluated(
            run_id=7, round=r, source="server", metrics={"accuracy": accuracy}, duration_s=1.0
        ),
    ]


def run_events(error: str | None = None) -> list[Event]:
    return [
        RunStarted(run_id=7, num_rounds=2, node_ids=(1, 2, 3), strategy="FedAvg"),
        Evaluated(
            run_id=7,
            round=0,
            source="server",
            metrics={"loss": 2.3, "accuracy": 0.1},
            duration_s=0.125,
        ),
        *train_round(1, loss=0.43123),
        *evaluation(1, 0.912),
        *train_round(2, failed=(3,), loss=0.25),
        StrategyReport(run_id=7, round=2, strategy="FedAvg", info={"kept": [1, 2]}),
        RunFinished(run_id=7, rounds_completed=2, duration_s=12.34, error=error),
    ]


def plain_output(events: list[Event]) -> list[str]:
    stream = io.StringIO()
    console = PlainConsole(stream)
    for event in events:
        console(event)
    return stream.getvalue().splitlines()


def test_plain_console_writes_a_start_line_one_line_per_round_and_a_final_line() -> None:
    assert plain_output(run_events()) == [
        "run started: FedAvg, 2 rounds, 3 nodes",
        "round 0/2  server loss=2.3000 accuracy=0.1000  0.12s",
        (
            "round 1/2  clients 3/3 (0 failed)  train loss=0.4312 num-examples=30"
            "  evaluate accuracy=0.9120  server accuracy=0.9120  2.75s"
        ),
        "client 3 failed in round 2 (train): ValueError: boom",
        "round 2/2  clients 2/3 (1 failed)  train loss=0.2500 num-examples=30  1.25s",
        "run finished: 2 rounds in 12.3s, 1 client failure",
    ]


def test_plain_console_ends_with_the_error_of_a_failed_run() -> None:
    lines = plain_output(run_events(error="RuntimeError: out of memory\nTraceback ..."))
    assert lines[-1] == (
        "run failed: 2 of 2 rounds in 12.3s, 1 client failure; error: RuntimeError: out of memory"
    )


def test_plain_console_says_when_a_round_was_not_aggregated_or_the_run_stopped_early() -> None:
    events: list[Event] = [
        RunStarted(run_id=1, num_rounds=10, node_ids=(1, 2), strategy="FedAvg", start_round=3),
        RoundStarted(run_id=1, round=3, phase="train", node_ids=(1, 2)),
        ClientReplied(
            run_id=1,
            round=3,
            phase="train",
            node_id=1,
            metrics={},
            duration_s=9.0,
            error=Error(ErrorCode.TIMEOUT),
        ),
        RoundAggregated(
            run_id=1,
            round=3,
            metrics={},
            num_replies=1,
            num_failures=1,
            train_duration_s=9.0,
            aggregate_duration_s=0.0,
            aggregated=False,
            reason="too few replies (1 < 2)",
        ),
        RunFinished(run_id=1, rounds_completed=1, duration_s=725.0, stopped_early=True),
    ]
    assert plain_output(events) == [
        "run started: FedAvg, 10 rounds from round 3, 2 nodes",
        "client 1 failed in round 3 (train): TIMEOUT",
        "round 3/12  clients 1/2 (1 failed)  not aggregated: too few replies (1 < 2)  9.00s",
        "run stopped early: 1 of 10 rounds in 12m 05s, 1 client failure; round 3 aggregated nothing",
    ]


def test_plain_console_shows_at_most_four_metrics_loss_and_accuracy_first() -> None:
    metrics = {"f1": 0.5, "num-examples": 10, "accuracy": 0.75, "recall": 0.25, "loss": 1.5}
    events: list[Event] = [
        RoundAggregated(
            run_id=1,
            round=1,
            metrics=metrics,
            num_replies=1,
            num_failures=0,
            train_duration_s=1.0,
            aggregate_duration_s=0.0,
        ),
        RunFinished(run_id=1, rounds_completed=1, duration_s=1.0),
    ]
    assert plain_output(events)[0] == (
        "round 1  clients 1/1 (0 failed)  train loss=1.5000 accuracy=0.7500 f1=0.5000"
        " recall=0.2500  1.00s"
    )


def test_plain_console_reports_a_straggler_of_a_shown_round_without_reopening_it() -> None:
    late = ClientReplied(
        run_id=7,
        round=1,
        phase="train",
        node_id=9,
        metrics={},
        duration_s=1.0,
        error=Error(ErrorCode.TIMEOUT, "no reply within 30s"),
    )
    events = run_events()
    lines = plain_output([*events[:-1], late, events[-1]])
    assert lines[-3:] == [
        "client 9 failed in round 1 (train): no reply within 30s",
        "round 2/2  clients 2/3 (1 failed)  train loss=0.2500 num-examples=30  1.25s",
        "run finished: 2 rounds in 12.3s, 2 client failures",
    ]


NODE = 8211050864078048428  # how the runtime numbers a simulated client


def simulated_failure(partition_id: int | None) -> ClientReplied:
    return ClientReplied(
        run_id=7,
        round=1,
        phase="train",
        node_id=NODE,
        partition_id=partition_id,
        metrics={},
        duration_s=0.5,
        error=BOOM,
    )


def test_plain_console_names_a_simulated_client_by_its_partition_then_its_node_id() -> None:
    started = RunStarted(run_id=7, num_rounds=1, node_ids=(NODE,), strategy="FedAvg")
    assert plain_output([started, simulated_failure(7)])[1] == (
        "client 7 (node 8211050864078048428) failed in round 1 (train): ValueError: boom"
    )


def test_plain_console_names_a_client_without_a_partition_by_its_node_id() -> None:
    started = RunStarted(run_id=7, num_rounds=1, node_ids=(NODE,), strategy="FedAvg")
    assert plain_output([started, simulated_failure(None)])[1] == (
        "client 8211050864078048428 failed in round 1 (train): ValueError: boom"
    )


def test_the_first_line_says_once_what_the_run_left_out() -> None:
    note = "federated evaluation skipped: the ClientApp has no @app.evaluate()"
    events = run_events()
    events[0] = RunStarted(run_id=7, num_rounds=2, node_ids=(1, 2, 3), strategy="FedAvg", note=note)
    lines = plain_output(events)
    assert lines[0] == f"run started: FedAvg, 2 rounds, 3 nodes; {note}"
    assert sum(note in line for line in lines) == 1


class Spy:
    """Counts Live.start and Live.stop calls while delegating to rich."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.starts = self.stops = 0
        start, stop = rich.live.Live.start, rich.live.Live.stop

        def spy_start(live: rich.live.Live, refresh: bool = False) -> None:
            self.starts += 1
            start(live, refresh)

        def spy_stop(live: rich.live.Live) -> None:
            self.stops += 1
            stop(live)

        monkeypatch.setattr(rich.live.Live, "start", spy_start)
        monkeypatch.setattr(rich.live.Live, "stop", spy_stop)


def rich_console() -> tuple[RichConsole, io.StringIO]:
    stream = io.StringIO()
    return RichConsole(Console(file=stream, force_terminal=True, width=100)), stream


def plain_text(stream: io.StringIO) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())


def test_rich_console_runs_a_live_view_from_run_started_to_run_finished(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = Spy(monkeypatch)
    console, stream = rich_console()
    events = run_events()
    for event in events[:-1]:
        console(event)
        assert console.is_live
    console(events[-1])
    assert not console.is_live
    assert (spy.starts, spy.stops) == (1, 1)
    text = plain_text(stream)
    assert "run started: FedAvg, 2 rounds, 3 nodes" in text
    assert "round 2/2" in text  # the round counter of the progress bar
    assert "clients 3/3 (1 failed)" in text  # the clients of the current phase
    assert "round 2  train loss=0.2500" in text  # the latest metrics, below the bars
    assert "client 3 failed in round 2 (train): ValueError: boom" in text
    assert "round 1/2  clients 3/3 (0 failed)  train loss=0.4312" in text  # the log above
    assert text.rstrip().endswith("run finished: 2 rounds in 12.3s, 1 client failure")


def test_rich_console_names_a_simulated_client_by_its_partition_then_its_node_id() -> None:
    console, stream = rich_console()
    console(RunStarted(run_id=7, num_rounds=1, node_ids=(NODE,), strategy="FedAvg"))
    console(simulated_failure(7))
    console(RunFinished(run_id=7, rounds_completed=1, duration_s=1.0))
    text = plain_text(stream)
    assert "client 7 (node 8211050864078048428) failed in round 1 (train): ValueError: boom" in text


def test_rich_console_stops_the_live_view_when_the_run_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = Spy(monkeypatch)
    console, stream = rich_console()
    for event in run_events(error="RuntimeError: out of memory"):
        console(event)
    assert (spy.starts, spy.stops, console.is_live) == (1, 1, False)
    assert "error: RuntimeError: out of memory" in plain_text(stream)


def test_rich_console_stops_the_live_view_even_if_drawing_the_end_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    console, _ = rich_console()
    console(RunStarted(run_id=1, num_rounds=1, node_ids=(1,), strategy="FedAvg"))

    def broken(event: Event) -> None:
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(console, "_print_rounds", broken)
    with pytest.raises(RuntimeError, match="drawing failed"):
        console(RunFinished(run_id=1, rounds_completed=1, duration_s=1.0))
    assert not console.is_live


def test_rich_console_close_stops_a_live_view_left_running() -> None:
    console, _ = rich_console()
    console(RunStarted(run_id=1, num_rounds=1, node_ids=(1,), strategy="FedAvg"))
    console.close()
    console.close()
    assert not console.is_live


def test_rich_console_takes_replies_from_eight_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    console, stream = rich_console()
    bus = EventBus()
    bus.subscribe(console)
    nodes = tuple(range(80))
    bus.emit(RunStarted(run_id=1, num_rounds=1, node_ids=nodes, strategy="FedAvg"))
    bus.emit(RoundStarted(run_id=1, round=1, phase="train", node_ids=nodes))

    def worker(first: int) -> None:
        for n in range(first, first + 10):
            bus.emit(
                ClientReplied(
                    run_id=1,
                    round=1,
                    phase="train",
                    node_id=n,
                    metrics={"loss": 0.5},
                    duration_s=0.1,
                )
            )

    threads = [threading.Thread(target=worker, args=(10 * t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bus.emit(RunFinished(run_id=1, rounds_completed=1, duration_s=1.0))
    assert bus.subscriber_errors == []
    assert (spy.starts, spy.stops) == (1, 1)
    assert "clients 80/80" in plain_text(stream)


@pytest.fixture
def no_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEDLAB_DISPLAY", raising=False)
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    # A kernel gets the notebook dashboard (tested in test_widget_display.py); here only
    # which kind was chosen matters.
    import fedlab.dashboard.display as display

    monkeypatch.setattr(display, "_notebook", lambda kind, stream, on_stop: f"notebook {kind}")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def fake_ipython(monkeypatch: pytest.MonkeyPatch, class_name: str, module: str) -> None:
    shell_class = type(class_name, (), {"__module__": module})
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = shell_class  # type: ignore[attr-defined]  # returns a shell instance
    monkeypatch.setitem(sys.modules, "IPython", ipython)


@pytest.mark.usefixtures("no_notebook")
@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("plain", PlainConsole),
        ("rich", RichConsole),
        ("widget", "notebook widget"),
        ("static", "notebook static"),
        (" Rich ", RichConsole),
    ],
)
def test_select_console_obeys_fedlab_display(
    monkeypatch: pytest.MonkeyPatch, value: str, kind: Any
) -> None:
    monkeypatch.setenv("FEDLAB_DISPLAY", value)
    chosen = select_console(io.StringIO())
    assert (chosen if isinstance(chosen, str) else type(chosen)) == kind


@pytest.mark.usefixtures("no_notebook")
def test_make_display_gives_the_named_display_whatever_fedlab_display_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FEDLAB_DISPLAY", "none")  # read only for "auto"
    stream = Terminal()
    rich = make_display("rich", stream=stream)
    assert isinstance(rich, RichConsole) and rich.console.file is stream
    plain = make_display("plain", stream=stream)
    assert isinstance(plain, PlainConsole)
    plain(RunStarted(run_id=1, num_rounds=1, node_ids=(1,), strategy="FedAvg"))
    assert stream.getvalue() == "run started: FedAvg, 1 round, 1 node\n"
    assert [make_display(k) for k in ("widget", "static")] == ["notebook widget", "notebook static"]
    assert make_display("none") is None and make_display("auto", stream=stream) is None


def test_make_display_rejects_an_unknown_name_and_lists_every_display() -> None:
    assert DISPLAYS == ("auto", "widget", "static", "rich", "plain", "none")
    with pytest.raises(FederationError) as raised:
        make_display("fancy")  # type: ignore[arg-type]
    assert str(raised.value) == (
        "display must be 'auto', 'widget', 'static', 'rich', 'plain' or 'none', got 'fancy'."
    )


@pytest.mark.usefixtures("no_notebook")
def test_select_console_gives_none_for_fedlab_display_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDLAB_DISPLAY", "none")
    assert select_console(Terminal()) is None


@pytest.mark.usefixtures("no_notebook")
def test_select_console_rejects_an_unknown_fedlab_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDLAB_DISPLAY", "fancy")
    with pytest.raises(FederationError, match="'fancy'.*widget, static, rich, plain, none"):
        select_console()


@pytest.mark.usefixtures("no_notebook")
def test_select_console_uses_rich_on_a_terminal_and_plain_lines_elsewhere() -> None:
    terminal = Terminal()
    chosen = select_console(terminal)
    assert isinstance(chosen, RichConsole)
    assert chosen.console.file is terminal
    assert isinstance(select_console(io.StringIO()), PlainConsole)
    assert "IPython" not in sys.modules  # detection never imports IPython


@pytest.mark.usefixtures("no_notebook")
@pytest.mark.parametrize(
    ("class_name", "module", "kind"),
    [
        ("ZMQInteractiveShell", "ipykernel.zmqshell", "notebook widget"),
        ("Shell", "google.colab._shell", "notebook widget"),
        ("TerminalInteractiveShell", "IPython.terminal.interactiveshell", RichConsole),
    ],
)
def test_select_console_never_uses_rich_live_in_a_notebook_kernel(
    monkeypatch: pytest.MonkeyPatch, class_name: str, module: str, kind: Any
) -> None:
    fake_ipython(monkeypatch, class_name, module)
    chosen = select_console(Terminal())
    assert (chosen if isinstance(chosen, str) else type(chosen)) == kind


@pytest.mark.usefixtures("no_notebook")
def test_select_console_treats_a_subclass_of_the_kernel_shell_as_a_notebook(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kernel = type("ZMQInteractiveShell", (), {})
    spyder = type("SpyderShell", (kernel,), {})
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = spyder  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    assert select_console(Terminal()) == "notebook widget"


@pytest.mark.usefixtures("no_notebook")
def test_select_console_in_a_script_that_imported_ipython_looks_at_the_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    assert isinstance(select_console(Terminal()), RichConsole)
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    assert select_console(Terminal()) == "notebook widget"


def test_rich_console_prints_strategy_names_and_errors_literally_not_as_markup() -> None:
    console, stream = rich_console()
    console(RunStarted(run_id=1, num_rounds=1, node_ids=(1,), strategy="[bold]Fed[/]"))
    console(
        ClientReplied(
            run_id=1,
            round=1,
            phase="train",
            node_id=1,
            metrics={},
            duration_s=1.0,
            error=Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, "OSError: [Errno 2] x"),
        )
    )
    console(RunFinished(run_id=1, rounds_completed=0, duration_s=1.0, error="[red]oops"))
    text = plain_text(stream)
    assert "run started: [bold]Fed[/], 1 round, 1 node" in text
    assert "client 1 failed in round 1 (train): OSError: [Errno 2] x" in text
    assert "error: [red]oops" in text


def test_rich_console_shows_a_small_table_of_the_latest_completed_rounds() -> None:
    console, _ = rich_console()
    for event in run_events()[:-1]:  # round 2 is still open: rounds 0 and 1 are complete
        console(event)
    frame = Console(file=io.StringIO(), width=100)
    frame.print(console._renderable())
    lines = [line.rstrip() for line in plain_text(frame.file).splitlines()]  # type: ignore[arg-type]
    table = lines[lines.index(next(line for line in lines if line.startswith("round   clients"))):]
    assert table[:4] == [
        "round   clients   train loss   evaluate accuracy   server accuracy    time",
        "─" * 74,
        "0/2     –                  –                   –            0.1000   0.12s",
        "1/2     3/3           0.4312              0.9120            0.9120   2.75s",
    ]
    console(run_events()[-1])


REFUSED = Error(ErrorCode.REPLY_REJECTED, "Reply of node 2 refused: array 'w' holds 1 NaN value (of 2).")


def _with_refusal(r: int) -> list[Event]:
    events = train_round(r)
    rejected = ReplyRejected(run_id=7, round=r, phase="train", node_id=2, error=REFUSED)
    aggregated = events[-1]
    assert isinstance(aggregated, RoundAggregated)
    counted = RoundAggregated(
        run_id=7, round=r, metrics=aggregated.metrics, num_replies=2, num_failures=1,
        train_duration_s=1.0, aggregate_duration_s=0.25,
    )
    return [*events[:-1], rejected, counted]


def test_plain_console_counts_a_refused_reply_as_one_failure_and_names_idle_rounds() -> None:
    idle = RoundAggregated(
        run_id=7, round=3, metrics={}, num_replies=0, num_failures=3, train_duration_s=1.0,
        aggregate_duration_s=0.0, aggregated=False, reason="0 of 3 replies succeeded",
    )
    events: list[Event] = [
        RunStarted(run_id=7, num_rounds=4, node_ids=(1, 2, 3), strategy="FedAvg"),
        *_with_refusal(1),
        *train_round(2, failed=(1, 2, 3))[:-1],
        RoundAggregated(
            run_id=7, round=2, metrics={}, num_replies=0, num_failures=3, train_duration_s=1.0,
            aggregate_duration_s=0.0, aggregated=False, reason="0 of 3 replies succeeded",
        ),
        *train_round(3, failed=(1, 2, 3))[:-1],
        idle,
        *train_round(4),
        RunFinished(run_id=7, rounds_completed=4, duration_s=6.0),
    ]
    lines = plain_output(events)
    assert lines[1] == "client 2 failed in round 1 (train): " + REFUSED.reason
    assert lines[2] == "round 1/4  clients 2/3 (1 failed)  train loss=0.5000 num-examples=30  1.25s"
    assert lines[-1] == (
        "run finished: 4 rounds in 6.00s, 7 client failures; rounds 2, 3 aggregated nothing"
    )


def test_rich_console_counts_a_refused_reply_in_the_clients_bar() -> None:
    console, stream = rich_console()
    console(RunStarted(run_id=7, num_rounds=1, node_ids=(1, 2, 3), strategy="FedAvg"))
    for event in _with_refusal(1)[:-1]:  # the round is still open: the bar shows its clients
        console(event)
    frame = Console(file=io.StringIO(), width=100)
    frame.print(console._renderable())
    assert "clients 3/3 (1 failed)" in plain_text(frame.file)  # type: ignore[arg-type]
    console(RunFinished(run_id=7, rounds_completed=1, duration_s=1.0))
    assert "client 2 failed in round 1 (train): " + REFUSED.reason in plain_text(stream)
