"""``flwr.simulation``: ``run_simulation``, run by fedlab's simulation."""

from __future__ import annotations

from fedlab.compat.flower.names import module_getattr
from fedlab.compat.flower.simulation import run_simulation

__all__ = ["run_simulation"]

_HINTS = {
    "start_simulation": "Flower's legacy start_simulation is not supported; use "
    "run_simulation(server_app=..., client_app=..., num_supernodes=...).",
}


__getattr__ = module_getattr(__name__, __all__, _HINTS)
