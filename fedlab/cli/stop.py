"""``fedlab stop``: ask a run on a SuperLink to stop after its current round."""

from __future__ import annotations

import argparse

from fedlab.cli._output import Output, add_format_option
from fedlab.cli._target import add_target_arguments, control_client

__all__ = ["register", "run_command"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``fedlab stop`` to the CLI."""
    parser = commands.add_parser(
        "stop",
        help="stop a run on a SuperLink",
        description="Ask a run to stop after its current round.",
    )
    parser.add_argument("run_id", type=int, help="the run, as `fedlab ls` shows it")
    add_target_arguments(parser)
    add_format_option(parser)
    parser.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Send the stop request."""
    out = Output(args.format)
    with control_client(args) as control:
        control.stop_run(args.run_id)
    out.document({"success": True, "run-id": args.run_id})
    out.say(f"Asked run [bold]{args.run_id}[/] to stop after its current round.")
    return 0
