"""A script that builds its apps inline and calls flwr.simulation.run_simulation.

Run it with ``python simulate_numpy.py`` under Flower, or ``fedlab run simulate_numpy.py``.
The final arrays go to the path in the environment variable RESULT_PATH, if set.
"""

import os

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from flwr.simulation import run_simulation

client = ClientApp()


@client.train()
def train(msg: Message, context: Context) -> Message:
    arrays = msg.content["arrays"].to_numpy_ndarrays()
    partition = int(context.node_config["partition-id"])
    moved = [a * 0.5 + partition for a in arrays]
    metrics = MetricRecord({"partition": float(partition), "num-examples": 4})
    content = RecordDict({"arrays": ArrayRecord(moved), "metrics": metrics})
    return Message(content=content, reply_to=msg)


server = ServerApp()


@server.main()
def main(grid: Grid, context: Context) -> None:
    # Every round waits for all four nodes, so the result does not depend on how fast
    # the nodes come up (Flower samples from whichever are connected, two by default).
    strategy = FedAvg(
        fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=4, min_available_nodes=4
    )
    result = strategy.start(
        grid=grid, initial_arrays=ArrayRecord([np.full(5, 8.0)]), num_rounds=3
    )
    final = result.arrays.to_numpy_ndarrays()
    print(f"final array: {final[0].tolist()}")
    path = os.environ.get("RESULT_PATH")
    if path:
        np.savez(path, *final)


if __name__ == "__main__":
    run_simulation(
        server_app=server,
        client_app=client,
        num_supernodes=4,
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
    )
