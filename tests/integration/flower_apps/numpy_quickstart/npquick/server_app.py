"""FedAvg over every node, starting from zeros; optionally saves the final arrays."""

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    rounds = int(context.run_config["num-server-rounds"])
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=1.0)
    initial = ArrayRecord([np.zeros((2, 3)), np.zeros(4)])
    result = strategy.start(
        grid=grid,
        initial_arrays=initial,
        train_config=ConfigRecord({"lr": 0.1}),
        num_rounds=rounds,
    )
    final = result.arrays.to_numpy_ndarrays()
    print(f"final sums: {[float(a.sum()) for a in final]}")
    path = str(context.run_config["result-path"])
    if path:
        evaluate = result.evaluate_metrics_clientapp[rounds]
        train = result.train_metrics_clientapp[rounds]
        np.savez(
            path,
            *final,
            train_shift=np.float64(train["shift"]),
            eval_total=np.float64(evaluate["total"]),
        )
