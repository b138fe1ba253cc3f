"""A 5-client federation of a small Keras network on digits reaches 0.90 held-out accuracy."""

from __future__ import annotations

import fedlab_keras  # noqa: F401  (first: quiet TensorFlow)
import keras
import numpy as np
import tensorflow as tf
from fedlab_keras import get_weights, keras_client_app, set_weights
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fedlab as fl

NUM_CLIENTS = 5
X, Y = load_digits(return_X_y=True)
X_TRAIN, X_TEST, Y_TRAIN, Y_TEST = train_test_split(
    (X / 16.0).astype("float32"), Y, test_size=0.25, stratify=Y, random_state=0
)
SHARES = np.array_split(np.random.default_rng(0).permutation(len(X_TRAIN)), NUM_CLIENTS)


def make_model() -> keras.Model:
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def numpy_partition(pid: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    return X_TRAIN[SHARES[pid]], Y_TRAIN[SHARES[pid]]


def dataset_partition(pid: int, n: int) -> tf.data.Dataset:
    rows = tf.data.Dataset.from_tensor_slices(numpy_partition(pid, n))
    return rows.shuffle(len(SHARES[pid]), seed=pid).batch(32)


def federate(load_partition: object, rounds: int, fraction_evaluate: float = 1.0) -> tuple[float, fl.Result]:
    keras.utils.set_random_seed(0)
    app = keras_client_app(make_model, load_partition, epochs=2)  # type: ignore[arg-type]
    fed = fl.Federation(app, strategy=fl.strategy.FedAvg(fraction_train=1.0, fraction_evaluate=fraction_evaluate),
                        num_clients=NUM_CLIENTS, initial_arrays=get_weights(make_model()), seed=0,
                        display="none")
    result = fed.run(rounds=rounds)
    assert result.history is not None and not result.history.failures()
    model = set_weights(make_model(), result.arrays)
    return float(model.evaluate(X_TEST, Y_TEST, verbose=0, return_dict=True)["accuracy"]), result


def test_a_5_client_federation_on_digits_reaches_090_held_out_accuracy() -> None:
    accuracy, result = federate(numpy_partition, rounds=3)
    assert accuracy >= 0.90
    assert list(result.arrays) == ["sequential/dense/kernel", "sequential/dense/bias",
                                   "sequential/dense_1/kernel", "sequential/dense_1/bias"]


def test_tf_data_partitions_federate_as_well_and_report_their_row_counts() -> None:
    accuracy, result = federate(dataset_partition, rounds=3, fraction_evaluate=0.0)
    assert accuracy >= 0.90
    assert result.history is not None
    counts = result.history.client_metric("num-examples")  # counted by one pass over each dataset
    assert {pid: rounds[3] for pid, rounds in counts.items()} == {pid: len(rows) for pid, rows in enumerate(SHARES)}
