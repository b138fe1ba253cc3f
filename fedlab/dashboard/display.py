"""Which display a run gets: one function owns the names, ``FEDLAB_DISPLAY`` and the fallbacks.

:func:`make_display` turns a :data:`Display` name into an event subscriber. ``"auto"`` looks
at where the code runs: the ``FEDLAB_DISPLAY`` environment variable wins; then a notebook
kernel (Jupyter, Colab, Databricks) gets the live :class:`~fedlab.dashboard.Dashboard`
widget, never rich's live view, which breaks there; then a terminal gets
:class:`~fedlab.dashboard.RichConsole` and anything else (pipe, file, CI log)
:class:`~fedlab.dashboard.PlainConsole`. A notebook display that cannot be shown falls back
step by step: the widget needs a kernel and anywidget, else it is a static PNG; the PNG
needs a kernel and matplotlib, else it is plain lines.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Literal, TextIO, get_args

from fedlab.errors import FederationError
from fedlab.events import Subscriber

__all__ = ["DISPLAYS", "Display", "in_notebook", "make_display", "resolve", "select_console"]

#: How a run shows progress: chosen from where the code runs (``"auto"``), or forced.
Display = Literal["auto", "widget", "static", "rich", "plain", "none"]
#: Every :data:`Display` name; ``FEDLAB_DISPLAY`` takes each of them but ``"auto"``.
DISPLAYS: tuple[Display, ...] = get_args(Display)


def make_display(
    kind: Display = "auto",
    *,
    on_stop: Callable[[], None] | None = None,
    stream: TextIO | None = None,
) -> Subscriber | None:
    """Return the display ``kind`` names, shown if it is a notebook's, or None for ``"none"``.

    ``"widget"`` is the live notebook dashboard, ``"static"`` a PNG of it redrawn every few
    seconds, ``"rich"`` the live terminal view, ``"plain"`` one line per round; ``"auto"``
    picks one as the module explains, and only ``"auto"`` reads ``FEDLAB_DISPLAY``.

    Parameters
    ----------
    kind
        One of :data:`DISPLAYS`.
    on_stop
        What the notebook dashboard's Stop button calls, e.g. ``fed.stop``.
    stream
        Where terminal displays write; None means standard output.

    Raises
    ------
    FederationError
        If ``kind``, or ``FEDLAB_DISPLAY`` for ``"auto"``, is not a display's name.

    Examples
    --------
    >>> make_display("none") is None, type(make_display("plain")).__name__
    (True, 'PlainConsole')
    """
    if kind not in DISPLAYS:
        names = ", ".join(map(repr, DISPLAYS[:-1]))
        raise FederationError(f"display must be {names} or {DISPLAYS[-1]!r}, got {kind!r}.")
    chosen = _from_environment(stream) if kind == "auto" else kind
    if chosen == "none":
        return None
    # Imported here: the consoles pull in rich, which deciding on a display does not need.
    from fedlab.dashboard.console import PlainConsole, RichConsole

    if chosen == "rich":
        from rich.console import Console

        return RichConsole(Console(file=stream) if stream is not None else None)
    if chosen == "plain":
        return PlainConsole(stream)
    return _notebook(chosen, stream, on_stop)


def select_console(
    stream: TextIO | None = None, *, on_stop: Callable[[], None] | None = None
) -> Subscriber | None:
    """Return the display that suits where the code runs: ``make_display("auto", ...)``.

    Raises
    ------
    FederationError
        If ``FEDLAB_DISPLAY`` holds an unknown value.
    """
    return make_display("auto", on_stop=on_stop, stream=stream)


def resolve(kind: Display) -> Display:
    """The display ``kind`` stands for here: ``"auto"`` decided as :func:`make_display` does.

    Raises
    ------
    FederationError
        If ``kind``, or ``FEDLAB_DISPLAY`` for ``"auto"``, is not a display's name.
    """
    if kind not in DISPLAYS:
        names = ", ".join(map(repr, DISPLAYS[:-1]))
        raise FederationError(f"display must be {names} or {DISPLAYS[-1]!r}, got {kind!r}.")
    return _from_environment(None) if kind == "auto" else kind


def in_notebook() -> bool:
    """True inside a Jupyter kernel, Colab or Databricks (IPython is not imported for this)."""
    return _in_notebook()


def _from_environment(stream: TextIO | None) -> Display:
    choice = os.environ.get("FEDLAB_DISPLAY", "").strip().lower()
    named = DISPLAYS[1:]  # every name but "auto"
    if choice in named:
        return choice
    if choice:
        raise FederationError(
            f"FEDLAB_DISPLAY={os.environ['FEDLAB_DISPLAY']!r} is not a display; "
            f"set it to one of {', '.join(named)} or unset it to choose automatically."
        )
    if _in_notebook():
        return "widget"
    return "rich" if _isatty(stream or sys.stdout) else "plain"


def _notebook(kind: str, stream: TextIO | None, on_stop: Callable[[], None] | None) -> Subscriber:
    """Show and return the notebook display ``kind`` (``"widget"`` or ``"static"``)."""
    from fedlab.dashboard.console import PlainConsole

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


def _in_notebook() -> bool:
    """True inside a Jupyter kernel, Colab or Databricks, without importing IPython."""
    if os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        return True
    get_ipython = getattr(sys.modules.get("IPython"), "get_ipython", None)
    if not callable(get_ipython):
        return False
    shell = get_ipython()
    if shell is None:
        return False
    kind = type(shell)
    if "google.colab" in kind.__module__:
        return True
    # Subclasses count (Spyder's kernel); TerminalInteractiveShell is a terminal.
    return any(cls.__name__ == "ZMQInteractiveShell" for cls in kind.__mro__)


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False
