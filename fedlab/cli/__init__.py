"""The ``fedlab`` command-line interface."""

from fedlab.cli.main import main

__all__ = ["main"]
