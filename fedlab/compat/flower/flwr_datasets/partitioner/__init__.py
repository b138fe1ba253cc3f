"""``flwr_datasets.partitioner``: Flower's partitioner names, served by fedlab's partitioners."""

from __future__ import annotations

from fedlab.compat.flower.error import missing_attribute
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


def __getattr__(name: str) -> object:
    raise missing_attribute(__name__, name, __all__, _HINTS)
