"""Federated analytics: one QUERY round to every node, histograms summed on the server."""

import time

import numpy as np
from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.common.logger import log
from flwr.serverapp import Grid, ServerApp

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    bins = int(context.run_config["num-bins"])
    # The nodes may still be connecting (Flower's simulation starts with none): wait for all.
    expected = int(context.run_config["min-nodes"])
    deadline = time.monotonic() + 60.0
    nodes = list(grid.get_node_ids())
    while len(nodes) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
        nodes = list(grid.get_node_ids())
    content = RecordDict({"config": ConfigRecord({"num-bins": bins})})
    messages = [
        Message(content=content, message_type=MessageType.QUERY, dst_node_id=node, group_id="1")
        for node in nodes
    ]
    replies = grid.send_and_receive(messages)
    total = np.zeros(bins, dtype=np.int64)
    rows = 0
    for reply in replies:
        if reply.has_content():
            total += np.asarray(reply.content["histogram"]["counts"], dtype=np.int64)
            rows += int(reply.content["histogram"]["rows"])
        else:
            log(30, "node %s replied with an error: %s", reply.metadata.src_node_id, reply.error)
    print(f"histogram over {rows} rows from {len(nodes)} nodes: {total.tolist()}")
    path = str(context.run_config["result-path"])
    if path:
        np.savez(path, counts=total, rows=np.int64(rows))
