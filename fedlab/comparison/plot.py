"""`plot_compare`: a comparison's curves in one matplotlib figure, for papers and slides."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from fedlab.errors import FederationError, MissingDependencyError
from fedlab.server import Result

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_compare"]


def plot_compare(
    results: Mapping[str, Result], metric: str | None = None, *, ax: Axes | None = None
) -> Figure:
    """Draw each run's clients' ``metric`` (mean per round over its p10–p90 band) together.

    One line and band per entry, labelled with its name, in one axes with a legend: the
    figure of ``fl.compare(...)`` (whose :class:`~fedlab.comparison.Comparison` is such a
    mapping) or of any runs, e.g. ``{"parent": result, "fork": forked}``.

    Parameters
    ----------
    results
        Results by name; each needs its History (every Federation run has one).
    metric
        The client metric as ``"phase:name"``, e.g. ``"evaluate:accuracy"``; by default
        the most telling one of the first run.
    ax
        Draw into this axes instead of a new figure; its figure is returned.

    Raises
    ------
    MissingDependencyError
        If matplotlib is not installed.
    FederationError
        If a Result has no History.
    """
    if ax is None:
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise MissingDependencyError("matplotlib", "notebook", "fl.plot_compare()") from None
        figure = plt.figure(figsize=(7.0, 4.2), dpi=80)
        plt.close(figure)  # returned, not left for pyplot to show a second time
        ax = figure.add_subplot()
    for name, result in results.items():
        if result.history is None:
            raise FederationError(
                f"The Result {name!r} has no History to plot; plot the Results that "
                "Federation.run(), resume(), fork() or fl.compare() returned."
            )
        result.history.plot(metric, ax=ax, label=name)
    if results:
        ax.legend(fontsize=8)
    return ax.get_figure()  # type: ignore[return-value]
