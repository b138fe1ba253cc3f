"""Flower's ``FedAvg``: Flower's arguments, and Flower's weighted mean (in the reply dtype)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from fedlab.compat.flower.error import unknown_arguments
from fedlab.compat.flower.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.compat.flower.strategy.aggregation import (
    aggregate_arrayrecords,
    aggregate_metricrecords,
    check_replies,
)
from fedlab.compat.flower.strategy.strategy import Strategy
from fedlab.errors import StrategyError
from fedlab.message import Message as _Message
from fedlab.message import MessageType
from fedlab.records import ArrayRecord as _ArrayRecord
from fedlab.records import ConfigRecord as _ConfigRecord
from fedlab.records import RecordDict as _RecordDict
from fedlab.server import Grid
from fedlab.validate import check_int

__all__ = ["FedAvg", "MetricsAggrFn"]

#: Flower's metric aggregation: ``fn(contents, weighted_by_key) -> MetricRecord``.
MetricsAggrFn = Callable[[list[_RecordDict], str], MetricRecord]

FEDAVG_ARGUMENTS = (
    "fraction_train",
    "fraction_evaluate",
    "min_train_nodes",
    "min_evaluate_nodes",
    "min_available_nodes",
    "weighted_by_key",
    "arrayrecord_key",
    "configrecord_key",
    "train_metrics_aggr_fn",
    "evaluate_metrics_aggr_fn",
)
#: Flower's legacy strategy arguments, and where their Message-API counterpart is.
LEGACY_HINTS = {
    "fraction_fit": "it is fraction_train=... in the Message API.",
    "min_fit_clients": "it is min_train_nodes=... in the Message API.",
    "min_evaluate_clients": "it is min_evaluate_nodes=... in the Message API.",
    "min_available_clients": "it is min_available_nodes=... in the Message API.",
    "on_fit_config_fn": "pass train_config=ConfigRecord({...}) to strategy.start(...).",
    "on_evaluate_config_fn": "pass evaluate_config=ConfigRecord({...}) to strategy.start(...).",
    "evaluate_fn": "pass evaluate_fn=... to strategy.start(...).",
    "initial_parameters": "pass initial_arrays=ArrayRecord(...) to strategy.start(...).",
    "fit_metrics_aggregation_fn": "it is train_metrics_aggr_fn=... in the Message API.",
    "evaluate_metrics_aggregation_fn": "it is evaluate_metrics_aggr_fn=... in the Message API.",
    "accept_failures": "failed replies are always left out of the aggregate in the Message API.",
    "inplace": "aggregation is always in place in the Message API; drop the argument.",
}


class FedAvg(Strategy):
    """Flower's FedAvg: the mean of the replies' arrays weighted by ``num-examples``.

    Computed as Flower does: weights ``n_k / Σn`` as Python floats, accumulated in the
    arrays' own dtype in reply order (fedlab's :class:`fedlab.strategy.FedAvg` sums in
    float64). Replies with errors are left out; the round keeps the old arrays only when
    none succeeded. Arguments are Flower's; sampling is
    ``max(int(fraction * available), min_nodes)`` nodes.
    """

    def __init__(
        self,
        fraction_train: float = 1.0,
        fraction_evaluate: float = 1.0,
        min_train_nodes: int = 2,
        min_evaluate_nodes: int = 2,
        min_available_nodes: int = 2,
        weighted_by_key: str = "num-examples",
        arrayrecord_key: str = "arrays",
        configrecord_key: str = "config",
        train_metrics_aggr_fn: MetricsAggrFn | None = None,
        evaluate_metrics_aggr_fn: MetricsAggrFn | None = None,
        **unknown: Any,
    ) -> None:
        unknown_arguments(type(self).__name__, unknown, self._arguments(), LEGACY_HINTS)
        super().__init__()
        for name, value in (
            ("fraction_train", fraction_train),
            ("fraction_evaluate", fraction_evaluate),
        ):
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
        self.train_metrics_aggr_fn: MetricsAggrFn = train_metrics_aggr_fn or aggregate_metricrecords
        self.evaluate_metrics_aggr_fn: MetricsAggrFn = (
            evaluate_metrics_aggr_fn or aggregate_metricrecords
        )

    @classmethod
    def _arguments(cls) -> Sequence[str]:
        """The keyword arguments this strategy takes (for the error naming the nearest)."""
        return FEDAVG_ARGUMENTS

    def required_nodes(self) -> int:
        """The most of the minimums that apply."""
        needed = [self.min_available_nodes, self.min_train_nodes]
        if self.fraction_evaluate > 0:
            needed.append(self.min_evaluate_nodes)
        return max(needed)

    def configure_train(
        self, server_round: int, arrays: _ArrayRecord, config: _ConfigRecord, grid: Grid
    ) -> Iterable[_Message]:
        """Send the arrays and the config (with ``server-round``) to a sample of nodes."""
        nodes = self.sample_nodes(
            grid, self.fraction_train, self.min_train_nodes, self.min_available_nodes
        )
        return self._messages(grid, nodes, arrays, config, MessageType.TRAIN, server_round)

    def configure_evaluate(
        self, server_round: int, arrays: _ArrayRecord, config: _ConfigRecord, grid: Grid
    ) -> Iterable[_Message]:
        """Send the arrays to a sample of nodes for evaluation (none if the fraction is 0)."""
        if self.fraction_evaluate == 0.0:
            return []
        nodes = self.sample_nodes(
            grid, self.fraction_evaluate, self.min_evaluate_nodes, self.min_available_nodes
        )
        return self._messages(grid, nodes, arrays, config, MessageType.EVALUATE, server_round)

    def _messages(
        self,
        grid: Grid,
        nodes: Sequence[int],
        arrays: _ArrayRecord,
        config: _ConfigRecord,
        message_type: str,
        server_round: int,
    ) -> list[_Message]:
        config = ConfigRecord(config)
        config["server-round"] = server_round
        content = RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: config})
        return [
            grid.create_message(content, message_type, node, group_id=str(server_round))
            for node in nodes
        ]

    def aggregate_train(
        self, server_round: int, replies: Iterable[_Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Average the successful replies' arrays and metrics; ``(None, None)`` if none."""
        ok = [r for r in replies if not r.has_error()]
        if not ok:
            return None, None
        check_replies(ok, self.weighted_by_key, with_arrays=True)
        contents = [r.content for r in ok]
        arrays = self.aggregate_arrays(server_round, ok)
        return arrays, self.train_metrics_aggr_fn(contents, self.weighted_by_key)

    def aggregate_arrays(
        self, server_round: int, replies: Sequence[_Message]
    ) -> ArrayRecord | None:
        """The new global arrays from the successful, checked ``replies`` (FedAvg: their mean)."""
        return aggregate_arrayrecords([r.content for r in replies], self.weighted_by_key)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[_Message]
    ) -> MetricRecord | None:
        """Average the successful replies' metrics; None if none succeeded."""
        ok = [r for r in replies if not r.has_error()]
        if not ok:
            return None
        check_replies(ok, self.weighted_by_key, with_arrays=False)
        return self.evaluate_metrics_aggr_fn([r.content for r in ok], self.weighted_by_key)
