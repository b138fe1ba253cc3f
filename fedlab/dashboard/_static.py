"""Static pictures of a run with matplotlib: the PNG snapshot, :func:`plot_run` (what
``History.plot()`` draws), and the ``FEDLAB_DISPLAY=static`` view for notebooks that cannot
show widgets.

matplotlib is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import base64
import io
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from fedlab.dashboard._model import TIMING_COLUMNS, DashboardModel
from fedlab.dashboard._throttle import Throttle
from fedlab.errors import MissingDependencyError
from fedlab.events import Event, RunFinished, RunStarted

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["StaticDashboard", "draw", "plot_run", "render_png"]

_STATUS_COLOURS = ["#f3f4f6", "#bfdbfe", "#16a34a", "#dc2626", "#f59e0b"]
_STATUS_NAMES = ["not sampled", "sampled", "finished", "failed", "timed out"]
_TIMING_COLOURS = ["#2563eb", "#f59e0b", "#10b981"]
#: More clients than this are drawn in bins, one pixel row per bin.
MAX_ROWS = 150  # below the panels' height in pixels, so no row is dropped when drawn


def _matplotlib(purpose: str) -> Any:
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError("matplotlib", "notebook", purpose) from None
    return matplotlib, Figure


def draw(model: DashboardModel, metric: str | None = None, figure: Figure | None = None) -> Figure:
    """Draw the dashboard's panels for ``model`` on a matplotlib figure and return it.

    ``metric`` (``"phase:name"``) picks the client metric; by default the most telling one.
    """
    matplotlib, figure_class = _matplotlib("A static dashboard picture")
    from matplotlib.colors import ListedColormap
    from matplotlib.ticker import MaxNLocator

    metric = _chosen(model, metric)
    label = metric.replace(":", " ") if metric else "metric"
    fig = figure if figure is not None else figure_class(figsize=(11, 8.2), dpi=80)
    # Fixed margins: a layout engine would cost more than all the drawing.
    axes = fig.subplot_mosaic(
        [["band", "central"], ["heat", "raster"], ["timing", "text"]],
        height_ratios=[1, 1.5, 0.9],
        width_ratios=[1.6, 1],
        gridspec_kw={"left": 0.07, "right": 0.87, "top": 0.95, "bottom": 0.06, "hspace": 0.42, "wspace": 0.22},
    )
    start, width = model.start_round, max(model.width, 1)
    rounds = np.arange(start, start + width)

    _draw_band(axes["band"], model, metric, colour="#2563eb")

    ax = axes["central"]
    ax.set_title("central evaluation (server)", fontsize=10, loc="left")
    for name, points in list(model.central.items())[:4]:
        xs = sorted(points)
        ax.plot(xs, [points[x] for x in xs], marker="o", markersize=3, label=name)
    if model.central:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no server-side evaluate_fn", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("round", fontsize=8)

    extent = (start - 0.5, start + width - 0.5, model.num_clients - 0.5, -0.5)
    ax = axes["heat"]
    ax.set_title(f"{label} per client and round", fontsize=10, loc="left")
    if metric is not None and model.num_clients:
        grid = _binned(np.ma.masked_invalid(model.grid(metric)), "mean")
        image = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap="viridis", extent=extent)
        fig.colorbar(image, ax=ax, fraction=0.04)
    ax.set_ylabel("client (partition)", fontsize=8)
    ax.set_xlabel("round", fontsize=8)

    ax = axes["raster"]
    ax.set_title("participation", fontsize=10, loc="left")
    if model.num_clients:
        cmap = ListedColormap(_STATUS_COLOURS)
        ax.imshow(_binned(model.status(), "max"), aspect="auto", interpolation="nearest", cmap=cmap, vmin=0,
                  vmax=len(_STATUS_COLOURS) - 1, extent=extent)
    handles = [matplotlib.patches.Patch(color=c, label=n) for c, n in zip(_STATUS_COLOURS, _STATUS_NAMES)]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_xlabel("round", fontsize=8)

    ax = axes["timing"]
    ax.set_title("seconds per round; black ticks: slowest client", fontsize=10, loc="left")
    timing = model.timing()
    bottom = np.zeros(len(timing))
    for k, name in enumerate(TIMING_COLUMNS[:3]):
        ax.bar(rounds[: len(timing)], timing[:, k], bottom=bottom, color=_TIMING_COLOURS[k], label=name)
        bottom = bottom + timing[:, k]
    if len(timing):
        ax.scatter(rounds[: len(timing)], timing[:, 3], marker="_", s=200, color="black")
        ax.legend(fontsize=7)
    ax.set_xlabel("round", fontsize=8)

    ax = axes["text"]
    ax.axis("off")
    ax.text(0, 1, _summary(model), va="top", ha="left", fontsize=9, family="monospace")
    for name, ax in axes.items():
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if name in ("heat", "raster"):
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def _chosen(model: DashboardModel, metric: str | None) -> str | None:
    metrics = model.metrics()
    return metric if metric in metrics else (metrics[0] if metrics else None)


def _draw_band(
    ax: Axes, model: DashboardModel, metric: str | None, colour: str | None = None, label: str | None = None
) -> None:
    """The clients' ``metric`` per round: its mean as a line over its p10–p90 band."""
    name = metric.replace(":", " ") if metric else "metric"
    ax.set_title(f"clients' {name}: mean and p10–p90", fontsize=10, loc="left")
    if metric is not None and model.width:
        band = model.band(metric)
        rounds = np.arange(model.start_round, model.start_round + len(band))
        (line,) = ax.plot(rounds, band[:, 1], color=colour, marker="o", markersize=3, label=label)
        ax.fill_between(rounds, band[:, 0], band[:, 2], color=line.get_color(), alpha=0.2)
    ax.set_xlabel("round", fontsize=8)


def _binned(grid: Any, how: str, rows: int = MAX_ROWS) -> Any:
    """Shrink a clients × rounds grid to at most ``rows`` rows: the mean or max of each bin.

    A pixel row then stands for a bin of clients, and a single failed client still shows
    (``max``), where plain downsampling would drop most rows.
    """
    n = grid.shape[0]
    if n <= rows:
        return grid
    edges = np.linspace(0, n, rows + 1).astype(int)
    bins = [grid[a:b] for a, b in itertools.pairwise(edges)]
    if how == "max":
        return np.stack([b.max(axis=0) for b in bins])
    return np.ma.stack([np.ma.masked_invalid(b).mean(axis=0) for b in bins])


def _summary(model: DashboardModel) -> str:
    lines = [f"{model.strategy or 'federation'}: {model.num_clients} clients"]
    if model.finish is not None:
        lines.append(f"{model.finish.rounds_completed} rounds in {model.finish.duration_s:.1f}s")
    else:
        lines.append(f"round {model.progress.round} of {model.last_round}")
    lines.append(f"{len(model.failures)} failed replies")
    for failure in model.failures[-5:]:
        lines.append(f"  {failure.name} r{failure.round}: {failure.first_line[:40]}")
    return "\n".join(lines)


def render_png(model: DashboardModel, metric: str | None = None) -> bytes:
    """The dashboard of ``model`` as PNG bytes (matplotlib's Agg renderer, no pyplot)."""
    _, figure_class = _matplotlib("The dashboard's PNG snapshot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = figure_class(figsize=(11, 8.2), dpi=80)
    FigureCanvasAgg(fig)
    draw(model, metric, fig)
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


@overload
def plot_run(
    events: Iterable[Event], metric: str | None = None, *, ax: None = None, label: str | None = None
) -> Figure: ...


@overload
def plot_run(
    events: Iterable[Event], metric: str | None = None, *, ax: Axes, label: str | None = None
) -> Axes: ...


def plot_run(
    events: Iterable[Event],
    metric: str | None = None,
    *,
    ax: Axes | None = None,
    label: str | None = None,
) -> Figure | Axes:
    """Draw the run these events tell (e.g. ``history.replay()``) with matplotlib.

    Without ``ax``: a new figure of every dashboard panel, not left open in pyplot. With
    ``ax``: only the clients' ``metric`` (``"phase:name"``, by default the most telling
    one), its line labelled ``label`` (by default the strategy), drawn into ``ax``, which
    is returned.
    ``History.plot()`` is this function for a recorded run.

    Raises
    ------
    MissingDependencyError
        If matplotlib is not installed.
    """
    _matplotlib("History.plot()")
    model = DashboardModel()
    for event in events:
        model.feed(event)
    if ax is not None:
        _draw_band(ax, model, _chosen(model, metric), label=label or model.strategy or None)
        return ax
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(11, 8.2), dpi=80)
    plt.close(fig)  # returned, not left for pyplot to show a second time
    return draw(model, metric, fig)


class StaticDashboard:
    """A PNG of the dashboard in the notebook, redrawn at most every ``interval`` seconds.

    For front ends that cannot show widgets (``FEDLAB_DISPLAY=static``). It keeps one
    output and replaces its picture; the last picture is drawn when the run finishes.
    """

    def __init__(self, interval: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.model = DashboardModel()
        self._throttle = Throttle(interval, clock)
        self._lock = threading.Lock()
        self._handle: Any = None

    def __call__(self, event: Event) -> None:
        """Take in ``event``; redraw if the interval allows or the run ended."""
        with self._lock:
            self.model.feed(event)
            self._throttle.touch()
            if isinstance(event, RunStarted | RunFinished) or self._throttle.due():
                self._show()

    def idle(self) -> None:
        """Redraw pending changes if the interval allows; the run calls this while it waits."""
        with self._lock:
            if self._throttle.due():
                self._show()

    def _show(self) -> None:
        from IPython.display import display

        self._throttle.sent()
        png = base64.b64encode(render_png(self.model)).decode("ascii")
        data = {"image/png": png, "text/plain": f"fedlab dashboard ({self.model.strategy})"}
        if self._handle is None:
            self._handle = display(data, raw=True, display_id=True)  # type: ignore[no-untyped-call]
        else:
            self._handle.update(data, raw=True)
