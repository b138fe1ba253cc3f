"""`History`: every metric of a run, as it arrives on the event bus.

A History is a subscriber. It keeps one row per round (aggregated training metrics, the
clients' aggregated evaluation, the server's evaluation, reply counts, timings) and one row
per client reply (round, phase, node, metrics, duration, error). Rows are plain dicts with
nested metric dicts; :meth:`History.to_pandas` flattens them into ``train.loss``-style
columns, and :meth:`History.to_json` / :meth:`History.from_json` store them losslessly.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal, overload

from fedlab._history_events import record, replay
from fedlab._history_failures import failure_text
from fedlab._history_rows import SOURCES, copy_rows, flatten_rows, new_run, restored, stored
from fedlab.errors import HistoryError, MissingDependencyError
from fedlab.events import Event, EventBus
from fedlab.format import format_metrics, format_rounds, format_seconds

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["History"]


class History:
    """The metrics store of one run: a thread-safe subscriber of the event bus.

    The run is the one named by the first event received; events of other runs (on a
    shared bus) are ignored. Accessors return copies, so they are safe to keep and change.

    Examples
    --------
    >>> from fedlab.events import EventBus, RoundAggregated, RunStarted
    >>> bus, history = EventBus(), History()
    >>> detach = history.attach(bus)
    >>> bus.emit(RunStarted(run_id=7, num_rounds=2, node_ids=(1, 2), strategy="FedAvg"))
    >>> bus.emit(RoundAggregated(run_id=7, round=1, metrics={"loss": 0.5}, num_replies=2,
    ...                          num_failures=0, train_duration_s=1.0, aggregate_duration_s=0.1))
    >>> history.metric("loss")
    {1: 0.5}
    >>> History.from_json(history.to_json()) == history
    True
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._run = new_run()
        self._rounds: dict[int, dict[str, Any]] = {}
        self._clients: list[dict[str, Any]] = []
        self._reports: list[dict[str, Any]] = []

    # -- receiving events ------------------------------------------------------------

    def attach(self, bus: EventBus) -> Callable[[], None]:
        """Subscribe to ``bus``; return the function that unsubscribes again."""
        return bus.subscribe(self)

    def __call__(self, event: Event) -> None:
        """Record ``event`` (the subscriber protocol); safe to call from any thread."""
        with self._lock:
            if self._run["run_id"] is None:
                self._run["run_id"] = event.run_id
            elif event.run_id != self._run["run_id"]:
                return
            record(event, self._run, self._rounds, self._clients, self._reports)

    # -- reading -------------------------------------------------------------------

    @property
    def run_id(self) -> int | None:
        """The id of the recorded run, or None before the first event."""
        with self._lock:
            run_id: int | None = self._run["run_id"]
            return run_id

    @property
    def rounds(self) -> list[dict[str, Any]]:
        """One dict per round, in round order; round 0 holds the initial server evaluation.

        Keys: ``round``; the metric dicts ``train`` (aggregated training metrics),
        ``evaluate`` (the clients' aggregated evaluation) and ``server`` (server-side
        evaluation); ``train_sampled``/``train_replies``/``train_failures`` and the same for
        ``evaluate``; ``aggregated`` (None when the round had no aggregation) and ``reason``;
        ``started_at`` (Unix time) and ``train_duration_s``, ``aggregate_duration_s``,
        ``evaluate_duration_s``, ``server_duration_s`` (None when the phase did not run).
        """
        with self._lock:
            return [copy_rows(self._rounds[r]) for r in sorted(self._rounds)]

    @property
    def clients(self) -> list[dict[str, Any]]:
        """One dict per client reply, in arrival order.

        Keys: ``round``, ``phase``, ``partition_id`` (None outside a simulation),
        ``node_id``, ``metrics`` (dict),
        ``error_code`` and ``error_reason`` (None unless the reply failed, also when it
        arrived but the strategy refused it: ``ErrorCode.REPLY_REJECTED``), ``timestamp``
        (Unix time of the reply) and ``duration_s``.
        """
        with self._lock:
            rows: list[dict[str, Any]] = copy_rows(self._clients)
        return rows

    @property
    def strategy_reports(self) -> list[dict[str, Any]]:
        """What the strategy reported, in order: dicts with ``round``, ``strategy``, ``info``."""
        with self._lock:
            reports: list[dict[str, Any]] = copy_rows(self._reports)
        return reports

    @property
    def privacy(self) -> list[dict[str, Any]]:
        """The privacy spent after each round of a differentially private run, in round order.

        One dict per :class:`~fedlab.events.PrivacySpent`: ``round``, ``epsilon`` (total
        so far), ``delta``, ``accountant``, ``sampling``, ``noise_multiplier``,
        ``sampling_probability``, ``num_sampled``, ``population``, ``steps``,
        ``clipping_norm``. Empty for a run without DP.
        """
        with self._lock:
            rows = [self._rounds[r] for r in sorted(self._rounds) if self._rounds[r].get("privacy")]
            return [{"round": row["round"], **copy_rows(row["privacy"])} for row in rows]

    @property
    def run(self) -> dict[str, Any]:
        """Facts about the run, as a dict.

        Keys: ``run_id``, ``strategy``, ``num_rounds``, ``start_round``, ``num_nodes``,
        ``node_ids`` (empty above 10,000 nodes), ``config``, ``note`` (what the run's first
        line added, e.g. that federated evaluation was skipped), ``finished``,
        ``rounds_completed``, ``stopped_early``, ``error`` (None unless the run failed),
        ``started_at``, ``finished_at`` (Unix times), ``duration_s``.
        """
        with self._lock:
            run: dict[str, Any] = copy_rows(self._run)
        return run

    @property
    def rounds_completed(self) -> int:
        """Rounds the run completed: as reported at the end, else rounds aggregated so far."""
        with self._lock:
            if self._run["rounds_completed"] is not None:
                return int(self._run["rounds_completed"])
            return sum(1 for row in self._rounds.values() if row["aggregated"] is not None)

    def metric(
        self, name: str, source: Literal["train", "evaluate", "server"] = "train"
    ) -> dict[int, Any]:
        """Return ``{round: value}`` of one aggregated metric; rounds without it are absent.

        ``source`` is ``"train"`` (aggregated training replies), ``"evaluate"`` (aggregated
        client evaluation) or ``"server"`` (server-side evaluation, with round 0 if the
        initial model was evaluated). Values are ints, floats or lists, as reported.
        """
        if source not in SOURCES:
            raise HistoryError(
                f"History.metric() got source={source!r}; use one of {', '.join(SOURCES)}."
            )
        with self._lock:
            return {
                r: copy_rows(self._rounds[r][source][name])
                for r in sorted(self._rounds)
                if name in self._rounds[r][source]
            }

    def client_metric(
        self, name: str, phase: str = "train", *, by: Literal["partition", "node"] | None = None
    ) -> dict[int, dict[int, Any]]:
        """Return ``{client: {round: value}}`` of one metric the clients reported in ``phase``.

        Clients are named by ``by``: ``"partition"`` (``node_config["partition-id"]``, the
        client numbers 0 … n-1 of a simulation) or ``"node"`` (node ids). By default, by
        partition when every reply of the run has one (a simulation), else by node.

        Raises
        ------
        HistoryError
            If ``by`` is unknown, or is ``"partition"`` while some replies have no
            partition id (a deployment's nodes): use ``by="node"`` there.

        Examples
        --------
        >>> from fedlab.events import ClientReplied
        >>> history = History()
        >>> history(ClientReplied(run_id=1, round=1, phase="train", node_id=8211050864078048428,
        ...                       partition_id=0, metrics={"loss": 0.5}, duration_s=0.1))
        >>> history.client_metric("loss"), history.client_metric("loss", by="node")
        ({0: {1: 0.5}}, {8211050864078048428: {1: 0.5}})
        """
        if by not in (None, "partition", "node"):
            raise HistoryError(
                f"History.client_metric() got by={by!r}; use 'partition', 'node' or leave it out."
            )
        with self._lock:
            rows = [r for r in self._clients if r["phase"] == phase and name in r["metrics"]]
            named = all(r["partition_id"] is not None for r in self._clients)
            if by == "partition" and not named:
                raise HistoryError(
                    "History.client_metric(by='partition'): some replies have no partition id "
                    "(nodes of a deployment); name the clients by node id with by='node'."
                )
            key = "partition_id" if by == "partition" or (by is None and named) else "node_id"
            result: dict[int, dict[int, Any]] = {}
            for row in rows:
                result.setdefault(row[key], {})[row["round"]] = copy_rows(row["metrics"][name])
        return result

    def failures(self) -> list[dict[str, Any]]:
        """Return the client rows (see :attr:`clients`) of replies that failed."""
        with self._lock:
            return [copy_rows(row) for row in self._clients if row["error_code"] is not None]

    def failure_report(self) -> str:
        """Return the failed replies as text, one line each: who, round, phase, error.

        ``client 3 (node 8211…) · round 2 · train · RuntimeError: boom`` (a timeout reads
        ``TIMEOUT: …``); :meth:`failures` holds the full tracebacks.
        """
        return failure_text(self.failures())

    # -- export --------------------------------------------------------------------

    def to_pandas(self, kind: Literal["rounds", "clients"] = "rounds") -> pd.DataFrame:
        """Return the rows as a DataFrame, metrics flattened into columns.

        ``kind="rounds"``: one row per round, with ``train.<name>``, ``evaluate.<name>`` and
        ``server.<name>`` columns, then counts and timings. ``kind="clients"``: one row per
        reply with ``metric.<name>`` columns, then timings and errors. A metric missing in
        a row is NaN.

        Raises
        ------
        MissingDependencyError
            If pandas is not installed.
        """
        if kind not in ("rounds", "clients"):
            raise HistoryError(f"History.to_pandas() got kind={kind!r}; use 'rounds' or 'clients'.")
        try:
            import pandas as pd
        except ImportError:
            raise MissingDependencyError("pandas", "datasets", "History.to_pandas()") from None
        rows = self.rounds if kind == "rounds" else self.clients
        records, columns = flatten_rows(rows, kind)
        frame: pd.DataFrame = pd.DataFrame(records, columns=columns)
        return frame

    def to_json(self, *, include_timings: bool = True) -> str:
        """Serialise everything recorded to JSON text; :meth:`from_json` restores it exactly.

        With ``include_timings=False`` every duration and timestamp is left out and client
        rows are sorted by (round, phase, node), so two runs with the same seed give
        identical text. NaN and infinite metrics are written as ``NaN``/``Infinity``, as
        Python's json module does; other JSON readers may need to be told to accept them.
        """
        with self._lock:
            run, rounds = copy_rows(self._run), [copy_rows(self._rounds[r]) for r in sorted(self._rounds)]
            clients, reports = copy_rows(self._clients), copy_rows(self._reports)
        return json.dumps(stored(run, rounds, clients, reports, include_timings))

    @classmethod
    def from_json(cls, text: str) -> History:
        """Rebuild a History from :meth:`to_json` text; left-out timings come back as None.

        Raises
        ------
        HistoryError
            If ``text`` is not JSON written by :meth:`to_json`.
        """
        history = cls()
        history._run, history._rounds, history._clients, history._reports = restored(text)
        return history

    def __eq__(self, other: object) -> bool:
        # Compared as JSON text so that NaN metrics equal themselves after a round trip.
        if not isinstance(other, History):
            return NotImplemented
        return self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]  # mutable: not hashable

    # -- pictures and text ---------------------------------------------------------

    def replay(self) -> Iterator[Event]:
        """Yield events that rebuild the run in any subscriber: run, rounds, replies, end.

        Displays only read events, so a replayed History shows a run that already ended
        (``fed.dashboard()`` after a run, :meth:`plot`). The rows are read at the call.

        Examples
        --------
        >>> from fedlab.events import RunStarted
        >>> history = History()
        >>> history(RunStarted(run_id=3, num_rounds=2, node_ids=(5,), strategy="FedAvg"))
        >>> [type(e).__name__ for e in history.replay()]
        ['RunStarted']
        """
        return replay(self.run, self.rounds, self.clients, self.rounds_completed)

    @overload
    def plot(
        self, metric: str | None = None, *, ax: None = None, label: str | None = None
    ) -> Figure: ...

    @overload
    def plot(self, metric: str | None = None, *, ax: Axes, label: str | None = None) -> Axes: ...

    def plot(
        self, metric: str | None = None, *, ax: Axes | None = None, label: str | None = None
    ) -> Figure | Axes:
        """Draw the run with matplotlib: the dashboard's panels, after the fact.

        Without ``ax``, return a new figure of every panel. Given a matplotlib ``ax``,
        draw only the clients' metric into it (mean per round, p10–p90 band, the line
        labelled ``label``, by default the strategy) and return it, so that runs can share
        a figure (``fl.plot_compare`` draws a comparison this way).
        ``metric`` picks the client metric, as ``"phase:name"`` (e.g. ``"train:loss"``);
        by default the most telling one.

        Raises
        ------
        MissingDependencyError
            If matplotlib is not installed.

        Examples
        --------
        >>> from matplotlib.figure import Figure
        >>> from fedlab.events import ClientReplied, RunStarted
        >>> history = History()
        >>> history(RunStarted(run_id=1, num_rounds=1, node_ids=(5,), strategy="FedAvg"))
        >>> history(ClientReplied(run_id=1, round=1, phase="train", node_id=5, partition_id=0,
        ...                       metrics={"loss": 0.5}, duration_s=0.1))
        >>> left, right = Figure().subplots(1, 2)
        >>> history.plot(ax=left) is left, left.get_title(loc="left")
        (True, "clients' train loss: mean and p10–p90")
        """
        from fedlab.dashboard import plot_run  # drawing is the dashboard's; data never loads it

        if ax is None:
            return plot_run(self.replay(), metric)
        return plot_run(self.replay(), metric, ax=ax, label=label)

    def summary(self) -> str:
        """Return a few lines: rounds done, failures, timing, the rounds that aggregated
        nothing, the run's error and the last metrics of each kind."""
        with self._lock:
            run = copy_rows(self._run)
            newest_first = [self._rounds[r] for r in sorted(self._rounds, reverse=True)]
            last: dict[str, dict[str, Any]] = {
                s: next((copy_rows(row[s]) for row in newest_first if row[s]), {}) for s in SOURCES
            }
            failed = sum(1 for row in self._clients if row["error_code"] is not None)
            idle = [r for r, row in self._rounds.items() if row["aggregated"] is False]
        head = f"run {run['run_id']}" + (f" ({run['strategy']})" if run["strategy"] else "")
        done = self.rounds_completed
        status = f"{done}/{run['num_rounds']} rounds" if run["num_rounds"] else f"{done} rounds"
        if run["duration_s"] is not None:
            status += f" in {format_seconds(run['duration_s'])}"
        plural = "" if failed == 1 else "s"
        lines = [f"{head}: {status}, {failed} client failure{plural}"]
        if not run["finished"] and run["run_id"] is not None:
            lines[0] += " (running)"
        if idle:
            lines.append(f"  {format_rounds(idle)} aggregated nothing")
        if run["error"]:
            lines.append(f"  error: {str(run['error']).splitlines()[0]}")
        for source in SOURCES:
            if last[source]:
                lines.append("  last " + format_metrics([(source, last[source])], limit=6))
        return "\n".join(lines)

    def __repr__(self) -> str:
        with self._lock:
            run_id, rows, replies = self._run["run_id"], len(self._rounds), len(self._clients)
        return (
            f"History(run_id={run_id}, rounds_completed={self.rounds_completed}, "
            f"rounds={rows}, client_rows={replies})"
        )
