"""Deployment: SuperLink, SuperNodes, the gRPC Grid, app bundles and managed local runs.

The package is made of one folder per part:

``superlink/``, ``supernode/``, ``serverapp/``
    The daemons (``python -m fedlab.deploy.superlink``, ``... .supernode``) and the
    process that drives a run the SuperLink started (``... .serverapp``).
``client/``
    What talks to a SuperLink from the user's side: :class:`GrpcGrid` (its ServerAppIo
    API) and :class:`ControlClient` (its Control API).
``bundle/``
    App bundles: how a run's code travels to the SuperNodes (:func:`build_bundle`,
    :func:`load_bundle`).
``local/``
    Managed runs, what ``Federation.deploy(...)`` does (:func:`deploy`).
``transport/``
    What crosses the wire: channels, RPC stubs, chunked objects, messages, events as JSON.
``proto/``
    The services' protobuf descriptors.

Examples
--------
>>> import fedlab.deploy
>>> fedlab.deploy.build_bundle.__module__
'fedlab.deploy.bundle'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fedlab.deploy.bundle import Bundle, build_bundle, load_bundle
    from fedlab.deploy.client import ControlClient, GrpcGrid, NodeInfo, RunInfo
    from fedlab.deploy.local import deploy
    from fedlab.deploy.superlink import SuperLink
    from fedlab.deploy.supernode import SuperNode
    from fedlab.deploy.transport.events_json import event_from_json, event_to_json

# Where each public name lives. They are imported on first use: every module of the
# package imports this one first, and the small launcher of each managed process
# (``python -m fedlab.deploy.local._child``) must not pay for grpc, protobuf or bundles.
_HOMES = {
    **dict.fromkeys(["Bundle", "build_bundle", "load_bundle"], "fedlab.deploy.bundle"),
    **dict.fromkeys(["ControlClient", "GrpcGrid", "NodeInfo", "RunInfo"], "fedlab.deploy.client"),
    "deploy": "fedlab.deploy.local",
    "SuperLink": "fedlab.deploy.superlink",
    "SuperNode": "fedlab.deploy.supernode",
    **dict.fromkeys(["event_from_json", "event_to_json"], "fedlab.deploy.transport.events_json"),
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'fedlab.deploy' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "Bundle",
    "ControlClient",
    "GrpcGrid",
    "NodeInfo",
    "RunInfo",
    "SuperLink",
    "SuperNode",
    "build_bundle",
    "deploy",
    "event_from_json",
    "event_to_json",
    "load_bundle",
]
