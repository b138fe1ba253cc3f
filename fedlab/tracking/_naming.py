"""How a logged run is named: its start time, strategy and run id, e.g. ``20260101-120000-FedAvg-run7``."""

from __future__ import annotations

import re
import time

from fedlab.events import RunStarted

__all__ = ["config_rows", "run_name"]


def run_name(started: RunStarted) -> str:
    """A readable, sortable name for the run ``started`` announces (safe as a folder name)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started.timestamp))
    strategy = re.sub(r"[^A-Za-z0-9_.-]+", "_", started.strategy) or "run"
    return f"{stamp}-{strategy}-run{started.run_id}"


def config_rows(started: RunStarted) -> dict[str, str]:
    """The run's settings as text: strategy, rounds, nodes, then every config value."""
    rows = {
        "strategy": started.strategy,
        "num_rounds": str(started.num_rounds),
        "num_nodes": str(started.population),
        "start_round": str(started.start_round),
    }
    rows.update({f"config.{key}": str(value) for key, value in started.config.items()})
    return rows
