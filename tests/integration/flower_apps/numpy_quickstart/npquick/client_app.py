"""Each client moves every array by ``step * (partition-id + 1)`` and reports how far."""

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    arrays = msg.content["arrays"].to_numpy_ndarrays()
    shift = float(context.run_config["step"]) * (int(context.node_config["partition-id"]) + 1)
    moved = [a + shift for a in arrays]
    metrics = MetricRecord({"shift": shift, "num-examples": 8})
    content = RecordDict({"arrays": ArrayRecord(moved), "metrics": metrics})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    arrays = msg.content["arrays"].to_numpy_ndarrays()
    total = float(sum(np.sum(a) for a in arrays))
    partition = int(context.node_config["partition-id"])
    metrics = MetricRecord({"total": total, "partition": float(partition), "num-examples": 4})
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)
