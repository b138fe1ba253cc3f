"""The ``fedlab`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fedlab.cli._command import dispatch, register_commands
from fedlab.errors import FedlabError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fedlab`` command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="fedlab", description="Notebook-first federated learning.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "demo", help="train a torch MLP on digits across 20 simulated clients", add_help=False
    )
    register_commands(commands)
    commands.add_parser(
        "datasets", help="write the partitions of a dataset to disk as parquet", add_help=False
    )
    args, rest = parser.parse_known_args(argv)
    if args.version:
        from fedlab.version import __version__

        print(__version__)
        return 0
    if args.command == "demo":
        from fedlab.demo import main as demo_main

        try:
            return demo_main(rest)
        except FedlabError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    if args.command == "datasets":
        from fedlab.cli.datasets import main as datasets_main

        return datasets_main(rest)
    status = dispatch(parser, args, rest)
    if status is not None:
        return status
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
