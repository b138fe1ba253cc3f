"""``flwr.serverapp.strategy.strategy_utils``: the aggregation helpers custom strategies call."""

from __future__ import annotations

from fedlab.compat.flower.names import module_getattr
from fedlab.compat.flower.strategy.aggregation import (
    aggregate_arrayrecords,
    aggregate_metricrecords,
)

__all__ = ["aggregate_arrayrecords", "aggregate_metricrecords"]

_HINTS = {
    "sample_nodes": "call self.sample_nodes(grid, fraction, min_nodes, min_available) in a "
    "strategy built on flwr.serverapp.strategy.FedAvg.",
    "validate_message_reply_consistency": "the Flower-named strategies check replies in "
    "aggregate_train; call super().aggregate_train(...) from yours.",
}

__getattr__ = module_getattr(__name__, __all__, _HINTS)
