"""``fedlab ls``: the runs a SuperLink knows, with their status."""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

from fedlab.cli._output import Output, add_format_option
from fedlab.cli._target import add_target_arguments, control_client, superlink_address

__all__ = ["register", "run_command", "run_rows"]

# Table columns (field: heading), when runs carry them; the JSON has every field.
_COLUMNS = {
    "run_id": "run",
    "status": "status",
    "attached": "attached",
    "created_at": "created",
    "finished_at": "finished",
    "error": "error",
}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``fedlab ls`` to the CLI."""
    parser = commands.add_parser(
        "ls", help="list the runs on a SuperLink", description="List the runs on a SuperLink."
    )
    add_target_arguments(parser)
    add_format_option(parser)
    parser.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Print the SuperLink's runs as a table, or as JSON."""
    out = Output(args.format)
    address = superlink_address(args)
    with control_client(args) as control:
        runs = [dataclasses.asdict(info) for info in control.list_runs()]
    out.document({"success": True, "superlink": address, "runs": runs})
    columns = [c for c in _COLUMNS if any(c in run for run in runs)] or ["run_id"]
    out.table([_COLUMNS[c] for c in columns], run_rows(runs, columns), title=f"Runs on {address}")
    return 0


def run_rows(runs: list[dict[str, Any]], columns: list[str]) -> list[list[object]]:
    """Table rows: one per run, times shown as local month-day and clock time."""
    return [[_cell(c, run.get(c)) for c in columns] for run in runs]


def _cell(column: str, value: object) -> object:
    if column.endswith("_at") and isinstance(value, int | float) and value > 0:
        return time.strftime("%m-%d %H:%M:%S", time.localtime(value))
    return value
