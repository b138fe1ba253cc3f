"""The live dashboard of a comparison: every federation of ``fl.compare`` in one view.

:class:`CompareDashboard` takes each event with the name of its federation (what
``fl.compare`` hands it) and keeps one :class:`~fedlab.dashboard._model.DashboardModel`
per federation. It sends the browser, at most ``max_rate`` times a second: each
federation's curve of the chosen client metric (mean and p10–p90 per round), the
heatmap (clients × rounds) of one federation, picked in the view, and a table of final
metrics. The browser side is ``_compare.js`` (an inline ES module). When the comparison
ends, the output also gains a PNG of the overlaid curves, saved with the notebook.
:class:`CompareSnapshot` is the PNG alone, for front ends without widgets.
"""

from __future__ import annotations

import base64
import io
import math
import threading
import time
from collections.abc import Callable
from importlib.resources import files
from typing import Any

import anywidget
import traitlets

from fedlab.dashboard._model import DashboardModel
from fedlab.dashboard._throttle import Throttle
from fedlab.events import Event, RunFinished, RunStarted

__all__ = ["CompareDashboard", "CompareSnapshot", "compare_png"]


def _asset(name: str) -> str:
    return files("fedlab.dashboard").joinpath(name).read_text(encoding="utf-8")


def _number(value: float) -> float | None:
    """A JSON-safe number: NaN and infinities become None (drawn as gaps)."""
    return float(value) if math.isfinite(value) else None


class CompareDashboard(anywidget.AnyWidget):
    """One live view of several federations: overlaid curves, heatmaps, final metrics.

    Parameters
    ----------
    names
        The federations, in the order they run (each gets the colour of its position).
    max_rate
        The most updates per second sent to the browser.
    clock
        Seconds on a monotonic clock; tests pass a fake one.

    Examples
    --------
    >>> from fedlab.events import ClientReplied, RunStarted
    >>> view = CompareDashboard(["a", "b"])
    >>> for name, loss in (("a", 0.5), ("b", 0.25)):
    ...     view.feed(name, RunStarted(run_id=1, num_rounds=2, node_ids=(4,), strategy="FedAvg"))
    ...     view.feed(name, ClientReplied(run_id=1, round=1, phase="train", node_id=4,
    ...                                   metrics={"loss": loss}, duration_s=0.1))
    >>> view.flush(); [(c["name"], c["mean"]) for c in view.curves]
    [('a', [0.5, None]), ('b', [0.25, None])]
    """

    _esm = _asset("_compare.js")
    _css = _asset("_widget.css")

    title = traitlets.Unicode("fedlab comparison").tag(sync=True)
    status = traitlets.Unicode("waiting for the first run").tag(sync=True)
    names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    metrics = traitlets.List(traitlets.Unicode()).tag(sync=True)
    #: The metric asked for: the picker's choice, or the most telling one by default.
    metric = traitlets.Unicode("").tag(sync=True)
    #: The metric the curves and heatmap hold, sent in the same update as they.
    shown_metric = traitlets.Unicode("").tag(sync=True)
    #: Per federation: name, start round, and per round mean, p10 and p90 (None: no value).
    curves: traitlets.List[Any] = traitlets.List().tag(sync=True)
    #: The federation whose heatmap is shown (the picker's choice; by default the running one).
    heat_of = traitlets.Unicode("").tag(sync=True)
    #: That heatmap: federation, metric, rows (clients), cols (rounds) and start round ...
    heat: traitlets.Dict[str, Any] = traitlets.Dict().tag(sync=True)
    #: ... and its values, row-major float32 (NaN: no value), sent in the same update.
    heat_values = traitlets.Bytes(b"").tag(sync=True)
    table_columns = traitlets.List(traitlets.Unicode()).tag(sync=True)
    table: traitlets.List[Any] = traitlets.List().tag(sync=True)

    def __init__(
        self,
        names: list[str],
        *,
        max_rate: float = 4.0,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.names = list(names)
        self.models: dict[str, DashboardModel] = {name: DashboardModel() for name in names}
        self._throttle = Throttle(1.0 / max_rate, clock)
        self._lock = threading.RLock()
        self._running = names[0] if names else ""
        self._metric_by_user = False
        self._heat_by_user = False
        self._updating = False
        self._handles: list[Any] = []
        self._finished_curves: dict[tuple[str, str], dict[str, Any]] = {}
        self.observe(self._on_choice, names=["metric", "heat_of"])

    # -- events in -------------------------------------------------------------------

    def feed(self, name: str, event: Event) -> None:
        """Take in ``event`` of the federation ``name`` (a new name joins the comparison)."""
        with self._lock:
            if name not in self.models:
                self.models[name] = DashboardModel()
                self.names = [*self.names, name]
            self.models[name].feed(event)
            self._running = name
            self._throttle.touch()
            if isinstance(event, RunStarted | RunFinished) or self._throttle.due():
                self.flush()

    def idle(self) -> None:
        """Send pending changes if the interval allows; a run calls this while it waits."""
        with self._lock:
            if self._throttle.due():
                self.flush()

    def flush(self) -> None:
        """Send the current state to the browser now."""
        with self._lock:
            self._push()
            self._throttle.sent()

    def finish(self) -> None:
        """The comparison ended: send everything and add the PNG of the curves to the output."""
        self.flush()
        if not self._handles:
            return
        data, metadata = self.bundle(compare_png(self.models, self.shown_metric or None))
        for handle in self._handles:
            handle.update(data, raw=True, metadata=metadata)

    # -- state out -------------------------------------------------------------------

    def _all_metrics(self) -> list[str]:
        seen: list[str] = []
        for model in self.models.values():
            seen += [m for m in model.metrics() if m not in seen]
        return seen

    def _push(self) -> None:
        available = self._all_metrics()
        metric = self.metric if self._metric_by_user and self.metric in available else ""
        metric = metric or (available[0] if available else "")
        heat_of = self.heat_of if self._heat_by_user and self.heat_of in self.models else ""
        heat_of = heat_of or self._running
        self._updating = True
        try:
            with self.hold_sync():
                self.metrics = available
                self.metric = metric
                self.shown_metric = metric
                self.curves = [self._curve_of(n, metric) for n in self.models]
                self.heat_of = heat_of
                self.heat, self.heat_values = self._heat(heat_of, metric)
                self.table_columns, self.table = self._table(metric)
                self.status = self._status_text()
        finally:
            self._updating = False

    def _curve_of(self, name: str, metric: str) -> dict[str, Any]:
        """The curve of ``name``; a finished federation's is computed once per metric."""
        model = self.models[name]
        key = (name, metric)
        if model.finished and key in self._finished_curves:
            return self._finished_curves[key]
        curve = self._curve(name, model, metric)
        if model.finished:
            self._finished_curves[key] = curve
        return curve

    @staticmethod
    def _curve(name: str, model: DashboardModel, metric: str) -> dict[str, Any]:
        band = model.band(metric) if metric else model.band("")[:0]
        return {
            "name": name,
            "start": model.start_round,
            "mean": [_number(v) for v in band[:, 1].tolist()],
            "p10": [_number(v) for v in band[:, 0].tolist()],
            "p90": [_number(v) for v in band[:, 2].tolist()],
        }

    def _heat(self, name: str, metric: str) -> tuple[dict[str, Any], bytes]:
        model = self.models.get(name)
        if model is None or not metric:
            return {}, b""
        grid = model.grid(metric)
        shape = {"rows": int(grid.shape[0]), "cols": int(grid.shape[1])}
        return {"federation": name, "metric": metric, **shape, "start": model.start_round}, (
            grid.astype("<f4").tobytes()
        )

    def _table(self, metric: str) -> tuple[list[str], list[list[Any]]]:
        server: list[str] = []
        for model in self.models.values():
            server += [k for k in model.central if k not in server]
        columns = ["federation", "strategy", "rounds", f"{metric} (mean)" if metric else "metric"]
        columns += [f"server:{k}" for k in server]
        rows: list[list[Any]] = []
        for name, model in self.models.items():
            band = model.band(metric) if metric else None
            means = [] if band is None else [v for v in band[:, 1] if math.isfinite(v)]
            row: list[Any] = [name, model.strategy, model.rounds_done, _number(float(means[-1])) if means else None]
            for key in server:
                values = model.central.get(key, {})
                row.append(_number(values[max(values)]) if values else None)
            rows.append(row)
        return columns, rows

    def _status_text(self) -> str:
        done = sum(1 for m in self.models.values() if m.finished)
        total = len(self.models)
        if done == total and total:
            return f"finished: {total} federations"
        running = self.models.get(self._running)
        if running is None or running.run_id is None:
            return "waiting for the first run"
        return (
            f"{done} of {total} finished · running {self._running}: round "
            f"{max(running.progress.round, 0)} of {running.last_round}"
        )

    # -- from the browser ------------------------------------------------------------

    def _on_choice(self, change: dict[str, Any]) -> None:
        if self._updating:
            return
        with self._lock:
            if change["name"] == "metric":
                self._metric_by_user = True
            else:
                self._heat_by_user = True
            self.flush()

    # -- display ---------------------------------------------------------------------

    def bundle(self, png: bytes | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """The display bundle: the live view, a text line, and ``png`` if given."""
        bundle = self._repr_mimebundle_()
        data, metadata = bundle if bundle is not None else ({}, {})
        data["text/plain"] = f"fedlab comparison: {', '.join(self.names)} · {self.status}"
        if png is not None:
            data["image/png"] = base64.b64encode(png).decode("ascii")
        return data, metadata

    def _ipython_display_(self) -> None:
        from IPython.display import display

        data, metadata = self.bundle()
        handle = display(data, raw=True, metadata=metadata, display_id=True)  # type: ignore[no-untyped-call]
        if handle is not None:
            self._handles.append(handle)


def compare_png(models: dict[str, DashboardModel], metric: str | None = None) -> bytes | None:
    """A PNG of every federation's curve of ``metric``, overlaid; None without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    from fedlab.dashboard._static import _chosen, _draw_band

    figure = Figure(figsize=(7.0, 4.2), dpi=80)
    ax = figure.add_subplot()
    first = next(iter(models.values()), DashboardModel())
    chosen = metric or _chosen(first, None)
    for name, model in models.items():
        _draw_band(ax, model, chosen, label=name)
    if models:
        ax.legend(fontsize=8)
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


class CompareSnapshot:
    """A comparison shown as one PNG of the overlaid curves when it ends (no widgets)."""

    def __init__(self) -> None:
        self.models: dict[str, DashboardModel] = {}

    def feed(self, name: str, event: Event) -> None:
        """Take in ``event`` of the federation ``name``."""
        self.models.setdefault(name, DashboardModel()).feed(event)

    def idle(self) -> None:
        """Nothing to send before the end."""

    def finish(self) -> None:
        """Show the PNG of the curves."""
        from IPython.display import display

        png = compare_png(self.models)
        if png is not None:
            data = {"image/png": base64.b64encode(png).decode("ascii"), "text/plain": "fedlab comparison"}
            display(data, raw=True)  # type: ignore[no-untyped-call]
