"""A ready-made ClientApp that trains and evaluates a fastai Learner."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from fedlab import ClientApp, Context, Message, MetricRecord, RecordDict
from fedlab_fastai._fastai import DataLoaders, Learner, quietly, set_seed
from fedlab_fastai.errors import FastaiSetupError
from fedlab_fastai.state import get_state, set_state

__all__ = ["LoadPartition", "MakeLearner", "fastai_client_app"]

#: ``dls -> Learner``: builds a fresh Learner (model, loss, optimiser, metrics) on these loaders.
MakeLearner = Callable[[DataLoaders], Learner]
#: ``(partition_id, num_partitions) -> DataLoaders``: this client's training and validation rows.
LoadPartition = Callable[[int, int], DataLoaders]


def fastai_client_app(
    make_learner: MakeLearner,
    load_partition: LoadPartition,
    *,
    epochs: int = 1,
    lr: float = 1e-3,
    app: ClientApp | None = None,
) -> ClientApp:
    """A ClientApp whose train and evaluate handlers federate ``make_learner(dls)``.

    ``train`` builds a fresh Learner on this client's DataLoaders, loads the received global
    state into its model, runs ``learn.fit(epochs, lr)`` with fastai's progress bar and
    per-epoch table switched off, and replies with the model's state (same names, shapes
    and dtypes) and the last epoch's ``train_loss``, ``valid_loss`` and metrics.
    ``evaluate`` replies with ``learn.validate()`` on the received state (``valid_loss`` and
    each metric by its fastai name, e.g. ``accuracy``). Each reply carries ``num-examples``
    (training rows for train, validation rows for evaluate). Nothing is written to disk.

    fastai's random state is seeded from the partition id and the server round before the
    loaders and the Learner are built, so a seeded federation repeats exactly.

    Parameters
    ----------
    make_learner
        ``dls -> Learner``, e.g. ``lambda dls: Learner(dls, make_model(), metrics=accuracy)``.
    load_partition
        ``(partition_id, num_partitions) -> DataLoaders`` (see
        :func:`~fedlab_fastai.array_dataloaders`).
    epochs
        Local epochs per round; a ``"local-epochs"`` entry in the round's config overrides it.
    lr
        Learning rate passed to ``learn.fit``; a ``"lr"`` entry in the round's config overrides it.
    app
        Add the handlers to this ClientApp instead of a new one.

    Returns
    -------
    ClientApp
        The app with ``train`` and ``evaluate`` handlers.

    Raises
    ------
    FastaiSetupError
        If ``epochs`` is below 1 or ``lr`` is not positive.
    """
    if epochs < 1 or not lr > 0:
        raise FastaiSetupError(f"epochs={epochs} must be at least 1 and lr={lr} positive; pass e.g. epochs=1, lr=1e-3.")
    client = app if app is not None else ClientApp()

    def learner(msg: Message, ctx: Context) -> Learner:
        config = msg.content.config_records.get("config")
        server_round = int(config["server-round"]) if config is not None and "server-round" in config else 0  # type: ignore[arg-type]
        partition_id = int(ctx.node_config["partition-id"])
        set_seed(1_000_003 * partition_id + server_round)
        dls = load_partition(partition_id, int(ctx.node_config["num-partitions"]))
        if not isinstance(dls, DataLoaders):
            raise FastaiSetupError(
                f"load_partition returned {type(dls).__name__}; return fastai DataLoaders, "
                "e.g. fedlab_fastai.array_dataloaders(x_train, y_train, x_valid, y_valid)."
            )
        learn = make_learner(dls)
        if not isinstance(learn, Learner):
            raise FastaiSetupError(f"make_learner returned {type(learn).__name__}; return a fastai Learner.")
        set_state(learn, msg.content.array_record("arrays"))
        return learn

    @client.train()
    def train(msg: Message, ctx: Context) -> Message:
        config = msg.content.config_records.get("config")
        local_epochs, rate = epochs, lr
        if config is not None and "local-epochs" in config:
            local_epochs = int(config["local-epochs"])  # type: ignore[arg-type]
        if config is not None and "lr" in config:
            rate = float(config["lr"])  # type: ignore[arg-type]
        learn = learner(msg, ctx)
        with quietly(learn):
            learn.fit(local_epochs, rate)
        names = [name for name in learn.recorder.metric_names[1:-1]]  # without "epoch" and "time"
        metrics: dict[str, float | int] = {n: _number(v) for n, v in zip(names, learn.recorder.log[1:-1])}
        metrics["num-examples"] = len(learn.dls.train_ds)
        return msg.reply(RecordDict({"arrays": get_state(learn), "metrics": MetricRecord(metrics)}))

    @client.evaluate()
    def evaluate(msg: Message, ctx: Context) -> Message:
        learn = learner(msg, ctx)
        with quietly(learn):
            values = learn.validate()
        names = ["valid_loss", *(metric.name for metric in learn.metrics)]
        metrics: dict[str, float | int] = {n: _number(v) for n, v in zip(names, values)}
        metrics["num-examples"] = len(learn.dls.valid_ds)
        return msg.reply(RecordDict({"metrics": MetricRecord(metrics)}))

    return client


def _number(value: Any) -> float:
    """A logged fastai value (a float or a 0-d tensor) as a Python float."""
    return float(value.item()) if isinstance(value, torch.Tensor) else float(value)
