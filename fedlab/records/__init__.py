"""Records: the typed containers that travel inside a Message."""

from fedlab.records.array import ALLOWED_DTYPES, Array
from fedlab.records.arrayrecord import ArrayRecord
from fedlab.records.configrecord import ConfigRecord
from fedlab.records.metricrecord import MetricRecord
from fedlab.records.recorddict import Record, RecordDict

__all__ = [
    "ALLOWED_DTYPES",
    "Array",
    "ArrayRecord",
    "ConfigRecord",
    "MetricRecord",
    "Record",
    "RecordDict",
]
