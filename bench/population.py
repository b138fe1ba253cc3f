"""Huge populations: 100 clients sampled per round from 10^4 up to 10^6 nodes.

Per-round time and memory must not depend on the population: node ids live in one int64
array, sampling draws from it without copying, and a node's Context is created only when
it is first sampled. Each population runs in a fresh interpreter (peak RSS of that
process); the model is a 100k-parameter float32 array, the client adds 0.001.

    python bench/population.py                      # 10^4, 10^5, 10^6
    python bench/population.py --populations 10000 1000000 --rounds 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def run_one(population: int, rounds: int, sampled: int) -> dict[str, object]:
    """Run one population in this process and return its measurements."""
    import numpy as np

    import fedlab as fl
    from fedlab.simulation import SimulationGrid
    from fedlab.strategy import FedAvg

    app = fl.ClientApp()

    @app.train()
    def train(msg: fl.Message, ctx: fl.Context) -> fl.Message:
        arr = msg.content.array_record("arrays").to_numpy()[0] + np.float32(0.001)
        ctx.state["last"] = fl.MetricRecord({"round": int(msg.metadata.round)})
        return msg.reply(fl.RecordDict({"arrays": fl.ArrayRecord([arr]),
                                        "metrics": fl.MetricRecord({"num-examples": 1})}))

    started = time.perf_counter()
    grid = SimulationGrid(app, population, seed=0)
    setup = time.perf_counter() - started
    strategy = FedAvg(fraction_train=sampled / population, fraction_evaluate=0.0,
                      min_train_nodes=sampled, min_available_nodes=sampled)
    durations: list[float] = []

    def on_round_end(_result: fl.Result) -> None:
        durations.append(time.perf_counter() - marks[-1])
        marks.append(time.perf_counter())

    marks = [time.perf_counter()]
    strategy.start(grid, fl.ArrayRecord([np.zeros(100_000, np.float32)]), num_rounds=rounds, seed=0,
                   on_round_end=on_round_end)
    return {"setup_s": round(setup, 3), "round_s": [round(d, 4) for d in durations],
            "contexts": len(grid.created_contexts())}


def measure(population: int, rounds: int, sampled: int) -> dict[str, object]:
    """Run one population in a fresh interpreter; add its peak RSS."""
    proc = subprocess.Popen([sys.executable, __file__, "--one", str(population), "--rounds", str(rounds),
                             "--sampled", str(sampled)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"population {population} failed with status {status}")
    result: dict[str, object] = json.loads(output.strip().splitlines()[-1])
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", type=int)
    parser.add_argument("--populations", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--sampled", type=int, default=100)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.rounds, args.sampled)))
        return
    print(f"{args.sampled} clients sampled per round, {args.rounds} rounds, 100k-parameter model\n")
    print("| population | grid setup s | median round s | last round s | Contexts created | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for population in args.populations:
        r = measure(population, args.rounds, args.sampled)
        rounds: list[float] = r["round_s"]  # type: ignore[assignment]
        print(f"| {population:,} | {r['setup_s']} | {statistics.median(rounds):.4f} | {rounds[-1]:.4f} | "
              f"{r['contexts']} | {r['peak_rss_mb']} |")


if __name__ == "__main__":
    main()
