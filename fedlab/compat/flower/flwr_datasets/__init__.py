"""``flwr_datasets``: FederatedDataset and partitioners, served by :mod:`fedlab.datasets`."""

from __future__ import annotations

import importlib

from fedlab.compat.flower.datasets import FederatedDataset
from fedlab.compat.flower.error import missing_attribute

__all__ = ["FederatedDataset"]

_HINTS = {
    "visualization": "plot with fedlab.datasets.plot_label_distribution(...).",
}


_SUBMODULES = ("partitioner",)


def __getattr__(name: str) -> object:
    if name in _SUBMODULES:  # `import flwr` then `flwr.app.Message`
        return importlib.import_module(f"{__name__}.{name}")
    raise missing_attribute(__name__, name, [*__all__, "partitioner"], _HINTS)
