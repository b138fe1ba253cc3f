"""The row schema of History: its empty rows, its JSON state and its table columns (private)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from fedlab.errors import HistoryError

Row = dict[str, Any]

FORMAT = "fedlab.history"
VERSION = 1
SOURCES = ("train", "evaluate", "server")
# Everything that depends on the clock; to_json(include_timings=False) drops exactly these.
RUN_TIMINGS = ("started_at", "finished_at", "duration_s")
ROUND_TIMINGS = (
    "started_at",
    "train_duration_s",
    "aggregate_duration_s",
    "evaluate_duration_s",
    "server_duration_s",
)
CLIENT_TIMINGS = ("duration_s", "timestamp")
COUNTS = tuple(
    f"{p}_{n}" for p in ("train", "evaluate") for n in ("sampled", "replies", "failures")
)
CLIENT_COLUMNS = (
    "round",
    "phase",
    "partition_id",  # first: it is how a person names a simulated client
    "node_id",
    "metrics",
    *CLIENT_TIMINGS,
    "error_code",
    "error_reason",
)


def plain(value: Any) -> Any:
    """Return ``value`` as JSON-ready Python data, so that storing never fails later."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return plain(item())
    return repr(value)


def copy_rows(value: Any) -> Any:
    # Rows only nest dicts and lists, so this is a cheaper deepcopy.
    if isinstance(value, dict):
        return {k: copy_rows(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_rows(v) for v in value]
    return value


# The empty rows below fix the key order of the JSON and of the to_pandas() columns.
def new_round(number: int) -> dict[str, Any]:
    metrics: dict[str, Any] = {"round": number, "train": {}, "evaluate": {}, "server": {}}
    outcome = {"aggregated": None, "reason": ""}
    return {**metrics, **dict.fromkeys(COUNTS, 0), **outcome, **dict.fromkeys(ROUND_TIMINGS)}


def new_run() -> dict[str, Any]:
    facts: dict[str, Any] = {"run_id": None, "strategy": "", "num_rounds": 0, "start_round": 1}
    outcome = {"finished": False, "rounds_completed": None, "stopped_early": False, "error": None}
    nodes = {"num_nodes": 0, "node_ids": []}
    return {**facts, **nodes, "config": {}, "note": "", **outcome, **dict.fromkeys(RUN_TIMINGS)}


def flatten_rows(
    rows: list[dict[str, Any]], kind: Literal["rounds", "clients"]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Flatten nested metric dicts into ``<prefix>.<name>`` columns; return records and columns."""
    if kind == "rounds":
        groups, columns = {s: s for s in SOURCES}, list(new_round(0))
    else:
        groups, columns = {"metrics": "metric"}, list(CLIENT_COLUMNS)
    found: dict[str, None] = {}  # metric columns, an ordered set
    records = []
    for row in rows:
        record = {k: v for k, v in row.items() if k not in groups}
        for key, prefix in groups.items():
            for name, value in row[key].items():
                record[f"{prefix}.{name}"] = value
                found[f"{prefix}.{name}"] = None
        records.append(record)
    order = list(groups.values())
    at = columns.index(next(iter(groups)))  # metrics go where their dicts were
    columns = [c for c in columns if c not in groups]
    columns[at:at] = sorted(found, key=lambda c: order.index(c.split(".")[0]))
    return records, columns


def stored(
    run: Row, rounds: list[Row], clients: list[Row], reports: list[Row], include_timings: bool
) -> dict[str, Any]:
    """The JSON-ready state of these rows (copies, changed in place); see History.to_json()."""
    if not include_timings:
        for rows, keys in ((run,), RUN_TIMINGS), (rounds, ROUND_TIMINGS), (clients, CLIENT_TIMINGS):
            for row in rows:
                for key in keys:
                    del row[key]
        # Arrival order is itself a timing: threads finish in any order.
        clients.sort(key=lambda c: (c["round"], c["phase"], c["node_id"]))
    state = {"format": FORMAT, "version": VERSION, "run": run, "rounds": rounds}
    return {**state, "clients": clients, "strategy_reports": reports}


def restored(text: str) -> tuple[Row, dict[int, Row], list[Row], list[Row]]:
    """The run, rounds, clients and reports of History.to_json() text.

    Raises
    ------
    HistoryError
        If ``text`` is not JSON, or not written by History.to_json(), or damaged.
    """
    try:
        state = json.loads(text)
    except ValueError as exc:
        raise HistoryError(f"History.from_json() got text that is not JSON: {exc}.") from None
    header = (state.get("format"), state.get("version")) if isinstance(state, dict) else None
    if header != (FORMAT, VERSION):
        raise HistoryError(
            f"History.from_json() reads text from History.to_json() ({FORMAT!r} version "
            f"{VERSION}); this JSON has format and version {header}."
        )
    try:  # merging into empty rows restores left-out timings as None, in the usual order
        run = {**new_run(), **state["run"]}
        rounds = {row["round"]: {**new_round(0), **row} for row in state["rounds"]}
        clients = [{**dict.fromkeys(CLIENT_COLUMNS), **c} for c in state["clients"]]
        reports = list(state["strategy_reports"])
    except (KeyError, TypeError) as exc:
        raise HistoryError(f"History.from_json() got a damaged history ({exc!r}).") from None
    return run, rounds, clients, reports
