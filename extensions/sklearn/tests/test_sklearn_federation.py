"""Each supported estimator, federated over 5 clients, reaches the tutorial's accuracy."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from fedlab_sklearn import (
    evaluate_estimator,
    fit_from,
    get_parameters,
    initial_parameters,
    set_parameters,
    sklearn_client_app,
)
from sklearn.base import BaseEstimator
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression, SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

import fedlab as fl

NUM_CLIENTS = 5


def split(x: np.ndarray, y: np.ndarray, stratify: bool = True) -> tuple[np.ndarray, ...]:
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=0, stratify=y if stratify else None
    )
    scaler = StandardScaler().fit(x_train)
    return scaler.transform(x_train), scaler.transform(x_test), y_train, y_test


def federate(
    make: Callable[[], BaseEstimator], data: tuple[np.ndarray, ...], classes: list[int] | None,
    rounds: int, epochs: int, parts: list[np.ndarray] | None = None,
) -> dict[str, float | int]:
    x_train, x_test, y_train, y_test = data
    rows = parts or np.array_split(np.random.default_rng(0).permutation(len(x_train)), NUM_CLIENTS)
    app = sklearn_client_app(make, lambda pid, n: (x_train[rows[pid]], y_train[rows[pid]]),
                             classes=classes, epochs=epochs)
    fed = fl.Federation(app, strategy=fl.strategy.FedAvg(fraction_train=1.0, fraction_evaluate=1.0),
                        num_clients=NUM_CLIENTS, initial_arrays=initial_parameters(make(), x_train.shape[1], classes),
                        seed=0, display="none")
    result = fed.run(rounds=rounds)
    assert result.history is not None and not result.history.failures()
    return evaluate_estimator(set_parameters(make(), result.arrays, classes), x_test, y_test)


CANCER = split(*load_breast_cancer(return_X_y=True))
CLASSIFIERS: dict[str, tuple[Callable[[], BaseEstimator], int]] = {
    "LogisticRegression": (LogisticRegression, 5),
    "SGDClassifier": (lambda: SGDClassifier(random_state=0), 5),
    "MLPClassifier": (lambda: MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, random_state=0), 15),
}


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_a_5_client_federation_on_breast_cancer_reaches_093_held_out_accuracy(name: str) -> None:
    make, rounds = CLASSIFIERS[name]
    assert federate(make, CANCER, [0, 1], rounds=rounds, epochs=2)["accuracy"] >= 0.93


def test_federated_linear_regression_on_diabetes_matches_the_pooled_fit() -> None:
    x, y = load_diabetes(return_X_y=True)
    data = split(x, y, stratify=False)
    federated = federate(LinearRegression, data, None, rounds=1, epochs=1)
    pooled = evaluate_estimator(LinearRegression().fit(data[0], data[2]), data[1], data[3])
    assert float(federated["r2"]) >= 0.3 and abs(float(federated["r2"]) - float(pooled["r2"])) < 0.01


def test_federated_linear_regression_on_generated_data_reaches_r2_095() -> None:
    x, y = make_regression(n_samples=600, n_features=10, noise=10.0, random_state=0)
    federated = federate(LinearRegression, split(x, y, stratify=False), None, rounds=3, epochs=1)
    assert float(federated["r2"]) >= 0.95


@pytest.mark.parametrize("make", [LogisticRegression, SGDClassifier, lambda: MLPClassifier(hidden_layer_sizes=(8,))])
def test_a_client_lacking_labels_replies_with_parameters_for_every_agreed_class(make: Callable[[], BaseEstimator]) -> None:
    x, y = load_wine(return_X_y=True)
    x = StandardScaler().fit_transform(x)
    start = initial_parameters(make(), x.shape[1], [0, 1, 2])
    only_two = fit_from(make(), start, x[y != 2], y[y != 2], classes=[0, 1, 2], epochs=3)
    assert list(only_two.classes_) == [0, 1, 2]
    assert set(only_two.predict(x).tolist()) <= {0, 1, 2}
    assert [a.shape for a in get_parameters(only_two).values()] == [a.shape for a in start.values()]


def test_binary_clients_holding_one_class_each_still_federate() -> None:
    y_train = CANCER[2]
    # Non-IID: clients 0 and 1 hold only benign, client 2 only malignant rows.
    benign, malignant = np.flatnonzero(y_train == 1), np.flatnonzero(y_train == 0)
    parts = [benign[:100], benign[100:200], malignant[:80], *np.array_split(np.concatenate([benign[200:], malignant[80:]]), 2)]
    for make in (LogisticRegression, lambda: SGDClassifier(random_state=0)):
        assert federate(make, CANCER, [0, 1], rounds=5, epochs=2, parts=parts)["accuracy"] >= 0.9


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_local_training_continues_from_the_global_parameters(name: str) -> None:
    make, _ = CLASSIFIERS[name]
    x_train, _, y_train, _ = CANCER
    trained = get_parameters(fit_from(make(), initial_parameters(make(), 30, [0, 1]), x_train, y_train, classes=[0, 1], epochs=20))
    warm = get_parameters(fit_from(make(), trained, x_train[:50], y_train[:50], classes=[0, 1], epochs=1))
    cold = get_parameters(fit_from(make(), initial_parameters(make(), 30, [0, 1]), x_train[:50], y_train[:50], classes=[0, 1], epochs=1))

    def distance(a: fl.ArrayRecord, b: fl.ArrayRecord) -> float:
        return sum(float(np.linalg.norm(a[k].numpy() - b[k].numpy())) for k in a)

    assert distance(warm, trained) < distance(cold, trained)
