"""``flwr.common.typing``: the type aliases Message-API apps annotate with."""

from __future__ import annotations

from typing import Any

import numpy.typing as npt

from fedlab.compat.flower.names import module_getattr
from fedlab.context import UserConfig, UserConfigValue

__all__ = [
    "Config",
    "Metrics",
    "NDArray",
    "NDArrays",
    "Scalar",
    "UserConfig",
    "UserConfigValue",
]

NDArray = npt.NDArray[Any]
NDArrays = list[npt.NDArray[Any]]
Scalar = bool | bytes | float | int | str
Config = dict[str, Scalar]
Metrics = dict[str, Scalar]

_LEGACY = "it belongs to Flower's legacy API; use flwr.app records (ArrayRecord, MetricRecord)."
__getattr__ = module_getattr(
    __name__,
    __all__,
    dict.fromkeys(
        ["Parameters", "FitIns", "FitRes", "EvaluateIns", "EvaluateRes", "Status", "Code"], _LEGACY
    ),
)
