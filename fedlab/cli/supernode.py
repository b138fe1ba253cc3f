"""``fedlab supernode``: start a SuperNode (arguments go to ``fedlab.deploy.supernode``)."""

from __future__ import annotations

import argparse

__all__ = ["register", "run_command"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``fedlab supernode`` to the CLI; ``fedlab supernode --help`` lists its options."""
    parser = commands.add_parser(
        "supernode", help="start a SuperNode (see `fedlab supernode --help`)", add_help=False
    )
    parser.set_defaults(handler=run_command, passthrough=True)


def run_command(args: argparse.Namespace) -> int:
    """Run the SuperNode until it is stopped; return its exit status."""
    from fedlab.deploy.supernode import main

    return main(list(args.rest), prog="fedlab supernode")
