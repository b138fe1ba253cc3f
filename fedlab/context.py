"""`Context`: what a ClientApp or ServerApp knows about where and how it runs."""

from __future__ import annotations

from dataclasses import dataclass, field

from fedlab.records import RecordDict

__all__ = ["Context", "UserConfig", "UserConfigValue"]

UserConfigValue = bool | int | float | str
UserConfig = dict[str, UserConfigValue]


@dataclass
class Context:
    """The node's identity and configuration, and its state that persists across rounds.

    Attributes
    ----------
    run_id
        The run this context belongs to.
    node_id
        The node's id (the server side uses 0).
    node_config
        Per-node settings, e.g. ``partition-id`` and ``num-partitions`` in simulation.
    run_config
        Settings shared by every node of the run.
    state
        A RecordDict the node may write to; it is kept for the node between rounds and
        never leaves the node.
    """

    run_id: int
    node_id: int
    node_config: UserConfig = field(default_factory=dict)
    run_config: UserConfig = field(default_factory=dict)
    state: RecordDict = field(default_factory=RecordDict)
