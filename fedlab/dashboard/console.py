"""Terminal displays of a run: plain lines for logs and pipes, a rich live view for a TTY.

Both are event-bus subscribers and may receive events from any thread.
:func:`~fedlab.dashboard.make_display` picks the right one for where the code runs. While
a round has had no reply for a few seconds, both say which client it waits on (a run calls
their ``idle`` while no event comes).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO, TypeGuard

from fedlab.dashboard._lines import (
    failure_line,
    finished_line,
    round_line,
    started_line,
    waiting_line,
)
from fedlab.dashboard._round_table import ROWS, round_table
from fedlab.dashboard._tracker import RoundState, RunTracker
from fedlab.events import (
    ClientReplied,
    Event,
    ReplyRejected,
    RoundStarted,
    RunFinished,
    RunStarted,
)
from fedlab.format import format_metrics

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live
    from rich.progress import Progress, TaskID
    from rich.text import Text

__all__ = ["PlainConsole", "RichConsole"]


class PlainConsole:
    """One plain line per round: for logs, pipes, CI and notebooks.

    A round's line is written once the round is complete (the next round began or the run
    ended), so it holds the evaluation too. Failed client replies get a line each, at once.
    A round that has had no reply for 5 s gets a line saying which client it waits on,
    and another each time that wait has doubled.

    Parameters
    ----------
    stream
        Where to write; None means whatever ``sys.stdout`` is at the time of writing.
    clock
        The time now, as Unix time (events are stamped with it); injectable for tests.

    Examples
    --------
    >>> from fedlab.events import RoundAggregated, RunFinished, RunStarted
    >>> console = PlainConsole()
    >>> console(RunStarted(run_id=1, num_rounds=1, node_ids=(1, 2), strategy="FedAvg"))
    run started: FedAvg, 1 round, 2 nodes
    >>> console(RoundAggregated(run_id=1, round=1, metrics={"loss": 0.25}, num_replies=2,
    ...                         num_failures=0, train_duration_s=1.5, aggregate_duration_s=0.1))
    >>> console(RunFinished(run_id=1, rounds_completed=1, duration_s=1.7))
    round 1/1  clients 2/2 (0 failed)  train loss=0.2500  1.60s
    run finished: 1 round in 1.70s, no client failures
    """

    def __init__(
        self, stream: TextIO | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._stream = stream
        self._clock = clock
        self._lock = threading.Lock()
        self._tracker = RunTracker()
        self._reported: tuple[object, float] | None = None  # the stall last written, and how long

    def idle(self) -> None:
        """Write a line if the round has waited on a client long enough (see the class)."""
        with self._lock:
            stall = self._tracker.stall(self._clock())
            if stall is None:
                return
            key = (stall.round, stall.phase, stall.node_id, stall.pending)
            last = self._reported
            if last is not None and last[0] == key and stall.seconds < 2 * last[1]:
                return
            self._reported = (key, stall.seconds)
            self._write(waiting_line(stall))

    def __call__(self, event: Event) -> None:
        """Write what ``event`` completes; safe to call from any thread."""
        with self._lock:
            if isinstance(event, RunStarted):
                self._tracker = RunTracker.from_start(event)
                self._write(started_line(event))
                return
            if _is_failure(event):
                self._write(failure_line(event))
            for state in self._tracker.feed(event):
                line = round_line(self._tracker, state)
                if line is not None:
                    self._write(line)
            if isinstance(event, RunFinished):
                self._write(finished_line(self._tracker, event))

    def _write(self, line: str) -> None:
        stream = self._stream if self._stream is not None else sys.stdout
        stream.write(line + "\n")
        stream.flush()


class RichConsole:
    """A live terminal view: round and client progress bars with ETA, and the last metrics.

    The live display starts on :class:`RunStarted` and always stops on :class:`RunFinished`,
    also when the run failed; completed rounds and failures are printed above it, so the
    terminal keeps a log. Never use it inside a notebook (:func:`~fedlab.dashboard.make_display` does not).

    Parameters
    ----------
    console
        The rich console to draw on; None makes one on standard output.
    refresh_per_second
        How often the live view redraws.
    clock
        The time now, as Unix time (events are stamped with it); injectable for tests.
    """

    def __init__(
        self,
        console: Console | None = None,
        *,
        refresh_per_second: float = 4,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from rich.console import Console
        from rich.text import Text

        self.console = console if console is not None else Console()
        self._refresh_per_second = refresh_per_second
        self._clock = clock
        self._waiting: Text = Text()  # which client a stalled round waits on, if any
        self._lock = threading.Lock()
        self._tracker = RunTracker()
        self._live: Live | None = None
        self._progress: Progress | None = None
        self._rounds_task: TaskID | None = None
        self._clients_task: TaskID | None = None
        self._phase: tuple[int, str] | None = None  # the (round, phase) the clients bar shows
        self._metrics: Text = Text()
        self._recent: list[RoundState] = []  # the latest completed rounds, for the table
        self._table: RenderableType | None = None

    @property
    def is_live(self) -> bool:
        """True while the live display is running."""
        return self._live is not None

    def __call__(self, event: Event) -> None:
        """Update the view with ``event``; safe to call from any thread."""
        with self._lock:
            if isinstance(event, RunStarted):
                self._start(event)
            elif isinstance(event, RunFinished):
                try:
                    self._print_rounds(event)
                finally:
                    self._stop()
                self._print(finished_line(self._tracker, event))
            else:
                self._update(event)

    def close(self) -> None:
        """Stop the live display if it runs (e.g. when a run died without RunFinished)."""
        with self._lock:
            self._stop()

    def idle(self) -> None:
        """Show which client the round waits on, once it has had no reply for 5 s."""
        from rich.text import Text

        with self._lock:
            stall = self._tracker.stall(self._clock())
            self._waiting = Text() if stall is None else Text(waiting_line(stall), style="yellow")

    def _renderable(self) -> RenderableType:
        # Called by rich's refresh thread: read attributes only, never take our lock.
        from rich.console import Group

        progress, table, waiting = self._progress, self._table, self._waiting
        if progress is None:
            return self._metrics
        parts = [progress, self._metrics] if table is None else [progress, table, self._metrics]
        return Group(*parts, waiting) if waiting else Group(*parts)

    def _start(self, event: RunStarted) -> None:
        from rich.live import Live
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
        from rich.text import Text

        self._stop()
        self._tracker = RunTracker.from_start(event)
        self._print(started_line(event))
        self._progress = Progress(
            TextColumn("{task.description:>8}"),
            BarColumn(),
            TextColumn("{task.fields[counter]}"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            auto_refresh=False,
            speed_estimate_period=24 * 3600,  # ETA from the mean speed: rounds may take minutes
        )
        before = f"round {event.start_round - 1}/{self._tracker.last_round}"  # none done yet
        self._rounds_task = self._progress.add_task(
            "rounds", total=max(event.num_rounds, 1), counter=before
        )
        self._clients_task = self._progress.add_task("clients", total=None, counter="")
        self._metrics = Text()
        self._recent, self._table = [], None
        self._live = Live(
            console=self.console,
            get_renderable=self._renderable,
            refresh_per_second=self._refresh_per_second,
        )
        self._live.start(refresh=True)

    def _stop(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()

    def _update(self, event: Event) -> None:
        from rich.text import Text

        self._waiting = Text()  # something moved: the next idle() says again if it stalls
        if _is_failure(event):
            self._print(failure_line(event), style="red")
        self._print_rounds(event)
        progress, tracker = self._progress, self._tracker
        if progress is None or self._rounds_task is None or self._clients_task is None:
            return
        state = tracker.open.get(getattr(event, "round", -1))
        if isinstance(event, RoundStarted) and state is not None:
            self._phase = (event.round, event.phase)
            if event.phase == "train":
                counter = f"round {event.round}/{tracker.last_round}"
                progress.update(self._rounds_task, counter=counter)
            progress.reset(self._clients_task, total=len(event.node_ids), description=event.phase)
        elif isinstance(event, ClientReplied | ReplyRejected) and state is not None:
            if self._phase != (state.round, event.phase):
                return  # a straggler of an earlier phase: the bar shows the current one
            ok, bad = state.replied.get(event.phase, 0), state.failed.get(event.phase, 0)
            failed = f" ({bad} failed)" if bad else ""
            counter = f"clients {ok + bad}/{state.sampled.get(event.phase, ok + bad)}{failed}"
            progress.update(self._clients_task, completed=ok + bad, counter=counter)
        elif tracker.latest is not None:
            progress.update(self._rounds_task, completed=tracker.rounds_aggregated)
            metrics = format_metrics(tracker.latest.sections())
            self._metrics = Text(f"round {tracker.latest.round}  {metrics}", style="bold")

    def _print_rounds(self, event: Event) -> None:
        for state in self._tracker.feed(event):
            line = round_line(self._tracker, state)
            if line is not None:
                self._print(line, style="dim")
                self._recent = [*self._recent, state][-ROWS:]
                self._table = round_table(self._tracker, self._recent)

    def _print(self, line: str, style: str = "") -> None:
        # Our lines hold user text (strategy names, error reasons): never read it as markup.
        self.console.print(line, style=style, markup=False, highlight=False)


def _is_failure(event: Event) -> TypeGuard[ClientReplied | ReplyRejected]:
    """A failed reply: an error reply, or one the strategy refused."""
    return isinstance(event, ReplyRejected) or (
        isinstance(event, ClientReplied) and event.error is not None
    )
