"""Strategies: how the server samples nodes and combines their replies."""

from fedlab.strategy._aggregate import MetricsAggregationFn
from fedlab.strategy._round_loop import ConfigSource, EvaluateFn
from fedlab.strategy._selection import NodeFilter
from fedlab.strategy.bulyan import Bulyan
from fedlab.strategy.fedavg import FedAvg
from fedlab.strategy.fedavgm import FedAvgM
from fedlab.strategy.fedbuff import FedBuff
from fedlab.strategy.fednova import FedNova
from fedlab.strategy.fedopt import FedAdagrad, FedAdam, FedOpt, FedYogi
from fedlab.strategy.fedprox import FedProx, proximal_term
from fedlab.strategy.krum import Krum, MultiKrum
from fedlab.strategy.median import FedMedian, FedTrimmedAvg
from fedlab.strategy.qfedavg import QFedAvg
from fedlab.strategy.scaffold import Scaffold
from fedlab.strategy.scaffold_client import ScaffoldClient
from fedlab.strategy.strategy import Strategy, StrategyState

__all__ = [
    "Bulyan",
    "ConfigSource",
    "EvaluateFn",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedBuff",
    "FedMedian",
    "FedNova",
    "FedOpt",
    "FedProx",
    "FedTrimmedAvg",
    "FedYogi",
    "Krum",
    "MetricsAggregationFn",
    "MultiKrum",
    "NodeFilter",
    "QFedAvg",
    "Scaffold",
    "ScaffoldClient",
    "Strategy",
    "StrategyState",
    "proximal_term",
]
