"""Choose and show a notebook display: the live widget, else a static PNG, else plain lines."""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from fedlab.dashboard.console import PlainConsole, _in_notebook
from fedlab.events import Subscriber

__all__ = ["notebook_display"]


def notebook_display(
    kind: str, stream: TextIO | None = None, *, on_stop: Callable[[], None] | None = None
) -> Subscriber:
    """Show and return the notebook display ``kind`` (``"widget"`` or ``"static"``).

    Falls back step by step when something is missing: the widget needs a Jupyter kernel
    and anywidget; the static PNG needs a kernel and matplotlib; otherwise plain lines
    are written to ``stream``.
    """
    if not _in_notebook():
        return PlainConsole(stream)
    from IPython.display import display

    if kind == "widget":
        try:
            from fedlab.dashboard.widget import Dashboard
        except ImportError:
            kind = "static"
        else:
            view = Dashboard(on_stop=on_stop)
            display(view)  # type: ignore[no-untyped-call]
            return view
    try:
        import matplotlib  # noqa: F401  # only checks that the PNG can be drawn
    except ImportError:
        return PlainConsole(stream)
    from fedlab.dashboard._static import StaticDashboard

    return StaticDashboard()
