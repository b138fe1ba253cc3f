"""A ready-made ClientApp that trains and evaluates an MLX model with an MLX optimizer."""

from __future__ import annotations

from collections.abc import Callable

import mlx.optimizers as optim
import numpy as np
import numpy.typing as npt
from mlx.nn.layers.base import Module

from fedlab import ClientApp, Context, Message, MetricRecord, RecordDict
from fedlab_mlx.parameters import load_parameters, parameters_to_record
from fedlab_mlx.train import LossFn, cross_entropy, evaluate_model, fit_model, mlx_trainer

__all__ = ["LoadPartition", "mlx_client_app"]

#: ``(partition_id, num_partitions) -> (x, y)``: this client's rows as numpy arrays.
LoadPartition = Callable[[int, int], tuple[npt.ArrayLike, npt.ArrayLike]]


def mlx_client_app(
    model_fn: Callable[[], Module],
    load_partition: LoadPartition,
    *,
    optimizer: optim.Optimizer | None = None,
    loss_fn: LossFn = cross_entropy,
    epochs: int = 1,
    batch_size: int = 32,
    seed: int = 0,
    load_evaluation: LoadPartition | None = None,
    compile: bool = True,
    app: ClientApp | None = None,
) -> ClientApp:
    """A ClientApp whose train and evaluate handlers federate the module ``model_fn()`` builds.

    ``train`` loads the received parameters into the worker's model (names are dotted key
    paths, see :func:`~fedlab_mlx.parameters_to_record`; a record that does not fit is
    refused), runs ``epochs`` shuffled passes on this client's partition with fixed-size
    batches and a fresh optimizer state, and replies with the new parameters and ``loss``,
    ``accuracy`` and ``num-examples``. ``evaluate`` reports those metrics of the received
    parameters. Model, optimizer and compiled steps are built once per worker
    (:func:`~fedlab_mlx.mlx_trainer`) and reused by every later call there.

    Parameters
    ----------
    model_fn
        Builds the model, e.g. a class; called once per worker. Its initial values are
        replaced by the received ones at every call.
    load_partition
        ``(partition_id, num_partitions) -> (x, y)``: this client's training rows.
    optimizer
        An ``mlx.optimizers`` optimizer (default ``Adam(learning_rate=1e-2)``); each worker
        trains with its own copy, restarted from its initial state at every call.
    loss_fn
        ``loss_fn(logits, labels) -> per-example losses`` (default: softmax cross-entropy
        with integer labels; accuracy is the share of ``argmax(logits) == labels``).
    epochs
        Local passes per round; a ``"local-epochs"`` entry in the round's config overrides it.
    batch_size
        Rows per step; the last batch is padded and its padding weighted zero.
    seed
        With the round and the partition id, fixes each call's shuffle.
    load_evaluation
        Where ``evaluate`` reads its rows; defaults to ``load_partition``.
    compile
        ``mx.compile`` the train and evaluate steps (default) or run them eagerly.
    app
        Add the handlers to this ClientApp instead of a new one.
    """
    client = app if app is not None else ClientApp()
    evaluation = load_evaluation if load_evaluation is not None else load_partition
    opt = optimizer if optimizer is not None else optim.Adam(learning_rate=1e-2)

    def partition(ctx: Context) -> tuple[int, int]:
        return int(ctx.node_config["partition-id"]), int(ctx.node_config["num-partitions"])

    @client.train()
    def train(msg: Message, ctx: Context) -> Message:
        pid, parts = partition(ctx)
        x, y = load_partition(pid, parts)
        config = msg.content.config_records.get("config")
        local_epochs = epochs
        if config is not None and "local-epochs" in config:
            local_epochs = int(config["local-epochs"])  # type: ignore[arg-type]
        trainer = mlx_trainer(model_fn, opt, loss_fn, compile=compile)
        load_parameters(trainer.model, msg.content.array_record("arrays"))
        fit_model(trainer, x, y, epochs=local_epochs, batch_size=batch_size, seed=(seed, msg.metadata.round, pid))
        metrics: dict[str, float | int] = dict(evaluate_model(trainer, x, y, batch_size=batch_size))
        metrics["num-examples"] = len(np.asarray(y))
        arrays = parameters_to_record(trainer.model)
        return msg.reply(RecordDict({"arrays": arrays, "metrics": MetricRecord(metrics)}))

    @client.evaluate()
    def evaluate(msg: Message, ctx: Context) -> Message:
        x, y = evaluation(*partition(ctx))
        trainer = mlx_trainer(model_fn, opt, loss_fn, compile=compile)
        load_parameters(trainer.model, msg.content.array_record("arrays"))
        metrics: dict[str, float | int] = dict(evaluate_model(trainer, x, y, batch_size=batch_size))
        metrics["num-examples"] = len(np.asarray(y))
        return msg.reply(RecordDict({"metrics": MetricRecord(metrics)}))

    return client
