"""A ready-made ClientApp that trains and evaluates a JAX model with Optax."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import optax

from fedlab import ClientApp, Context, Message, MetricRecord, RecordDict
from fedlab_jax.pytree import pytree_to_record, record_to_pytree
from fedlab_jax.train import (
    ApplyFn,
    LossFn,
    evaluate_params,
    fit_params,
    jax_steps,
    softmax_cross_entropy,
)

__all__ = ["LoadPartition", "jax_client_app"]

#: ``(partition_id, num_partitions) -> (x, y)``: this client's rows.
LoadPartition = Callable[[int, int], tuple[npt.ArrayLike, npt.ArrayLike]]


def jax_client_app(
    apply_fn: ApplyFn,
    params: Any,
    load_partition: LoadPartition,
    *,
    optimizer: optax.GradientTransformation | None = None,
    loss_fn: LossFn = softmax_cross_entropy,
    epochs: int = 1,
    batch_size: int = 32,
    seed: int = 0,
    load_evaluation: LoadPartition | None = None,
    app: ClientApp | None = None,
) -> ClientApp:
    """A ClientApp whose train and evaluate handlers federate ``apply_fn(params, x)``.

    ``train`` loads the received global parameters into the structure of ``params`` (names
    are key paths, see :func:`~fedlab_jax.pytree_to_record`), runs ``epochs`` shuffled
    passes of Optax on this client's partition with fixed-size batches, and replies with
    the new parameters and ``loss``, ``accuracy`` and ``num-examples``. ``evaluate`` reports
    those metrics of the received parameters. Both steps are jit-compiled once per worker
    and reused by every later call there.

    Parameters
    ----------
    apply_fn
        ``apply_fn(params, x) -> logits``, e.g. a Linen ``model.apply`` or the function
        :func:`~fedlab_jax.nnx_apply` makes from a Flax NNX model.
    params
        A pytree with the parameters' structure (e.g. the initial parameters); its values
        are not used, only its names, shapes and dtypes.
    load_partition
        ``(partition_id, num_partitions) -> (x, y)``: this client's training rows.
    optimizer
        The Optax optimizer (default ``optax.adam(1e-2)``); its state starts fresh each round.
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
    app
        Add the handlers to this ClientApp instead of a new one.
    """
    client = app if app is not None else ClientApp()
    evaluation = load_evaluation if load_evaluation is not None else load_partition
    opt = optimizer if optimizer is not None else optax.adam(1e-2)

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
        steps = jax_steps(apply_fn, opt, loss_fn)
        start = record_to_pytree(msg.content.array_record("arrays"), like=params)
        shuffle = (seed, msg.metadata.round, pid)
        trained, _ = fit_params(steps, start, x, y, epochs=local_epochs, batch_size=batch_size, seed=shuffle)
        metrics: dict[str, float | int] = dict(evaluate_params(steps, trained, x, y, batch_size=batch_size))
        metrics["num-examples"] = len(np.asarray(y))
        return msg.reply(RecordDict({"arrays": pytree_to_record(trained), "metrics": MetricRecord(metrics)}))

    @client.evaluate()
    def evaluate(msg: Message, ctx: Context) -> Message:
        x, y = evaluation(*partition(ctx))
        steps = jax_steps(apply_fn, opt, loss_fn)
        received = record_to_pytree(msg.content.array_record("arrays"), like=params)
        metrics: dict[str, float | int] = dict(evaluate_params(steps, received, x, y, batch_size=batch_size))
        metrics["num-examples"] = len(np.asarray(y))
        return msg.reply(RecordDict({"metrics": MetricRecord(metrics)}))

    return client
