"""Flower's Message-API strategies, computing what Flower 1.42 computes.

Served to Flower apps as ``flwr.serverapp.strategy``. fedlab's own strategies
(:mod:`fedlab.strategy`) keep their documented choices; these follow Flower where it
differs (aggregation in the reply dtype, FedAdam's bias correction, FedOpt's initial
``v``, MultiKrum's weighting, Bulyan's selection).
"""

from fedlab.compat.flower.strategy.aggregation import (
    aggregate_arrayrecords,
    aggregate_metricrecords,
    check_replies,
    reply_arrays,
    reply_weights,
)
from fedlab.compat.flower.strategy.fedavg import FedAvg, MetricsAggrFn
from fedlab.compat.flower.strategy.strategy import Strategy

__all__ = [
    "FedAvg",
    "MetricsAggrFn",
    "Strategy",
    "aggregate_arrayrecords",
    "aggregate_metricrecords",
    "check_replies",
    "reply_arrays",
    "reply_weights",
]
