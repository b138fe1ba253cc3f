"""A ClientApp wrapped in two mods; each leaves a digit in the reply, so the order shows."""

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable


def outer_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    reply = call_next(msg, context)
    metrics = reply.content["metrics"]
    metrics["order"] = metrics["order"] * 10 + 1
    return reply


def inner_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    reply = call_next(msg, context)
    metrics = reply.content["metrics"]
    metrics["order"] = metrics["order"] * 10 + 2
    return reply


app = ClientApp(mods=[outer_mod, inner_mod])


@app.train()
def train(msg: Message, context: Context) -> Message:
    arrays = msg.content["arrays"].to_numpy_ndarrays()
    partition = int(context.node_config["partition-id"])
    moved = [a + 2.0 * partition for a in arrays]
    metrics = MetricRecord({"order": 0, "num-examples": 16})
    content = RecordDict({"arrays": ArrayRecord(numpy_ndarrays=moved), "metrics": metrics})
    return Message(content=content, reply_to=msg)
