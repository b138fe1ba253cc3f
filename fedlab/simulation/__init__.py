"""The simulation runtime: many logical clients, in this process or in workers.

Backends: ``inline`` and ``threads`` (:mod:`fedlab.simulation.backend`), ``processes``
(:class:`ProcessBackend`) and ``ray`` (:class:`RayBackend`; Ray itself is imported only
when one is built).
"""

from fedlab.simulation.backend import (
    BACKENDS,
    Backend,
    InlineBackend,
    ThreadBackend,
    make_backend,
    missing_backend_members,
)
from fedlab.simulation.grid import SimulationGrid
from fedlab.simulation.nodes import NodeIdList, make_node_ids
from fedlab.simulation.processes import ProcessBackend
from fedlab.simulation.ray_backend import RayBackend

__all__ = [
    "BACKENDS",
    "Backend",
    "InlineBackend",
    "NodeIdList",
    "ProcessBackend",
    "RayBackend",
    "SimulationGrid",
    "ThreadBackend",
    "make_backend",
    "make_node_ids",
    "missing_backend_members",
]
