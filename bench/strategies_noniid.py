"""FedProx and Scaffold against FedAvg on pathologically non-IID digits.

The split follows McMahan et al.'s pathological non-IID one: the training digits are
sorted by label, cut into 2·N equal shards, and each of N clients gets 2 random shards,
so most clients see only two digits. Every client trains a torch MLP 64-64-10 with plain
SGD for several local epochs; one ClientApp serves all strategies:

- FedAvg: plain local SGD;
- FedProx: adds ``proximal_term(model, global, mu)`` to the loss (mu from the config);
- Scaffold: corrects every gradient with ``ScaffoldClient`` (c − c_i) and replies with
  its control-variate change.

``--stragglers P`` adds the systems heterogeneity of Li et al.'s FedProx experiments: each
round, each client is a straggler with probability P and trains a uniformly random
1..E−1 epochs instead of E. As in the paper, the FedAvg baseline drops stragglers
("FedAvg (drop)"), while FedProx, Scaffold and "FedAvg (keep)" (FedProx with mu = 0)
aggregate their partial work.

Runs are seeded (inline backend); the numbers are reproducible. Usage::

    python bench/strategies_noniid.py
    python bench/strategies_noniid.py --rounds 50 --local-epochs 10 --fraction 0.5
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the checkout

import fedlab as fl
from fedlab.context import Context
from fedlab.demo import load_digits_data
from fedlab.message import Message
from fedlab.records import ArrayRecord, MetricRecord, RecordDict
from fedlab.strategy import FedAvg, FedProx, Scaffold, ScaffoldClient, Strategy, proximal_term

NUM_CLIENTS = 20
BATCH = 10


def label_skew(labels: npt.NDArray[np.int64], num_clients: int, shards_per_client: int, seed: int) -> list[npt.NDArray[np.intp]]:
    """Pathological split: sort by label, cut into shards, deal ``shards_per_client`` to each client."""
    rng = np.random.default_rng(seed)
    order = np.argsort(labels + rng.random(len(labels)), kind="stable")  # by label, random within one
    shards = np.array_split(order, num_clients * shards_per_client)
    dealt = rng.permutation(len(shards))
    return [
        np.concatenate([shards[s] for s in dealt[c * shards_per_client : (c + 1) * shards_per_client]])
        for c in range(num_clients)
    ]


@lru_cache(maxsize=4)
def _split(seed: int, num_clients: int) -> tuple[npt.NDArray[np.intp], ...]:
    _, y_train, _, _ = load_digits_data(seed)
    return tuple(label_skew(y_train, num_clients, 2, seed))


def _torch() -> Any:
    import torch

    torch.set_num_threads(1)
    return torch


def make_model(seed: int) -> Any:
    torch = _torch()
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))


@lru_cache(maxsize=1)
def _client_app() -> fl.ClientApp:
    app = fl.ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        torch = _torch()
        config = msg.content.config_record("config")
        seed, pid = int(config["seed"]), int(ctx.node_config["partition-id"])  # type: ignore[arg-type]
        lr, epochs = float(config["lr"]), int(config["local-epochs"])  # type: ignore[arg-type]
        rnd = int(config["server-round"])  # type: ignore[arg-type]
        straggler_rng = np.random.default_rng([seed, pid, rnd, 7])
        if straggler_rng.random() < float(config["stragglers"]):  # type: ignore[arg-type]
            if config.get("drop-stragglers"):
                raise RuntimeError("straggler dropped: it cannot finish its local epochs this round")
            epochs = int(straggler_rng.integers(1, epochs)) if epochs > 1 else 1
        x_train, y_train, _, _ = load_digits_data(seed)
        rows = _split(seed, int(ctx.node_config["num-partitions"]))[pid]
        x, y = torch.from_numpy(x_train[rows]), torch.from_numpy(y_train[rows])
        model = make_model(seed)
        model.load_state_dict(msg.content.array_record("arrays").to_torch_state_dict())
        mu = float(config.get("proximal-mu", 0.0))  # type: ignore[arg-type]
        anchor = [p.detach().clone() for p in model.parameters()] if mu > 0 else None
        scaffold = ScaffoldClient(msg, ctx) if "scaffold-control" in msg.content else None
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        generator = torch.Generator().manual_seed(seed * 1000 + pid * 10 + rnd)
        steps = 0
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), BATCH):
                idx = order[start : start + BATCH]
                optimizer.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
                if anchor is not None:
                    loss = loss + proximal_term(model, anchor, mu)
                loss.backward()
                if scaffold is not None:
                    scaffold.correct_gradients(model)
                optimizer.step()
                steps += 1
        metrics = {"num-examples": len(rows)}
        if scaffold is not None:
            return msg.reply(scaffold.reply_content(model.state_dict(), num_steps=steps, learning_rate=lr, metrics=metrics))
        return msg.reply(RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": MetricRecord(metrics)}))

    return app


def accuracy(arrays: ArrayRecord, seed: int) -> float:
    torch = _torch()
    _, _, x_test, y_test = load_digits_data(seed)
    model = make_model(seed)
    model.load_state_dict(arrays.to_torch_state_dict())
    with torch.no_grad():
        return float((model(torch.from_numpy(x_test)).argmax(dim=1).numpy() == y_test).mean())


def run(
    make: Callable[[], Strategy], rounds: int, seed: int, lr: float, epochs: int, stragglers: float = 0.0, drop: bool = False
) -> list[float]:
    """Train and return the held-out accuracy after every round."""
    curve: list[float] = []

    def evaluate(rnd: int, arrays: ArrayRecord) -> dict[str, float]:
        acc = accuracy(arrays, seed)
        if rnd > 0:
            curve.append(acc)
        return {"accuracy": acc}

    fed = fl.Federation(
        _client_app(),
        strategy=make(),
        num_clients=NUM_CLIENTS,
        initial_arrays=ArrayRecord(make_model(seed).state_dict()),
        config={"seed": seed, "lr": lr, "local-epochs": epochs, "stragglers": stragglers, "drop-stragglers": drop},
        evaluate_fn=evaluate,
        seed=seed,
        display="none",
    )
    fed.run(rounds=rounds)
    return curve


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--local-epochs", type=int, default=5)
    parser.add_argument("--fraction", type=float, default=1.0, help="share of clients sampled per round")
    parser.add_argument("--mu", type=float, nargs="*", default=[0.01, 0.1, 1.0], help="FedProx mu values")
    parser.add_argument("--no-scaffold", action="store_true", help="skip Scaffold")
    parser.add_argument("--stragglers", type=float, default=0.0, help="probability a client is a straggler")
    args = parser.parse_args(argv)
    common = {"fraction_train": args.fraction, "fraction_evaluate": 0.0, "min_train_nodes": 1}
    strategies: dict[str, Callable[[], Strategy]] = {}
    if args.stragglers > 0:
        strategies["FedAvg (drop)"] = lambda: FedAvg(**common)
        strategies["FedAvg (keep)"] = lambda: FedProx(proximal_mu=0.0, **common)
    else:
        strategies["FedAvg"] = lambda: FedAvg(**common)
    for mu in args.mu:
        strategies[f"FedProx(mu={mu:g})"] = lambda mu=mu: FedProx(proximal_mu=mu, **common)
    if not args.no_scaffold:
        strategies["Scaffold"] = lambda: Scaffold(**common)
    sizes = [len(r) for r in _split(args.seed, NUM_CLIENTS)]
    labels = load_digits_data(args.seed)[1]
    classes = [len(set(labels[r].tolist())) for r in _split(args.seed, NUM_CLIENTS)]
    print(
        f"digits, {NUM_CLIENTS} clients, 2 label shards each ({min(sizes)}-{max(sizes)} examples, "
        f"{min(classes)}-{max(classes)} classes per client); MLP 64-64-10, SGD lr {args.lr}, "
        f"{args.local_epochs} local epochs, batch {BATCH}, fraction {args.fraction}, "
        f"stragglers {args.stragglers}, seed {args.seed}"
    )
    targets = (0.80, 0.90)
    header = f"{'strategy':<20}{'final':>8}{'last-5 mean':>13}{'best':>8}" + "".join(f"{'to ' + format(t, '.2f'):>9}" for t in targets)
    print(header + f"{'time':>8}")
    for name, make in strategies.items():
        started = time.perf_counter()
        drop = name == "FedAvg (drop)"
        curve = run(make, args.rounds, args.seed, args.lr, args.local_epochs, args.stragglers, drop)
        reach = [next((i + 1 for i, a in enumerate(curve) if a >= t), None) for t in targets]
        print(
            f"{name:<20}{curve[-1]:>8.4f}{np.mean(curve[-5:]):>13.4f}{max(curve):>8.4f}"
            + "".join(f"{'-' if r is None else r:>9}" for r in reach)
            + f"{time.perf_counter() - started:>7.1f}s"
        )
    print("(to X = first round whose held-out accuracy reaches X; '-' = never)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
