"""``flwr.serverapp.strategy``: Flower's strategies and Result, computing Flower's numbers."""

from __future__ import annotations

from fedlab.compat.flower.names import module_getattr
from fedlab.compat.flower.strategy import (
    Bulyan,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    FedYogi,
    Krum,
    MultiKrum,
    QFedAvg,
    Strategy,
)
from fedlab.server import Result

__all__ = [
    "Bulyan",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedMedian",
    "FedProx",
    "FedTrimmedAvg",
    "FedYogi",
    "Krum",
    "MultiKrum",
    "QFedAvg",
    "Result",
    "Strategy",
]

_HINTS = {
    "FedXgbBagging": "use the fedlab-xgboost extension (fedlab_xgboost) for XGBoost bagging.",
    "FedXgbCyclic": "use the fedlab-xgboost extension (fedlab_xgboost) for cyclic XGBoost.",
    **dict.fromkeys(
        [
            "DifferentialPrivacyClientSideAdaptiveClipping",
            "DifferentialPrivacyClientSideFixedClipping",
            "DifferentialPrivacyServerSideAdaptiveClipping",
            "DifferentialPrivacyServerSideFixedClipping",
        ],
        "use fedlab's central DP wrappers in fedlab.privacy with fedlab.strategy.",
    ),
}


__getattr__ = module_getattr(__name__, __all__, _HINTS)
