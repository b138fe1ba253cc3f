"""Talking to a SuperLink from the user's side (not to be confused with a ClientApp).

:class:`GrpcGrid` is the Grid a ServerApp drives a run with, over the SuperLink's
ServerAppIo API; :class:`ControlClient` starts, lists, follows and stops runs over its
Control API (what ``fedlab run/ls/log/stop`` and ``Federation.deploy`` use). The SuperLink's
side of those APIs is in :mod:`fedlab.deploy.superlink`.
"""

from __future__ import annotations

from fedlab.deploy.client.control_client import ControlClient, NodeInfo, RunInfo
from fedlab.deploy.client.grpcgrid import GrpcGrid

__all__ = ["ControlClient", "GrpcGrid", "NodeInfo", "RunInfo"]
