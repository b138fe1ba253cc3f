"""Weights travel by name and come back bit for bit, whatever session built the model."""

from __future__ import annotations

import fedlab_keras  # noqa: F401  (first: quiet TensorFlow)
import keras
import numpy as np
import pytest
from fedlab_keras import KerasWeightsError, get_weights, set_weights, weight_names

import fedlab as fl


def make_model() -> keras.Model:
    return keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(5, activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.Dense(4, dtype="float64", name="head"),
        keras.layers.Dense(3),
    ])


def test_names_are_the_variable_paths_a_fresh_session_gives_in_model_order() -> None:
    for _ in range(2):  # Keras numbers the second build dense_3, dense_4, ...: names stay put
        assert weight_names(make_model()) == [
            "sequential/dense/kernel", "sequential/dense/bias",
            "sequential/batch_normalization/gamma", "sequential/batch_normalization/beta",
            "sequential/batch_normalization/moving_mean", "sequential/batch_normalization/moving_variance",
            "sequential/head/kernel", "sequential/head/bias",
            "sequential/dense_1/kernel", "sequential/dense_1/bias",
        ]


def test_nested_models_keep_every_level_of_the_path() -> None:
    def build() -> keras.Model:
        inputs = keras.Input((3,))
        block = keras.Sequential([keras.layers.Dense(2), keras.layers.Dense(2)])
        return keras.Model(inputs, keras.layers.Dense(1)(block(inputs)))

    names = weight_names(build())
    assert names == weight_names(build())
    assert names == ["sequential/dense/kernel", "sequential/dense/bias", "sequential/dense_1/kernel",
                     "sequential/dense_1/bias", "dense/kernel", "dense/bias"]


def test_a_round_trip_through_another_model_and_the_wire_is_bit_exact() -> None:
    source, target = make_model(), make_model()
    rng = np.random.default_rng(0)
    for variable in source.weights:  # every bit pattern matters, the statistics included
        variable.assign(rng.uniform(0.5, 2.0, variable.shape).astype(variable.dtype))  # variances > 0
    sent = get_weights(source)
    received = fl.ArrayRecord({name: fl.Array(a.dtype, a.shape, bytes(a.data)) for name, a in sent.items()})
    back = get_weights(set_weights(target, received))
    assert list(back) == list(sent) == weight_names(source)
    for name, array in sent.items():
        assert (back[name].dtype, back[name].shape, bytes(back[name].data)) == (array.dtype, array.shape, bytes(array.data))
    assert back["sequential/head/kernel"].dtype == "float64" and back["sequential/dense/bias"].dtype == "float32"
    x = rng.standard_normal((8, 6)).astype("float32")
    assert np.array_equal(source.predict(x, verbose=0), target.predict(x, verbose=0))


def test_a_record_of_another_architecture_is_refused_naming_what_differs() -> None:
    model = make_model()
    wrong_names = get_weights(keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)]))
    with pytest.raises(KerasWeightsError, match=r"missing \['sequential/batch_normalization/gamma'"):
        set_weights(model, wrong_names)
    record = get_weights(model)
    record["sequential/head/kernel"] = fl.Array.from_numpy(np.zeros((5, 4), dtype="float32"))
    with pytest.raises(KerasWeightsError, match=r"'sequential/head/kernel' is float32\[5, 4\] in the record but float64\[5, 4\]"):
        set_weights(model, record)


def test_an_unbuilt_model_is_refused_with_the_fix() -> None:
    with pytest.raises(KerasWeightsError, match=r"keras.Input\(shape=...\)"):
        get_weights(keras.Sequential([keras.layers.Dense(3)]))
