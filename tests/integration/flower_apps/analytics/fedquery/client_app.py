"""Answer a QUERY with the histogram of this partition's mean pixel intensity."""

import numpy as np
from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from sklearn.datasets import load_digits

app = ClientApp()


@app.query()
def query(msg: Message, context: Context) -> Message:
    images, labels = load_digits(return_X_y=True)
    partition = int(context.node_config["partition-id"])
    share = np.array_split(np.arange(len(labels)), int(context.node_config["num-partitions"]))
    brightness = images[share[partition]].mean(axis=1)
    bins = int(msg.content["config"]["num-bins"])
    counts, _ = np.histogram(brightness, bins=bins, range=(0.0, 16.0))
    metrics = MetricRecord({"counts": [int(c) for c in counts], "rows": len(brightness)})
    return Message(content=RecordDict({"histogram": metrics}), reply_to=msg)
