"""Turn a recorded :class:`~fedlab.history.History` back into the events that built it.

Displays only read events, so replaying a History lets them show a run that already
ended (``fed.dashboard()`` after a run, ``History.plot()``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from fedlab.events import (
    ClientReplied,
    Evaluated,
    Event,
    RoundAggregated,
    RoundStarted,
    RunFinished,
    RunStarted,
)
from fedlab.message import Error

if TYPE_CHECKING:
    from fedlab.history import History

__all__ = ["replay"]


def replay(history: History) -> Iterator[Event]:
    """Yield events that rebuild ``history`` in any subscriber (run, rounds, replies, end).

    Examples
    --------
    >>> from fedlab.events import RunStarted
    >>> from fedlab.history import History
    >>> history = History()
    >>> history(RunStarted(run_id=3, num_rounds=2, node_ids=(5,), strategy="FedAvg"))
    >>> [type(e).__name__ for e in replay(history)]
    ['RunStarted']
    """
    run = history.run
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
    replies: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for row in history.clients:
        replies.setdefault((row["round"], row["phase"]), []).append(row)
    rounds = {row["round"]: row for row in history.rounds}
    for number in sorted(set(rounds) | {r for r, _ in replies}):
        yield from _round(run_id, number, rounds.get(number), replies)
    if run["finished"]:
        yield RunFinished(
            run_id=run_id,
            rounds_completed=history.rounds_completed,
            duration_s=float(run["duration_s"] or 0.0),
            stopped_early=bool(run["stopped_early"]),
            error=run["error"],
            timestamp=_time(run["finished_at"]),
        )


def _round(
    run_id: int,
    number: int,
    row: dict[str, Any] | None,
    replies: dict[tuple[int, str], list[dict[str, Any]]],
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


def _reply(run_id: int, row: dict[str, Any]) -> ClientReplied:
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
