"""fedlab: notebook-first federated learning.

Wrap a :class:`ClientApp` and a strategy in a :class:`Federation`, call ``run()``, and
watch every client train; then run the same objects on real machines.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fedlab.version import __version__ as __version__

if TYPE_CHECKING:
    from fedlab import errors, strategy, tracking
    from fedlab.cache import worker_cache
    from fedlab.client import ClientApp
    from fedlab.comparison import Comparison, compare, plot_compare
    from fedlab.context import Context
    from fedlab.devices import client_device
    from fedlab.events import EventBus
    from fedlab.federation import Federation
    from fedlab.history import History
    from fedlab.message import Error, ErrorCode, Message, MessageType, Metadata
    from fedlab.records import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict
    from fedlab.server import Grid, Result, ServerApp

# Where each public name lives. They are imported on first use, so `import fedlab` is
# instant and a script pays only for what it touches (numpy, protobuf, asyncio, ...).
_HOMES = {
    "ClientApp": "fedlab.client",
    "worker_cache": "fedlab.cache",
    **dict.fromkeys(["Comparison", "compare", "plot_compare"], "fedlab.comparison"),
    "Context": "fedlab.context",
    "client_device": "fedlab.devices",
    "EventBus": "fedlab.events",
    "Federation": "fedlab.federation",
    "History": "fedlab.history",
    **dict.fromkeys(["Error", "ErrorCode", "Message", "MessageType", "Metadata"], "fedlab.message"),
    **dict.fromkeys(
        ["Array", "ArrayRecord", "ConfigRecord", "MetricRecord", "RecordDict"], "fedlab.records"
    ),
    **dict.fromkeys(["Grid", "Result", "ServerApp"], "fedlab.server"),
}
_SUBMODULES = {"errors", "strategy", "tracking"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"fedlab.{name}")
    else:
        raise AttributeError(f"module 'fedlab' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "Array",
    "ArrayRecord",
    "ClientApp",
    "Comparison",
    "ConfigRecord",
    "Context",
    "Error",
    "ErrorCode",
    "EventBus",
    "Federation",
    "Grid",
    "History",
    "Message",
    "MessageType",
    "Metadata",
    "MetricRecord",
    "RecordDict",
    "Result",
    "ServerApp",
    "client_device",
    "compare",
    "errors",
    "plot_compare",
    "strategy",
    "tracking",
    "worker_cache",
]
