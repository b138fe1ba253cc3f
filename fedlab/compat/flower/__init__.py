"""Run Flower Message-API apps on fedlab, unchanged.

After :func:`enable`, ``import flwr.app``, ``flwr.clientapp``, ``flwr.serverapp``,
``flwr.serverapp.strategy``, ``flwr.common``, ``flwr.simulation`` and ``flwr_datasets``
resolve to this layer, also when the real Flower is installed; ``fedlab run`` does this
for a Flower project by itself. The records, messages and apps are fedlab's with
Flower's constructors and method names, and the Flower-named strategies compute what
Flower computes. A Flower name the layer lacks fails with a :class:`FlowerCompatError`
naming the nearest one it has.

Where the layer differs from Flower 1.42, on purpose or for lack of a counterpart:

- Node sampling uses the strategy's seeded RNG over sorted node ids, and replies are
  aggregated in the order the instructions were sent, so a run is reproducible; Flower
  samples with the unseeded global ``random`` and aggregates in arrival order.
- ``Array.data`` holds the raw little-endian bytes, not ``np.save`` bytes;
  ``Array(dtype, shape, "numpy.ndarray", data)`` still reads Flower's ``np.save`` bytes.
- Flower's legacy API (``NumPyClient``, ``client_fn``, ``server_fn``, ``start_simulation``,
  ``Parameters``), ``grid.get_nodes()``, the XGBoost strategies and the DP strategy
  wrappers are refused, each naming what to use instead (fedlab's own DP wrappers in
  :mod:`fedlab.privacy` wrap :class:`fedlab.strategy.FedAvg`).
- ``run_simulation`` runs on fedlab's simulation whatever ``backend_name="ray"`` says,
  and shows the live dashboard in a notebook; like Flower's, it returns None.
- ``flwr_datasets.FederatedDataset`` builds a :class:`fedlab.datasets.FederatedDataset`;
  ``shuffle`` is accepted, and the partitioners draw with ``seed``.

Examples
--------
>>> from fedlab.compat import flower
>>> with flower.enabled():
...     from flwr.app import ArrayRecord
...     import numpy as np
...     ArrayRecord(numpy_ndarrays=[np.zeros(2)]).to_numpy_ndarrays()
[array([0., 0.])]
"""

from fedlab.compat.flower.error import FlowerCompatError
from fedlab.compat.flower.hook import disable, enable, enabled, is_enabled, supported_modules

__all__ = ["FlowerCompatError", "disable", "enable", "enabled", "is_enabled", "supported_modules"]
