"""Strategies: how the server samples nodes and combines their replies."""

from fedlab.strategy.fedavg import FedAvg, MetricsAggregationFn
from fedlab.strategy.strategy import ConfigSource, EvaluateFn, Strategy

__all__ = ["ConfigSource", "EvaluateFn", "FedAvg", "MetricsAggregationFn", "Strategy"]
