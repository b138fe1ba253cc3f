"""`Strategy`: what to send to which nodes each round, and how to combine the replies."""

from __future__ import annotations

import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fedlab.errors import RecordError, StrategyError
from fedlab.events import Evaluated, EventBus, Phase, RoundAggregated, RoundStarted, StrategyReport
from fedlab.message import Message
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord
from fedlab.server.grid import Grid
from fedlab.server.result import Result
from fedlab.strategy._reply_check import ReplyCheck, ReplyScreen
from fedlab.strategy._selection import NodeFilter, eligible_nodes, sample_eligible

__all__ = ["ConfigSource", "EvaluateFn", "Strategy", "StrategyState"]

#: Server-side evaluation: ``evaluate_fn(round, arrays) -> MetricRecord | None``.
EvaluateFn = Callable[[int, ArrayRecord], "MetricRecord | Mapping[str, Any] | None"]
#: A round's config: fixed, or computed from the round number.
ConfigSource = ConfigRecord | Mapping[str, Any] | Callable[[int], "ConfigRecord | Mapping[str, Any]"]


@dataclass
class StrategyState:
    """A strategy's memory between rounds: named ArrayRecords and JSON-able values."""

    arrays: dict[str, ArrayRecord] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)


class Strategy(ABC):
    """Base of every strategy: four hooks and the :meth:`start` loop that drives them.

    Subclasses implement ``configure_train``, ``aggregate_train``, ``configure_evaluate``
    and ``aggregate_evaluate``. They talk only to a :class:`~fedlab.server.Grid`, so the
    same strategy runs in simulation and in deployment. They never print: they report
    through events (:meth:`report`).
    """

    #: True when :meth:`aggregate_train` consumes its replies one by one and keeps none:
    #: it then gets them as a one-pass stream, each as soon as it arrives, and a round's
    #: memory no longer grows with the number of clients. False: it gets a list.
    streams_replies: bool = False

    def __init__(
        self, *, node_ids: Collection[int] | None = None, node_filter: NodeFilter | None = None
    ) -> None:
        self.rng = random.Random()
        #: Only these nodes are ever sampled (None: every node).
        self.node_ids = None if node_ids is None else tuple(sorted(set(node_ids)))
        #: Only nodes whose ``node_config`` this predicate accepts are sampled (None: every node).
        self.node_filter = node_filter
        self._events: EventBus | None = None
        self._run_id = 0

    # -- the four hooks -----------------------------------------------------------------

    @abstractmethod
    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Return the training instructions for this round."""

    @abstractmethod
    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Combine training replies (failed ones included) into new arrays and metrics.

        Return ``None`` arrays to keep the current global arrays for this round.
        """

    @abstractmethod
    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Return the evaluation instructions for this round (may be empty)."""

    @abstractmethod
    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """Combine evaluation replies into metrics."""

    def check_train_reply(self, instruction: Message, reply: Message) -> str | None:
        """Return why a successful training reply cannot be aggregated, or None to accept it.

        :meth:`start` asks this of every training reply before :meth:`aggregate_train` sees
        it. A refused reply reaches ``aggregate_train`` as an error reply (code
        :attr:`~fedlab.message.ErrorCode.REPLY_REJECTED`, the returned text as its reason)
        and is reported with a :class:`~fedlab.events.ReplyRejected` event: that client
        failed this round, and the round goes on with the others. The base accepts every
        reply; :class:`~fedlab.strategy.FedAvg` and the strategies built on it compare the
        reply with the model in ``instruction`` (see :meth:`FedAvg.check_train_reply`).
        """
        return None

    # -- helpers for subclasses ---------------------------------------------------------

    def report(self, server_round: int, **info: Any) -> None:
        """Tell observers what the strategy did this round (a StrategyReport event)."""
        if self._events is not None:
            self._events.emit(
                StrategyReport(
                    run_id=self._run_id, round=server_round, strategy=type(self).__name__, info=info
                )
            )

    def sample_nodes(
        self, grid: Grid, fraction: float, min_nodes: int, min_available: int, timeout: float = 60.0
    ) -> list[int]:
        """Sample ``max(int(fraction * eligible), min_nodes)`` eligible nodes with :attr:`rng`.

        Eligible nodes are the available ones admitted by :attr:`node_ids` and
        :attr:`node_filter` (:meth:`eligible_nodes`). Their ids are sorted before sampling
        so the choice depends only on the seed.
        """
        if fraction <= 0.0:
            return []
        available = grid.wait_for_nodes(max(min_available, min_nodes), timeout)
        eligible = self.eligible_nodes(grid, available)
        restricted = self.node_ids is not None or self.node_filter is not None
        return sample_eligible(
            self.rng, eligible, len(available), fraction, min_nodes, type(self).__name__, restricted
        )

    def eligible_nodes(self, grid: Grid, available: Iterable[int] | None = None) -> Sequence[int]:
        """Return, sorted, the available nodes this strategy's node selection admits."""
        nodes = grid.get_node_ids() if available is None else available
        return eligible_nodes(grid, nodes, self.node_ids, self.node_filter)

    def state_dict(self) -> StrategyState:
        """Return what a resumed run needs to continue exactly where this one stopped.

        A strategy with memory (momentum, optimiser moments, control variates) extends this:
        call ``super().state_dict()`` and add its arrays and JSON-able values (and clear
        them in :meth:`reset`). The base saves the sampling RNG. Nothing here is pickled:
        arrays are ArrayRecords and values must survive ``json.dumps``.
        """
        version, internal, gauss = self.rng.getstate()
        return StrategyState(arrays={}, values={"rng": [version, list(internal), gauss]})

    def load_state_dict(self, state: StrategyState) -> None:
        """Restore what :meth:`state_dict` returned (subclasses call super() first)."""
        rng = state.values.get("rng")
        if rng is not None:
            version, internal, gauss = rng
            self.rng.setstate((version, tuple(internal), gauss))

    def reset(self) -> None:
        """Forget what earlier runs left behind, so that a new run starts afresh.

        :meth:`begin_run` calls this at the start of every new run (``start_round == 1``),
        before seeding; a resumed run (``start_round > 1``) keeps the state restored with
        :meth:`load_state_dict`. So two identical runs, on one Federation or on two
        sharing this strategy object, give identical results. A strategy with memory
        (momentum, optimiser moments, control variates) extends this: call
        ``super().reset()`` and clear what :meth:`state_dict` would save. The base keeps
        nothing besides the sampling RNG, which the run's seed sets.
        """

    def required_nodes(self) -> int:
        """The number of nodes the strategy needs before round 1 (checked by :meth:`start`)."""
        return 0

    def summary(self) -> str:
        """One line describing this strategy and its settings."""
        settings = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_") and k != "rng")
        return f"{type(self).__name__}({settings})"

    def begin_run(
        self,
        grid: Grid,
        initial_arrays: ArrayRecord,
        num_rounds: int,
        start_round: int,
        seed: int | None,
        timeout: float | None,
    ) -> None:
        """Check :meth:`start`'s arguments, :meth:`reset` and seed a new run, wait for its nodes.

        Every ``start`` loop (round-based or asynchronous) calls this first, so they refuse
        the same bad input with the same messages and report to the grid's event bus.
        """
        if not isinstance(initial_arrays, ArrayRecord):
            raise StrategyError(
                f"initial_arrays must be an ArrayRecord, got {type(initial_arrays).__name__}; "
                "wrap your model's parameters, e.g. ArrayRecord(model.state_dict())."
            )
        if not isinstance(num_rounds, int) or isinstance(num_rounds, bool) or num_rounds < 0:
            raise StrategyError(f"num_rounds must be a non-negative int, got {num_rounds!r}.")
        if not isinstance(start_round, int) or isinstance(start_round, bool) or start_round < 1:
            raise StrategyError(f"start_round must be an int >= 1, got {start_round!r}.")
        if start_round == 1:  # a resumed run's state (RNG included) was restored instead
            self.reset()
            if seed is not None:
                self.rng.seed(seed)
        # Fail before any client trains if the federation can never satisfy the minimums.
        grid.wait_for_nodes(self.required_nodes(), timeout if timeout is not None else 3600.0)
        self._events, self._run_id = grid.events, grid.run_id

    # -- the loop -------------------------------------------------------------------------

    def start(
        self,
        grid: Grid,
        initial_arrays: ArrayRecord,
        num_rounds: int = 3,
        *,
        timeout: float | None = 600.0,
        train_config: ConfigSource | None = None,
        evaluate_config: ConfigSource | None = None,
        evaluate_fn: EvaluateFn | None = None,
        seed: int | None = None,
        start_round: int = 1,
        on_round_end: Callable[[Result], None] | None = None,
    ) -> Result:
        """Run ``num_rounds`` rounds of training (and evaluation) on ``grid``.

        Each round: sample nodes and send them the global arrays and the round's config
        (with ``server-round`` added), wait at most ``timeout`` seconds for replies,
        aggregate them, evaluate with the clients if the strategy asks for it, and call
        ``evaluate_fn(round, arrays)`` on the server (also once before round 1, as round 0).
        The loop stops early, after a complete round, when ``grid.request_stop()`` is called.

        Parameters
        ----------
        grid
            Where the nodes are.
        initial_arrays
            The global model before round 1.
        num_rounds
            How many rounds to run.
        timeout
            Seconds to wait for each phase's replies (default 600); nodes that have not
            replied by then count as timed out (``ErrorCode.TIMEOUT``), and the grid
            gives up on their calls. None waits forever.
        train_config, evaluate_config
            Sent to clients in the ``config`` record: a ConfigRecord, a dict, or a function of
            the round number returning one.
        evaluate_fn
            Server-side evaluation after every round.
        seed
            Seeds node sampling; the same seed gives the same choices.
        start_round
            The first round to run; above 1, the run continues one that completed rounds
            ``1 .. start_round - 1``: ``initial_arrays`` are that run's global arrays, its
            state was restored with :meth:`load_state_dict` (so ``seed`` is not applied
            again) and there is no round-0 evaluation. ``num_rounds`` is the last round.
        on_round_end
            Called after every completed round with the Result so far (used to checkpoint).
        """
        self.begin_run(grid, initial_arrays, num_rounds, start_round, seed, timeout)
        arrays = initial_arrays
        result: dict[str, dict[int, MetricRecord]] = {"train": {}, "evaluate": {}, "server": {}}
        if start_round == 1:
            self._evaluate_on_server(evaluate_fn, 0, arrays, result["server"])
        completed = start_round - 1
        for rnd in range(start_round, num_rounds + 1):
            if grid.stop_requested:
                break
            arrays = self._train_round(grid, rnd, arrays, train_config, timeout, result["train"])
            self._evaluate_round(grid, rnd, arrays, evaluate_config, timeout, result["evaluate"])
            self._evaluate_on_server(evaluate_fn, rnd, arrays, result["server"])
            completed = rnd
            if on_round_end is not None:
                on_round_end(
                    Result(arrays, result["train"], result["evaluate"], result["server"], rnd)
                )
        return Result(
            arrays=arrays,
            train_metrics_clientapp=result["train"],
            evaluate_metrics_clientapp=result["evaluate"],
            evaluate_metrics_serverapp=result["server"],
            rounds_completed=completed,
            stopped_early=completed < num_rounds,
        )

    def _train_round(
        self,
        grid: Grid,
        rnd: int,
        arrays: ArrayRecord,
        config: ConfigSource | None,
        timeout: float | None,
        metrics_by_round: dict[int, MetricRecord],
    ) -> ArrayRecord:
        started = time.perf_counter()
        messages = list(self.configure_train(rnd, arrays, round_config(config, rnd), grid))
        if not messages:  # e.g. federated evaluation only: nothing trained, nothing failed
            return arrays
        stream = _exchange(grid, rnd, "train", messages, timeout, self._reply_check())
        if self.streams_replies:
            # Replies are summed as they arrive: training and aggregation overlap, so the
            # round's time is reported as training, and aggregation as what follows it.
            new_arrays, metrics = self.aggregate_train(rnd, stream)
            stream.drain()
            trained = time.perf_counter()
        else:
            replies = list(stream)
            trained = time.perf_counter()
            new_arrays, metrics = self.aggregate_train(rnd, replies)
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

    def _reply_check(self) -> ReplyCheck | None:
        # A strategy that accepts every reply is not handed them one more time.
        if type(self).check_train_reply is Strategy.check_train_reply:
            return None
        return self.check_train_reply

    def _evaluate_round(
        self,
        grid: Grid,
        rnd: int,
        arrays: ArrayRecord,
        config: ConfigSource | None,
        timeout: float | None,
        metrics_by_round: dict[int, MetricRecord],
    ) -> None:
        started = time.perf_counter()
        messages = list(self.configure_evaluate(rnd, arrays, round_config(config, rnd), grid))
        if not messages:
            return
        stream = _exchange(grid, rnd, "evaluate", messages, timeout)
        replies = list(stream)
        failures = stream.failures
        metrics = self.aggregate_evaluate(rnd, replies)
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

    def _evaluate_on_server(
        self,
        evaluate_fn: EvaluateFn | None,
        rnd: int,
        arrays: ArrayRecord,
        metrics_by_round: dict[int, MetricRecord],
    ) -> None:
        if evaluate_fn is None:
            return
        started = time.perf_counter()
        raw = evaluate_fn(rnd, arrays)
        if raw is None:
            return
        metrics = _server_metrics(raw, rnd)
        metrics_by_round[rnd] = metrics
        if self._events is not None:
            self._events.emit(
                Evaluated(
                    run_id=self._run_id,
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
    grid.events.emit(RoundStarted(run_id=grid.run_id, round=rnd, phase=phase, node_ids=node_ids))
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

    def __iter__(self) -> Iterator[Message]:
        if self._used:
            raise StrategyError(
                "A round's replies can be iterated only once (they are released as they are "
                "used); take list(replies) first to go over them again."
            )
        self._used = True
        return self._counted()

    def drain(self) -> None:
        """Consume the replies nobody asked for."""
        self._used = True
        for _ in self._counted():
            pass

    def _counted(self) -> Iterator[Message]:
        for reply in self._replies:
            if self._screen is not None:
                reply = self._screen(reply)
            self.count += 1
            self.failures += reply.has_error()
            yield reply
