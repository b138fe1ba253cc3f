"""The demo: a torch MLP trained on scikit-learn's digits by 20 federated clients.

Run it with ``make demo``, ``fedlab demo`` or ``python -m fedlab.demo``. It needs the
``torch``, ``datasets`` and ``examples`` extras
(``pip install "fedlab-sdk[torch,datasets,examples]"``). The data comes from
:mod:`fedlab.datasets`: digits, divided 80/20 into train and test, with the training
split partitioned IID among the clients.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from fedlab.client import ClientApp
from fedlab.context import Context
from fedlab.datasets import FederatedDataset, IidPartitioner, divide_split, load_partition
from fedlab.errors import MissingDependencyError
from fedlab.federation import Federation
from fedlab.message import Message
from fedlab.records import ArrayRecord, MetricRecord, RecordDict
from fedlab.server import Result
from fedlab.strategy import FedAvg

__all__ = ["DigitsData", "build_federation", "federated_digits", "load_digits_data", "main", "make_model"]

#: The accuracy the demo promises on the held-out split.
TARGET_ACCURACY = 0.90

DigitsData = tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.int64]]


@functools.lru_cache(maxsize=8)
def federated_digits(num_partitions: int = 20, seed: int = 0) -> FederatedDataset:
    """The demo's data: digits, 80/20 stratified train/test, train split IID among partitions."""
    return FederatedDataset.from_sklearn(
        "digits",
        partitioners={"train": IidPartitioner(num_partitions, seed=seed)},
        preprocessor=divide_split("train", {"train": 0.8, "test": 0.2}, seed=seed, stratify_by="label"),
        seed=seed,
    )


@functools.lru_cache(maxsize=4)
def load_digits_data(seed: int = 0) -> DigitsData:
    """Return digits scaled to [0, 1] as (x_train, y_train, x_test, y_test), 80/20 stratified."""
    fds = federated_digits(seed=seed)
    return (*_arrays(fds.load_split("train")), *_arrays(fds.load_split("test")))


def partition(num_partitions: int, partition_id: int, seed: int = 0) -> npt.NDArray[np.int64]:
    """Return the training-row indices of one IID partition."""
    partitioner = federated_digits(num_partitions, seed).partitioner("train")
    assert isinstance(partitioner, IidPartitioner)  # built so by federated_digits
    return partitioner.partition_indices(partition_id)


def make_model() -> Any:
    """The demo's model: an MLP 64-64-10."""
    torch = _torch()
    return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))


def accuracy(arrays: ArrayRecord, x: npt.NDArray[np.float32], y: npt.NDArray[np.int64]) -> float:
    """Accuracy of the model holding ``arrays`` on ``(x, y)``."""
    torch = _torch()
    model = make_model()
    model.load_state_dict(arrays.to_torch_state_dict())
    with torch.no_grad():
        predictions = model(torch.from_numpy(x)).argmax(dim=1).numpy()
    return float((predictions == y).mean())


client = ClientApp()


@client.train()
def train(msg: Message, ctx: Context) -> Message:
    """Train the received model on this client's partition for a few local epochs."""
    torch = _torch()
    config = msg.content.config_record("config")
    seed = int(ctx.run_config.get("seed", 0))
    x, y = (torch.from_numpy(a) for a in _arrays(load_partition(ctx, "train")))
    model = make_model()
    model.load_state_dict(msg.content.array_record("arrays").to_torch_state_dict())
    optimizer = torch.optim.SGD(model.parameters(), lr=_number(config["lr"]), momentum=0.9)
    generator = torch.Generator().manual_seed(seed * 1000 + int(ctx.node_config["partition-id"]))
    batch = int(_number(config["batch-size"]))
    total_loss, steps = 0.0, 0
    for _ in range(int(_number(config["local-epochs"]))):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch):
            idx = order[start : start + batch]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total_loss, steps = total_loss + loss.item(), steps + 1
    return msg.reply(
        RecordDict(
            {
                "arrays": ArrayRecord(model.state_dict()),
                "metrics": MetricRecord({"num-examples": len(x), "train_loss": total_loss / max(steps, 1)}),
            }
        )
    )


def build_federation(
    num_clients: int = 20, seed: int = 0, backend: str = "inline", display: Any = "auto"
) -> Federation:
    """The demo federation: FedAvg over ``num_clients`` IID clients, evaluated centrally."""
    torch = _torch()
    torch.manual_seed(seed)
    fds = federated_digits(num_clients, seed)
    x_test, y_test = _arrays(fds.load_split("test"))

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        return MetricRecord({"accuracy": accuracy(arrays, x_test, y_test)})

    return Federation(
        client,
        strategy=FedAvg(fraction_train=1.0, fraction_evaluate=0.0),
        dataset=fds,
        num_clients=num_clients,
        initial_arrays=ArrayRecord(make_model().state_dict()),
        config={"lr": 0.1, "local-epochs": 2, "batch-size": 16, "seed": seed},
        evaluate_fn=evaluate,
        seed=seed,
        backend=backend,
        display=display,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo and print the final held-out accuracy."""
    parser = argparse.ArgumentParser(prog="fedlab demo", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="federated rounds (default 10)")
    parser.add_argument("--clients", type=int, default=20, help="simulated clients (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed for data, model and sampling")
    parser.add_argument("--backend", choices=["inline", "threads", "processes", "ray"], default="inline",
                        help="where the clients run (default inline)")
    args = parser.parse_args(argv)
    # A 64-64-10 MLP is far too small for intra-op threads to pay off; they only contend.
    _torch().set_num_threads(1)
    fed = build_federation(args.clients, args.seed, args.backend)
    result: Result = fed.run(rounds=args.rounds)
    final = result.evaluate_metrics_serverapp[result.rounds_completed]["accuracy"]
    print(f"final held-out accuracy: {final:.4f} (target {TARGET_ACCURACY:.2f})")
    return 0


@functools.lru_cache(maxsize=256)
def _arrays(dataset: Any) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    # Cached per Dataset object (FederatedDataset hands out the same one every round), so a
    # client converts its partition to arrays once, not every round.
    columns = dataset.with_format("numpy")[:]
    return (columns["features"] / np.float32(16.0)).astype(np.float32), columns["label"].astype(np.int64)


def _number(value: object) -> float:
    if not isinstance(value, int | float):
        raise TypeError(f"expected a number in the config, got {value!r}")
    return float(value)


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("torch", "torch", "The digits demo") from None
    return torch


if __name__ == "__main__":
    sys.exit(main())
