"""fedlab-sklearn: federate the scikit-learn estimators you already use.

Parameters travel as an :class:`~fedlab.ArrayRecord` whose names are the estimator's
attributes (``coef_``, ``intercept_``, ``coefs_.0``, ...); :func:`sklearn_client_app`
builds a ClientApp that trains and evaluates any supported estimator from the global
parameters; :func:`add_scaler_query` and :func:`federated_scaler_stats` compute the
``StandardScaler`` statistics of all clients' data without moving it.

Supported estimators: ``LogisticRegression``, ``SGDClassifier``, ``LinearRegression`` and
``MLPClassifier``.
"""

from __future__ import annotations

from fedlab_sklearn.client import sklearn_client_app
from fedlab_sklearn.params import (
    get_parameters,
    initial_parameters,
    parameter_names,
    set_parameters,
)
from fedlab_sklearn.scaler import ScalerStats, add_scaler_query, federated_scaler_stats
from fedlab_sklearn.train import evaluate_estimator, fit_from

__all__ = [
    "ScalerStats",
    "add_scaler_query",
    "evaluate_estimator",
    "federated_scaler_stats",
    "fit_from",
    "get_parameters",
    "initial_parameters",
    "parameter_names",
    "set_parameters",
    "sklearn_client_app",
]
