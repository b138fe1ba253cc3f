"""Typed events that every runtime emits, and the small bus that delivers them.

A run emits, in order: :class:`RunStarted`; per round :class:`RoundStarted` (train),
one :class:`ClientReplied` per sampled node (each maybe followed by a :class:`ReplyRejected`
when the strategy refuses that reply), :class:`RoundAggregated`, then optionally
:class:`RoundStarted` (evaluate) with its replies and :class:`Evaluated`; finally
:class:`RunFinished`. Strategies may add :class:`StrategyReport` events describing what they
did (e.g. which clients a robust rule kept), and a differentially private one a
:class:`PrivacySpent` after every round's aggregation. History, the terminal console and
the notebook dashboard are subscribers; they never reach into the runtime.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fedlab.message import Error

__all__ = [
    "ClientReplied",
    "Evaluated",
    "Event",
    "EventBus",
    "LISTED_NODES",
    "Phase",
    "PrivacySpent",
    "ReplyRejected",
    "RoundAggregated",
    "RoundStarted",
    "RunFinished",
    "RunStarted",
    "StrategyReport",
    "Subscriber",
]

_log = logging.getLogger("fedlab")

Phase = Literal["train", "evaluate", "query"]
MetricDict = Mapping[str, Any]


def _now() -> float:
    return time.time()


@dataclass(frozen=True)
class Event:
    """Base of all events: the run it belongs to and when it happened (Unix time)."""

    run_id: int
    timestamp: float = field(default_factory=_now, kw_only=True)


#: RunStarted lists node ids up to this many nodes; above, it only counts them.
LISTED_NODES = 10_000


@dataclass(frozen=True)
class RunStarted(Event):
    """A run began: how many rounds, over how many nodes, with which strategy.

    ``node_ids`` lists the nodes when there are at most :data:`LISTED_NODES` of them;
    a larger population is only counted (``num_nodes``), so that a million simulated
    nodes do not make every observer hold a million ids. ``note`` is what the run's
    first line should add, e.g. that federated evaluation was skipped ("" for nothing).
    """

    num_rounds: int
    node_ids: tuple[int, ...]
    strategy: str
    config: MetricDict = field(default_factory=dict)
    start_round: int = 1
    num_nodes: int | None = None
    note: str = ""

    @property
    def population(self) -> int:
        """How many nodes the run has (``num_nodes``, or the length of ``node_ids``)."""
        return len(self.node_ids) if self.num_nodes is None else self.num_nodes


@dataclass(frozen=True)
class RoundStarted(Event):
    """A phase of a round began; ``node_ids`` are the nodes sampled for it.

    ``partition_ids`` holds each sampled node's data partition, in the same order, where
    the runtime knows them (a simulation); it is empty otherwise.
    """

    round: int
    phase: Phase
    node_ids: tuple[int, ...]
    partition_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class ClientReplied(Event):
    """One node answered (or failed to). ``error`` is set for failures and time-outs."""

    round: int
    phase: Phase
    node_id: int
    metrics: MetricDict
    duration_s: float
    error: Error | None = None
    partition_id: int | None = None


@dataclass(frozen=True)
class ReplyRejected(Event):
    """The strategy refused a reply that had arrived: that node failed this round after all.

    It follows the node's :class:`ClientReplied` (which had no error): observers count the
    reply as failed instead of successful, with ``error`` (code
    :attr:`~fedlab.message.ErrorCode.REPLY_REJECTED`) saying why, e.g. an array whose
    shape differs from the global model's, or a NaN.
    """

    round: int
    phase: Phase
    node_id: int
    error: Error
    partition_id: int | None = None


@dataclass(frozen=True)
class RoundAggregated(Event):
    """The strategy aggregated a round's training replies into new global arrays.

    ``aggregated`` is False when too few replies arrived and the arrays stayed unchanged;
    ``reason`` then says why.
    """

    round: int
    metrics: MetricDict
    num_replies: int
    num_failures: int
    train_duration_s: float
    aggregate_duration_s: float
    aggregated: bool = True
    reason: str = ""


@dataclass(frozen=True)
class Evaluated(Event):
    """Evaluation results for a round: from the clients (aggregated) or from the server."""

    round: int
    source: Literal["clients", "server"]
    metrics: MetricDict
    duration_s: float
    num_replies: int = 0
    num_failures: int = 0


@dataclass(frozen=True)
class StrategyReport(Event):
    """Something a strategy wants observers to know about a round (e.g. selected clients)."""

    round: int
    strategy: str
    info: MetricDict


@dataclass(frozen=True)
class PrivacySpent(Event):
    """The privacy a differentially private run has spent once ``round`` was aggregated.

    ``epsilon`` is the total ε so far at ``delta`` (not this round's share), by
    ``accountant`` (``"rdp"`` or ``"pld"``) for ``sampling`` (``"fixed-size"``: exactly
    ``num_sampled`` of ``population`` clients each round; ``"poisson"``: each with
    probability ``sampling_probability``), with Gaussian noise multiplier
    ``noise_multiplier``, over ``steps`` rounds. ``clipping_norm`` is the norm this round
    clipped to (it moves with adaptive clipping).
    """

    round: int
    epsilon: float
    delta: float
    accountant: str
    sampling: str
    noise_multiplier: float
    sampling_probability: float
    num_sampled: int
    population: int
    steps: int
    clipping_norm: float


@dataclass(frozen=True)
class RunFinished(Event):
    """The run ended after ``rounds_completed`` rounds; ``error`` is set if it failed."""

    rounds_completed: int
    duration_s: float
    stopped_early: bool = False
    error: str | None = None


Subscriber = Callable[[Event], None]


class EventBus:
    """Delivers each emitted event to every subscriber, in subscription order.

    ``emit`` may be called from any thread; subscribers run in the emitting thread, so a
    subscriber that must run elsewhere (a notebook widget) hands the event over itself.
    A subscriber that raises breaks nothing: the other subscribers still receive the event,
    the exception is logged (once per subscriber, on the ``fedlab`` logger) and the first
    100 are kept in :attr:`subscriber_errors`.

    Examples
    --------
    >>> bus = EventBus()
    >>> seen = []
    >>> unsubscribe = bus.subscribe(seen.append)
    >>> bus.emit(RunFinished(run_id=1, rounds_completed=3, duration_s=0.5))
    >>> seen[0].rounds_completed
    3
    """

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self.subscriber_errors: list[BaseException] = []
        self._failed: set[int] = set()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add ``subscriber``; return a function that removes it again."""
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def emit(self, event: Event) -> None:
        """Deliver ``event`` to every current subscriber."""
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception as exc:  # an observer must never break a run
                self.record_subscriber_error(subscriber, exc)

    def record_subscriber_error(self, subscriber: Subscriber, exc: Exception) -> None:
        """Keep and log (once per subscriber) an exception raised by ``subscriber``."""
        with self._lock:
            first = id(subscriber) not in self._failed
            self._failed.add(id(subscriber))
            if len(self.subscriber_errors) < 100:
                self.subscriber_errors.append(exc)
        if first:
            _log.error("Event subscriber %r failed; it keeps receiving events.", subscriber, exc_info=exc)
