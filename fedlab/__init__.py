"""fedlab: notebook-first federated learning.

Wrap a :class:`ClientApp` and a strategy in a :class:`Federation`, call ``run()``, and
watch every client train; then run the same objects on real machines.
"""

from fedlab import errors, strategy
from fedlab.client import ClientApp
from fedlab.context import Context
from fedlab.events import EventBus
from fedlab.federation import Federation
from fedlab.history import History
from fedlab.message import Error, ErrorCode, Message, MessageType, Metadata
from fedlab.records import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.server import Grid, Result, ServerApp

__version__ = "0.1.0"

__all__ = [
    "Array",
    "ArrayRecord",
    "ClientApp",
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
    "errors",
    "strategy",
]
