"""`FedBuff`: buffered asynchronous aggregation (Nguyen et al., AISTATS 2022)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Iterable

import numpy as np

from fedlab.errors import StrategyError
from fedlab.events import RoundAggregated
from fedlab.message import Message, MessageType
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.server.grid import Grid
from fedlab.server.result import Result
from fedlab.strategy._aggregate import MetricsAggregationFn, weighted_average_metrics
from fedlab.strategy._arrays import check_matches_global, from_float64, reply_arrays, to_float64
from fedlab.strategy._buffered_loop import BufferedLoop
from fedlab.strategy._reply_check import check_arrays
from fedlab.strategy._round_loop import ConfigSource, EvaluateFn, evaluate_on_server
from fedlab.strategy._selection import NodeFilter
from fedlab.strategy.strategy import Strategy
from fedlab.validate import check_int

__all__ = ["FedBuff", "StalenessWeight", "inverse_sqrt_staleness"]

#: Maps an update's staleness τ (server updates since its model was sent) to its weight.
StalenessWeight = Callable[[int], float]


def inverse_sqrt_staleness(staleness: int) -> float:
    """The paper's polynomial staleness weight ``1 / sqrt(1 + τ)``.

    Examples
    --------
    >>> inverse_sqrt_staleness(0), inverse_sqrt_staleness(3)
    (1.0, 0.5)
    """
    return 1.0 / math.sqrt(1.0 + staleness)


class FedBuff(Strategy):
    """Buffered asynchronous FL: no round barrier, a server update every K client updates.

    Up to ``concurrency`` nodes train at any time, each on the global model that was
    current when it started. When a node finishes, its update joins a buffer and an idle
    node (often the same one) gets new work at once; slow nodes never hold fast ones back.
    Once the buffer holds ``buffer_size`` = K successful updates the server applies::

        x ← x + η_g · (1/K) · Σ_i s(τ_i) · (y_i − x_(t−τ_i))

    where y_i is the model node i returned, x_(t−τ_i) the global model it was sent, its
    staleness τ_i the number of server updates made since then, and s the staleness weight,
    ``1/√(1+τ)`` by default (the scaling used in the paper's experiments). The mean over the
    buffer is uniform, as in the paper; ``num-examples`` only weights the metrics.

    One server update is one *round*: it emits ``RoundAggregated``, calls ``evaluate_fn``,
    and writes a checkpoint. Work is sent with ``server-round`` set to the round the server
    was building when the node started, and its ``ClientReplied`` event carries that
    round. A :class:`~fedlab.events.StrategyReport` per round lists the buffered updates'
    nodes, staleness and weights. ``timeout`` limits each node's time per piece of work.

    In simulation, use the ``threads`` backend (with ``max_workers`` at least
    ``concurrency``) for real asynchrony; the ``inline`` backend runs each piece of work
    as it is handed out, which is deterministic when seeded.

    Parameters
    ----------
    buffer_size
        K, the successful updates per server update.
    concurrency
        How many nodes train at once (default: every eligible node).
    server_learning_rate
        η_g.
    staleness_weight
        s(τ); default :func:`inverse_sqrt_staleness`.
    min_available_nodes
        Least nodes that must be connected before training starts.
    node_ids, node_filter
        Restrict which nodes get work, as for every strategy.
    arrayrecord_key, configrecord_key
        Names of the records sent to clients.
    weighted_by_key
        The metric that weights the replies' metrics.
    train_metrics_aggr_fn
        Replaces the weighted average of the buffered replies' metrics.

    Notes
    -----
    A checkpoint taken after round k restores the global model, the sampling RNG and the
    History; work in flight at that moment is not saved, so a resumed FedBuff run starts
    a fresh set of nodes on the round-k model and does not replay the same schedule.
    """

    def __init__(
        self,
        *,
        buffer_size: int = 10,
        concurrency: int | None = None,
        server_learning_rate: float = 1.0,
        staleness_weight: StalenessWeight = inverse_sqrt_staleness,
        min_available_nodes: int = 1,
        node_ids: Collection[int] | None = None,
        node_filter: NodeFilter | None = None,
        arrayrecord_key: str = "arrays",
        configrecord_key: str = "config",
        weighted_by_key: str = "num-examples",
        train_metrics_aggr_fn: MetricsAggregationFn | None = None,
    ) -> None:
        super().__init__(node_ids=node_ids, node_filter=node_filter)
        buffer_size = check_int("buffer_size", buffer_size, StrategyError, minimum=1)
        if concurrency is not None:
            concurrency = check_int("concurrency", concurrency, StrategyError, minimum=1)
        min_available_nodes = check_int("min_available_nodes", min_available_nodes, StrategyError)
        if isinstance(server_learning_rate, bool) or not server_learning_rate > 0:
            raise StrategyError(f"server_learning_rate must be > 0, got {server_learning_rate!r}.")
        if not callable(staleness_weight):
            raise StrategyError(
                f"staleness_weight must be a function of the staleness, got {staleness_weight!r}."
            )
        self.buffer_size = buffer_size
        self.concurrency = concurrency
        self.server_learning_rate = float(server_learning_rate)
        self.staleness_weight = staleness_weight
        self.min_available_nodes = min_available_nodes
        self.arrayrecord_key = arrayrecord_key
        self.configrecord_key = configrecord_key
        self.weighted_by_key = weighted_by_key
        self.train_metrics_aggr_fn = train_metrics_aggr_fn or weighted_average_metrics
        #: Nodes training now (set by configure_train, cleared as their replies arrive).
        self._busy: set[int] = set()
        # The global model of each version still needed: version v is what round v + 1 sent.
        self._sent: dict[int, ArrayRecord] = {}

    def reset(self) -> None:
        """Forget the work and the global models of an earlier run."""
        super().reset()
        self._busy.clear()
        self._sent.clear()

    def required_nodes(self) -> int:
        """At least ``min_available_nodes`` and one node to train."""
        return max(self.min_available_nodes, 1)

    # -- the four hooks -----------------------------------------------------------------

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Give work to idle nodes, up to ``concurrency`` busy, sampled with :attr:`rng`.

        ``arrays`` is the global model after ``server_round - 1`` updates; it is kept until
        no update based on it can still arrive.
        """
        self._sent[server_round - 1] = arrays
        idle = [n for n in self.eligible_nodes(grid) if n not in self._busy]
        limit = self.concurrency or len(idle) + len(self._busy)
        chosen = self.rng.sample(idle, max(min(limit - len(self._busy), len(idle)), 0))
        self._busy.update(chosen)
        content = RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: config})
        return [
            grid.create_message(content, MessageType.TRAIN, node, group_id=str(server_round))
            for node in chosen
        ]

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Apply one server update from the buffered replies (failed ones are skipped).

        A reply's staleness is ``server_round`` minus the round it was sent in.
        """
        ok = [r for r in replies if not r.has_error()]
        if not ok:
            return None, None
        current = self._model(server_round)
        x = to_float64(current)
        step = {name: np.zeros_like(value) for name, value in x.items()}
        staleness, weights = [], []
        for reply in ok:
            tau = server_round - reply.metadata.round
            base, trained = self._model(reply.metadata.round), reply_arrays(reply)
            check_matches_global(reply.metadata.src_node_id, trained, current)
            weight = float(self.staleness_weight(tau))
            y, x_then = to_float64(trained), to_float64(base)
            for name in step:
                step[name] += weight * (y[name] - x_then[name])
            staleness.append(tau)
            weights.append(weight)
        scale = self.server_learning_rate / len(ok)
        new = from_float64({name: x[name] + scale * step[name] for name in x}, current)
        self._sent[server_round] = new  # what the next round sends, before it sends it
        self.report(
            server_round,
            nodes=[r.metadata.src_node_id for r in ok],
            staleness=staleness,
            weights=weights,
        )
        metrics = self.train_metrics_aggr_fn([r.content for r in ok], self.weighted_by_key)
        return new, metrics

    def check_train_reply(self, instruction: Message, reply: Message) -> str | None:
        """Refuse a reply whose arrays are not the model it was sent, or hold NaN or infinities.

        Names (in order), shapes and dtypes must be those sent under ``arrayrecord_key``;
        ``weighted_by_key`` only weighs the metrics, so it is not required.
        """
        sent = instruction.content.get(self.arrayrecord_key)
        expected = {self.arrayrecord_key: sent} if isinstance(sent, ArrayRecord) else {}
        return check_arrays(reply, expected)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """No client evaluation: it would need the barrier FedBuff avoids (use evaluate_fn)."""
        return []

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """Nothing to aggregate (see :meth:`configure_evaluate`)."""
        return None

    # -- the asynchronous loop ------------------------------------------------------------

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
        """Train until ``num_rounds`` server updates are made, without a round barrier.

        Parameters are those of :meth:`Strategy.start`; ``timeout`` is each node's time
        limit per piece of work, and ``evaluate_config`` is unused.
        """
        self.begin_run(grid, initial_arrays, num_rounds, start_round, seed, timeout)
        self._busy.clear()  # a resumed run too: work in flight is never saved
        self._sent.clear()
        metrics: dict[str, dict[int, MetricRecord]] = {"train": {}, "server": {}}
        if start_round == 1:
            evaluate_on_server(grid, evaluate_fn, 0, initial_arrays, metrics["server"])

        latest = initial_arrays

        def on_full(rnd: int, buffer: list[Message], failures: int, started: float) -> ArrayRecord:
            nonlocal latest
            arrays = latest = self._server_update(
                grid, rnd, buffer, failures, started, metrics["train"]
            )
            evaluate_on_server(grid, evaluate_fn, rnd, arrays, metrics["server"])
            if on_round_end is not None:
                on_round_end(Result(arrays, metrics["train"], {}, metrics["server"], rnd))
            return arrays

        loop = BufferedLoop(self, grid, timeout, train_config)
        try:
            completed = loop.run(initial_arrays, start_round, num_rounds, on_full)
        finally:
            self._busy.clear()
            self._sent.clear()
        return Result(
            arrays=latest,
            train_metrics_clientapp=metrics["train"],
            evaluate_metrics_serverapp=metrics["server"],
            rounds_completed=completed,
            stopped_early=completed < num_rounds,
        )

    def _server_update(
        self,
        grid: Grid,
        rnd: int,
        buffer: list[Message],
        failures: int,
        started: float,
        metrics_by_round: dict[int, MetricRecord],
    ) -> ArrayRecord:
        collected = time.perf_counter()
        arrays, metrics = self.aggregate_train(rnd, buffer)
        assert arrays is not None  # the buffer holds only successful replies
        if metrics is not None:
            metrics_by_round[rnd] = metrics
        grid.events.emit(
            RoundAggregated(
                run_id=grid.run_id,
                round=rnd,
                metrics=dict(metrics or {}),
                num_replies=len(buffer),
                num_failures=failures,
                train_duration_s=collected - started,
                aggregate_duration_s=time.perf_counter() - collected,
            )
        )
        return arrays

    # -- what the asynchronous loop tells the strategy -------------------------------------

    def node_done(self, node_id: int) -> None:
        """Count the node idle again: its reply arrived, or its work failed or timed out."""
        self._busy.discard(node_id)

    def forget_models_before(self, version: int) -> None:
        """Drop the global models older than ``version``: no work still uses them."""
        for old in [v for v in self._sent if v < version]:
            del self._sent[old]

    def _model(self, server_round: int) -> ArrayRecord:
        model = self._sent.get(server_round - 1)
        if model is None:
            raise StrategyError(
                f"FedBuff has no global model for round {server_round}: configure_train was not "
                "called for that round, or the reply does not belong to this run."
            )
        return model
