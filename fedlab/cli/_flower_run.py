"""What ``fedlab run`` does differently for a Flower app project."""

from __future__ import annotations

from fedlab.cli._output import Output

__all__ = ["FLOWER_LINE", "enable_flower"]

#: The one line ``fedlab run`` prints before it runs a Flower app.
FLOWER_LINE = (
    "Running a Flower app: its flwr imports use fedlab's Flower compatibility layer "
    "(fedlab.compat.flower)."
)


def enable_flower(out: Output) -> None:
    """Say that a Flower app runs, and make ``import flwr`` resolve to the compatibility layer."""
    from fedlab.compat.flower import enable

    out.say(FLOWER_LINE)
    enable()
