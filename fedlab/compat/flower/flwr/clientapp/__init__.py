"""``flwr.clientapp``: ClientApp, from fedlab's Flower layer (Mods in ``flwr.clientapp.mod``)."""

from __future__ import annotations

from fedlab.compat.flower.clientapp import ClientApp
from fedlab.compat.flower.names import module_getattr

__all__ = ["ClientApp"]

_HINTS = {
    "NumPyClient": "Flower's legacy NumPyClient is not supported; use ClientApp with @app.train().",
    "Client": "Flower's legacy Client is not supported; use ClientApp with @app.train().",
}


__getattr__ = module_getattr(__name__, [*__all__, "mod"], _HINTS)
