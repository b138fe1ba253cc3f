"""A seeded ServerApp and a ClientApp whose run can be paused at known points, for crash tests.

The run config of the ServerApp (``server``) names a folder, ``marker-dir``; the apps
write marker files there so that a test knows where the run is:

- ``started-<partition>-<round>``: a node began training that round;
- ``round-end-<round>``: the server aggregated that round; if ``gate-after`` equals the
  round, it then waits for the file ``go-<round>`` before the next round;
- if the run config has ``hold-<partition> = <round>``, that partition's node, once it
  wrote its ``started-`` marker of that round, trains no further until the file
  ``release-<partition>-<round>`` exists (a test can kill it while it is held);
- the final arrays go to ``<marker-dir>/result.npz``.

``model-size`` sets the number of weights (1,024 by default). The nodes' updates are exact in float64 whatever the order replies arrive in, so two runs
that aggregate the same replies give bit-identical arrays.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from fedlab import ClientApp, Context, Message, ServerApp
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.server import Grid, Result
from fedlab.strategy import FedAvg

NUM_NODES = 3

client = ClientApp()


@client.train()
def train(msg: Message, ctx: Context) -> Message:
    config = msg.content["config"]
    assert isinstance(config, ConfigRecord)
    partition, round_ = ctx.node_config["partition-id"], config["server-round"]
    sleep = config.get(f"sleep-{partition}", 0.0)
    assert isinstance(partition, int) and isinstance(round_, int) and isinstance(sleep, float)
    markers = Path(str(config["marker-dir"]))
    (markers / f"started-{partition}-{round_}").touch()
    if config.get(f"hold-{partition}") == round_:
        while not (markers / f"release-{partition}-{round_}").exists():
            time.sleep(0.02)
    time.sleep(sleep)
    arrays = msg.content["arrays"]
    assert isinstance(arrays, ArrayRecord)
    updated = {name: (a.numpy() * 0.5 + (partition + 1)).astype(np.float32) for name, a in arrays.items()}
    metrics = MetricRecord({"num-examples": partition + 1})
    return msg.reply(RecordDict({"arrays": ArrayRecord(updated), "metrics": metrics}))


server = ServerApp()


@server.main()
def main(grid: Grid, context: Context) -> Result:
    config = context.run_config
    markers = Path(str(config["marker-dir"]))
    rng = np.random.default_rng(int(config.get("seed", 0)))
    size = int(config.get("model-size", 32 * 32))
    initial = ArrayRecord({"w": rng.normal(size=size).astype(np.float32),
                           "b": rng.normal(size=32).astype(np.float32)})  # fmt: skip
    gate = int(config.get("gate-after", 0))

    def round_end(result: Result) -> None:
        done = result.rounds_completed
        print(f"round {done} aggregated", flush=True)  # a ServerApp's output must not kill it
        (markers / f"round-end-{done}").touch()
        while done == gate and not (markers / f"go-{done}").exists():
            time.sleep(0.05)

    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=NUM_NODES,
                      min_available_nodes=NUM_NODES)  # fmt: skip
    sleeps = {k: v for k, v in config.items() if k.startswith(("sleep-", "hold-"))}
    result = strategy.start(
        grid, initial, int(config.get("num-server-rounds", 3)),
        train_config={"marker-dir": str(markers), **sleeps}, timeout=120, seed=0, on_round_end=round_end,
    )  # fmt: skip
    arrays: dict[str, Any] = {name: a.numpy() for name, a in result.arrays.items()}
    np.savez(markers / "result.npz", **arrays)
    return result
