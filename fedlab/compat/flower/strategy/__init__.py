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
from fedlab.compat.flower.strategy.fedavgm import FedAvgM, FedProx
from fedlab.compat.flower.strategy.fedopt import FedAdagrad, FedAdam, FedOpt, FedYogi
from fedlab.compat.flower.strategy.qfedavg import QFedAvg
from fedlab.compat.flower.strategy.robust import (
    Bulyan,
    FedMedian,
    FedTrimmedAvg,
    Krum,
    MultiKrum,
    SelectionRule,
    select_multikrum,
    trim_mean,
)
from fedlab.compat.flower.strategy.strategy import Strategy

__all__ = [
    "Bulyan",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedMedian",
    "FedOpt",
    "FedProx",
    "FedTrimmedAvg",
    "FedYogi",
    "Krum",
    "MetricsAggrFn",
    "MultiKrum",
    "QFedAvg",
    "SelectionRule",
    "Strategy",
    "aggregate_arrayrecords",
    "aggregate_metricrecords",
    "check_replies",
    "reply_arrays",
    "reply_weights",
    "select_multikrum",
    "trim_mean",
]
