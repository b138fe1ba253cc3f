"""The dashboard's model: a run's events folded into compact numpy grids (no widget code).

Clients are rows and rounds are columns. Every numeric metric a client reports gets a
float32 grid (NaN where nothing was reported), participation a uint8 grid, and the rounds
a float32 timing table. The notebook widget ships these as binary buffers; the static
snapshot and :meth:`fedlab.History.plot` draw them with matplotlib.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from fedlab.events import (
    ClientReplied,
    Evaluated,
    Event,
    PrivacySpent,
    ReplyRejected,
    RoundAggregated,
    RoundStarted,
    RunFinished,
    RunStarted,
)
from fedlab.format import describe_error, error_type, metric_rank
from fedlab.message import ErrorCode

__all__ = [
    "DashboardModel",
    "FAILED",
    "FINISHED",
    "Failure",
    "NOT_SAMPLED",
    "SAMPLED",
    "TIMED_OUT",
    "TIMING_COLUMNS",
]

# Participation codes, ordered so that a cell keeps the most telling state of its phases.
NOT_SAMPLED, SAMPLED, FINISHED, FAILED, TIMED_OUT = 0, 1, 2, 3, 4
#: Columns of the timing table.
TIMING_COLUMNS = ("train", "aggregate", "evaluate", "slowest client")
#: Failures kept with their full text; older ones beyond this are dropped.
MAX_FAILURES = 1000
MAX_REASON = 4000
_PHASES = ("train", "evaluate", "query")


@dataclass(frozen=True)
class Failure:
    """One failed reply, as the dashboard shows it.

    ``client`` is the dashboard's row; ``partition`` the simulated client's partition id
    (None for a deployment's node), which is how a person names it: ``client 7``.
    """

    client: int
    node_id: int
    round: int
    phase: str
    code: str
    reason: str
    partition: int | None = None
    error_code: int | None = None

    @property
    def name(self) -> str:
        """``client 7`` in a simulation, else ``node 8211050864078048428``."""
        return f"node {self.node_id}" if self.partition is None else f"client {self.partition}"

    @property
    def error_type(self) -> str:
        """The exception's class (``ValueError``), else the code's name (``TIMEOUT``)."""
        return error_type(self.error_code, self.reason) if self.reason else self.code

    @property
    def first_line(self) -> str:
        """The first line of the reason (``ValueError: boom``), else the code's name."""
        return describe_error(self.error_code, self.reason) if self.reason else self.code

    def row(self) -> dict[str, Any]:
        """The failure as the browser's failures list gets it: fields plus the derived text."""
        out = {k: v for k, v in vars(self).items() if k != "error_code"}
        # The node id as text: node ids exceed JavaScript's exact integers (2**53).
        out.update(node_id=str(self.node_id), name=self.name, error_type=self.error_type,
                   first_line=self.first_line)
        return out


@dataclass
class _Progress:
    round: int = 0
    phase: str = ""
    sampled: int = 0
    done: int = 0
    failed: int = 0


@dataclass
class DashboardModel:
    """Everything the dashboard draws, kept up to date by :meth:`feed`.

    Examples
    --------
    >>> from fedlab.events import ClientReplied, RunStarted
    >>> model = DashboardModel()
    >>> model.feed(RunStarted(run_id=1, num_rounds=2, node_ids=(11, 12), strategy="FedAvg"))
    >>> model.feed(ClientReplied(run_id=1, round=1, phase="train", node_id=12,
    ...                          metrics={"loss": 0.5}, duration_s=0.1))
    >>> model.grid("train:loss")
    array([[nan, nan],
           [0.5, nan]], dtype=float32)
    """

    run_id: int | None = None
    strategy: str = ""
    note: str = ""
    num_rounds: int = 0
    start_round: int = 1
    node_ids: list[int] = field(default_factory=list)
    partitions: list[int | None] = field(default_factory=list)
    started_at: float | None = None
    last_event_at: float | None = None
    rounds_done: int = 0
    finished: bool = False
    finish: RunFinished | None = None
    failures: list[Failure] = field(default_factory=list)
    central: dict[str, dict[int, float]] = field(default_factory=dict)
    progress: _Progress = field(default_factory=_Progress)
    _index: dict[int, int] = field(default_factory=dict)
    _grids: dict[str, npt.NDArray[np.float32]] = field(default_factory=dict)
    _status: npt.NDArray[np.uint8] = field(default_factory=lambda: np.zeros((0, 0), np.uint8))
    _timing: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    # The grid each band was last worked out from, and the band: see band().
    _bands: dict[str, tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]] = field(
        default_factory=dict
    )

    # -- shape -----------------------------------------------------------------------

    @property
    def num_clients(self) -> int:
        """How many clients (rows) the model knows."""
        return len(self.node_ids)

    @property
    def last_round(self) -> int:
        """The last round of the run, or the latest seen if the run went on longer."""
        return max(self.start_round + self.num_rounds - 1, self.progress.round)

    @property
    def width(self) -> int:
        """How many round columns the grids have in use."""
        return max(self.last_round - self.start_round + 1, 0)

    def grid(self, metric: str) -> npt.NDArray[np.float32]:
        """The clients × rounds grid of ``metric`` (``"phase:name"``), NaN where missing."""
        found = self._grids.get(metric)
        if found is None:
            return np.full((self.num_clients, self.width), np.nan, np.float32)
        return found[: self.num_clients, : self.width]

    def status(self) -> npt.NDArray[np.uint8]:
        """The clients × rounds participation grid (see the module's codes)."""
        return self._status[: self.num_clients, : self.width]

    def timing(self) -> npt.NDArray[np.float32]:
        """Rounds × 4 seconds: train, aggregate, evaluate, slowest client."""
        return self._timing[: self.width]

    def metrics(self) -> list[str]:
        """The client metrics seen so far, most telling first (train loss leads)."""

        def rank(key: str) -> tuple[int, int, str]:
            phase, name = key.split(":", 1)
            order = _PHASES.index(phase) if phase in _PHASES else len(_PHASES)
            return (order, metric_rank(name), name)

        return sorted(self._grids, key=rank)

    def band(self, metric: str) -> npt.NDArray[np.float32]:
        """Rounds × 3 (p10, mean, p90) of ``metric`` across clients; NaN for empty rounds."""
        values = self.grid(metric)
        cached = self._bands.get(metric)
        if cached is not None and cached[0].shape == values.shape:
            # Only the rounds whose cells changed since the last call are worked out again.
            before, kept = cached
            redo = (before.view(np.uint32) != values.view(np.uint32)).any(axis=0)
            out: npt.NDArray[np.float32] = kept.copy()
        else:
            out = np.full((self.width, 3), np.nan, np.float32)
            redo = np.ones(self.width, bool)
        out[redo] = np.nan
        seen = redo & np.isfinite(values).any(axis=0)
        if seen.any():  # only columns with a value: nanpercentile warns on empty ones
            cols = values[:, seen]
            out[seen, 0], out[seen, 2] = np.nanpercentile(cols, [10, 90], axis=0)
            out[seen, 1] = np.nanmean(cols, axis=0)
        self._bands[metric] = (values.copy(), out.copy())
        return out

    def eta_s(self) -> float | None:
        """Seconds left at the mean pace of the rounds done so far; None before one is done."""
        if self.finished or not self.rounds_done or self.started_at is None:
            return None
        elapsed = (self.last_event_at or self.started_at) - self.started_at
        left = self.start_round + self.num_rounds - 1 - (self.start_round - 1 + self.rounds_done)
        return max(left, 0) * elapsed / self.rounds_done

    def client_name(self, client: int) -> str:
        """How the client in row ``client`` is named: ``client 7``, else ``node 1234``."""
        partition = self.partitions[client]
        return f"node {self.node_ids[client]}" if partition is None else f"client {partition}"

    def client_failures(self, client: int) -> list[Failure]:
        """The failures of the client in row ``client``, oldest first."""
        return [f for f in self.failures if f.client == client]

    # -- events ----------------------------------------------------------------------

    def feed(self, event: Event) -> None:
        """Take in one event of the run."""
        if isinstance(event, RunStarted):
            self._start(event)
            return
        if self.run_id is not None and event.run_id != self.run_id:
            return  # another run on a shared bus
        self.last_event_at = event.timestamp
        if isinstance(event, RoundStarted):
            self._round_started(event)
        elif isinstance(event, ClientReplied):
            self._client_replied(event)
        elif isinstance(event, ReplyRejected):
            self._reply_rejected(event)
        elif isinstance(event, RoundAggregated):
            col = self._column(event.round)
            if col is not None:
                self._timing[col, 0] = event.train_duration_s
                self._timing[col, 1] = event.aggregate_duration_s
            self.rounds_done += 1
        elif isinstance(event, Evaluated):
            col = self._column(event.round)
            if col is not None:
                self._timing[col, 2] += event.duration_s
            if event.source == "server":
                for name, value in event.metrics.items():
                    if _is_number(value):
                        self.central.setdefault(name, {})[event.round] = float(value)
        elif isinstance(event, PrivacySpent) and math.isfinite(event.epsilon):
            # Drawn with the server's metrics: one value per round, for the whole run.
            self.central.setdefault(f"ε (δ={event.delta:.3g})", {})[event.round] = event.epsilon
        elif isinstance(event, RunFinished):
            self.finished, self.finish = True, event

    def _start(self, event: RunStarted) -> None:
        fresh = DashboardModel()
        self.__dict__.update(fresh.__dict__)
        self.run_id, self.strategy, self.note = event.run_id, event.strategy, event.note
        self.num_rounds, self.start_round = event.num_rounds, event.start_round
        self.started_at = self.last_event_at = event.timestamp
        self._reserve(len(event.node_ids), max(event.num_rounds, 1))
        for node_id in event.node_ids:
            self._row(node_id, None)

    def _round_started(self, event: RoundStarted) -> None:
        if event.round >= self.progress.round:
            self.progress = _Progress(event.round, event.phase, len(event.node_ids))
        col = self._column(event.round)
        if col is None:
            return
        partitions: list[int | None] = list(event.partition_ids)
        if len(partitions) != len(event.node_ids):
            partitions = [None] * len(event.node_ids)
        rows = [self._row(n, p) for n, p in zip(event.node_ids, partitions)]
        cells = self._status[rows, col]
        self._status[rows, col] = np.maximum(cells, SAMPLED)

    def _client_replied(self, event: ClientReplied) -> None:
        row = self._row(event.node_id, event.partition_id)
        if event.round > self.progress.round:  # a reply without its RoundStarted (a replay)
            self.progress = _Progress(event.round, event.phase)
        progress = self.progress
        if (event.round, event.phase) == (progress.round, progress.phase):
            progress.done += 1
            progress.failed += event.error is not None
        col = self._column(event.round)
        if event.error is not None:
            self._failed(row, event)
        if col is None:
            return
        if event.error is None:
            state = FINISHED
        else:
            state = TIMED_OUT if event.error.code == ErrorCode.TIMEOUT else FAILED
        self._status[row, col] = max(int(self._status[row, col]), state)
        if event.phase == "train":
            self._timing[col, 3] = max(float(self._timing[col, 3]), event.duration_s)
        for name, value in event.metrics.items():
            if _is_number(value):
                self._metric_grid(f"{event.phase}:{name}")[row, col] = float(value)

    def _reply_rejected(self, event: ReplyRejected) -> None:
        # Its ClientReplied counted it as done: it stays done, and is failed now too.
        row = self._row(event.node_id, event.partition_id)
        if (event.round, event.phase) == (self.progress.round, self.progress.phase):
            self.progress.failed += 1
        self._failed(row, event)
        col = self._column(event.round)
        if col is not None:
            self._status[row, col] = max(int(self._status[row, col]), FAILED)

    def _failed(self, row: int, event: ClientReplied | ReplyRejected) -> None:
        error = event.error
        if error is None:
            return
        self.failures.append(
            Failure(
                row,
                event.node_id,
                event.round,
                event.phase,
                _code_name(error.code),
                error.reason[:MAX_REASON],
                self.partitions[row],
                int(error.code),
            )
        )
        del self.failures[:-MAX_FAILURES]

    # -- storage ---------------------------------------------------------------------

    def _row(self, node_id: int, partition: int | None) -> int:
        row = self._index.get(node_id)
        if row is None:
            row = self._index[node_id] = len(self.node_ids)
            self.node_ids.append(node_id)
            self.partitions.append(partition)
            self._reserve(row + 1, self._status.shape[1])
        elif partition is not None:
            self.partitions[row] = partition
        return row

    def _column(self, round_number: int) -> int | None:
        col = round_number - self.start_round
        if col < 0:
            return None  # e.g. the server's evaluation of the initial model (round 0)
        if col >= self._status.shape[1]:
            self._reserve(self._status.shape[0], max(col + 1, 2 * self._status.shape[1]))
        return col

    def _metric_grid(self, key: str) -> npt.NDArray[np.float32]:
        found = self._grids.get(key)
        if found is None or found.shape != self._status.shape:
            grown = np.full(self._status.shape, np.nan, np.float32)
            if found is not None:
                grown[: found.shape[0], : found.shape[1]] = found
            found = self._grids[key] = grown
        return found

    def _reserve(self, rows: int, cols: int) -> None:
        # Grow by doubling so that clients joining one by one stay cheap.
        have_rows, have_cols = self._status.shape
        if rows <= have_rows and cols <= have_cols:
            return
        rows, cols = max(rows, have_rows, 2 * have_rows if rows > have_rows else 0), max(cols, have_cols)
        status = np.zeros((rows, cols), np.uint8)
        status[:have_rows, :have_cols] = self._status
        self._status = status
        timing = np.zeros((cols, 4), np.float32)
        timing[: self._timing.shape[0]] = self._timing
        self._timing = timing
        for key in list(self._grids):
            self._metric_grid(key)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isinf(value)


def _code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"error code {code}"
