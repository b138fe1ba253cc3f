"""A ready-made ClientApp that trains and evaluates a LightningModule with a Trainer per call."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from lightning.pytorch import LightningModule, seed_everything
from torch.utils.data import DataLoader, Dataset

from fedlab import ClientApp, Context, Message, MetricRecord, RecordDict
from fedlab_lightning.errors import LightningSetupError
from fedlab_lightning.state import get_state, set_state
from fedlab_lightning.trainer import quiet, quiet_trainer

__all__ = ["LoadPartition", "MakeModule", "lightning_client_app"]

#: Builds a fresh LightningModule with your settings; called once per message.
MakeModule = Callable[[], LightningModule]
#: ``(partition_id, num_partitions) -> DataLoader or Dataset``: this client's examples.
LoadPartition = Callable[[int, int], "DataLoader[Any] | Dataset[Any]"]


def lightning_client_app(
    make_module: MakeModule,
    load_partition: LoadPartition,
    *,
    epochs: int = 1,
    batch_size: int = 32,
    load_evaluation: LoadPartition | None = None,
    trainer_kwargs: Mapping[str, Any] | None = None,
    app: ClientApp | None = None,
) -> ClientApp:
    """A ClientApp whose train and evaluate handlers federate ``make_module()``.

    ``train`` builds a fresh module, loads the received global state into it
    (:func:`~fedlab_lightning.set_state`), fits it with a new quiet Trainer
    (:func:`~fedlab_lightning.quiet_trainer`) and replies with its state (same names, shapes
    and dtypes) and the float metrics the module logged with ``self.log``. ``evaluate`` runs
    ``trainer.validate`` (your ``validation_step``) on the received state and replies with
    what it logged. Each reply carries ``num-examples``, so FedAvg weights clients by their data.

    Randomness (shuffling, dropout) is seeded from the partition id and the server round, so
    a seeded federation repeats exactly.

    Parameters
    ----------
    make_module
        Returns a fresh module, e.g. ``lambda: Classifier(hidden=32)``.
    load_partition
        ``(partition_id, num_partitions) -> DataLoader or Dataset`` of this client's training
        examples; a Dataset is wrapped in a shuffling DataLoader of ``batch_size``.
    epochs
        Local epochs per round; a ``"local-epochs"`` entry in the round's config overrides it.
    batch_size
        Batch size used when ``load_partition`` returns a Dataset.
    load_evaluation
        Where ``evaluate`` reads its examples; defaults to ``load_partition``.
    trainer_kwargs
        Extra ``Trainer`` arguments (e.g. ``{"gradient_clip_val": 1.0}``).
    app
        Add the handlers to this ClientApp instead of a new one.

    Returns
    -------
    ClientApp
        The app with ``train`` and ``evaluate`` handlers.

    Raises
    ------
    LightningSetupError
        If ``epochs`` or ``batch_size`` is below 1.
    """
    if epochs < 1 or batch_size < 1:
        raise LightningSetupError(
            f"epochs={epochs} and batch_size={batch_size} must both be at least 1; pass e.g. epochs=1, batch_size=32."
        )
    client = app if app is not None else ClientApp()
    evaluation = load_evaluation if load_evaluation is not None else load_partition
    extra = dict(trainer_kwargs or {})

    def loader(load: LoadPartition, ctx: Context, shuffle: bool, seed: int) -> DataLoader[Any]:
        data = load(int(ctx.node_config["partition-id"]), int(ctx.node_config["num-partitions"]))
        if isinstance(data, DataLoader):
            return data
        if isinstance(data, Dataset):
            generator = torch.Generator().manual_seed(seed)
            return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=generator)
        raise LightningSetupError(
            f"load_partition returned {type(data).__name__}; return a torch DataLoader or Dataset, "
            "e.g. TensorDataset(torch.tensor(x), torch.tensor(y))."
        )

    def round_seed(msg: Message, ctx: Context) -> int:
        config = msg.content.config_records.get("config")
        server_round = int(config["server-round"]) if config is not None and "server-round" in config else 0  # type: ignore[arg-type]
        return 1_000_003 * int(ctx.node_config["partition-id"]) + server_round

    @client.train()
    def train(msg: Message, ctx: Context) -> Message:
        seed = round_seed(msg, ctx)
        config = msg.content.config_records.get("config")
        local_epochs = epochs
        if config is not None and "local-epochs" in config:
            local_epochs = int(config["local-epochs"])  # type: ignore[arg-type]
        with quiet():
            seed_everything(seed, verbose=False)
            module = set_state(make_module(), msg.content.array_record("arrays"))
            data = loader(load_partition, ctx, True, seed)
            trainer = quiet_trainer(local_epochs, **extra)
            trainer.fit(module, train_dataloaders=data)
        metrics = _floats(trainer.callback_metrics)
        metrics["num-examples"] = _count(data)
        return msg.reply(RecordDict({"arrays": get_state(module), "metrics": MetricRecord(metrics)}))

    @client.evaluate()
    def evaluate(msg: Message, ctx: Context) -> Message:
        with quiet():
            module = set_state(make_module(), msg.content.array_record("arrays"))
            data = loader(evaluation, ctx, False, round_seed(msg, ctx))
            results = quiet_trainer(1, **extra).validate(module, dataloaders=data, verbose=False)
        metrics = _floats(results[0] if results else {})
        metrics["num-examples"] = _count(data)
        return msg.reply(RecordDict({"metrics": MetricRecord(metrics)}))

    return client


def _floats(logged: Mapping[str, Any]) -> dict[str, float | int]:
    """The scalar values of Lightning's logged metrics as Python floats."""
    out: dict[str, float | int] = {}
    for name, value in logged.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            out[name] = float(value.item())
        elif isinstance(value, (int, float)):
            out[name] = float(value)
    return out


def _count(data: DataLoader[Any]) -> int:
    """How many examples a DataLoader yields per epoch."""
    try:
        return len(data.dataset)  # type: ignore[arg-type]
    except TypeError:
        return len(data) * (data.batch_size or 1)
