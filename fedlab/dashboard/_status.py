"""The live dashboard's status line: progress of the round, time elapsed and left."""

from __future__ import annotations

from fedlab.dashboard._model import DashboardModel
from fedlab.format import format_seconds

__all__ = ["status_line"]


def status_line(model: DashboardModel, waiting: str = "") -> str:
    """``train: 3/5 clients · 2.10s elapsed · ETA 4.00s``, or how the run ended.

    ``waiting`` (which client a stalled round waits on) is added when not empty.
    """
    if model.run_id is None:
        return "waiting for a run"
    p = model.progress
    if model.finish is not None:
        end = model.finish
        # A ServerApp of its own (queries, evaluation only) aggregates no rounds.
        reached = p.round >= model.last_round
        stopped = end.stopped_early and not reached
        head = "failed" if end.error else "stopped early" if stopped else "finished"
        rounds = end.rounds_completed or max(p.round - model.start_round + 1, 0)
        text = f"{head}: {rounds} rounds in {format_seconds(end.duration_s)}"
        failures = len(model.failures)
        text += f", {failures} client failure{'' if failures == 1 else 's'}"
        return text + (f"; {end.error}" if end.error else "")
    parts = []
    if p.phase:
        failed = f" ({p.failed} failed)" if p.failed else ""
        parts.append(f"{p.phase}: {p.done}/{p.sampled} clients{failed}")
    if model.started_at is not None and model.last_event_at is not None:
        parts.append(f"{format_seconds(model.last_event_at - model.started_at)} elapsed")
    eta = model.eta_s()
    if eta is not None:
        parts.append(f"ETA {format_seconds(eta)}")
    if waiting:
        parts.append(waiting)
    return " · ".join(parts)
