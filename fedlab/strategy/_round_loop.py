"""The round loop behind `Strategy.start`: send, collect, aggregate, evaluate, report.

Every round goes the same way for every strategy. The replies come back as a
:class:`ReplyStream`, in message order and each as soon as it is in; a strategy that
:attr:`~fedlab.strategy.Strategy.streams_replies` aggregates them from the stream as they
arrive, any other gets the same stream taken into a list. Reply screening
(``check_train_reply``) happens in the stream, before the strategy sees a reply.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from fedlab.errors import RecordError, StrategyError
from fedlab.events import Evaluated, Phase, RoundAggregated, RoundStarted
from fedlab.message import Message
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord
from fedlab.server.grid import Grid
from fedlab.server.result import Result
from fedlab.strategy._reply_check import ReplyCheck, ReplyScreen

__all__ = [
    "ConfigSource",
    "EvaluateFn",
    "ReplyStream",
    "RoundHooks",
    "evaluate_on_server",
    "partitions_of",
    "round_config",
    "run_rounds",
]

#: Server-side evaluation: ``evaluate_fn(round, arrays) -> MetricRecord | None``.
EvaluateFn = Callable[[int, ArrayRecord], "MetricRecord | Mapping[str, Any] | None"]
#: A round's config: fixed, or computed from the round number.
ConfigSource = (
    ConfigRecord | Mapping[str, Any] | Callable[[int], "ConfigRecord | Mapping[str, Any]"]
)


class RoundHooks(Protocol):
    """What :func:`run_rounds` needs of a strategy: its four hooks and its reply check."""

    @property
    def streams_replies(self) -> bool:
        """Whether :meth:`aggregate_train` takes a one-pass stream (else a list)."""

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The round's training instructions."""

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The round's new arrays (None: unchanged) and metrics."""

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The round's evaluation instructions (may be empty)."""

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """The round's evaluation metrics."""

    def check_train_reply(self, instruction: Message, reply: Message) -> str | None:
        """Why a successful training reply cannot be aggregated, or None."""


def run_rounds(
    hooks: RoundHooks,
    grid: Grid,
    arrays: ArrayRecord,
    num_rounds: int,
    *,
    start_round: int,
    timeout: float | None,
    train_config: ConfigSource | None,
    evaluate_config: ConfigSource | None,
    evaluate_fn: EvaluateFn | None,
    on_round_end: Callable[[Result], None] | None,
) -> Result:
    """Run rounds ``start_round .. num_rounds`` from ``arrays``, as :meth:`Strategy.start` says.

    The arguments were checked by :meth:`Strategy.begin_run`.
    """
    result: dict[str, dict[int, MetricRecord]] = {"train": {}, "evaluate": {}, "server": {}}
    if start_round == 1:
        evaluate_on_server(grid, evaluate_fn, 0, arrays, result["server"])
    completed = start_round - 1
    for rnd in range(start_round, num_rounds + 1):
        if grid.stop_requested:
            break
        arrays = _train_round(hooks, grid, rnd, arrays, train_config, timeout, result["train"])
        _evaluate_round(hooks, grid, rnd, arrays, evaluate_config, timeout, result["evaluate"])
        evaluate_on_server(grid, evaluate_fn, rnd, arrays, result["server"])
        completed = rnd
        if on_round_end is not None:
            on_round_end(Result(arrays, result["train"], result["evaluate"], result["server"], rnd))
    return Result(
        arrays=arrays,
        train_metrics_clientapp=result["train"],
        evaluate_metrics_clientapp=result["evaluate"],
        evaluate_metrics_serverapp=result["server"],
        rounds_completed=completed,
        stopped_early=completed < num_rounds,
    )


def _train_round(
    hooks: RoundHooks,
    grid: Grid,
    rnd: int,
    arrays: ArrayRecord,
    config: ConfigSource | None,
    timeout: float | None,
    metrics_by_round: dict[int, MetricRecord],
) -> ArrayRecord:
    started = time.perf_counter()
    messages = list(hooks.configure_train(rnd, arrays, round_config(config, rnd), grid))
    if not messages:  # e.g. federated evaluation only: nothing trained, nothing failed
        return arrays
    stream = _exchange(grid, rnd, "train", messages, timeout, hooks.check_train_reply)
    replies = stream if hooks.streams_replies else list(stream)
    new_arrays, metrics = hooks.aggregate_train(rnd, replies)
    # Training lasts until the last reply is in (a streaming strategy sums each reply as
    # it arrives, overlapping training); aggregation is what follows it.
    trained = stream.drain()
    if metrics is not None:
        metrics_by_round[rnd] = metrics
    ok = stream.count - stream.failures
    grid.events.emit(
        RoundAggregated(
            run_id=grid.run_id,
            round=rnd,
            metrics=dict(metrics or {}),
            num_replies=ok,
            num_failures=stream.failures,
            train_duration_s=trained - started,
            aggregate_duration_s=time.perf_counter() - trained,
            aggregated=new_arrays is not None,
            reason="" if new_arrays is not None else (
                f"{ok} of {stream.count} replies succeeded, too few to "
                "aggregate; the global arrays are unchanged this round"
            ),
        )
    )
    return new_arrays if new_arrays is not None else arrays


def _evaluate_round(
    hooks: RoundHooks,
    grid: Grid,
    rnd: int,
    arrays: ArrayRecord,
    config: ConfigSource | None,
    timeout: float | None,
    metrics_by_round: dict[int, MetricRecord],
) -> None:
    started = time.perf_counter()
    messages = list(hooks.configure_evaluate(rnd, arrays, round_config(config, rnd), grid))
    if not messages:
        return
    stream = _exchange(grid, rnd, "evaluate", messages, timeout)
    replies = list(stream)
    failures = stream.failures
    metrics = hooks.aggregate_evaluate(rnd, replies)
    if metrics is not None:
        metrics_by_round[rnd] = metrics
    grid.events.emit(
        Evaluated(
            run_id=grid.run_id,
            round=rnd,
            source="clients",
            metrics=dict(metrics or {}),
            duration_s=time.perf_counter() - started,
            num_replies=len(replies) - failures,
            num_failures=failures,
        )
    )


def evaluate_on_server(
    grid: Grid,
    evaluate_fn: EvaluateFn | None,
    rnd: int,
    arrays: ArrayRecord,
    metrics_by_round: dict[int, MetricRecord],
) -> None:
    """Call ``evaluate_fn(rnd, arrays)``, keep its metrics and report them (if it is given)."""
    if evaluate_fn is None:
        return
    started = time.perf_counter()
    raw = evaluate_fn(rnd, arrays)
    if raw is None:
        return
    metrics = _server_metrics(raw, rnd)
    metrics_by_round[rnd] = metrics
    grid.events.emit(
        Evaluated(
            run_id=grid.run_id,
            round=rnd,
            source="server",
            metrics=dict(metrics),
            duration_s=time.perf_counter() - started,
        )
    )


def _server_metrics(raw: object, rnd: int) -> MetricRecord:
    """What ``evaluate_fn`` returned, as a MetricRecord; anything else is refused with the fix."""
    if isinstance(raw, MetricRecord):
        return raw
    if isinstance(raw, Mapping):
        try:
            return MetricRecord(dict(raw))
        except RecordError as exc:
            raise StrategyError(
                f"evaluate_fn returned metrics a MetricRecord cannot hold in round {rnd}: {exc}"
            ) from None
    shown = repr(raw) if len(repr(raw)) <= 80 else repr(raw)[:77] + "..."
    fix = "For example: return {'loss': loss, 'accuracy': accuracy}."
    if isinstance(raw, tuple) and len(raw) == 2 and isinstance(raw[1], Mapping):
        fix = "For Flower's older (loss, metrics) pair, return {'loss': loss, **metrics}."
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        fix = "Give the number a name: return {'loss': loss}."
    raise StrategyError(
        f"evaluate_fn returned a {type(raw).__name__} in round {rnd}: {shown}; it must return "
        f"a MetricRecord, a dict of metrics or None. {fix}"
    )


def round_config(source: ConfigSource | None, server_round: int) -> ConfigRecord:
    """Return a fresh ConfigRecord for ``server_round`` with ``server-round`` set."""
    raw = source(server_round) if callable(source) else source
    config = ConfigRecord(dict(raw) if raw is not None else None)
    config["server-round"] = server_round
    return config


def _exchange(
    grid: Grid,
    rnd: int,
    phase: Phase,
    messages: list[Message],
    timeout: float | None,
    check: ReplyCheck | None = None,
) -> ReplyStream:
    """Announce the phase, send its messages, and return their replies as a stream.

    With ``check``, every successful reply is screened against its instruction first.
    """
    node_ids = tuple(m.metadata.dst_node_id for m in messages)
    grid.events.emit(
        RoundStarted(
            run_id=grid.run_id,
            round=rnd,
            phase=phase,
            node_ids=node_ids,
            partition_ids=partitions_of(grid, node_ids),
        )
    )
    screen = None if check is None else ReplyScreen(grid, messages, check)
    return ReplyStream(grid.send_and_stream(messages, timeout=timeout), screen)


class ReplyStream(Iterable[Message]):
    """A round's replies, in message order, each handed out as soon as it is in.

    It can be iterated once; it counts what passed through, so the round's report knows
    how many replies and failures there were, and :meth:`drain` consumes whatever the
    strategy left (so time-outs are still reported). ``screen`` may replace each reply
    (by an error reply, when it refuses one) before it is counted and handed out.
    """

    def __init__(
        self, replies: Iterator[Message], screen: Callable[[Message], Message] | None = None
    ) -> None:
        self._replies = replies
        self._screen = screen
        self._used = False
        self.count = 0
        self.failures = 0
        self._ended_at: float | None = None

    def __iter__(self) -> Iterator[Message]:
        if self._used:
            raise StrategyError(
                "A round's replies can be iterated only once (they are released as they are "
                "used); take list(replies) first to go over them again."
            )
        self._used = True
        return self._counted()

    def drain(self) -> float:
        """Consume the replies nobody asked for; return when the last one was handed out.

        The time is a ``time.perf_counter()`` reading.
        """
        self._used = True
        for _ in self._counted():
            pass
        assert self._ended_at is not None  # _counted sets it when the replies run out
        return self._ended_at

    def _counted(self) -> Iterator[Message]:
        for reply in self._replies:
            if self._screen is not None:
                reply = self._screen(reply)
            self.count += 1
            self.failures += reply.has_error()
            yield reply
        if self._ended_at is None:
            self._ended_at = time.perf_counter()


def partitions_of(grid: Grid, node_ids: Sequence[int]) -> tuple[int, ...]:
    """The partition of each of ``node_ids``, or ``()`` where the grid does not know them all."""
    partitions = tuple(grid.partition_id(node) for node in node_ids)
    return () if None in partitions else partitions  # type: ignore[return-value]
