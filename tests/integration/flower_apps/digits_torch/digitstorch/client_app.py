"""Train and evaluate the MLP on this SuperNode's partition of the digits."""

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from digitstorch.task import load_data, new_model
from digitstorch.task import test as test_fn
from digitstorch.task import train as train_fn

app = ClientApp()


def _partition(context: Context) -> tuple[torch.Tensor, ...]:
    return load_data(
        int(context.node_config["partition-id"]), int(context.node_config["num-partitions"])
    )


@app.train()
def train(msg: Message, context: Context) -> Message:
    torch.set_num_threads(1)
    model = new_model()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    x, y, _, _ = _partition(context)
    loss = train_fn(
        model,
        x,
        y,
        epochs=int(context.run_config["local-epochs"]),
        lr=float(msg.content["config"]["lr"]),
        batch=int(context.run_config["batch-size"]),
    )
    metrics = MetricRecord({"train_loss": loss, "num-examples": len(y)})
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    torch.set_num_threads(1)
    model = new_model()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    _, _, x, y = _partition(context)
    loss, accuracy = test_fn(model, x, y)
    metrics = MetricRecord({"eval_loss": loss, "eval_acc": accuracy, "num-examples": len(y)})
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)
