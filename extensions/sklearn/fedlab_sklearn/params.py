"""An estimator's parameters as a named :class:`~fedlab.ArrayRecord`, and back.

Names are the estimator's own attributes: ``coef_`` and ``intercept_`` for the linear
models, ``coefs_.0``, ``coefs_.1``, ... and ``intercepts_.0``, ... for ``MLPClassifier``
(one per layer). Arrays keep their dtype and shape, so ``get_parameters`` after
``set_parameters`` returns the very same bytes. ``LinearRegression``'s scalar intercept
travels as a 0-d array and comes back as the same numpy scalar.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator
from sklearn.linear_model import LinearRegression, LogisticRegression, SGDClassifier
from sklearn.neural_network import MLPClassifier

from fedlab import ArrayRecord
from fedlab_sklearn.errors import UnsupportedEstimatorError

__all__ = ["get_parameters", "initial_parameters", "parameter_names", "set_parameters"]

SUPPORTED = (LogisticRegression, SGDClassifier, LinearRegression, MLPClassifier)
_LINEAR = (LogisticRegression, SGDClassifier, LinearRegression)


def _check(estimator: BaseEstimator) -> None:
    if not isinstance(estimator, SUPPORTED):
        names = ", ".join(kind.__name__ for kind in SUPPORTED)
        raise UnsupportedEstimatorError(
            f"{type(estimator).__name__} is not supported; use one of {names}, or send its "
            "parameters yourself with fedlab.ArrayRecord({name: array})."
        )


def _layer_sizes(estimator: MLPClassifier, n_features: int, n_outputs: int) -> list[int]:
    sizes: Any = estimator.hidden_layer_sizes
    hidden = [int(sizes)] if isinstance(sizes, int | np.integer) else [int(h) for h in sizes]
    return [n_features, *hidden, n_outputs]


def _n_outputs(n_classes: int) -> int:
    return 1 if n_classes == 2 else n_classes


def parameter_names(
    estimator: BaseEstimator, n_features: int, classes: Sequence[Any] | None = None
) -> list[str]:
    """The names :func:`get_parameters` gives ``estimator``'s arrays, in order.

    Examples
    --------
    >>> from sklearn.neural_network import MLPClassifier
    >>> parameter_names(MLPClassifier(hidden_layer_sizes=(8,)), 4, [0, 1, 2])
    ['coefs_.0', 'coefs_.1', 'intercepts_.0', 'intercepts_.1']
    """
    _check(estimator)
    if isinstance(estimator, _LINEAR):
        return ["coef_", "intercept_"]
    layers = len(_layer_sizes(estimator, n_features, 1)) - 1
    return [f"coefs_.{i}" for i in range(layers)] + [f"intercepts_.{i}" for i in range(layers)]


def get_parameters(estimator: BaseEstimator) -> ArrayRecord:
    """A fitted (or initialised) estimator's parameters, named after its attributes.

    Raises
    ------
    UnsupportedEstimatorError
        If the estimator is not supported or has no parameters yet: fit it, or start from
        :func:`initial_parameters` and :func:`set_parameters`.
    """
    _check(estimator)
    attributes = ("coef_", "intercept_") if isinstance(estimator, _LINEAR) else ("coefs_",)
    if not all(hasattr(estimator, name) for name in attributes):
        raise UnsupportedEstimatorError(
            f"{type(estimator).__name__} has no parameters yet; fit it, or call "
            "set_parameters(estimator, initial_parameters(estimator, n_features, classes), classes)."
        )
    if isinstance(estimator, _LINEAR):
        return ArrayRecord(
            {"coef_": np.asarray(estimator.coef_), "intercept_": np.asarray(estimator.intercept_)}
        )
    arrays: dict[str, npt.NDArray[Any]] = {}
    for i, coef in enumerate(estimator.coefs_):
        arrays[f"coefs_.{i}"] = np.asarray(coef)
    for i, intercept in enumerate(estimator.intercepts_):
        arrays[f"intercepts_.{i}"] = np.asarray(intercept)
    return ArrayRecord(arrays)


def initial_parameters(
    estimator: BaseEstimator,
    n_features: int,
    classes: Sequence[Any] | None = None,
    *,
    seed: int = 0,
) -> ArrayRecord:
    """Parameters for an unfitted estimator, so that round 1 has a global model to send.

    Linear models start at zero. ``MLPClassifier`` starts from the same scaled uniform
    (Glorot) draw scikit-learn uses, seeded by ``seed``: zeros would leave every hidden
    unit identical forever.

    Parameters
    ----------
    estimator
        An unfitted estimator of a supported type; only its settings are read.
    n_features
        The number of input columns.
    classes
        The agreed class list of a classifier (every client uses the same one); ignored
        for ``LinearRegression``.
    seed
        Seeds the ``MLPClassifier`` initialisation.
    """
    _check(estimator)
    if isinstance(estimator, LinearRegression):
        return ArrayRecord({"coef_": np.zeros(n_features), "intercept_": np.zeros(())})
    if classes is None or len(classes) < 2:
        raise UnsupportedEstimatorError(
            f"{type(estimator).__name__} needs the agreed class list with at least two classes; "
            "pass classes=[...] (the same list on every client and on the server)."
        )
    n_outputs = _n_outputs(len(classes))
    if isinstance(estimator, _LINEAR):
        return ArrayRecord(
            {"coef_": np.zeros((n_outputs, n_features)), "intercept_": np.zeros(n_outputs)}
        )
    rng = np.random.default_rng(seed)
    sizes = _layer_sizes(estimator, n_features, n_outputs)
    factor = 2.0 if estimator.activation == "logistic" else 6.0
    coefs, intercepts = {}, {}
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        bound = np.sqrt(factor / (fan_in + fan_out))
        coefs[f"coefs_.{i}"] = rng.uniform(-bound, bound, (fan_in, fan_out))
        intercepts[f"intercepts_.{i}"] = rng.uniform(-bound, bound, fan_out)
    return ArrayRecord({**coefs, **intercepts})


def set_parameters(
    estimator: BaseEstimator, arrays: ArrayRecord, classes: Sequence[Any] | None = None
) -> BaseEstimator:
    """Load ``arrays`` into ``estimator`` so that it predicts, and continues training, from them.

    Works on an unfitted estimator: it sets ``classes_`` (the agreed class list, not the
    labels one client happens to hold), ``n_features_in_`` and, for ``MLPClassifier``, the
    internal state its ``partial_fit`` needs. The arrays are copied, so training the
    estimator never changes ``arrays``.

    Returns
    -------
    The same estimator, for chaining.
    """
    _check(estimator)
    expected = parameter_names(estimator, _n_features(arrays), classes)
    if list(arrays) != expected:
        raise UnsupportedEstimatorError(
            f"{type(estimator).__name__} takes arrays named {expected}, got {list(arrays)}; "
            "build them with get_parameters() or initial_parameters() for the same estimator."
        )
    if classes is not None or isinstance(estimator, LinearRegression):
        _check_shapes(estimator, arrays, classes)
    values = {name: np.array(array.numpy(), copy=True) for name, array in arrays.items()}
    if isinstance(estimator, LinearRegression):
        estimator.coef_ = values["coef_"]
        intercept = values["intercept_"]
        estimator.intercept_ = intercept[()] if intercept.ndim == 0 else intercept
        estimator.n_features_in_ = _n_features(arrays)
        return estimator
    if classes is None:
        if not hasattr(estimator, "classes_"):
            raise UnsupportedEstimatorError(
                f"{type(estimator).__name__} has no classes_ yet; pass classes=[...] "
                "(the agreed class list, the same on every client)."
            )
        classes = list(estimator.classes_)
    if isinstance(estimator, MLPClassifier):
        _prime_mlp(estimator, _n_features(arrays), classes)
        layers = len(values) // 2
        estimator.coefs_ = [values[f"coefs_.{i}"] for i in range(layers)]
        estimator.intercepts_ = [values[f"intercepts_.{i}"] for i in range(layers)]
        return estimator
    estimator.classes_ = np.asarray(classes)
    estimator.coef_, estimator.intercept_ = values["coef_"], values["intercept_"]
    estimator.n_features_in_ = _n_features(arrays)
    return estimator


def _check_shapes(estimator: BaseEstimator, arrays: ArrayRecord, classes: Sequence[Any] | None) -> None:
    if isinstance(estimator, LinearRegression):
        return  # one target or several: both shapes are valid
    expected = initial_parameters(estimator, _n_features(arrays), classes)
    got = {name: array.shape for name, array in arrays.items()}
    want = {name: array.shape for name, array in expected.items()}
    if got != want:
        raise UnsupportedEstimatorError(
            f"{type(estimator).__name__} with classes {list(classes or [])} takes shapes {want}, got "
            f"{got}; every client and the server must use the same classes and estimator settings."
        )


def _n_features(arrays: ArrayRecord) -> int:
    first = next(iter(arrays.values()), None)
    if first is None:
        raise UnsupportedEstimatorError("the ArrayRecord is empty; send the model's parameters.")
    shape = first.shape
    # coef_ is (n_outputs, n_features) or (n_features,); coefs_.0 is (n_features, n_hidden).
    if "coefs_.0" in arrays:
        return int(shape[0])
    return int(shape[-1])


def _prime_mlp(estimator: MLPClassifier, n_features: int, classes: Sequence[Any]) -> None:
    """Give an MLPClassifier the internal state partial_fit expects (label binarizer,
    output activation, layer counts) by one call on a synthetic batch; the caller then
    overwrites the parameters, and the optimizer restarts from them."""
    if not hasattr(estimator, "coefs_"):
        x = np.zeros((len(classes), n_features))
        estimator.partial_fit(x, np.asarray(classes), classes=np.asarray(classes))
    # A fresh optimizer each round: its moments belong to the parameters it last saw.
    if hasattr(estimator, "_optimizer"):
        del estimator._optimizer
