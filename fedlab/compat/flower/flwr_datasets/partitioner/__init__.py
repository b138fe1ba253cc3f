"""``flwr_datasets.partitioner``: Flower's partitioner names, served by fedlab's partitioners."""

from __future__ import annotations

from fedlab.compat.flower.names import module_getattr
from fedlab.datasets.partitioner import (
    ContinuousPartitioner,
    DirichletPartitioner,
    DistributionPartitioner,
    ExponentialPartitioner,
    GroupedNaturalIdPartitioner,
    IdToSizePartitioner,
    IidPartitioner,
    InnerDirichletPartitioner,
    LinearPartitioner,
    NaturalIdPartitioner,
    Partitioner,
    PathologicalPartitioner,
    ShardPartitioner,
    SizePartitioner,
    SquarePartitioner,
    VerticalEvenPartitioner,
    VerticalSizePartitioner,
)

__all__ = [
    "ContinuousPartitioner",
    "DirichletPartitioner",
    "DistributionPartitioner",
    "ExponentialPartitioner",
    "GroupedNaturalIdPartitioner",
    "IdToSizePartitioner",
    "IidPartitioner",
    "InnerDirichletPartitioner",
    "LinearPartitioner",
    "NaturalIdPartitioner",
    "Partitioner",
    "PathologicalPartitioner",
    "ShardPartitioner",
    "SizePartitioner",
    "SquarePartitioner",
    "VerticalEvenPartitioner",
    "VerticalSizePartitioner",
]

_HINTS = {"IdToSizeFncPartitioner": "it is IdToSizePartitioner in fedlab."}


__getattr__ = module_getattr(__name__, __all__, _HINTS)
