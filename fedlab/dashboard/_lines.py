"""The text lines a terminal display writes: run start, each round, each failure, run end."""

from __future__ import annotations

from fedlab.dashboard._tracker import RoundState, RunTracker, Stall
from fedlab.events import ClientReplied, ReplyRejected, RunFinished, RunStarted
from fedlab.format import (
    describe_error,
    format_metrics,
    format_privacy,
    format_rounds,
    format_seconds,
)

__all__ = [
    "client_name",
    "failure_line",
    "finished_line",
    "round_line",
    "started_line",
    "waiting_line",
]


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def started_line(event: RunStarted) -> str:
    """``run started: FedAvg, 10 rounds, 20 nodes`` (run ids are long random numbers)."""
    rounds = _count(event.num_rounds, "round")
    if event.start_round != 1:
        rounds += f" from round {event.start_round}"
    strategy = f"{event.strategy}, " if event.strategy else ""
    note = f"; {event.note}" if event.note else ""
    return f"run started: {strategy}{rounds}, {_count(event.population, 'node')}{note}"


def round_line(tracker: RunTracker, state: RoundState) -> str | None:
    """``round 3/10  clients 20/20 (0 failed)  train loss=0.4312  1.23s``; None if empty.

    A DP run adds the privacy spent so far before the time: ``ε=1.23 (δ=1e-05)``.
    """
    sections = state.sections()
    if not state.sampled and state.aggregated is None and not any(m for _, m in sections):
        return None  # only a strategy report or a straggler opened it: nothing to show
    total = f"/{tracker.last_round}" if tracker.num_rounds else ""
    parts = [f"round {state.round}{total}"]
    if "train" in state.sampled or "train" in state.replied:
        ok, bad = state.replied.get("train", 0), state.failed.get("train", 0)
        parts.append(f"clients {ok}/{state.sampled.get('train', ok + bad)} ({bad} failed)")
    if state.aggregated is False:
        parts.append(f"not aggregated: {state.reason}" if state.reason else "not aggregated")
    metrics = format_metrics(sections)
    if metrics:
        parts.append(metrics)
    if state.privacy is not None:
        parts.append(format_privacy(*state.privacy))
    parts.append(format_seconds(state.duration_s))
    return "  ".join(parts)


def client_name(node_id: int, partition_id: int | None) -> str:
    """``client 7 (node 8211050864078048428)`` in simulation, else ``client 8211050864078048428``."""
    return f"client {node_id}" if partition_id is None else f"client {partition_id} (node {node_id})"


def failure_line(event: ClientReplied | ReplyRejected) -> str:
    """``client 7 (node 8211…) failed in round 3 (train): ValueError: boom`` (also for a refused reply)."""
    error = event.error
    reason = describe_error(error.code, error.reason) if error else "no error"
    who = client_name(event.node_id, event.partition_id)
    return f"{who} failed in round {event.round} ({event.phase}): {reason}"


def finished_line(tracker: RunTracker, event: RunFinished) -> str:
    """``run finished: 10 rounds in 12.3s, no client failures`` (or why it stopped).

    Rounds that kept the global arrays unchanged are named:
    ``run finished: 3 rounds in 1.00s, 2 client failures; rounds 2, 3 aggregated nothing``.
    """
    done = event.rounds_completed
    partial = event.error is not None or event.stopped_early
    if partial and tracker.num_rounds:
        rounds = f"{done} of {_count(tracker.num_rounds, 'round')}"
    else:
        rounds = _count(done, "round")
    failures = (
        _count(tracker.failures, "client failure") if tracker.failures else "no client failures"
    )
    head = "failed" if event.error else "stopped early" if event.stopped_early else "finished"
    line = f"run {head}: {rounds} in {format_seconds(event.duration_s)}, {failures}"
    if tracker.unaggregated:
        line += f"; {format_rounds(tracker.unaggregated)} aggregated nothing"
    if event.error:
        line += f"; error: {describe_error(None, event.error)}"
    return line


def waiting_line(stall: Stall) -> str:
    """``round 3 train: waiting on client 7 (node 1234) for 12s, 2 more not replied``.

    The client is named by its partition where the run knows it, else by its node.
    """
    who = (
        f"node {stall.node_id}"
        if stall.partition_id is None
        else client_name(stall.node_id, stall.partition_id)
    )
    text = f"round {stall.round} {stall.phase}: waiting on {who} for {stall.seconds:.0f}s"
    others = stall.pending - 1
    if others:
        text += f", {others} more not replied"
    return text
