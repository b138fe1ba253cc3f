"""Displays of a running federation: terminal consoles (and, later, the notebook view).

Every display is an event-bus subscriber; :func:`select_console` picks the one that suits
where the code runs.
"""

from fedlab.dashboard.console import PlainConsole, RichConsole, select_console

__all__ = ["PlainConsole", "RichConsole", "select_console"]
