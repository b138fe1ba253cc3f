"""Partitioners: the ways to split one dataset among the clients of a federation.

Row partitioners (horizontal federated learning) give each partition a set of rows;
column partitioners (vertical federated learning) give each party a set of columns of
every row. All randomness comes from a ``seed``, so a partitioner with the same seed on
the same dataset always gives the same partitions.
"""

from fedlab.datasets.partitioner.column import ColumnPartitioner
from fedlab.datasets.partitioner.continuous import ContinuousPartitioner
from fedlab.datasets.partitioner.dirichlet import DirichletPartitioner
from fedlab.datasets.partitioner.distribution import DistributionPartitioner
from fedlab.datasets.partitioner.grouped_natural_id import GroupedNaturalIdPartitioner, GroupMode
from fedlab.datasets.partitioner.id_to_size import (
    ExponentialPartitioner,
    IdToSizePartitioner,
    LinearPartitioner,
    SquarePartitioner,
)
from fedlab.datasets.partitioner.iid import IidPartitioner
from fedlab.datasets.partitioner.inner_dirichlet import InnerDirichletPartitioner
from fedlab.datasets.partitioner.natural_id import NaturalIdPartitioner
from fedlab.datasets.partitioner.partitioner import Indices, Partitioner, RowPartitioner
from fedlab.datasets.partitioner.pathological import ClassAssignment, PathologicalPartitioner
from fedlab.datasets.partitioner.shard import ShardPartitioner
from fedlab.datasets.partitioner.size import SizePartitioner
from fedlab.datasets.partitioner.vertical_even import VerticalEvenPartitioner
from fedlab.datasets.partitioner.vertical_size import VerticalSizePartitioner

__all__ = [
    "ClassAssignment",
    "ColumnPartitioner",
    "ContinuousPartitioner",
    "DirichletPartitioner",
    "DistributionPartitioner",
    "ExponentialPartitioner",
    "GroupMode",
    "GroupedNaturalIdPartitioner",
    "IdToSizePartitioner",
    "IidPartitioner",
    "Indices",
    "InnerDirichletPartitioner",
    "LinearPartitioner",
    "NaturalIdPartitioner",
    "Partitioner",
    "PathologicalPartitioner",
    "RowPartitioner",
    "ShardPartitioner",
    "SizePartitioner",
    "SquarePartitioner",
    "VerticalEvenPartitioner",
    "VerticalSizePartitioner",
]
