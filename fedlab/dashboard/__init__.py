"""Displays of a running federation: the live notebook dashboard and terminal consoles.

Every display is an event-bus subscriber; :func:`select_console` picks the one that suits
where the code runs. :class:`Dashboard` (the notebook widget) is imported on first use, so
that ``import fedlab`` does not load ipywidgets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fedlab.dashboard.console import PlainConsole, RichConsole, select_console

if TYPE_CHECKING:
    from fedlab.dashboard.widget import Dashboard

__all__ = ["Dashboard", "PlainConsole", "RichConsole", "select_console"]


def __getattr__(name: str) -> Any:
    if name == "Dashboard":
        from fedlab.dashboard.widget import Dashboard

        return Dashboard
    raise AttributeError(f"module 'fedlab.dashboard' has no attribute {name!r}")
