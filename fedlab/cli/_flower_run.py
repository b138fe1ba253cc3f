"""What ``fedlab run`` does differently for a Flower app project or a Flower script."""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

from fedlab.cli._output import Output
from fedlab.errors import FederationError

__all__ = ["FLOWER_LINE", "enable_flower", "run_flower_script"]

#: The one line ``fedlab run`` prints before it runs a Flower app.
FLOWER_LINE = (
    "Running a Flower app: its flwr imports use fedlab's Flower compatibility layer "
    "(fedlab.compat.flower)."
)

#: Options that mean something only for a project, refused for a script.
_PROJECT_OPTIONS = ("federation", "run_config", "federation_config", "superlink", "detach")


def enable_flower(out: Output) -> None:
    """Say that a Flower app runs, and make ``import flwr`` resolve to the compatibility layer."""
    from fedlab.compat.flower import enable

    out.say(FLOWER_LINE)
    enable()


def run_flower_script(path: Path, args: argparse.Namespace, out: Output) -> int:
    """Run a script that calls ``flwr.simulation.run_simulation`` as ``python`` would, on fedlab.

    The script runs as ``__main__`` with its directory first on ``sys.path`` and
    ``sys.argv == [path]``; its exit status is the command's.
    """
    given = [name for name in _PROJECT_OPTIONS if getattr(args, name, None)]
    if given:
        flags = ", ".join(
            "FEDERATION" if n == "federation" else f"--{n.replace('_', '-')}" for n in given
        )
        raise FederationError(
            f"{path} is a script: {flags} apply to app projects only; the script sets its own "
            "run_simulation(...) arguments."
        )
    enable_flower(out)
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [str(path)]
    sys.path.insert(0, str(path.resolve().parent))
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    return 0
