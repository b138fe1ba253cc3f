"""Time per round of FedAvg against each central-DP wrapper around it.

Workload: ``--clients`` simulated clients (inline backend), ``--sampled`` of them per round,
a model of ``--params`` float32 values in four arrays; each client adds a fixed-seed
Gaussian step to what it receives (no training: the server's share of the round shows).
For the client-side wrappers the clients clip their update to the ``dp-clipping-norm``
they are sent (and report ``dp-norm-bit``), as the clipping mods do. The privacy
accountant (dp-accounting RDP, fixed-size sampling) runs every round.

Printed per strategy: the median over rounds of the whole round and of its aggregation
step (clipping, averaging, noise, accounting), in milliseconds, and ε after the last round.
Usage::

    python bench/dp_overhead.py
    python bench/dp_overhead.py --clients 100 --sampled 20 --params 1000000 --rounds 10
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import numpy as np

from fedlab import Federation
from fedlab.client import ClientApp
from fedlab.message import Message
from fedlab.privacy import DPClientAdaptive, DPClientFixed, DPServerAdaptive, DPServerFixed
from fedlab.records import ArrayRecord, MetricRecord, RecordDict
from fedlab.strategy import FedAvg


def client_app() -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Any) -> Message:
        rng = np.random.default_rng(ctx.node_config["partition-id"])
        sent = msg.content["arrays"]
        update = {k: rng.normal(0, 0.01, a.shape) for k, a in sent.items()}
        metrics: dict[str, Any] = {"num-examples": 1}
        bound = msg.content["config"].get("dp-clipping-norm")
        if bound is not None:  # what fixedclipping_mod / adaptiveclipping_mod do
            norm = float(np.sqrt(sum(np.sum(u * u) for u in update.values())))
            metrics["dp-norm-bit"] = int(norm <= float(bound))
            update = {k: u * min(1.0, float(bound) / norm) for k, u in update.items()}
        out = {k: (a.numpy() + update[k]).astype(np.float32) for k, a in sent.items()}
        return msg.reply(RecordDict({"arrays": ArrayRecord(out), "metrics": MetricRecord(metrics)}))

    return app


def measure(name: str, strategy: Any, args: argparse.Namespace) -> tuple[str, float, float, str]:
    size = args.params // 4
    initial = ArrayRecord({f"layer{i}": np.zeros(size, np.float32) for i in range(4)})
    fed = Federation(client_app(), strategy=strategy, num_clients=args.clients, seed=0,
                     display="none", initial_arrays=initial)
    fed.run(rounds=args.rounds)
    history = fed.history
    assert history is not None
    rows = [r for r in history.rounds if r["round"] >= 2]  # round 1 warms caches up
    total = statistics.median(r["train_duration_s"] + r["aggregate_duration_s"] for r in rows)
    aggregate = statistics.median(r["aggregate_duration_s"] for r in rows)
    spent = history.privacy
    epsilon = f"{spent[-1]['epsilon']:.3f}" if spent else "-"
    return name, total * 1000, aggregate * 1000, epsilon


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--sampled", type=int, default=10)
    parser.add_argument("--params", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--noise", type=float, default=1.0)
    args = parser.parse_args()
    m = args.sampled

    def inner() -> FedAvg:
        return FedAvg(fraction_evaluate=0.0, min_train_nodes=m, min_available_nodes=m)

    plain = FedAvg(fraction_train=m / args.clients, fraction_evaluate=0.0, min_train_nodes=m)
    strategies = [
        ("FedAvg", plain),
        ("DPServerFixed", DPServerFixed(inner(), args.noise, 0.1, m)),
        ("DPClientFixed", DPClientFixed(inner(), args.noise, 0.1, m)),
        ("DPServerAdaptive", DPServerAdaptive(inner(), args.noise, m, clipped_count_stddev=m / 2)),
        ("DPClientAdaptive", DPClientAdaptive(inner(), args.noise, m, clipped_count_stddev=m / 2)),
    ]
    print(f"{args.clients} clients, {m} per round, {args.params:,} float32 parameters, "
          f"{args.rounds} rounds (median of rounds 2..), z={args.noise}")
    print(f"{'strategy':<18} {'round ms':>9} {'aggregate ms':>13} {'epsilon':>8}")
    for name, strategy in strategies:
        row = measure(name, strategy, args)
        print(f"{row[0]:<18} {row[1]:>9.1f} {row[2]:>13.1f} {row[3]:>8}")


if __name__ == "__main__":
    main()
