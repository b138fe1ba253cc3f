"""``fedlab superlink``: start a SuperLink (arguments go to ``fedlab.deploy.superlink``)."""

from __future__ import annotations

import argparse

__all__ = ["register", "run_command"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``fedlab superlink`` to the CLI; ``fedlab superlink --help`` lists its options."""
    parser = commands.add_parser(
        "superlink", help="start a SuperLink (see `fedlab superlink --help`)", add_help=False
    )
    parser.set_defaults(handler=run_command, passthrough=True)


def run_command(args: argparse.Namespace) -> int:
    """Run the SuperLink until it is stopped; return its exit status."""
    from fedlab.deploy.superlink import main

    return main(list(args.rest), prog="fedlab superlink")
