"""FedAvg without evaluation; reports the mods' order from the aggregated train metrics."""

import numpy as np
from flwr.app import ArrayRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    rounds = int(context.run_config["num-server-rounds"])
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0)
    result = strategy.start(
        grid=grid, initial_arrays=ArrayRecord([np.ones(3)]), num_rounds=rounds
    )
    order = result.train_metrics_clientapp[rounds]["order"]
    print(f"mods order: {order}")
    path = str(context.run_config["result-path"])
    if path:
        np.savez(path, *result.arrays.to_numpy_ndarrays(), order=np.float64(order))
