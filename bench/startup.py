"""Start-up costs: `import fedlab`, the first use of its names, and run() to the first client call.

Each figure comes from a fresh interpreter (median of ``--repeat`` runs):

- ``import fedlab``: the cumulative time ``python -X importtime`` reports for the package.
- ``from fedlab import Federation``: what a script pays before it can build a federation
  (numpy included).
- run() to first client call: from calling ``fed.run()`` to the first ClientApp call
  starting, for W1 (100 clients, a 1M-parameter array) and a torch client whose modules
  are already imported (the cost of importing torch itself is the script's, not ours).

    python bench/startup.py --repeat 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

FIRST_CALL = r"""
import time, json, sys
import numpy as np
import fedlab as fl
from fedlab.strategy import FedAvg
kind = sys.argv[1]
first = []
app = fl.ClientApp()
if kind == "torch":
    import torch
    net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    initial = fl.ArrayRecord(net.state_dict())
else:
    initial = fl.ArrayRecord([np.zeros(1_000_000, np.float32)])

@app.train()
def train(msg, ctx):
    if not first:
        first.append(time.perf_counter())
    return msg.reply(fl.RecordDict({"arrays": msg.content.array_record("arrays"),
                                    "metrics": fl.MetricRecord({"num-examples": 1})}))

fed = fl.Federation(app, FedAvg(fraction_evaluate=0.0), num_clients=100, initial_arrays=initial,
                    seed=0, display="none")
started = time.perf_counter()
fed.run(rounds=1)
print(json.dumps({"first_call_s": first[0] - started}))
"""


def importtime() -> float:
    """Seconds ``-X importtime`` reports for ``import fedlab`` (cumulative)."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import fedlab"],
                         capture_output=True, text=True, check=True)
    line = [row for row in out.stderr.splitlines() if row.rstrip().endswith("| fedlab")][-1]
    return int(line.split("|")[1]) / 1e6


def federation_import() -> float:
    """Seconds to ``from fedlab import Federation`` in a fresh interpreter."""
    code = "import time; t = time.perf_counter(); from fedlab import Federation; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout)


def first_call(kind: str) -> float:
    """Seconds from ``fed.run()`` to the first client call."""
    out = subprocess.run([sys.executable, "-c", FIRST_CALL, kind], capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.splitlines()[-1])["first_call_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = [
        ("import fedlab (-X importtime)", importtime, 0.3),
        ("from fedlab import Federation", federation_import, None),
        ("run() -> first client call, W1 (1M params)", lambda: first_call("w1"), 0.5),
        ("run() -> first client call, torch MLP", lambda: first_call("torch"), 0.5),
    ]
    print(f"median of {args.repeat} fresh interpreters\n")
    print("| what | seconds | target |")
    print("|---|---|---|")
    for name, measure, target in rows:
        value = statistics.median(measure() for _ in range(args.repeat))
        goal = f"<= {target}" if target is not None else ""
        print(f"| {name} | {value:.3f} | {goal} |")


if __name__ == "__main__":
    main()
