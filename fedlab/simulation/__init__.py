"""The simulation runtime: many logical clients in this process."""

from fedlab.simulation.backend import BACKENDS, Backend, InlineBackend, ThreadBackend, make_backend
from fedlab.simulation.grid import SimulationGrid
from fedlab.simulation.nodes import NodeIdList, make_node_ids

__all__ = [
    "BACKENDS",
    "Backend",
    "InlineBackend",
    "NodeIdList",
    "SimulationGrid",
    "ThreadBackend",
    "make_backend",
    "make_node_ids",
]

