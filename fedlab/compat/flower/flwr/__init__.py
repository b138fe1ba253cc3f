"""``flwr``, served by fedlab's Flower compatibility layer (see :mod:`fedlab.compat.flower`)."""

from __future__ import annotations

from fedlab.compat.flower.names import module_getattr
from fedlab.version import __version__ as _fedlab_version

__all__ = ["__version__"]

#: The Flower release whose API this layer follows.
__version__ = "1.42.0"
#: The fedlab release serving it.
fedlab_version = _fedlab_version


__getattr__ = module_getattr(__name__, ["app", "clientapp", "common", "serverapp", "simulation"])
