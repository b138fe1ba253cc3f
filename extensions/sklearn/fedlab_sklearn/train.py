"""Local training from the global parameters, and evaluation, for each supported estimator.

The three pitfalls of federating scikit-learn are handled here:

* **warm start**: every round continues from the global parameters, never from a fresh
  initialisation (``fit`` on a plain estimator would start over);
* **class set**: a client that lacks some labels still trains and replies with parameters
  for the full, agreed class list (``partial_fit(..., classes=...)``; for
  ``LogisticRegression`` one zero-weight row per missing class, which fixes ``classes_``
  without changing the loss);
* **unfitted estimators**: the estimator is loaded from the received parameters first
  (:func:`~fedlab_sklearn.set_parameters`), so round 1 works from
  :func:`~fedlab_sklearn.initial_parameters`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression, SGDClassifier
from sklearn.metrics import log_loss, mean_squared_error, r2_score
from sklearn.neural_network import MLPClassifier

from fedlab import ArrayRecord
from fedlab_sklearn.errors import UnsupportedEstimatorError
from fedlab_sklearn.params import set_parameters

__all__ = ["evaluate_estimator", "fit_from"]


def fit_from(
    estimator: BaseEstimator,
    arrays: ArrayRecord,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    classes: Sequence[Any] | None = None,
    epochs: int = 1,
) -> BaseEstimator:
    """Train ``estimator`` on ``(x, y)`` for ``epochs``, starting from ``arrays``.

    Parameters
    ----------
    estimator
        A fresh (unfitted) estimator of a supported type, with your settings.
    arrays
        The global parameters, as :func:`~fedlab_sklearn.get_parameters` gives them.
    x, y
        This client's data; ``y`` may lack some of ``classes``.
    classes
        The agreed class list (required for classifiers).
    epochs
        Passes over the data: ``partial_fit`` calls for ``SGDClassifier`` and
        ``MLPClassifier``, solver iterations for ``LogisticRegression``. A
        ``LinearRegression`` is solved exactly, so it ignores both ``arrays`` and ``epochs``.

    Returns
    -------
    The trained estimator; read its parameters with :func:`~fedlab_sklearn.get_parameters`.
    """
    x, y = np.asarray(x), np.asarray(y)
    if isinstance(estimator, LinearRegression):
        return estimator.fit(x, y)
    if classes is None:
        raise UnsupportedEstimatorError(
            f"{type(estimator).__name__} needs classes=[...]: the agreed class list, the same "
            "on every client, so that a client lacking some labels still fits every class."
        )
    unknown = sorted(set(np.unique(y).tolist()) - set(np.asarray(classes).tolist()))
    if unknown:
        raise UnsupportedEstimatorError(
            f"labels {unknown} are not in the agreed classes {list(classes)}; add them to classes."
        )
    set_parameters(estimator, arrays, classes)
    with warnings.catch_warnings():
        # A few local iterations per round never converge, by design.
        warnings.simplefilter("ignore", ConvergenceWarning)
        if isinstance(estimator, LogisticRegression):
            estimator.set_params(warm_start=True, max_iter=epochs)
            missing = [c for c in classes if c not in set(y.tolist())]
            weight = np.concatenate([np.ones(len(y)), np.zeros(len(missing))])
            x_all = np.vstack([x, np.zeros((len(missing), x.shape[1]))]) if missing else x
            y_all = np.concatenate([y, np.asarray(missing, dtype=y.dtype)]) if missing else y
            estimator.fit(x_all, y_all, sample_weight=weight)
        elif isinstance(estimator, SGDClassifier | MLPClassifier):
            for _ in range(epochs):
                estimator.partial_fit(x, y, classes=np.asarray(classes))
        else:
            raise UnsupportedEstimatorError(f"{type(estimator).__name__} is not supported.")
    return estimator


def evaluate_estimator(estimator: BaseEstimator, x: npt.ArrayLike, y: npt.ArrayLike) -> dict[str, float | int]:
    """Loss and score of a loaded estimator on ``(x, y)``, as metrics to reply with.

    Classifiers report ``accuracy`` and ``loss`` (log loss where the estimator has
    ``predict_proba``, else the error rate); ``LinearRegression`` reports ``r2`` and
    ``loss`` (mean squared error). Every result has ``num-examples``.
    """
    x, y = np.asarray(x), np.asarray(y)
    if isinstance(estimator, LinearRegression):
        predicted = estimator.predict(x)
        return {
            "loss": float(mean_squared_error(y, predicted)),
            "r2": float(r2_score(y, predicted)),
            "num-examples": len(y),
        }
    accuracy = float(np.mean(estimator.predict(x) == y))
    if hasattr(estimator, "predict_proba"):
        probabilities = estimator.predict_proba(x)
        loss = float(log_loss(y, probabilities, labels=estimator.classes_))
    else:
        loss = 1.0 - accuracy
    return {"loss": loss, "accuracy": accuracy, "num-examples": len(y)}
