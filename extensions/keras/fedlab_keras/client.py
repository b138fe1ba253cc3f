"""A ready-made ClientApp that trains and evaluates a compiled Keras model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from fedlab import ClientApp, Context, Message, MetricRecord, RecordDict, worker_cache
from fedlab_keras._local_model import LocalModel
from fedlab_keras.weights import get_weights, set_weights

__all__ = ["LoadPartition", "MakeModel", "keras_client_app"]

#: Builds a fresh, *compiled* Keras model (optimizer, loss, metrics); called once per worker.
MakeModel = Callable[[], keras.Model]
#: ``(partition_id, num_partitions) -> (x, y)`` numpy arrays, or a batched ``tf.data.Dataset``
#: of ``(x, y)``: this client's rows.
LoadPartition = Callable[[int, int], Any]


def keras_client_app(
    make_model: MakeModel,
    load_partition: LoadPartition,
    *,
    epochs: int = 1,
    batch_size: int = 32,
    seed: int = 0,
    load_evaluation: LoadPartition | None = None,
    app: ClientApp | None = None,
) -> ClientApp:
    """A ClientApp whose train and evaluate handlers federate ``make_model()``.

    Each worker (the inline worker, each thread of the threads backend, each process)
    builds its model once with :func:`fedlab.worker_cache`, so Keras traces its training
    step once per worker, not once per call. Every call then starts from the same state a
    fresh model would have: the received global weights (:func:`set_weights`) and the
    optimizer's initial slots (momenta, step count). Two clients on two threads never share
    a model, an optimizer or a random generator, so each gets exactly the reply it gets alone.

    ``train`` fits the model for ``epochs`` local passes and replies with its weights (same
    names, shapes and dtypes), the last epoch's training metrics and ``num-examples``.
    Numpy rows are shuffled by a generator seeded from ``(seed, partition id, round)``; a
    ``tf.data.Dataset`` is used as it comes (give its ``shuffle`` a seed for reproducible
    runs). ``evaluate`` reports the compiled loss and metrics of the received weights.

    Parameters
    ----------
    make_model
        Returns a compiled model with a known input shape, e.g. a ``keras.Sequential``
        starting with ``keras.Input(shape=...)`` and then ``model.compile(...)``.
    load_partition
        ``(partition_id, num_partitions) -> (x, y)`` or a batched ``tf.data.Dataset``,
        read from ``ctx.node_config``.
    epochs
        Local passes per round; a ``"local-epochs"`` entry in the round's config overrides it.
    batch_size
        Batch size for numpy rows; a ``"batch-size"`` entry in the round's config overrides it.
    seed
        Seeds the shuffling of numpy rows, together with the partition id and the round.
    load_evaluation
        Where ``evaluate`` reads its rows; defaults to ``load_partition``.
    app
        Add the handlers to this ClientApp (e.g. one that also has queries) instead of a new one.
    """
    client = app if app is not None else ClientApp()
    evaluation = load_evaluation if load_evaluation is not None else load_partition

    def local_model() -> LocalModel:
        return worker_cache(("fedlab_keras.model", make_model), lambda: LocalModel(make_model()))

    def partition(loader: LoadPartition, ctx: Context) -> tuple[int, Any]:
        pid = int(ctx.node_config["partition-id"])
        return pid, loader(pid, int(ctx.node_config["num-partitions"]))

    def setting(msg: Message, key: str, default: int) -> int:
        config = msg.content.config_records.get("config")
        if config is not None and key in config:
            return int(config[key])  # type: ignore[arg-type]
        return default

    @client.train()
    def train(msg: Message, ctx: Context) -> Message:
        pid, data = partition(load_partition, ctx)
        local = local_model()
        model = set_weights(local.fresh(), msg.content.array_record("arrays"))
        local_epochs, batch = setting(msg, "local-epochs", epochs), setting(msg, "batch-size", batch_size)
        if isinstance(data, tuple):
            data, count = _shuffled_batches(data, batch, [seed, pid, msg.metadata.round])
        else:
            count = _count_examples(data)
        history = model.fit(data, epochs=local_epochs, shuffle=False, verbose=0).history
        metrics: dict[str, float | int] = {name: float(values[-1]) for name, values in history.items()}
        metrics["num-examples"] = count
        return msg.reply(RecordDict({"arrays": get_weights(model), "metrics": MetricRecord(metrics)}))

    @client.evaluate()
    def evaluate(msg: Message, ctx: Context) -> Message:
        _, data = partition(evaluation, ctx)
        model = set_weights(local_model().fresh(), msg.content.array_record("arrays"))
        batch = setting(msg, "batch-size", batch_size)
        if isinstance(data, tuple):
            x, y = (np.asarray(part) for part in data)
            scores = model.evaluate(x, y, batch_size=batch, verbose=0, return_dict=True)
            count = len(x)
        else:
            scores = model.evaluate(data, verbose=0, return_dict=True)
            count = _count_examples(data)
        metrics: dict[str, float | int] = {name: float(value) for name, value in scores.items()}
        metrics["num-examples"] = count
        return msg.reply(RecordDict({"metrics": MetricRecord(metrics)}))

    return client


def _shuffled_batches(rows: tuple[Any, Any], batch_size: int, seed: list[int]) -> tuple[Any, int]:
    """``(x, y)`` as a dataset reshuffled every epoch in an order fixed by ``seed``.

    One ``fit`` call for all local epochs (each call has a fixed cost); the shuffle's own
    seed makes the order independent of any other client and of TensorFlow's global seed.
    """
    import tensorflow as tf

    x, y = (np.asarray(part) for part in rows)
    op_seed = int(np.random.default_rng(seed).integers(2**31 - 1))
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=op_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size), len(x)


def _count_examples(dataset: Any) -> int:
    """The number of rows in a batched ``tf.data.Dataset`` of ``(x, y)``, by one pass."""
    total = 0
    for batch in dataset.as_numpy_iterator():
        total += len(batch[0] if isinstance(batch, tuple) else batch)
    return total
