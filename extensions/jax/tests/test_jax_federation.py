"""Five clients federate a Flax MLP on digits to >= 0.90, compiling each step once per worker."""

from __future__ import annotations

import jax_digits_app as digits
from fedlab_jax import evaluate_params, jax_steps, pytree_to_record, record_to_pytree

import fedlab as fl


def federate(rounds: int, **options: object) -> fl.Result:
    fed = fl.Federation(
        digits.app, strategy=fl.strategy.FedAvg(fraction_train=1.0, fraction_evaluate=1.0),
        num_clients=digits.NUM_CLIENTS, initial_arrays=pytree_to_record(digits.initial_state),
        seed=0, display="none", **options,  # type: ignore[arg-type]
    )
    result = fed.run(rounds=rounds)
    assert result.history is not None and not result.history.failures()
    return result


def test_five_clients_reach_090_on_held_out_digits_tracing_each_step_once_for_30_client_calls() -> None:
    digits.TRACES["loss"] = 0
    result = federate(rounds=3)  # 5 clients x 3 rounds x (train + evaluate) = 30 client calls
    # One worker (inline): the train step and the evaluate step were traced once each.
    assert digits.TRACES["loss"] == 2
    final = record_to_pytree(result.arrays, like=digits.initial_state)
    steps = jax_steps(digits.apply, digits.optimizer, digits.counting_loss)
    assert evaluate_params(steps, final, digits.x_test, digits.y_test)["accuracy"] >= 0.90
    assert list(result.arrays) == list(pytree_to_record(digits.initial_state))  # names kept


def test_on_the_threads_backend_each_worker_compiles_once_not_each_client_call() -> None:
    digits.TRACES["loss"] = 0
    federate(rounds=1, backend="threads", max_workers=2)  # 10 client calls on 2 threads
    assert 1 <= digits.TRACES["loss"] <= 2 * 2  # at most train + evaluate per thread
