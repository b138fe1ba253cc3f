"""A ready-made ClientApp that fine-tunes a PEFT model's adapter on each client's rows."""

from __future__ import annotations

from collections.abc import Callable

import torch
from peft import PeftModel

from fedlab import ClientApp, Context, Message, MetricRecord, RecordDict
from fedlab_transformers.adapters import adapter_arrays, set_adapter_arrays

__all__ = ["Batch", "LoadPartition", "MakeModel", "evaluate_model", "lora_client_app", "train_model"]

#: The model inputs (``input_ids``, ``attention_mask`` or ``pixel_values``) keyed by name.
Batch = dict[str, torch.Tensor]
#: Builds the same PEFT model on every call (same base weights and LoraConfig).
MakeModel = Callable[[], PeftModel]
#: ``(partition_id, num_partitions) -> (inputs, labels)``: this client's rows.
LoadPartition = Callable[[int, int], tuple[Batch, torch.Tensor]]


def train_model(
    model: PeftModel, inputs: Batch, labels: torch.Tensor, *, epochs: int = 1,
    batch_size: int = 32, lr: float = 1e-2, seed: int = 0,
) -> float:
    """Train the adapter's parameters with Adam and cross-entropy; returns the last loss."""
    generator = torch.Generator().manual_seed(seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=lr)
    model.train()
    loss = torch.tensor(0.0)
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=generator)
        for start in range(0, len(labels), batch_size):
            rows = order[start:start + batch_size]
            logits = model(**{k: v[rows] for k, v in inputs.items()}).logits
            loss = torch.nn.functional.cross_entropy(logits, labels[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return float(loss.detach())


def evaluate_model(model: PeftModel, inputs: Batch, labels: torch.Tensor) -> dict[str, float]:
    """``{"loss": ..., "accuracy": ...}`` of ``model`` on the rows given."""
    model.eval()
    with torch.no_grad():
        logits = model(**inputs).logits
        loss = float(torch.nn.functional.cross_entropy(logits, labels))
        accuracy = float((logits.argmax(-1) == labels).double().mean())
    return {"loss": loss, "accuracy": accuracy}


def lora_client_app(
    make_model: MakeModel,
    load_partition: LoadPartition,
    *,
    epochs: int = 1,
    batch_size: int = 32,
    lr: float = 1e-2,
    app: ClientApp | None = None,
) -> ClientApp:
    """A ClientApp that federates only the adapter of ``make_model()``.

    ``train`` loads the received adapter record into a fresh model, trains it on this
    client's partition and replies with the new adapter (same names, shapes and dtypes),
    ``num-examples`` and its metrics; the frozen base weights never travel. ``evaluate``
    reports loss and accuracy of the received adapter. A ``"local-epochs"`` or ``"lr"``
    entry in the round's config overrides ``epochs`` / ``lr``.
    """
    client = app if app is not None else ClientApp()

    def rows(ctx: Context) -> tuple[Batch, torch.Tensor]:
        return load_partition(int(ctx.node_config["partition-id"]), int(ctx.node_config["num-partitions"]))

    @client.train()
    def train(msg: Message, ctx: Context) -> Message:
        inputs, labels = rows(ctx)
        config = msg.content.config_records.get("config")
        local_epochs, local_lr = epochs, lr
        if config is not None:
            local_epochs = int(config.get("local-epochs", epochs))  # type: ignore[arg-type]
            local_lr = float(config.get("lr", lr))  # type: ignore[arg-type]
        model = set_adapter_arrays(make_model(), msg.content.array_record("arrays"))
        seed = int(ctx.node_config["partition-id"])
        loss = train_model(model, inputs, labels, epochs=local_epochs, batch_size=batch_size, lr=local_lr, seed=seed)
        metrics = MetricRecord({"train-loss": loss, "num-examples": len(labels)})
        return msg.reply(RecordDict({"arrays": adapter_arrays(model), "metrics": metrics}))

    @client.evaluate()
    def evaluate(msg: Message, ctx: Context) -> Message:
        inputs, labels = rows(ctx)
        model = set_adapter_arrays(make_model(), msg.content.array_record("arrays"))
        metrics = {**evaluate_model(model, inputs, labels), "num-examples": len(labels)}
        return msg.reply(RecordDict({"metrics": MetricRecord(metrics)}))

    return client
