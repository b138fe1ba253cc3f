"""Which SuperLink a command talks to: ``--superlink``, a project's federation, or the default."""

from __future__ import annotations

import argparse
from pathlib import Path

from fedlab.cli._project import DEFAULT_ADDRESS, load_project
from fedlab.errors import FederationError

__all__ = ["add_target_arguments", "superlink_address"]


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``[APP] [FEDERATION]`` and ``--superlink HOST:PORT`` to ``parser``."""
    parser.add_argument("app", nargs="?", help="app project whose federation names the SuperLink")
    parser.add_argument("federation", nargs="?", help="federation in the project's pyproject.toml")
    parser.add_argument(
        "--superlink",
        metavar="HOST:PORT",
        help=f"the SuperLink's Control API (default: from the project, else {DEFAULT_ADDRESS})",
    )


def superlink_address(args: argparse.Namespace) -> str:
    """Return the Control API address the command should use."""
    if args.superlink:
        return str(args.superlink)
    directory = Path(args.app) if args.app else Path.cwd()
    if args.app is None and not (directory / "pyproject.toml").exists():
        return DEFAULT_ADDRESS
    project = load_project(directory)
    federation = project.federation(args.federation)
    if federation.address is None:
        raise FederationError(
            f"Federation {federation.name!r} is a simulation, which runs inside `fedlab run`; "
            "name a federation with an address, or pass --superlink HOST:PORT."
        )
    return federation.address
