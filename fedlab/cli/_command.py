"""Registers the app and deployment commands on the ``fedlab`` parser and runs them."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from fedlab.cli import admin, log, ls, new, run, stop, superlink, supernode
from fedlab.errors import FedlabError

__all__ = ["dispatch", "register_commands"]

_MODULES = (new, run, ls, log, stop, superlink, supernode, admin)


def register_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``new``, ``run``, ``ls``, ``log``, ``stop``, ``superlink``, ``supernode`` and the credential commands."""
    for module in _MODULES:
        module.register(commands)


def dispatch(
    parser: argparse.ArgumentParser, args: argparse.Namespace, rest: Sequence[str]
) -> int | None:
    """Run the command ``args`` names, if it is one of these; None otherwise."""
    handler = getattr(args, "handler", None)
    if handler is None:
        return None
    if getattr(args, "passthrough", False):
        args.rest = list(rest)
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return int(handler(args))
    except FedlabError as exc:
        from fedlab.cli._output import Output

        return Output(getattr(args, "format", "text")).error(str(exc))
