"""Five clients federate an MLX MLP on digits to >= 0.90, tracing each compiled step once per worker."""

from __future__ import annotations

import mlx.core as mx
import mlx_digits_app as digits
import numpy as np
import pytest
from fedlab_mlx import (
    cross_entropy,
    evaluate_model,
    fit_model,
    load_parameters,
    mlx_client_app,
    mlx_trainer,
    parameters_to_record,
)

import fedlab as fl
from fedlab.errors import ConfigurationError

#: How often MLX traced the loss, i.e. compiled a step that uses it.
TRACES = {"loss": 0}


def counting_loss(logits: mx.array, labels: mx.array) -> mx.array:
    """Softmax cross-entropy; Python runs this only while MLX traces a compiled step."""
    TRACES["loss"] += 1
    return cross_entropy(logits, labels)


app = mlx_client_app(digits.make_model, digits.load_partition, optimizer=digits.optimizer, loss_fn=counting_loss, epochs=2)


def federate(client: fl.ClientApp, **options: object) -> fl.ArrayRecord:
    fed = fl.Federation(
        client, strategy=fl.strategy.FedAvg(fraction_train=1.0, fraction_evaluate=1.0),
        num_clients=digits.NUM_CLIENTS, initial_arrays=parameters_to_record(digits.make_model()),
        seed=0, display="none", **options,  # type: ignore[arg-type]
    )
    result = fed.run(rounds=3)
    assert result.history is not None and not result.history.failures()
    return result.arrays


def test_five_clients_reach_090_on_held_out_digits_tracing_each_step_once_for_30_client_calls() -> None:
    TRACES["loss"] = 0
    final = federate(app)  # 5 clients x 3 rounds x (train + evaluate) = 30 client calls
    assert TRACES["loss"] == 2  # one worker (inline): the train and the evaluate step, once each
    assert list(final) == list(parameters_to_record(digits.make_model()))  # names kept, in order
    trainer = mlx_trainer(digits.make_model, digits.optimizer)
    load_parameters(trainer.model, final)
    assert evaluate_model(trainer, digits.x_test, digits.y_test)["accuracy"] >= 0.90


def test_the_threads_backend_gives_the_inline_model_bit_for_bit_compiling_once_per_thread() -> None:
    inline = federate(digits.app)
    TRACES["loss"] = 0
    threaded = federate(app, backend="threads", max_workers=2)
    assert 1 <= TRACES["loss"] <= 2 * 2  # at most train + evaluate per thread
    assert all(bytes(threaded[name].data) == bytes(inline[name].data) for name in inline)


def test_each_call_restarts_the_optimizer_so_training_twice_from_one_start_gives_the_same_bits() -> None:
    trainer = mlx_trainer(digits.make_model, digits.optimizer)
    start = parameters_to_record(digits.make_model())
    x, y = digits.load_partition(0, digits.NUM_CLIENTS)
    runs = []
    for _ in range(2):
        load_parameters(trainer.model, start)
        fit_model(trainer, x, y, epochs=1, seed=3)
        runs.append(parameters_to_record(trainer.model))
    assert all(bytes(runs[0][n].data) == bytes(runs[1][n].data) for n in start)
    assert not np.array_equal(runs[0]["out.weight"].numpy(), start["out.weight"].numpy())


def test_bad_epochs_or_empty_partitions_are_refused() -> None:
    trainer = mlx_trainer(digits.make_model, digits.optimizer)
    with pytest.raises(ConfigurationError, match="epochs=0"):
        fit_model(trainer, digits.x_test, digits.y_test, epochs=0)
    with pytest.raises(ConfigurationError, match="at least one row"):
        evaluate_model(trainer, digits.x_test[:0], digits.y_test[:0])
