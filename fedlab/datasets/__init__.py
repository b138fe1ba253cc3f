"""Federated datasets: data split among the clients of a federation.

:class:`FederatedDataset` holds a dataset (from the Hugging Face Hub, a local
``datasets.Dataset``, pandas, numpy, a folder of parquet/CSV files, or one of
scikit-learn's bundled datasets, :data:`SKLEARN_DATASETS`) and divides its splits among
clients with a partitioner (:mod:`fedlab.datasets.partitioner`). A ClientApp gets its own partition
with one call, :func:`load_partition`, in simulation and in deployment alike;
:func:`write_partition` writes a node's partition for a SuperNode elsewhere.

Importing this package is cheap: Hugging Face ``datasets``, pandas and matplotlib are
imported only when data is loaded, counted or plotted.
"""

from fedlab.datasets._cache import clear_cache
from fedlab.datasets._sources import SKLEARN_DATASETS
from fedlab.datasets.federated_dataset import FederatedDataset
from fedlab.datasets.metrics import compute_counts, compute_frequencies
from fedlab.datasets.node import DATASET_KEY, PARTITION_PATH, attach, load_partition
from fedlab.datasets.partitioner import (
    ColumnPartitioner,
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
    RowPartitioner,
    ShardPartitioner,
    SizePartitioner,
    SquarePartitioner,
    VerticalEvenPartitioner,
    VerticalSizePartitioner,
)
from fedlab.datasets.plot import plot_label_distribution
from fedlab.datasets.preprocessor import Preprocessor, divide_split, merge_splits
from fedlab.datasets.write import write_partition

__all__ = [  # noqa: RUF022 (plain sorted(), which tests/unit/test_package.py checks)
    "ColumnPartitioner",
    "ContinuousPartitioner",
    "DATASET_KEY",
    "DirichletPartitioner",
    "DistributionPartitioner",
    "ExponentialPartitioner",
    "FederatedDataset",
    "GroupedNaturalIdPartitioner",
    "IdToSizePartitioner",
    "IidPartitioner",
    "InnerDirichletPartitioner",
    "LinearPartitioner",
    "NaturalIdPartitioner",
    "PARTITION_PATH",
    "Partitioner",
    "PathologicalPartitioner",
    "Preprocessor",
    "RowPartitioner",
    "SKLEARN_DATASETS",
    "ShardPartitioner",
    "SizePartitioner",
    "SquarePartitioner",
    "VerticalEvenPartitioner",
    "VerticalSizePartitioner",
    "attach",
    "clear_cache",
    "compute_counts",
    "compute_frequencies",
    "divide_split",
    "load_partition",
    "merge_splits",
    "plot_label_distribution",
    "write_partition",
]
