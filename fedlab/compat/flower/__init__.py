"""Run Flower Message-API apps on fedlab, unchanged.

After :func:`enable`, ``import flwr.app``, ``flwr.clientapp``, ``flwr.serverapp``,
``flwr.serverapp.strategy``, ``flwr.common``, ``flwr.simulation`` and ``flwr_datasets``
resolve to this layer, also when the real Flower is installed; ``fedlab run`` does this
for a Flower project by itself. The records, messages and apps are fedlab's with
Flower's constructors and method names, and the Flower-named strategies compute what
Flower computes. A Flower name the layer lacks fails with a :class:`FlowerCompatError`
naming the nearest one it has.

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
