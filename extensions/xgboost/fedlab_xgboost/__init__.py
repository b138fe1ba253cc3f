"""Federated XGBoost for fedlab: bagging and cyclic boosting over model bytes.

>>> from fedlab_xgboost import FedXgbBagging, xgb_client_app, empty_model
"""

from __future__ import annotations

from fedlab_xgboost.client import DEFAULT_PARAMS, binary_metrics, xgb_client_app
from fedlab_xgboost.errors import XGBoostModelError
from fedlab_xgboost.model import (
    MODEL_KEY,
    booster_from_bytes,
    booster_to_bytes,
    empty_model,
    merge_models,
    model_from_record,
    model_to_record,
    num_trees,
)
from fedlab_xgboost.strategy import FedXgbBagging, FedXgbCyclic

__all__ = [
    "DEFAULT_PARAMS",
    "MODEL_KEY",
    "FedXgbBagging",
    "FedXgbCyclic",
    "XGBoostModelError",
    "binary_metrics",
    "booster_from_bytes",
    "booster_to_bytes",
    "empty_model",
    "merge_models",
    "model_from_record",
    "model_to_record",
    "num_trees",
    "xgb_client_app",
]
