"""Strategies: how the server samples nodes and combines their replies."""

from fedlab.strategy.fedavg import FedAvg, MetricsAggregationFn
from fedlab.strategy.strategy import ConfigSource, EvaluateFn, Strategy, StrategyState

__all__ = ["ConfigSource", "EvaluateFn", "FedAvg", "MetricsAggregationFn", "Strategy", "StrategyState"]
