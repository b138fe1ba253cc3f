"""Flower-named strategies of fedlab's compatibility layer against real Flower 1.42.

The same replies (ten nodes, one an outlier, three rounds, each client returning the model
it was sent plus a fixed offset that halves every round) go through each strategy of
``flwr.serverapp.strategy``, once under real Flower and once under
``fedlab.compat.flower``; the script prints, per strategy, the final dtype on both sides
and the largest difference of the final arrays (0 means bit-identical). Replies are
handed over in node order on both sides, so arrival order plays no part, and numpy's
global generator is seeded before each strategy on both sides, so the DP wrappers' noise
is the same too.

Flower runs in its scratch venv (``../shared/bench/flower/setup.sh`` makes
/tmp/flwr-venv; ``FLWR_PY`` names another interpreter)::

    python bench/flower_strategy_numbers.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

FLOWER_PY = os.environ.get("FLWR_PY", "/tmp/flwr-venv/bin/python")
ROOT = Path(__file__).resolve().parent.parent
SPECS: dict[str, dict[str, Any]] = {
    "FedAvg": {},
    "FedAvgM": {"server_momentum": 0.9, "server_learning_rate": 0.5},
    "FedProx": {"proximal_mu": 0.1},
    "FedAdagrad": {},
    "FedAdam": {},
    "FedYogi": {},
    "FedMedian": {},
    "FedTrimmedAvg": {"beta": 0.2},
    "Krum": {"num_malicious_nodes": 2},
    "MultiKrum": {"num_malicious_nodes": 2, "num_nodes_to_select": 5},
    "Bulyan": {"num_malicious_nodes": 1},
    "QFedAvg": {"client_learning_rate": 0.1, "q": 0.2},
}
# name -> (wrapper, wrapped strategy, arguments after it). Both sides seed numpy's global
# generator before each strategy, so the DP noise (drawn from it, in the same order) agrees.
WRAPPERS: dict[str, tuple[str, str, tuple[Any, ...]]] = {
    "DP server-side fixed (FedAvg)": (
        "DifferentialPrivacyServerSideFixedClipping",
        "FedAvg",
        (0.5, 1.0, 10),
    ),
    "DP client-side fixed (FedAdam)": (
        "DifferentialPrivacyClientSideFixedClipping",
        "FedAdam",
        (0.5, 1.0, 10),
    ),
    "DP server-side adaptive (FedAvg)": (
        "DifferentialPrivacyServerSideAdaptiveClipping",
        "FedAvg",
        (0.5, 10, 1.0),
    ),
}


def run_side(side: str, out: str) -> None:
    """Run every strategy on this interpreter's ``flwr`` and write the results to ``out``."""
    import numpy as np

    grid: Any
    if side == "fedlab":
        from fedlab.compat import flower
        from fedlab.server import Grid as FedlabGrid

        flower.enable()

        class Nodes(FedlabGrid):
            def get_node_ids(self) -> list[int]:
                return list(range(1, 11))

            def get_node_config(self, node_id: int) -> dict[str, bool | int | float | str]:
                return {}

            def push_messages(self, messages: Any) -> list[str]:
                return []

            def pull_messages(self, message_ids: Any) -> list[Any]:
                return []

        from flwr.serverapp import Grid

        grid = Grid(Nodes(run_id=1))
    else:  # Flower's messages need a task identity, which its runtime would set
        from flwr.supercore.task_identity import TaskIdentity

        TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = 1, 0, 1

        class FlowerNodes:
            def get_node_ids(self) -> list[int]:
                return list(range(1, 11))

        grid = FlowerNodes()
    import flwr.serverapp.strategy as strategies
    from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

    rng = np.random.default_rng(0)
    offsets = [
        [rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=4).astype(np.float32)]
        for _ in range(10)
    ]
    offsets[0] = [o * 20 for o in offsets[0]]
    sizes = [int(s) for s in rng.integers(5, 50, size=10)]
    losses = [float(v) for v in rng.uniform(0.1, 2.0, size=10)]
    made = {
        name: (lambda n=name, kw=kw: getattr(strategies, n)(**kw)) for name, kw in SPECS.items()
    }
    for label, (wrapper, inner, args) in WRAPPERS.items():
        made[label] = lambda w=wrapper, i=inner, a=args: getattr(strategies, w)(
            getattr(strategies, i)(), *a
        )
    results = {}
    for name, make in made.items():
        np.random.seed(0)
        strategy = make()
        arrays = ArrayRecord([np.zeros((3, 2), np.float32), np.ones(4, np.float32)])
        for rnd in (1, 2, 3):
            sent = sorted(
                strategy.configure_train(rnd, arrays, ConfigRecord({"lr": 0.1}), grid),
                key=lambda m: m.metadata.dst_node_id,
            )
            replies = []
            for message in sent:
                node = message.metadata.dst_node_id - 1
                model = message.content["arrays"].to_numpy_ndarrays()
                moved = [
                    (a + o * 0.5**rnd).astype(a.dtype)
                    for a, o in zip(model, offsets[node], strict=True)
                ]
                metrics = MetricRecord({"num-examples": sizes[node], "train_loss": losses[node]})
                replies.append(
                    Message(
                        RecordDict({"arrays": ArrayRecord(moved), "metrics": metrics}),
                        reply_to=message,
                    )
                )
            new, _ = strategy.aggregate_train(rnd, replies)
            arrays = arrays if new is None else new
        final = arrays.to_numpy_ndarrays()
        results[name] = {
            "dtype": str(final[0].dtype),
            "values": [a.astype(np.float64).ravel().tolist() for a in final],
        }
    Path(out).write_text(json.dumps(results))


def main() -> None:
    """Run both sides and print the table."""
    with tempfile.TemporaryDirectory() as tmp:
        files = {side: str(Path(tmp) / f"{side}.json") for side in ("flower", "fedlab")}
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run(
            [FLOWER_PY, __file__, "--side", "flower", files["flower"]],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [sys.executable, __file__, "--side", "fedlab", files["fedlab"]], check=True, env=env
        )
        flower_side, fedlab_side = (
            json.loads(Path(files[s]).read_text()) for s in ("flower", "fedlab")
        )
    print(f"{'strategy':32s} {'Flower dtype':>12s} {'fedlab dtype':>12s} {'max |diff|':>10s}")
    for name, theirs in flower_side.items():
        ours = fedlab_side[name]
        diff = max(
            abs(a - b)
            for x, y in zip(theirs["values"], ours["values"], strict=True)
            for a, b in zip(x, y, strict=True)
        )
        print(f"{name:32s} {theirs['dtype']:>12s} {ours['dtype']:>12s} {diff:>10.3g}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--side":
        run_side(sys.argv[2], sys.argv[3])
    else:
        main()
