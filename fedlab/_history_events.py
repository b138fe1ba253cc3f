"""Between events and History's rows, both ways (private).

:func:`record` writes an event into the rows of :mod:`fedlab._history_rows`; :func:`replay`
turns rows back into events that rebuild them. The two sit together because a new event
field needs both: what is recorded must also be replayed, or a display showing a finished
run (``History.plot()``, ``fed.dashboard()``) would miss it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fedlab._history_rows import CLIENT_COLUMNS, new_round, plain
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
    StrategyReport,
)
from fedlab.message import Error

__all__ = ["record", "replay"]

Row = dict[str, Any]
#: What a round row keeps of a PrivacySpent (under "privacy"), in this order.
PRIVACY_FIELDS = (
    "epsilon",
    "delta",
    "accountant",
    "sampling",
    "noise_multiplier",
    "sampling_probability",
    "num_sampled",
    "population",
    "steps",
    "clipping_norm",
)


def record(event: Event, run: Row, rounds: dict[int, Row], clients: list[Row], reports: list[Row]) -> None:
    """Write ``event`` into the run's facts, its round rows, client rows and reports."""

    def row(number: int) -> Row:
        if number not in rounds:
            rounds[number] = new_round(number)
        return rounds[number]

    if isinstance(event, RunStarted):
        run.update(
            strategy=event.strategy,
            num_rounds=event.num_rounds,
            start_round=event.start_round,
            num_nodes=event.population,
            node_ids=list(event.node_ids),
            config=plain(event.config),
            note=event.note,
            started_at=event.timestamp,
        )
    elif isinstance(event, RoundStarted):
        started = row(event.round)  # every phase opens its round's row, a query's too
        if event.phase in ("train", "evaluate"):
            started[f"{event.phase}_sampled"] = len(event.node_ids)
        if event.phase == "train":
            started["started_at"] = event.timestamp
    elif isinstance(event, ClientReplied):
        error = event.error
        clients.append(
            {
                "round": event.round,
                "phase": event.phase,
                "partition_id": event.partition_id,
                "node_id": event.node_id,
                "metrics": plain(event.metrics),
                "duration_s": event.duration_s,
                "timestamp": event.timestamp,
                "error_code": None if error is None else int(error.code),
                "error_reason": None if error is None else error.reason,
            }
        )
    elif isinstance(event, ReplyRejected):
        _reject(event, clients)
    elif isinstance(event, RoundAggregated):
        row(event.round).update(
            train=plain(event.metrics),
            train_replies=event.num_replies,
            train_failures=event.num_failures,
            aggregated=event.aggregated,
            reason=event.reason,
            train_duration_s=event.train_duration_s,
            aggregate_duration_s=event.aggregate_duration_s,
        )
    elif isinstance(event, Evaluated):
        evaluated = row(event.round)
        if event.source == "server":
            evaluated.update(server=plain(event.metrics), server_duration_s=event.duration_s)
        else:
            evaluated.update(
                evaluate=plain(event.metrics),
                evaluate_replies=event.num_replies,
                evaluate_failures=event.num_failures,
                evaluate_duration_s=event.duration_s,
            )
    elif isinstance(event, PrivacySpent):
        row(event.round)["privacy"] = {f: getattr(event, f) for f in PRIVACY_FIELDS}
    elif isinstance(event, StrategyReport):
        reports.append({"round": event.round, "strategy": event.strategy, "info": plain(event.info)})
    elif isinstance(event, RunFinished):
        run.update(
            finished=True,
            rounds_completed=event.rounds_completed,
            stopped_early=event.stopped_early,
            error=event.error,
            finished_at=event.timestamp,
            duration_s=event.duration_s,
        )


def _reject(event: ReplyRejected, clients: list[Row]) -> None:
    # The refused reply's row was written a moment ago: replies are screened as they are
    # handed to the strategy, a few (the grid's window) behind their arrival at most.
    key = (event.round, event.phase, event.node_id)
    for row in reversed(clients):
        if (row["round"], row["phase"], row["node_id"]) == key and row["error_code"] is None:
            row.update(error_code=int(event.error.code), error_reason=event.error.reason)
            return
    clients.append(  # attached after the reply arrived: keep the failure anyway
        {
            **dict.fromkeys(CLIENT_COLUMNS),
            "round": event.round,
            "phase": event.phase,
            "node_id": event.node_id,
            "partition_id": event.partition_id,
            "metrics": {},
            "timestamp": event.timestamp,
            "error_code": int(event.error.code),
            "error_reason": event.error.reason,
        }
    )


def replay(run: Row, rounds: list[Row], clients: list[Row], rounds_completed: int) -> Iterator[Event]:
    """Yield events that rebuild these rows in any subscriber (run, rounds, replies, end)."""
    if run["run_id"] is None:
        return
    run_id = int(run["run_id"])
    yield RunStarted(
        run_id=run_id,
        num_rounds=int(run["num_rounds"]),
        node_ids=tuple(run["node_ids"]),
        strategy=str(run["strategy"]),
        config=dict(run["config"]),
        start_round=int(run["start_round"]),
        note=str(run["note"]),
        timestamp=_time(run["started_at"]),
    )
    replies: dict[tuple[int, str], list[Row]] = {}
    for reply in clients:
        replies.setdefault((reply["round"], reply["phase"]), []).append(reply)
    by_number = {row["round"]: row for row in rounds}
    for number in sorted(set(by_number) | {r for r, _ in replies}):
        yield from _round(run_id, number, by_number.get(number), replies)
    if run["finished"]:
        yield RunFinished(
            run_id=run_id,
            rounds_completed=rounds_completed,
            duration_s=float(run["duration_s"] or 0.0),
            stopped_early=bool(run["stopped_early"]),
            error=run["error"],
            timestamp=_time(run["finished_at"]),
        )


def _round(
    run_id: int, number: int, row: Row | None, replies: dict[tuple[int, str], list[Row]]
) -> Iterator[Event]:
    for phase in ("train", "evaluate", "query"):
        found = replies.get((number, phase), [])
        if found:
            nodes = tuple(reply["node_id"] for reply in found)
            yield RoundStarted(run_id=run_id, round=number, phase=phase, node_ids=nodes)
            yield from (_reply(run_id, reply) for reply in found)
        if row is None:
            continue
        if phase == "train" and row["aggregated"] is not None:
            yield RoundAggregated(
                run_id=run_id,
                round=number,
                metrics=dict(row["train"]),
                num_replies=int(row["train_replies"]),
                num_failures=int(row["train_failures"]),
                train_duration_s=float(row["train_duration_s"] or 0.0),
                aggregate_duration_s=float(row["aggregate_duration_s"] or 0.0),
                aggregated=bool(row["aggregated"]),
                reason=str(row["reason"]),
            )
        if phase == "train" and row.get("privacy"):
            yield PrivacySpent(run_id=run_id, round=number, **row["privacy"])
        if phase == "evaluate" and (row["evaluate"] or row["evaluate_duration_s"] is not None):
            yield Evaluated(
                run_id=run_id,
                round=number,
                source="clients",
                metrics=dict(row["evaluate"]),
                duration_s=float(row["evaluate_duration_s"] or 0.0),
                num_replies=int(row["evaluate_replies"]),
                num_failures=int(row["evaluate_failures"]),
            )
    if row is not None and (row["server"] or row["server_duration_s"] is not None):
        yield Evaluated(
            run_id=run_id,
            round=number,
            source="server",
            metrics=dict(row["server"]),
            duration_s=float(row["server_duration_s"] or 0.0),
        )


def _reply(run_id: int, row: Row) -> ClientReplied:
    error = None
    if row["error_code"] is not None:
        error = Error(int(row["error_code"]), str(row["error_reason"] or ""))
    return ClientReplied(
        run_id=run_id,
        round=int(row["round"]),
        phase=row["phase"],
        node_id=int(row["node_id"]),
        metrics=dict(row["metrics"]),
        duration_s=float(row["duration_s"] or 0.0),
        error=error,
        partition_id=row["partition_id"],
        timestamp=_time(row["timestamp"]),
    )


def _time(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0
