"""`fed.deploy(local=3)` from a notebook: code defined in cells reaches real SuperNodes."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

CELLS = [
    """\
import numpy as np
import fedlab as fl
from fedlab.strategy import FedAvg

STEP = 0.5""",
    """\
app = fl.ClientApp()

def shift(partition):
    return partition + 1

@app.train()
def train(msg, ctx):
    pid = int(ctx.node_config["partition-id"])
    w = msg.content.array_record("arrays").to_numpy()[0] * STEP + shift(pid)
    return msg.reply(fl.RecordDict({"arrays": fl.ArrayRecord([w]),
                                    "metrics": fl.MetricRecord({"num-examples": pid + 1})}))""",
    """\
def make_fed():
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=3, min_available_nodes=3)
    return fl.Federation(app, strategy=strategy, num_clients=3,
                         initial_arrays=[np.zeros(3, np.float32)], seed=1)

deployed = make_fed().deploy(local=3, rounds=2)""",
    """\
simulated = make_fed().run(rounds=2)
print("equal:", deployed.arrays == simulated.arrays)
print("weights:", deployed.arrays.to_numpy()[0].tolist())
print("rounds:", deployed.history.rounds_completed)""",
]


def run_notebook(cwd: Path) -> Any:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    env_display = os.environ.pop("FEDLAB_DISPLAY", None)  # the kernel picks its own display
    try:
        NotebookClient(
            notebook,
            timeout=600,
            kernel_name="python3",
            store_widget_state=False,
            resources={"metadata": {"path": str(cwd)}},
        ).execute()
    finally:
        if env_display is not None:
            os.environ["FEDLAB_DISPLAY"] = env_display
    return notebook


def test_a_federation_defined_in_notebook_cells_deploys_to_local_supernodes(tmp_path: Path) -> None:
    notebook = run_notebook(tmp_path)
    printed = "".join(
        out.get("text", "") for out in notebook.cells[3].outputs if out.output_type == "stream"
    )
    assert "equal: True" in printed and "rounds: 2" in printed
    # Partition p weighs p + 1 and returns w / 2 + p + 1: w1 = (1 + 4 + 9) / 6, then
    # w2 = w1 / 2 + 14 / 6.
    w1 = 14 / 6
    w2 = w1 / 2 + 14 / 6
    weights = [
        float(v) for v in re.findall(r"[\d.]+", printed.split("weights:")[1].splitlines()[0])
    ]
    assert len(weights) == 3 and all(abs(w - w2) < 1e-6 for w in weights)  # float32 arrays
    # The deployed run's events reached the notebook's live dashboard, as a simulation's do.
    deploy_outputs = notebook.cells[2].outputs
    assert any(WIDGET_VIEW in out.get("data", {}) for out in deploy_outputs)
    assert not [out for out in deploy_outputs if out.output_type == "error"]
