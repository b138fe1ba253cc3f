"""Clients training at the same time on threads get exactly the replies they get alone."""

from __future__ import annotations

import threading

import fedlab_keras  # noqa: F401  (first: quiet TensorFlow)
import keras
import numpy as np
from fedlab_keras import get_weights, keras_client_app
from sklearn.datasets import load_digits

import fedlab as fl
from fedlab.cache import clear_worker_cache

X, Y = load_digits(return_X_y=True)
X = (X / 16.0).astype("float32")
SHARES = np.array_split(np.random.default_rng(1).permutation(len(X))[:600], 3)


def make_model() -> keras.Model:
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    # Adam keeps per-variable slots and a step count: a leak between clients would show.
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


APP = keras_client_app(make_model, lambda pid, n: (X[SHARES[pid]], Y[SHARES[pid]]), epochs=2)
START = get_weights(make_model())


def train(pid: int) -> tuple[dict[str, bytes], dict[str, object]]:
    msg = fl.Message(fl.RecordDict({"arrays": START}), dst_node_id=pid + 1, message_type="train", group_id="1")
    reply = APP(msg, fl.Context(run_id=1, node_id=pid + 1, node_config={"partition-id": pid, "num-partitions": 3}))
    assert reply.error is None, reply.error
    arrays = {name: bytes(a.data) for name, a in reply.content.array_record("arrays").items()}
    return arrays, dict(reply.content["metrics"])


def test_concurrent_clients_on_threads_reply_exactly_as_each_does_alone() -> None:
    # Alone: one after another on this thread, whose worker reuses one model for all three.
    alone = [train(pid) for pid in range(3)]
    assert alone[0][0] != alone[1][0]  # different data, different weights: the check has teeth
    together: dict[int, tuple[dict[str, bytes], dict[str, object]]] = {}
    barrier = threading.Barrier(3)

    def client(pid: int) -> None:
        barrier.wait()  # build, trace and train at the same time
        together[pid] = train(pid)

    threads = [threading.Thread(target=client, args=(pid,)) for pid in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [together[pid] for pid in range(3)] == alone
    clear_worker_cache()  # this thread's model


def test_a_federation_on_the_threads_backend_ends_bit_for_bit_as_inline() -> None:
    def run(backend: str) -> dict[str, bytes]:
        fed = fl.Federation(APP, strategy=fl.strategy.FedAvg(fraction_train=1.0, fraction_evaluate=0.0),
                            num_clients=3, initial_arrays=START, seed=0, backend=backend, display="none")
        return {name: bytes(a.data) for name, a in fed.run(rounds=1).arrays.items()}

    assert run("threads") == run("inline")
