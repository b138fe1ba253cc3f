"""``flwr_datasets``: FederatedDataset and partitioners, served by :mod:`fedlab.datasets`."""

from __future__ import annotations

from fedlab.compat.flower.datasets import FederatedDataset
from fedlab.compat.flower.names import module_getattr

__all__ = ["FederatedDataset"]

_HINTS = {
    "visualization": "plot with fedlab.datasets.plot_label_distribution(...).",
}


__getattr__ = module_getattr(__name__, [*__all__, "partitioner"], _HINTS)
