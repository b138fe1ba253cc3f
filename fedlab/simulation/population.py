"""`Population`: a simulation's nodes: their ids, configs and lazily made Contexts.

A node costs nothing until it is first addressed: ids live in one int64 array
(:class:`~fedlab.simulation.NodeIdList`) and a node's Context, and so its
``context.state``, is made the first time the node is called, then kept for the run.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import numpy as np

from fedlab.context import Context, UserConfig
from fedlab.errors import SimulationError
from fedlab.message import SERVER_NODE_ID
from fedlab.records import RecordDict
from fedlab.simulation.nodes import NodeIdList, draw_node_ids

__all__ = ["Population"]


class Population:
    """The nodes of one simulation, in partition order.

    Parameters
    ----------
    num_nodes
        How many nodes.
    run_id
        The run every Context belongs to.
    node_configs
        Extra per-node settings, one mapping per node; ``partition-id`` and
        ``num-partitions`` are always set.
    run_config
        Every node's ``run_config`` (each Context gets its own copy).
    seed
        Draws the node ids when ``node_ids`` is not given.
    node_ids
        The nodes' ids, in partition order (a resumed run reuses its ids).

    Examples
    --------
    >>> nodes = Population(3, run_id=1, seed=0)
    >>> nodes.node_config(nodes.ids[2]), len(nodes.created_contexts())
    ({'partition-id': 2, 'num-partitions': 3}, 0)
    >>> nodes.context(nodes.ids[2]).node_config["partition-id"], len(nodes.created_contexts())
    (2, 1)
    """

    def __init__(
        self,
        num_nodes: int,
        *,
        run_id: int,
        node_configs: Sequence[Mapping[str, bool | int | float | str]] | None = None,
        run_config: UserConfig | None = None,
        seed: int | None = None,
        node_ids: Sequence[int] | None = None,
    ) -> None:
        if not isinstance(num_nodes, int) or isinstance(num_nodes, bool) or num_nodes < 1:
            raise SimulationError(f"num_nodes must be a positive int, got {num_nodes!r}.")
        if node_configs is not None and len(node_configs) != num_nodes:
            raise SimulationError(
                f"node_configs has {len(node_configs)} entries but there are {num_nodes} nodes; "
                "give one mapping per node."
            )
        #: The node ids, in partition order (fixed for the simulation's lifetime).
        self.ids = _ids(num_nodes, seed, node_ids)
        self._run_id = run_id
        self._node_configs = node_configs
        self._run_config: UserConfig = dict(run_config or {})
        self._contexts: dict[int, Context] = {}
        self._lock = threading.Lock()

    def context(self, node_id: int) -> Context:
        """Return the persistent Context of ``node_id``, creating it on first use."""
        context = self._contexts.get(node_id)
        if context is not None:
            return context
        index = self.ids.index_of(node_id)
        if index is None:
            raise SimulationError(f"Node {node_id} is not part of this simulation.")
        with self._lock:
            return self._contexts.setdefault(
                node_id,
                Context(
                    run_id=self._run_id,
                    node_id=node_id,
                    node_config=self._config_of(index),
                    run_config=dict(self._run_config),
                ),
            )

    def created_contexts(self) -> dict[int, Context]:
        """The Contexts made so far (one per node ever addressed), by node id."""
        with self._lock:
            return dict(self._contexts)

    def state(self, node_id: int) -> RecordDict:
        """Return ``node_id``'s ``context.state`` without creating its Context (empty if none)."""
        context = self._contexts.get(node_id)
        return context.state if context is not None else RecordDict()

    def node_config(self, node_id: int) -> UserConfig:
        """Return a copy of ``node_id``'s node_config (empty for an unknown node)."""
        context = self._contexts.get(node_id)
        if context is not None:
            return dict(context.node_config)
        index = self.ids.index_of(node_id)
        return {} if index is None else self._config_of(index)

    def _config_of(self, index: int) -> UserConfig:
        config: UserConfig = {"partition-id": index, "num-partitions": len(self.ids)}
        if self._node_configs is not None:
            config.update(self._node_configs[index])
        return config


def _ids(num_nodes: int, seed: int | None, node_ids: Sequence[int] | None) -> NodeIdList:
    """The node ids: drawn from ``seed``, or ``node_ids`` once checked."""
    if node_ids is None:
        return NodeIdList(draw_node_ids(num_nodes, seed))
    ids = np.asarray(list(node_ids))
    nodes = NodeIdList(ids) if ids.shape == (num_nodes,) and ids.dtype.kind in "iu" else None
    if nodes is None or SERVER_NODE_ID in nodes or nodes.has_repeats():
        raise SimulationError(
            f"node_ids must be {num_nodes} distinct non-zero ids, one per node; got {node_ids!r}."
        )
    return nodes
