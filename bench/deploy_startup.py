"""``deploy(local=N)`` start-up: from the call to the first ClientApp call, and to the result.

A tiny model (10 float32 values), N SuperNodes (default 4), 1 round of FedAvg, with the
local cluster's TLS, node keys and signed bundle as always. The first client call is the
wall-clock time (``time.time()``) the first ClientApp process writes to a file when its
train function starts. The first run in this process is cold (on Linux it starts the
template process that forks the daemons, :mod:`fedlab.deploy.local._template`); later
runs find it warm. ``--no-fork`` starts every process as a fresh interpreter (the path off Linux), and
``--keep`` deploys with ``keep=True`` (runs after the first reuse the running cluster).

    python bench/deploy_startup.py --nodes 4 --repeat 3 [--keep] [--no-fork]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import fedlab as fl
from fedlab.records import ArrayRecord, MetricRecord, RecordDict
from fedlab.strategy import FedAvg

client_app = fl.ClientApp()


@client_app.train()
def _train(msg, ctx):  # type: ignore[no-untyped-def]
    with open(str(ctx.run_config["stamp"]), "a") as stamp:
        stamp.write(f"{time.time()}\n")
    received = msg.content["arrays"]
    arrays = ArrayRecord({key: received[key].numpy() + 1.0 for key in received})
    return msg.reply(RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": 1})}))


def once(nodes: int, keep: bool = False) -> tuple[float, float]:
    """Seconds from deploy() to the first client call, and to the returned Result."""
    stamp = Path(tempfile.mkdtemp(prefix="fedlab-startup-")) / "calls.txt"
    strategy = FedAvg(fraction_evaluate=0.0, min_train_nodes=nodes, min_available_nodes=nodes)
    fed = fl.Federation(client_app, strategy, initial_arrays={"w": np.zeros(10, np.float32)},
                        run_config={"stamp": str(stamp)}, display="none")  # fmt: skip
    started = time.time()
    fed.deploy(local=nodes, rounds=1, keep=keep)
    ended = time.time()
    first = min(float(x) for x in stamp.read_text().split())
    stamp.unlink()
    stamp.parent.rmdir()
    return first - started, ended - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-fork", action="store_true", help="fresh interpreters, no template")
    parser.add_argument("--keep", action="store_true", help="keep=True: later runs reuse the cluster")
    args = parser.parse_args()
    if args.no_fork:
        from fedlab.deploy.local._cluster import LocalCluster

        LocalCluster.fork = False
    runs = [once(args.nodes, args.keep) for _ in range(args.repeat)]
    for index, (first, total) in enumerate(runs, 1):
        kind = "cold" if index == 1 else "warm"
        print(f"run {index} ({kind}): first client call {first:.2f} s, 1-round result {total:.2f} s")
    warm = runs[1:] or runs
    print("RESULT " + json.dumps({
        "nodes": args.nodes, "fork": not args.no_fork, "keep": args.keep,
        "cold_first_call_s": runs[0][0], "cold_one_round_s": runs[0][1],
        "warm_first_call_s": statistics.median(r[0] for r in warm),
        "warm_one_round_s": statistics.median(r[1] for r in warm),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
