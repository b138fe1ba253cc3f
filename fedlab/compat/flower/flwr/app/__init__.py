"""``flwr.app``: records, Message, Context and their types, from fedlab's Flower layer."""

from __future__ import annotations

from fedlab.compat.flower.message import Context, Message
from fedlab.compat.flower.names import module_getattr
from fedlab.compat.flower.records import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.context import UserConfig, UserConfigValue
from fedlab.message import DEFAULT_TTL, Error, MessageType, Metadata
from fedlab.records.configrecord import ConfigValue as ConfigRecordValues
from fedlab.records.metricrecord import MetricValue as MetricRecordValues

__all__ = [  # noqa: RUF022 (plain sorted(), which tests/unit/test_package.py checks)
    "Array",
    "ArrayRecord",
    "ConfigRecord",
    "ConfigRecordValues",
    "Context",
    "DEFAULT_TTL",
    "Error",
    "Message",
    "MessageType",
    "Metadata",
    "MetricRecord",
    "MetricRecordValues",
    "RecordDict",
    "UserConfig",
    "UserConfigValue",
]


__getattr__ = module_getattr(__name__, __all__)
