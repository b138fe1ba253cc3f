"""``flwr.common``: the names Message-API apps import from it, from fedlab's Flower layer."""

from __future__ import annotations

from typing import Any

import numpy.typing as npt

from fedlab.compat.flower.logger import log
from fedlab.compat.flower.message import Context, Message
from fedlab.compat.flower.names import module_getattr
from fedlab.compat.flower.records import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.message import DEFAULT_TTL, Error, MessageType, Metadata

__all__ = [  # noqa: RUF022 (plain sorted(), which tests/unit/test_package.py checks)
    "Array",
    "ArrayRecord",
    "ConfigRecord",
    "Context",
    "DEFAULT_TTL",
    "Error",
    "Message",
    "MessageType",
    "Metadata",
    "MetricRecord",
    "NDArray",
    "NDArrays",
    "RecordDict",
    "Scalar",
    "log",
]

NDArray = npt.NDArray[Any]
NDArrays = list[npt.NDArray[Any]]
Scalar = bool | bytes | float | int | str

_LEGACY = (
    "it belongs to Flower's legacy API (Parameters, FitIns, NumPyClient); "
    "use flwr.app.ArrayRecord and its to_numpy_ndarrays()/from_numpy_ndarrays()."
)
_HINTS = dict.fromkeys(
    [
        "Parameters",
        "FitIns",
        "FitRes",
        "EvaluateIns",
        "EvaluateRes",
        "ndarrays_to_parameters",
        "parameters_to_ndarrays",
        "GetParametersIns",
        "GetParametersRes",
        "Status",
        "Code",
    ],
    _LEGACY,
)


__getattr__ = module_getattr(__name__, [*__all__, "logger"], _HINTS)
