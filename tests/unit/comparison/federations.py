"""A small federation for the comparison tests: replies depend on config, round and state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fedlab import ArrayRecord, ClientApp, Context, Federation, Message, MetricRecord, RecordDict
from fedlab.strategy import FedAvg


def stepping_app() -> ClientApp:
    """Clients move the model by ``config["step"]``, their partition, the round and a counter."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        pid = int(ctx.node_config["partition-id"])
        config = msg.content["config"]
        rnd = int(config["server-round"])  # type: ignore[index, arg-type]
        step = float(config.get("step", 1.0))  # type: ignore[union-attr, arg-type]
        calls = ctx.state.get("calls", MetricRecord({"n": 0}))
        assert isinstance(calls, MetricRecord)
        calls["n"] = int(calls["n"]) + 1  # type: ignore[call-overload]
        ctx.state["calls"] = calls
        w = msg.content.array_record("arrays").to_numpy()[0]
        w = w * 0.5 + step * np.sin(pid + rnd) + 0.1 * int(calls["n"])  # type: ignore[call-overload]
        metrics = MetricRecord({"num-examples": pid + 1, "loss": float(np.abs(w).sum())})
        return msg.reply(
            RecordDict({"arrays": ArrayRecord([w.astype(np.float32)]), "metrics": metrics})
        )

    return app


def make_fed(directory: Path | None = None, **kwargs: Any) -> Federation:
    """Six clients, half of them sampled per round, seeded, with a server-side metric."""
    options: dict[str, Any] = {
        "strategy": FedAvg(fraction_train=0.5, fraction_evaluate=0.0, min_train_nodes=1),
        "num_clients": 6,
        "initial_arrays": [np.zeros(3, np.float32)],
        "config": {"step": 1.0},
        "seed": 5,
        "display": "none",
        "checkpoint_dir": directory,
        "evaluate_fn": lambda rnd, arrays: {"norm": float(np.linalg.norm(arrays.to_numpy()[0]))},
    }
    options.update(kwargs)
    return Federation(stepping_app(), **options)
