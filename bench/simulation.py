"""Simulation runtime benchmarks: Flower's reference workloads, run on fedlab.

The workloads match ../shared/bench/flower (whose RESULTS.md has Flower's figures on this
kind of machine), so the numbers compare side by side:

- W1 "overhead": N clients, all sampled each round; the model is one float32 array of P
  parameters; a client adds 0.001 and replies with num-examples=1; no evaluation.
- W2 "digits": scikit-learn digits in 20 IID shards, torch MLP 64-64-10, 1 local epoch of
  SGD (lr 0.05, batch 32), FedAvg over 10 rounds, accuracy on the held-out 20%.

Each configuration runs in a fresh process (wall time from spawn to exit, peak RSS of that
process). Usage::

    python bench/simulation.py                # every configuration, twice, prints a table
    python bench/simulation.py --repeat 3
    python bench/simulation.py --one w1 --clients 100 --rounds 5 --params 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

CONFIGS: list[tuple[str, list[str]]] = [
    ("W1 100 clients x 5 rounds, 1M params", ["w1", "--clients", "100", "--rounds", "5", "--params", "1000000"]),
    ("W1 1000 clients x 2 rounds, 1M params", ["w1", "--clients", "1000", "--rounds", "2", "--params", "1000000"]),
    ("W1 10 clients x 3 rounds, 10M params", ["w1", "--clients", "10", "--rounds", "3", "--params", "10000000"]),
    ("W1 100 clients x 5 rounds, 1k params", ["w1", "--clients", "100", "--rounds", "5", "--params", "1000"]),
    ("W1 1000 clients x 2 rounds, 1k params", ["w1", "--clients", "1000", "--rounds", "2", "--params", "1000"]),
    ("W2 digits 20 clients x 10 rounds, MLP", ["w2", "--clients", "20", "--rounds", "10"]),
]

# Flower 1.42 medians from ../shared/bench/flower/RESULTS.md (wall s, steady round s, peak MB of the
# largest single process), measured on this kind of machine.
FLOWER = {
    "W1 100 clients x 5 rounds, 1M params": (23.0, 2.13, 1365),
    "W1 1000 clients x 2 rounds, 1M params": (137.0, 68.5, 8103),
    "W1 10 clients x 3 rounds, 10M params": (16.7, 1.89, 1768),
    "W1 100 clients x 5 rounds, 1k params": (10.9, 0.35, 181),
    "W1 1000 clients x 2 rounds, 1k params": (26.2, 8.4, 194),
    "W2 digits 20 clients x 10 rounds, MLP": (23.2, 0.21, 447),
}


def flower_digits_split(seed: int, num_parts: int) -> tuple[Any, ...]:
    """W2's data exactly as ../shared/bench/flower/digits_task.py prepares it."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
    shards = np.array_split(np.random.default_rng(seed).permutation(len(x_train)), num_parts)
    return x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64), shards


def run_one(workload: str, clients: int, rounds: int, params: int, backend: str) -> dict[str, object]:
    """Run one workload in this process and return its measurements."""
    import numpy as np

    import fedlab as fl
    from fedlab.strategy import FedAvg

    started = time.perf_counter()
    app = fl.ClientApp()
    evaluate_fn = None
    if workload == "w1":

        @app.train()
        def train(msg: fl.Message, ctx: fl.Context) -> fl.Message:
            # The reply array is built inside the call, so ArrayRecord keeps it without a copy.
            arr = msg.content.array_record("arrays").to_numpy()[0]
            return msg.reply(fl.RecordDict({"arrays": fl.ArrayRecord([arr + np.float32(0.001)]),
                                            "metrics": fl.MetricRecord({"num-examples": 1})}))

        initial = fl.ArrayRecord([np.zeros(params, dtype=np.float32)])
    else:
        import torch

        from fedlab import demo

        torch.set_num_threads(1)
        x_train, y_train, x_test, y_test, shards = flower_digits_split(0, clients)

        @app.train()
        def train(msg: fl.Message, ctx: fl.Context) -> fl.Message:
            pid = int(ctx.node_config["partition-id"])
            x, y = torch.from_numpy(x_train[shards[pid]]), torch.from_numpy(y_train[shards[pid]])
            model = demo.make_model()
            model.load_state_dict(msg.content.array_record("arrays").to_torch_state_dict())
            opt = torch.optim.SGD(model.parameters(), lr=0.05)
            order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0 * 1000 + pid))
            for i in range(0, len(x), 32):
                b = order[i : i + 32]
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x[b]), y[b]).backward()
                opt.step()
            return msg.reply(fl.RecordDict({"arrays": fl.ArrayRecord(model.state_dict()),
                                            "metrics": fl.MetricRecord({"num-examples": len(x)})}))

        def evaluate_fn(rnd: int, arrays: fl.ArrayRecord) -> fl.MetricRecord:
            return fl.MetricRecord({"accuracy": demo.accuracy(arrays, x_test, y_test)})

        torch.manual_seed(0)
        initial = fl.ArrayRecord(demo.make_model().state_dict())

    strategy = FedAvg(fraction_evaluate=0.0, min_train_nodes=clients, min_available_nodes=clients)
    fed = fl.Federation(app, strategy, num_clients=clients, initial_arrays=initial, seed=0,
                        backend=backend, evaluate_fn=evaluate_fn, display="none")
    setup = time.perf_counter() - started
    result = fed.run(rounds=rounds)
    assert result.history is not None
    rows = result.history.rounds
    durations = [r["train_duration_s"] + r["aggregate_duration_s"] for r in rows if r["round"] >= 1]
    failures = sum(r["train_failures"] for r in rows if r["round"] >= 1)
    out: dict[str, object] = {
        "setup_s": round(setup, 3),
        "round_s": [round(d, 3) for d in durations],
        "client_failures": failures,
    }
    if workload == "w1":
        out["final_value"] = float(result.arrays.to_numpy()[0][0])
    else:
        out["final_accuracy"] = result.evaluate_metrics_serverapp[rounds]["accuracy"]
    return out


def measure(args: list[str], backend: str) -> dict[str, object]:
    """Run ``args`` in a fresh interpreter; add its wall time and peak RSS."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--backend", backend, "--one", *args],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"benchmark {args} failed with status {status}")
    result: dict[str, object] = json.loads(output.strip().splitlines()[-1].removeprefix("RESULT "))
    result["wall_s"] = round(wall, 2)
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs="?", const="w1", choices=["w1", "w2"])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--params", type=int, default=1_000_000)
    parser.add_argument("--backend", default="inline", choices=["inline", "threads", "processes", "ray"])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if args.one:
        # The "RESULT " prefix is what ../shared/bench/flower/measure.py collects.
        print("RESULT " + json.dumps(run_one(args.one, args.clients, args.rounds, args.params, args.backend)))
        return
    print(f"backend={args.backend}, {args.repeat} runs each, median (Flower 1.42 median in brackets)\n")
    print("| workload | wall s | steady round s | round 1 s | peak RSS MB | result |")
    print("|---|---|---|---|---|---|")
    for name, cli in CONFIGS:
        runs = [measure(cli, args.backend) for _ in range(args.repeat)]
        wall = statistics.median(float(r["wall_s"]) for r in runs)  # type: ignore[arg-type]
        steady = statistics.median(
            statistics.median(r["round_s"][1:] or r["round_s"]) for r in runs  # type: ignore[index]
        )
        first = statistics.median(r["round_s"][0] for r in runs)  # type: ignore[index]
        rss = statistics.median(int(r["peak_rss_mb"]) for r in runs)  # type: ignore[call-overload]
        outcome = runs[0].get("final_value", runs[0].get("final_accuracy"))
        fw, fs, fr = FLOWER[name]
        print(f"| {name} | {wall:.2f} ({fw}) | {steady:.3f} ({fs}) | {first:.3f} | {rss:.0f} ({fr}) | "
              f"{outcome:.4f}, failures={runs[0]['client_failures']} |")


if __name__ == "__main__":
    main()
