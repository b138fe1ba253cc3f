"""Choosing and showing notebook displays: widget, static PNG, fallbacks, History.plot()."""

from __future__ import annotations

import base64
import io
import sys
import threading
from typing import Any

import numpy as np
import pytest

import fedlab.dashboard.display as chooser
from fedlab import ClientApp, Context, Federation, Message, MetricRecord, RecordDict
from fedlab.dashboard import Dashboard, PlainConsole, select_console
from fedlab.dashboard._static import StaticDashboard
from fedlab.errors import FederationError
from fedlab.strategy import FedAvg
from tests.unit.dashboard.test_widget import FakeClock, events_of_a_run


class Shown:
    """Stands in for IPython.display.display and its handles."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def display(self, obj: Any, **kwargs: Any) -> Any:
        self.calls.append(("display", obj))
        if hasattr(obj, "_ipython_display_"):
            obj._ipython_display_()
        shown = self

        class Handle:
            def update(self, data: Any, **kwargs: Any) -> None:
                shown.calls.append(("update", data))

        return Handle()


@pytest.fixture
def in_kernel(monkeypatch: pytest.MonkeyPatch) -> Shown:
    import IPython.display

    shown = Shown()
    monkeypatch.setattr(IPython.display, "display", shown.display)
    monkeypatch.setattr(chooser, "_in_notebook", lambda: True)
    monkeypatch.delenv("FEDLAB_DISPLAY", raising=False)
    return shown


def test_a_notebook_kernel_gets_the_live_widget_shown_in_the_cell(in_kernel: Shown) -> None:
    stops: list[int] = []
    chosen = select_console(on_stop=lambda: stops.append(1))
    assert isinstance(chosen, Dashboard)
    assert in_kernel.calls[0] == ("display", chosen)
    chosen.stop()
    assert stops == [1]


def test_fedlab_display_static_gives_a_png_redrawn_at_most_every_interval(
    in_kernel: Shown, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEDLAB_DISPLAY", "static")
    assert isinstance(select_console(), StaticDashboard)
    clock = FakeClock()
    view = StaticDashboard(interval=2.0, clock=clock)
    for event in events_of_a_run(3, 4, clock=clock, step=0.1):  # 4 rounds of 6 events: 2.5 s
        view(event)
    pictures = [data["image/png"] for kind, data in in_kernel.calls if isinstance(data, dict)]
    # RunStarted, then one redraw once 2 s had passed, then RunFinished.
    assert len(pictures) == 3
    assert [kind for kind, _ in in_kernel.calls][-3:] == ["display", "update", "update"]
    assert base64.b64decode(pictures[-1]).startswith(b"\x89PNG")


def test_outside_a_kernel_widget_and_static_fall_back_to_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chooser, "_in_notebook", lambda: False)
    stream = io.StringIO()
    assert isinstance(chooser.make_display("widget", stream=stream), PlainConsole)
    assert isinstance(chooser.make_display("static", stream=stream), PlainConsole)


def test_without_anywidget_a_kernel_gets_the_static_png(in_kernel: Shown, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fedlab.dashboard.widget", None)  # import fails
    assert isinstance(chooser.make_display("widget"), StaticDashboard)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert isinstance(chooser.make_display("widget"), PlainConsole)


def test_federation_accepts_widget_and_static_and_names_every_display_in_its_error() -> None:
    app = ClientApp()
    app.train()(lambda msg, ctx: msg)
    for display in ("widget", "static"):
        Federation(app, strategy=FedAvg(fraction_evaluate=0.0), initial_arrays=[np.zeros(1)], display=display)  # type: ignore[arg-type]
    with pytest.raises(FederationError, match="'auto', 'widget', 'static', 'rich', 'plain' or 'none'"):
        Federation(app, strategy=FedAvg(fraction_evaluate=0.0), initial_arrays=[np.zeros(1)], display="fancy")  # type: ignore[arg-type]


def test_a_display_is_told_when_the_run_is_idle_so_it_can_send_pending_changes() -> None:
    idled = threading.Event()

    class Display:
        def __call__(self, event: object) -> None:
            pass

        def idle(self) -> None:
            idled.set()

    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        # The client waits until the display heard that nothing was happening.
        assert idled.wait(timeout=60)
        metrics = MetricRecord({"num-examples": 1})
        return msg.reply(RecordDict({"arrays": msg.content["arrays"], "metrics": metrics}))

    fed = Federation(app, strategy=FedAvg(fraction_evaluate=0.0), num_clients=2,
                     initial_arrays=[np.zeros(1)], display="none")
    fed.subscribe(Display())
    assert fed.run(rounds=1).rounds_completed == 1


def test_history_plot_draws_the_dashboard_panels_from_a_finished_run() -> None:
    from fedlab.history import History

    history = History()
    for event in events_of_a_run(4, 3, failing=1):
        history(event)
    figure = history.plot()
    titles = {ax.get_title(loc="left") for ax in figure.axes}
    assert {"clients' train loss: mean and p10–p90", "participation", "central evaluation (server)"} <= titles
    heat = next(ax for ax in figure.axes if ax.get_title(loc="left") == "train loss per client and round")
    grid = np.ma.getdata(heat.images[0].get_array())
    assert grid[3, 2] == np.float32(4 / 4) and np.isnan(grid[1, 0])
    accuracy = history.plot("train:accuracy")
    assert any(ax.get_title(loc="left") == "train accuracy per client and round" for ax in accuracy.axes)
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # returned, not left open in pyplot


def test_history_plot_draws_two_runs_into_the_two_axes_of_one_figure() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from fedlab.history import History

    four, two = History(), History()
    for event in events_of_a_run(4, 3):
        four(event)
    for event in events_of_a_run(2, 2, failing=1):
        two(event)
    figure = Figure()
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    assert four.plot(ax=left) is left
    assert two.plot("train:loss", ax=right) is right
    assert figure.axes == [left, right]  # nothing added beside them
    (line,) = left.get_lines()
    # Client c reports loss (c + 1) / (r + 1) in round r: the mean of 4 clients is 2.5 / (r + 1).
    assert line.get_xdata().tolist() == [1, 2, 3]
    assert line.get_ydata().tolist() == pytest.approx([2.5 / 2, 2.5 / 3, 2.5 / 4], rel=1e-6)  # float32
    assert line.get_label() == "FedAvg"
    (only,) = right.get_lines()  # client 1 failed: client 0 alone, 1 / (r + 1)
    assert only.get_ydata().tolist() == pytest.approx([1 / 2, 1 / 3], rel=1e-6)
    assert right.get_title(loc="left") == "clients' train loss: mean and p10–p90"
    png = io.BytesIO()
    figure.savefig(png, format="png")
    assert png.getvalue().startswith(b"\x89PNG")


def test_two_runs_drawn_into_one_axes_get_a_colour_each() -> None:
    from matplotlib.figure import Figure

    from fedlab.history import History

    ax = Figure().subplots()
    for clients in (2, 3):
        history = History()
        for event in events_of_a_run(clients, 2):
            history(event)
        history.plot(ax=ax)
    from matplotlib.colors import to_rgb

    first, second = ax.get_lines()
    assert to_rgb(first.get_color()) != to_rgb(second.get_color())
    bands = [tuple(band.get_facecolor()[0][:3].tolist()) for band in ax.collections]
    assert bands == [to_rgb(first.get_color()), to_rgb(second.get_color())]  # each band its line's


def test_importing_fedlab_dashboard_does_not_load_ipywidgets() -> None:
    import subprocess

    code = "import sys, fedlab, fedlab.dashboard; print('ipywidgets' in sys.modules, 'anywidget' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]



def test_the_static_picture_keeps_one_failed_client_of_a_thousand_visible() -> None:
    from fedlab.dashboard._model import FAILED, DashboardModel
    from fedlab.dashboard._static import MAX_ROWS, draw

    model = DashboardModel()
    for event in events_of_a_run(1000, 2, failing=500):
        model.feed(event)
    figure = draw(model)
    raster = next(ax for ax in figure.axes if ax.get_title(loc="left") == "participation")
    shown = np.asarray(raster.images[0].get_array())
    assert shown.shape == (MAX_ROWS, 2)  # one row per bin of clients
    assert (shown == FAILED).sum() == 2  # the bin holding client 500, in both rounds
    heat = next(ax for ax in figure.axes if ax.get_title(loc="left") == "train loss per client and round")
    # Bin 0 holds clients 0..5 (1000 / 150 = 6.67 per bin): the mean of (c + 1) / 2 over them.
    assert np.ma.getdata(heat.images[0].get_array())[0, 0] == pytest.approx(np.mean([(c + 1) / 2 for c in range(6)]))
