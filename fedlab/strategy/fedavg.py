"""`FedAvg`: federated averaging weighted by the number of examples (McMahan et al., 2017)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import ClassVar

from fedlab.errors import StrategyError
from fedlab.message import Message, MessageType
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, Record, RecordDict
from fedlab.server.grid import Grid
from fedlab.strategy._aggregate import (
    MetricsAggregationFn,
    WeightedSum,
    reply_weight,
    single_record,
    weighted_average_arrays,
    weighted_average_metrics,
    without_arrays,
)
from fedlab.strategy._reply_check import check_arrays, check_weight
from fedlab.strategy._selection import NodeFilter
from fedlab.strategy.strategy import Strategy
from fedlab.validate import check_int

__all__ = ["FedAvg"]


class FedAvg(Strategy):
    """Federated averaging: the new global arrays are the replies' mean weighted by examples.

    For replies with arrays :math:`w_k` and example counts :math:`n_k`, the aggregate is
    :math:`\\sum_k n_k w_k / \\sum_k n_k`, accumulated in float64 in reply order.

    Parameters
    ----------
    fraction_train, fraction_evaluate
        Share of available nodes sampled for training / evaluation each round
        (``fraction_evaluate=0`` turns client evaluation off). Left at its default,
        ``fraction_evaluate`` is 1.0, or 0.0 in a Federation whose ClientApp has no
        ``@app.evaluate()`` (see :meth:`evaluate_on_clients`).
    min_train_nodes, min_evaluate_nodes
        Least nodes sampled, and least successful replies needed to aggregate.
    min_available_nodes
        Least nodes that must be connected before a round starts.
    weighted_by_key
        The metric each reply uses to report its weight.
    arrayrecord_key, configrecord_key
        Names of the records sent to clients.
    train_metrics_aggr_fn, evaluate_metrics_aggr_fn
        Replace the default weighted average of the replies' metrics.
    node_ids
        Sample only among these nodes (default: every node).
    node_filter
        Sample only nodes whose ``node_config`` it accepts, e.g.
        ``lambda cfg: cfg.get("region") == "eu"`` (default: every node).

    Notes
    -----
    Subclasses usually override only :meth:`aggregate_arrays` (how the successful
    replies become the new global arrays) and, to send more, :meth:`configure_train`.
    FedAvg sums the replies as they arrive and lets go of each (:attr:`streams_replies`);
    a subclass that writes its own ``aggregate_arrays`` or ``aggregate_train`` gets
    them as a list, as its code may go over them more than once.
    A training reply whose arrays differ from the model it was sent, hold NaN or
    infinite values, or lack a positive weight is refused before aggregation
    (:meth:`check_train_reply`): that client fails the round, the others are aggregated.
    Node selection applies to training and evaluation alike; sampling is reproducible
    with the seed given to :meth:`start`.

    Examples
    --------
    Train only on the nodes declared in the EU, a third of them each round:

    >>> strategy = FedAvg(fraction_train=0.3, node_filter=lambda cfg: cfg.get("region") == "eu")
    """

    #: True when the arrays are averaged with the weights replies report under
    #: ``weighted_by_key``: a training reply must then report a positive, finite weight.
    weighs_arrays: bool = True
    #: The weighted mean is a running sum: FedAvg takes the replies one by one.
    streams_replies = True
    _reply_hooks: ClassVar[tuple[str, ...]] = ("aggregate_train", "aggregate_arrays")

    def __init__(
        self,
        *,
        fraction_train: float = 1.0,
        fraction_evaluate: float | None = None,
        min_train_nodes: int = 2,
        min_evaluate_nodes: int = 2,
        min_available_nodes: int = 2,
        weighted_by_key: str = "num-examples",
        arrayrecord_key: str = "arrays",
        configrecord_key: str = "config",
        train_metrics_aggr_fn: MetricsAggregationFn | None = None,
        evaluate_metrics_aggr_fn: MetricsAggregationFn | None = None,
        node_ids: Collection[int] | None = None,
        node_filter: NodeFilter | None = None,
    ) -> None:
        super().__init__(node_ids=node_ids, node_filter=node_filter)
        # What the default gave fraction_evaluate; None once the caller chose a value.
        self._default_evaluate = 1.0 if fraction_evaluate is None else None
        if fraction_evaluate is None:
            fraction_evaluate = 1.0
        for name, value in (("fraction_train", fraction_train), ("fraction_evaluate", fraction_evaluate)):
            if not 0.0 <= value <= 1.0:
                raise StrategyError(f"{name} must be between 0 and 1, got {value!r}.")
        self.fraction_train = fraction_train
        self.fraction_evaluate = fraction_evaluate
        self.min_train_nodes = check_int("min_train_nodes", min_train_nodes, StrategyError)
        self.min_evaluate_nodes = check_int("min_evaluate_nodes", min_evaluate_nodes, StrategyError)
        self.min_available_nodes = check_int(
            "min_available_nodes", min_available_nodes, StrategyError
        )
        self.weighted_by_key = weighted_by_key
        self.arrayrecord_key = arrayrecord_key
        self.configrecord_key = configrecord_key
        self.train_metrics_aggr_fn = train_metrics_aggr_fn or weighted_average_metrics
        self.evaluate_metrics_aggr_fn = evaluate_metrics_aggr_fn or weighted_average_metrics
        self._current_arrays: ArrayRecord | None = None

    def evaluate_on_clients(self, possible: bool) -> bool:
        """Settle client evaluation for a ClientApp that can (``possible``) or cannot evaluate.

        A ``fraction_evaluate`` left at its default becomes 1.0 if ``possible`` and 0.0 if
        not; a value the caller chose is kept. A Federation calls this when it is built.
        Returns True when clients will be asked to evaluate.

        Examples
        --------
        >>> FedAvg().evaluate_on_clients(False), FedAvg(fraction_evaluate=0.5).evaluate_on_clients(False)
        (False, True)
        """
        left_alone = self._default_evaluate is not None and self.fraction_evaluate == self._default_evaluate
        if left_alone:
            self.fraction_evaluate = self._default_evaluate = 1.0 if possible else 0.0
        return self.fraction_evaluate > 0

    @property
    def current_arrays(self) -> ArrayRecord | None:
        """The global arrays sent by the latest :meth:`configure_train` (None before it)."""
        return self._current_arrays

    def reset(self) -> None:
        """Forget the global arrays of an earlier run (see :meth:`Strategy.reset`)."""
        super().reset()
        self._current_arrays = None

    def required_nodes(self) -> int:
        """The most of the minimums that apply (evaluation ones only if clients evaluate)."""
        needed = [self.min_available_nodes]
        if self.fraction_train > 0:
            needed.append(self.min_train_nodes)
        if self.fraction_evaluate > 0:
            needed.append(self.min_evaluate_nodes)
        return max(needed)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Send the global arrays and the config to a sample of nodes."""
        self._current_arrays = arrays
        nodes = self.sample_nodes(grid, self.fraction_train, self.min_train_nodes, self.min_available_nodes)
        return self._instructions(grid, nodes, arrays, config, MessageType.TRAIN, server_round)

    def expected_arrays(self, instruction: Message) -> dict[str, ArrayRecord]:
        """The ArrayRecords a training reply must return, by name, as they were sent.

        FedAvg: the model sent under ``arrayrecord_key`` (the reply may hold it under any
        name, as long as it holds exactly one ArrayRecord). A strategy whose clients return
        more (control variates) adds them; their layout is then checked under their names.
        """
        sent = instruction.content.get(self.arrayrecord_key)
        return {self.arrayrecord_key: sent} if isinstance(sent, ArrayRecord) else {}

    def check_train_reply(self, instruction: Message, reply: Message) -> str | None:
        """Refuse a reply whose arrays are not the model it was sent, or have no usable weight.

        Checked, in order: the records of :meth:`expected_arrays` (names in the same order,
        shapes, dtypes: none is converted, so a float64 reply to a float32 model is
        refused), that every float value is finite (the array and its NaN or infinite
        values are named), and, if :attr:`weighs_arrays`, that ``weighted_by_key`` is a
        positive finite number in the reply's one MetricRecord.
        """
        reason = check_arrays(reply, self.expected_arrays(instruction))
        if reason is None and self.weighs_arrays:
            reason = check_weight(reply, self.weighted_by_key)
        return reason

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Combine the successful replies with :meth:`aggregate_arrays` and their metrics.

        Returns ``(None, None)`` when fewer than ``min_train_nodes`` replies succeeded.
        With :attr:`streams_replies`, the replies are summed as they come (the same sums,
        in the same order, as :meth:`aggregate_arrays` makes of the list).
        """
        if self.streams_replies:
            return self._aggregate_streaming(server_round, replies)
        ok = [r for r in replies if not r.has_error()]
        if not ok or len(ok) < self.min_train_nodes:
            return None, None
        arrays = self.aggregate_arrays(server_round, ok)
        metrics = self.train_metrics_aggr_fn([without_arrays(r.content) for r in ok], self.weighted_by_key)
        return arrays, metrics

    def _aggregate_streaming(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        running = WeightedSum()
        contents = []
        for reply in replies:
            if reply.has_error():
                continue
            weight = reply_weight(reply, self.weighted_by_key)
            running.add(reply.metadata.src_node_id, single_record(reply, ArrayRecord)[1], weight)
            # Metrics are kept (they are small); the reply and its arrays are not.
            contents.append(without_arrays(reply.content))
        if not running.count or running.count < self.min_train_nodes:
            return None, None
        arrays = running.average()
        self.report_average(server_round, running.count, running.total)
        return arrays, self.train_metrics_aggr_fn(contents, self.weighted_by_key)

    def report_average(self, server_round: int, count: int, total: float) -> None:
        """Report a weighted mean of ``count`` replies with weights summing to ``total``."""
        self.report(server_round, aggregated=count, total_weight=total)

    def aggregate_arrays(self, server_round: int, replies: Sequence[Message]) -> ArrayRecord:
        """Return the new global arrays from the successful ``replies`` (at least one).

        FedAvg: their mean weighted by ``weighted_by_key``. Subclasses override this.
        """
        arrays, total = self._weighted_average(replies)
        self.report_average(server_round, len(replies), total)
        return arrays

    def _weighted_average(self, replies: Sequence[Message]) -> tuple[ArrayRecord, float]:
        weights = [reply_weight(r, self.weighted_by_key) for r in replies]
        weighted = (
            (r.metadata.src_node_id, single_record(r, ArrayRecord)[1], w)
            for r, w in zip(replies, weights, strict=True)
        )
        return weighted_average_arrays(weighted), sum(weights)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Send the global arrays to a sample of nodes for evaluation."""
        nodes = self.sample_nodes(
            grid, self.fraction_evaluate, self.min_evaluate_nodes, self.min_available_nodes
        )
        return self._instructions(grid, nodes, arrays, config, MessageType.EVALUATE, server_round)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """Average the successful replies' metrics weighted by ``weighted_by_key``."""
        ok = [r for r in replies if not r.has_error()]
        if not ok or len(ok) < self.min_evaluate_nodes:
            return None
        return self.evaluate_metrics_aggr_fn([r.content for r in ok], self.weighted_by_key)

    def _instructions(
        self,
        grid: Grid,
        nodes: Sequence[int],
        arrays: ArrayRecord,
        config: ConfigRecord,
        message_type: str,
        server_round: int,
        extra: Mapping[str, Record] | None = None,
    ) -> list[Message]:
        # One RecordDict for everyone: the simulation hands each client its own copy.
        content = RecordDict({self.arrayrecord_key: arrays, **(extra or {}), self.configrecord_key: config})
        return [
            grid.create_message(content, message_type, node_id, group_id=str(server_round))
            for node_id in nodes
        ]
