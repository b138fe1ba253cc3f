"""``flwr_datasets``: FederatedDataset and partitioners, served by :mod:`fedlab.datasets`."""

from __future__ import annotations

from fedlab.compat.flower.datasets import FederatedDataset
from fedlab.compat.flower.error import missing_attribute

__all__ = ["FederatedDataset"]

_HINTS = {
    "visualization": "plot with fedlab.datasets.plot_label_distribution(...).",
}


def __getattr__(name: str) -> object:
    raise missing_attribute(__name__, name, [*__all__, "partitioner"], _HINTS)
