"""FedBuff against synchronous FedAvg on digits, with clients of deliberately unequal speeds.

Workload: scikit-learn digits (80/20 stratified split) in IID shards, a torch MLP 64-32-10,
one local epoch of SGD per piece of work (lr 0.1, momentum 0.9, batch 16), the ``threads``
backend with one worker per client, ``torch.set_num_threads(1)``. Client *p* of *N* also
sleeps ``SLOWEST_S * (p / (N - 1))**2`` seconds before training: client 0 is instant and
the slowest client takes ``SLOWEST_S`` longer, a straggler-heavy tail.

- FedBuff: every client always busy, a server update every K = ``--buffer`` updates,
  staleness weight 1/sqrt(1 + tau), server learning rate 1.
- FedAvg: ``--buffer`` clients sampled per round, each round waiting for its slowest.

Both make the same number of server updates (``--rounds``) from the same initial model.
Printed: held-out accuracy against wall time, the time to reach 0.85, the final accuracy,
and for FedBuff the staleness of the aggregated updates and how often fast and slow
clients contributed. Usage::

    python bench/fedbuff.py                      # both strategies, default settings
    python bench/fedbuff.py --clients 20 --buffer 5 --rounds 40 --slowest 1.0
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from typing import Any

import numpy as np

import fedlab as fl
from fedlab.strategy import FedAvg, FedBuff

TARGET = 0.85


@functools.lru_cache(maxsize=1)
def digits() -> tuple[Any, ...]:
    """(x_train, x_test, y_train, y_test), pixels scaled to [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    return tuple(
        train_test_split(
            (x / 16.0).astype(np.float32),
            y.astype(np.int64),
            test_size=0.2,
            stratify=y,
            random_state=0,
        )
    )


def mlp() -> Any:
    """The model: an MLP 64-32-10."""
    import torch

    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def accuracy(arrays: fl.ArrayRecord) -> float:
    """Held-out accuracy of the model holding ``arrays``."""
    import torch

    _, x_test, _, y_test = digits()
    net = mlp()
    net.load_state_dict(arrays.to_torch_state_dict())
    with torch.no_grad():
        return float((net(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())


def make_app(num_clients: int, slowest_s: float) -> fl.ClientApp:
    """One local epoch on an IID shard, behind a partition-dependent delay."""
    import torch

    app = fl.ClientApp()

    @app.train()
    def train(msg: fl.Message, ctx: fl.Context) -> fl.Message:
        pid = int(ctx.node_config["partition-id"])
        time.sleep(slowest_s * (pid / max(num_clients - 1, 1)) ** 2)
        x_train, _, y_train, _ = digits()
        rows = np.array_split(np.random.default_rng(0).permutation(len(x_train)), num_clients)[pid]
        x, y = torch.from_numpy(x_train[rows]), torch.from_numpy(y_train[rows])
        net = mlp()
        net.load_state_dict(msg.content.array_record("arrays").to_torch_state_dict())
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(pid))
        for start in range(0, len(x), 16):
            batch = order[start : start + 16]
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(x[batch]), y[batch]).backward()
            optimizer.step()
        metrics = fl.MetricRecord({"num-examples": len(x)})
        return msg.reply(
            fl.RecordDict({"arrays": fl.ArrayRecord(net.state_dict()), "metrics": metrics})
        )

    return app


def run(strategy_name: str, initial: fl.ArrayRecord, args: argparse.Namespace) -> dict[str, Any]:
    """Run one strategy; return its accuracy curve and statistics."""
    curve: list[tuple[float, int, float]] = []
    started = time.perf_counter()

    def evaluate(rnd: int, arrays: fl.ArrayRecord) -> dict[str, float]:
        value = accuracy(arrays)
        curve.append((time.perf_counter() - started, rnd, value))
        return {"accuracy": value}

    strategy: fl.strategy.Strategy
    if strategy_name == "fedbuff":
        strategy = FedBuff(buffer_size=args.buffer)
    else:
        strategy = FedAvg(
            fraction_train=args.buffer / args.clients,
            fraction_evaluate=0.0,
            min_train_nodes=args.buffer,
        )
    fed = fl.Federation(
        make_app(args.clients, args.slowest),
        strategy=strategy,
        num_clients=args.clients,
        initial_arrays=initial,
        evaluate_fn=evaluate,
        seed=args.seed,
        backend="threads",
        max_workers=args.clients,
        display="none",
    )
    result = fed.run(rounds=args.rounds)
    wall = time.perf_counter() - started
    assert result.history is not None
    reports = [r["info"] for r in result.history.strategy_reports if r["strategy"] == "FedBuff"]
    staleness = [s for info in reports for s in info["staleness"]]
    per_node: dict[int, int] = {}
    for info in reports:
        for node in info["nodes"]:
            per_node[node] = per_node.get(node, 0) + 1
    partitions = {c["node_id"]: c["partition_id"] for c in result.history.clients}
    by_partition = {partitions.get(n, -1): k for n, k in per_node.items()}
    return {
        "curve": curve,
        "wall": wall,
        "final": curve[-1][2],
        "reached": next((t for t, _, acc in curve if acc >= TARGET), None),
        "staleness": staleness,
        "contributions": by_partition,
    }


def main() -> None:
    """Run both strategies and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument(
        "--buffer", type=int, default=5, help="K for FedBuff, clients per round for FedAvg"
    )
    parser.add_argument("--rounds", type=int, default=40, help="server updates")
    parser.add_argument(
        "--slowest", type=float, default=1.0, help="extra seconds of the slowest client"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["fedbuff", "fedavg"])
    args = parser.parse_args()
    names = [args.only] if args.only else ["fedbuff", "fedavg"]
    print(
        f"digits, {args.clients} clients (extra delay 0 .. {args.slowest:.2f} s, quadratic in the "
        f"partition), {args.rounds} server updates of {args.buffer} client updates each\n"
    )
    import torch

    torch.set_num_threads(1)  # a tiny MLP: intra-op threads would only contend
    torch.manual_seed(args.seed)
    initial = fl.ArrayRecord(mlp().state_dict())
    x_train, _, y_train, _ = digits()
    # torch initialises lazily on first use (the first optimizer takes seconds here); keep
    # that out of either timing.
    net = mlp()
    torch.optim.SGD(net.parameters(), lr=0.1).zero_grad()
    torch.nn.functional.cross_entropy(
        net(torch.from_numpy(x_train[:16])), torch.from_numpy(y_train[:16])
    ).backward()
    results = {name: run(name, initial, args) for name in names}
    print(f"{'strategy':10} {'wall s':>8} {'final acc':>10} {f's to {TARGET}':>10}")
    for name, res in results.items():
        reached = "never" if res["reached"] is None else f"{res['reached']:.1f}"
        print(f"{name:10} {res['wall']:8.1f} {res['final']:10.4f} {reached:>10}")
    for name, res in results.items():
        print(f"\n{name}: accuracy by wall time (s)")
        curve = res["curve"]
        shown = sorted(set(range(0, len(curve), max(len(curve) // 10, 1))) | {len(curve) - 1})
        for t, rnd, acc in (curve[i] for i in shown):
            print(f"  t={t:6.1f}  round {rnd:3d}  acc {acc:.4f}")
    buff = results.get("fedbuff")
    if buff is not None and buff["staleness"]:
        stale = buff["staleness"]
        print(
            f"\nFedBuff staleness of aggregated updates: mean {statistics.mean(stale):.2f}, "
            f"median {statistics.median(stale):.1f}, max {max(stale)}"
        )
        contributions = buff["contributions"]
        half = args.clients // 2
        fast = sum(k for p, k in contributions.items() if 0 <= p < half)
        slow = sum(k for p, k in contributions.items() if p >= half)
        print(f"updates aggregated from the faster half: {fast}, from the slower half: {slow}")
        print("per partition: " + ", ".join(f"{p}:{k}" for p, k in sorted(contributions.items())))


if __name__ == "__main__":
    main()
