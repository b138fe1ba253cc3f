"""``flwr.app.typing``: the value types of MetricRecord and ConfigRecord."""

from __future__ import annotations

from fedlab.compat.flower.names import module_getattr
from fedlab.records.configrecord import ConfigValue as ConfigRecordValues
from fedlab.records.metricrecord import MetricValue as MetricRecordValues

__all__ = [
    "ConfigRecordValues",
    "ConfigScalar",
    "ConfigScalarList",
    "MetricRecordValues",
    "MetricScalar",
    "MetricScalarList",
]

ConfigScalar = int | float | str | bytes | bool
ConfigScalarList = list[int] | list[float] | list[str] | list[bytes] | list[bool]
MetricScalar = int | float
MetricScalarList = list[int] | list[float]

__getattr__ = module_getattr(__name__, __all__)
