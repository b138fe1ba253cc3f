"""FedAvg of the MLP, with a server-side evaluation on all digits after each round."""

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from digitstorch.task import load_data, new_model, test

app = ServerApp()


def central_evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
    model = new_model()
    model.load_state_dict(arrays.to_torch_state_dict())
    _, _, x, y = load_data(0, 1)
    loss, accuracy = test(model, x, y)
    return MetricRecord({"central_loss": loss, "central_acc": accuracy})


@app.main()
def main(grid: Grid, context: Context) -> None:
    rounds = int(context.run_config["num-server-rounds"])
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=1.0)
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(new_model().state_dict()),
        train_config=ConfigRecord({"lr": float(context.run_config["learning-rate"])}),
        num_rounds=rounds,
        evaluate_fn=central_evaluate,
    )
    state = result.arrays.to_torch_state_dict()
    accuracy = result.evaluate_metrics_serverapp[rounds]["central_acc"]
    print(f"central accuracy after {rounds} rounds: {accuracy:.3f}")
    path = str(context.run_config["result-path"])
    if path:
        metrics = result.evaluate_metrics_clientapp[rounds]
        np.savez(
            path,
            *[tensor.numpy() for tensor in state.values()],
            eval_acc=np.float64(metrics["eval_acc"]),
            central_acc=np.float64(accuracy),
        )
