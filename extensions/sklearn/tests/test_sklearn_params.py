"""Estimator parameters travel as a named ArrayRecord and come back bit for bit."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from fedlab_sklearn import get_parameters, initial_parameters, parameter_names, set_parameters
from fedlab_sklearn.errors import UnsupportedEstimatorError
from sklearn.datasets import load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression, SGDClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from fedlab import ArrayRecord

X, Y = load_wine(return_X_y=True)
X = StandardScaler().fit_transform(X)
CLASSES = [0, 1, 2]


def fitted(kind: str) -> Any:
    if kind == "logistic":
        return LogisticRegression(max_iter=200).fit(X, Y)
    if kind == "sgd":
        return SGDClassifier(random_state=0).fit(X, Y)
    if kind == "linear":
        return LinearRegression().fit(X, X[:, 0] * 2.0 + 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a short fit is enough here
        return MLPClassifier(hidden_layer_sizes=(7, 5), max_iter=50, random_state=0).fit(X, Y)


def same_bytes(a: ArrayRecord, b: ArrayRecord) -> bool:
    return list(a) == list(b) and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and bytes(a[k].data) == bytes(b[k].data) for k in a
    )


@pytest.mark.parametrize("kind", ["logistic", "sgd", "linear", "mlp"])
def test_parameters_round_trip_bit_for_bit_with_their_names(kind: str) -> None:
    source = fitted(kind)
    record = get_parameters(source)
    expected = ["coef_", "intercept_"] if kind != "mlp" else ["coefs_.0", "coefs_.1", "coefs_.2", "intercepts_.0", "intercepts_.1", "intercepts_.2"]
    assert list(record) == expected == parameter_names(source, X.shape[1], CLASSES)
    fresh = type(source)(**source.get_params())
    loaded = set_parameters(fresh, record, None if kind == "linear" else CLASSES)
    assert same_bytes(get_parameters(loaded), record)
    assert np.array_equal(loaded.predict(X), source.predict(X))


def test_a_scalar_intercept_comes_back_as_the_same_numpy_scalar() -> None:
    source = fitted("linear")
    loaded = set_parameters(LinearRegression(), get_parameters(source))
    assert get_parameters(source)["intercept_"].shape == ()
    assert type(loaded.intercept_) is type(source.intercept_) and loaded.intercept_ == source.intercept_


def test_float32_parameters_keep_their_dtype() -> None:
    record = ArrayRecord({"coef_": np.ones((3, 13), np.float32), "intercept_": np.zeros(3, np.float32)})
    assert same_bytes(get_parameters(set_parameters(SGDClassifier(), record, CLASSES)), record)


@pytest.mark.parametrize("make", [LogisticRegression, SGDClassifier, LinearRegression, MLPClassifier])
def test_unfitted_estimators_predict_from_initial_parameters(make: type) -> None:
    classes = None if make is LinearRegression else CLASSES
    record = initial_parameters(make(), X.shape[1], classes)
    estimator = set_parameters(make(), record, classes)
    assert estimator.predict(X).shape == (len(X),)
    assert same_bytes(get_parameters(estimator), record)


def test_training_a_loaded_estimator_leaves_the_received_record_unchanged() -> None:
    record = initial_parameters(MLPClassifier(hidden_layer_sizes=(4,)), X.shape[1], CLASSES)
    before = record.copy()
    set_parameters(MLPClassifier(hidden_layer_sizes=(4,)), record, CLASSES).partial_fit(X, Y)
    assert same_bytes(record, before)


def test_unsupported_estimators_and_mismatched_records_say_what_to_do() -> None:
    with pytest.raises(UnsupportedEstimatorError, match="DecisionTreeClassifier is not supported; use one of"):
        get_parameters(DecisionTreeClassifier())
    with pytest.raises(UnsupportedEstimatorError, match="has no parameters yet; fit it"):
        get_parameters(LogisticRegression())
    with pytest.raises(UnsupportedEstimatorError, match=r"takes arrays named \['coef_', 'intercept_'\]"):
        set_parameters(LogisticRegression(), ArrayRecord([np.zeros((3, 13)), np.zeros(3)]), CLASSES)


def test_parameters_for_another_class_list_are_refused_with_the_shapes() -> None:
    two_classes = initial_parameters(LogisticRegression(), X.shape[1], [0, 1])
    with pytest.raises(UnsupportedEstimatorError, match=r"with classes \[0, 1, 2\] takes shapes .*must use the same classes"):
        set_parameters(LogisticRegression(), two_classes, CLASSES)
