"""The small per-round table under the terminal's live progress bars."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from fedlab.dashboard._tracker import RoundState, RunTracker
from fedlab.format import format_number, format_seconds, pick_metrics

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["ROWS", "round_table"]

#: How many of the latest completed rounds the table keeps.
ROWS = 5


def round_table(tracker: RunTracker, states: Sequence[RoundState]) -> Table:
    """A table of ``states`` (completed rounds): clients, up to 3 metrics, and time.

    The metric columns are chosen from the newest round, loss and accuracy first.

    Examples
    --------
    >>> from rich.console import Console
    >>> state = RoundState(2, sampled={"train": 3}, replied={"train": 3}, failed={"train": 0},
    ...                    train={"loss": 0.25}, duration_s=1.5)
    >>> Console(width=60).print(round_table(RunTracker(num_rounds=4), [state]))
    round   clients   train loss    time
    ────────────────────────────────────
    2/4     3/3           0.2500   1.50s
    """
    from rich import box
    from rich.table import Table

    columns = pick_metrics(states[-1].sections(), limit=3) if states else []
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("round")
    table.add_column("clients")
    for source, keys in columns:
        for key in keys:
            table.add_column(f"{source} {key}", justify="right")
    table.add_column("time", justify="right")
    last = f"/{tracker.last_round}" if tracker.num_rounds else ""
    for state in states:
        ok, bad = state.replied.get("train", 0), state.failed.get("train", 0)
        clients = f"{ok}/{state.sampled.get('train', ok + bad)}" + (f" ({bad} failed)" if bad else "")
        if "train" not in state.sampled and not ok + bad:
            clients = "–"  # e.g. round 0: the server evaluated the initial model
        metrics = dict(state.sections())
        cells = [
            format_number(metrics[source][key]) if key in metrics[source] else "–"
            for source, keys in columns
            for key in keys
        ]
        table.add_row(f"{state.round}{last}", clients, *cells, format_seconds(state.duration_s))
    return table
