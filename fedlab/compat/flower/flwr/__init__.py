"""``flwr``, served by fedlab's Flower compatibility layer (see :mod:`fedlab.compat.flower`)."""

from __future__ import annotations

import importlib

from fedlab.compat.flower.error import missing_attribute
from fedlab.version import __version__ as _fedlab_version

__all__ = ["__version__"]

#: The Flower release whose API this layer follows.
__version__ = "1.42.0"
#: The fedlab release serving it.
fedlab_version = _fedlab_version


_SUBMODULES = ("app", "clientapp", "common", "serverapp", "simulation")


def __getattr__(name: str) -> object:
    if name in _SUBMODULES:  # `import flwr` then `flwr.app.Message`
        return importlib.import_module(f"{__name__}.{name}")
    raise missing_attribute(
        __name__, name, ["app", "clientapp", "common", "serverapp", "simulation"]
    )
