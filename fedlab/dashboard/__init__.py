"""Displays of a running federation: the live notebook dashboard and terminal consoles.

Every display is an event-bus subscriber; :func:`make_display` makes the one a
:data:`Display` name asks for, or for ``"auto"`` the one that suits where the code runs.
:func:`plot_run` draws a finished run with matplotlib (what ``History.plot()`` shows).
:class:`CompareDashboard` shows the federations of ``fl.compare`` in one view.
:class:`Dashboard` (the notebook widget, with the :class:`Followable` and
:class:`Replayable` protocols of :meth:`Dashboard.follow`), the consoles and :func:`plot_run`
are imported on first use, so that choosing a display loads neither ipywidgets nor rich. Numbers and metrics read as
:mod:`fedlab.format` writes them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fedlab.dashboard.display import DISPLAYS, Display, make_display, select_console

if TYPE_CHECKING:
    from fedlab.dashboard._static import plot_run
    from fedlab.dashboard.compare_widget import CompareDashboard, CompareSnapshot
    from fedlab.dashboard.console import PlainConsole, RichConsole
    from fedlab.dashboard.widget import Dashboard, Followable, Replayable

__all__ = [
    "CompareDashboard",
    "CompareSnapshot",
    "DISPLAYS",
    "Dashboard",
    "Display",
    "Followable",
    "PlainConsole",
    "Replayable",
    "RichConsole",
    "make_display",
    "plot_run",
    "select_console",
]


# Where each display lives: imported on first use, so choosing a display (or checking a
# display's name) loads neither rich, matplotlib nor ipywidgets.
_HOMES = {
    "CompareDashboard": "compare_widget",
    "CompareSnapshot": "compare_widget",
    "Dashboard": "widget",
    "Followable": "widget",
    "Replayable": "widget",
    "PlainConsole": "console",
    "RichConsole": "console",
    "plot_run": "_static",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        module = importlib.import_module(f"fedlab.dashboard.{_HOMES[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'fedlab.dashboard' has no attribute {name!r}")
