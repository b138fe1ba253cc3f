"""Follow a run's events and tell a display when a round is complete.

A round is complete once an event of a later round arrives, or the run finishes: until
then an evaluation may still follow its aggregation. The tracker also follows the phase
in progress, so that a display can say which client a stalled round waits on. Not
thread-safe on its own; each display feeds it under its own lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fedlab.events import (
    LISTED_NODES,
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

__all__ = ["RoundState", "RunTracker", "STALL_S", "Stall"]

#: Seconds a phase may go without a reply before displays say which client it waits on.
STALL_S = 5.0


@dataclass
class RoundState:
    """What a display needs to know about one round."""

    round: int
    sampled: dict[str, int] = field(default_factory=dict)
    replied: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    evaluate: dict[str, Any] = field(default_factory=dict)
    server: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    aggregated: bool | None = None
    reason: str = ""
    #: (ε, δ) spent so far, after this round of a differentially private run.
    privacy: tuple[float, float] | None = None

    def sections(self) -> list[tuple[str, dict[str, Any]]]:
        """The round's metrics as (source, metrics) pairs, in display order."""
        return [("train", self.train), ("evaluate", self.evaluate), ("server", self.server)]


@dataclass(frozen=True)
class Stall:
    """A phase that has had no reply for ``seconds``: the client it waits on first."""

    round: int
    phase: str
    node_id: int
    partition_id: int | None
    pending: int
    seconds: float


@dataclass
class _Phase:
    """The phase in progress: who was sampled, who replied, when the last reply came."""

    round: int
    phase: str
    node_ids: tuple[int, ...]
    since: float
    replied: set[int] = field(default_factory=set)


@dataclass
class RunTracker:
    """The state of the run a display follows: run facts plus the rounds still open."""

    run_id: int | None = None
    strategy: str = ""
    num_rounds: int = 0
    start_round: int = 1
    num_nodes: int = 0
    failures: int = 0
    rounds_aggregated: int = 0
    #: Rounds whose aggregation kept the global arrays unchanged, in the order reported.
    unaggregated: list[int] = field(default_factory=list)
    open: dict[int, RoundState] = field(default_factory=dict)
    closed_upto: int = -1
    latest: RoundState | None = None
    current: _Phase | None = None
    #: Partition ids learnt from replies (up to LISTED_NODES nodes), to name clients by.
    partitions: dict[int, int] = field(default_factory=dict)

    @property
    def last_round(self) -> int:
        """The number of the run's last round (``num_rounds`` counts from ``start_round``)."""
        return self.start_round + self.num_rounds - 1

    @classmethod
    def from_start(cls, event: RunStarted) -> RunTracker:
        """A tracker for the run that ``event`` starts."""
        return cls(
            run_id=event.run_id,
            strategy=event.strategy,
            num_rounds=event.num_rounds,
            start_round=event.start_round,
            num_nodes=len(event.node_ids),
        )

    def stall(self, now: float) -> Stall | None:
        """The phase in progress if it has had no reply for :data:`STALL_S` at ``now``.

        It names the first client, in the order the phase sent them work, that has not
        replied: with the inline backend the one running, with the others the longest
        running.
        """
        phase = self.current
        if phase is None or now - phase.since < STALL_S:
            return None
        waiting = [n for n in phase.node_ids if n not in phase.replied]
        if not waiting:
            return None
        first = waiting[0]
        seconds = now - phase.since
        return Stall(phase.round, phase.phase, first, self.partitions.get(first), len(waiting), seconds)

    def feed(self, event: Event) -> list[RoundState]:
        """Take in ``event`` (any but :class:`RunStarted`); return the rounds it completed."""
        self._follow_phase(event)
        if isinstance(event, RunFinished):
            return self._close(below=None)
        number = getattr(event, "round", None)
        if not isinstance(number, int):
            return []
        if isinstance(event, ReplyRejected) or (
            isinstance(event, ClientReplied) and event.error is not None
        ):
            self.failures += 1
        if number <= self.closed_upto:
            return []  # a straggler of a round already shown
        done = self._close(below=number)
        state = self.open.setdefault(number, RoundState(number))
        self._update(state, event)
        return done

    def _learn_partition(self, node_id: int, partition_id: int) -> None:
        # Kept for at most LISTED_NODES nodes: a huge population must not fill memory.
        if node_id in self.partitions or len(self.partitions) < LISTED_NODES:
            self.partitions[node_id] = partition_id

    def _follow_phase(self, event: Event) -> None:
        current = self.current
        if isinstance(event, RoundStarted):
            self.current = _Phase(event.round, event.phase, event.node_ids, event.timestamp)
            for node_id, partition_id in zip(event.node_ids, event.partition_ids):
                self._learn_partition(node_id, partition_id)
        elif isinstance(event, ClientReplied):
            if event.partition_id is not None:
                self._learn_partition(event.node_id, event.partition_id)
            if current is not None and (current.round, current.phase) == (event.round, event.phase):
                current.replied.add(event.node_id)
                current.since = max(current.since, event.timestamp)
        elif isinstance(event, RunFinished) or (
            isinstance(event, RoundAggregated | Evaluated)
            and current is not None
            and event.round == current.round
        ):
            self.current = None  # the clients are done; the server's work is not waiting

    def _close(self, below: int | None) -> list[RoundState]:
        numbers = sorted(r for r in self.open if below is None or r < below)
        if numbers:
            self.closed_upto = max(self.closed_upto, numbers[-1])
        return [self.open.pop(r) for r in numbers]

    def _update(self, state: RoundState, event: Event) -> None:
        if isinstance(event, RoundStarted):
            state.sampled[event.phase] = len(event.node_ids)
            state.replied.setdefault(event.phase, 0)
            state.failed.setdefault(event.phase, 0)
        elif isinstance(event, ClientReplied):
            counts = state.replied if event.error is None else state.failed
            counts[event.phase] = counts.get(event.phase, 0) + 1
        elif isinstance(event, ReplyRejected):  # its reply was counted as a success
            replied = state.replied.get(event.phase, 0)
            state.replied[event.phase] = max(replied - 1, 0)
            state.failed[event.phase] = state.failed.get(event.phase, 0) + 1
        elif isinstance(event, RoundAggregated):
            state.train = dict(event.metrics)
            state.replied["train"], state.failed["train"] = event.num_replies, event.num_failures
            state.duration_s += event.train_duration_s + event.aggregate_duration_s
            state.aggregated, state.reason = event.aggregated, event.reason
            self.rounds_aggregated += 1
            if not event.aggregated:
                self.unaggregated.append(event.round)
            self.latest = state
        elif isinstance(event, PrivacySpent):
            state.privacy = (event.epsilon, event.delta)
        elif isinstance(event, Evaluated):
            if event.source == "server":
                state.server = dict(event.metrics)
            else:
                state.evaluate = dict(event.metrics)
                state.replied["evaluate"] = event.num_replies
                state.failed["evaluate"] = event.num_failures
            state.duration_s += event.duration_s
            self.latest = state
