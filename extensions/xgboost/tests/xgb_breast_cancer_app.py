"""Breast-cancer over five clients: the app the XGBoost tests run, bound at module level."""

from __future__ import annotations

import numpy as np
import xgboost as xgb
from fedlab_xgboost import xgb_client_app
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from fedlab import Context

NUM_CLIENTS = 5
SEED = 42


def split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The pooled train rows and the held-out test rows (25 %), stratified, fixed seed."""
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=SEED, stratify=y)
    return x_train, x_test, y_train, y_test


def load(ctx: Context) -> tuple[xgb.DMatrix, xgb.DMatrix]:
    """This client's fifth of the training rows, and a fifth of the held-out rows."""
    x_train, x_test, y_train, y_test = split()
    pid, parts = int(ctx.node_config["partition-id"]), int(ctx.node_config.get("num-partitions", NUM_CLIENTS))
    train_rows = np.array_split(np.arange(len(y_train)), parts)[pid]
    test_rows = np.array_split(np.arange(len(y_test)), parts)[pid]
    return (xgb.DMatrix(x_train[train_rows], y_train[train_rows]), xgb.DMatrix(x_test[test_rows], y_test[test_rows]))


def held_out_accuracy(model: bytes) -> float:
    """Accuracy of ``model`` on the whole held-out set."""
    from fedlab_xgboost import binary_metrics, booster_from_bytes

    _, x_test, _, y_test = split()
    return binary_metrics(booster_from_bytes(model), xgb.DMatrix(x_test, y_test))["accuracy"]


app = xgb_client_app(load, local_rounds=2)
