"""``fedlab log``: stream a run's events from a SuperLink until it finishes."""

from __future__ import annotations

import argparse

from fedlab.cli._follow import follow_run
from fedlab.cli._output import Output, add_format_option
from fedlab.cli._target import add_target_arguments, control_client

__all__ = ["register", "run_command"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``fedlab log`` to the CLI."""
    parser = commands.add_parser(
        "log",
        help="stream a run's events from a SuperLink",
        description="Show a run's events from its start and follow it until it finishes. "
        "--format json prints one JSON object per event and line.",
    )
    parser.add_argument("run_id", type=int, help="the run, as `fedlab ls` shows it")
    add_target_arguments(parser)
    add_format_option(parser)
    parser.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Stream the events; 0 when the run completed, 1 when it failed."""
    out = Output(args.format)
    try:
        with control_client(args) as control:
            _, finished = follow_run(control, args.run_id, out, json_lines=out.json)
    except KeyboardInterrupt:
        return 130
    if finished is not None and finished.error is not None:
        if not out.json:
            out.error(f"Run {args.run_id} failed: {finished.error}")
        return 1
    return 0
