"""The live notebook dashboard: one anywidget view of a running federation.

:class:`Dashboard` is an event subscriber. It folds events into a
:class:`~fedlab.dashboard._model.DashboardModel` and sends the model to the browser as
compact binary buffers, at most ``max_rate`` times a second however many events arrive.
Most updates carry only the cells that changed (see ``_delta.py``); the whole grids go
out as traits at a run's start and end, every ``full_interval`` seconds, when the metric
or the grid's shape changes, and when a view finds it missed a delta, so a view made
later (a reload, a second output) and the notebook's saved widget state show the run.
The browser side (``_widget.js``, an inline ES module: no build step) draws it on a
canvas. When a run finishes, every output showing the dashboard also gains a static PNG,
so exported notebooks and viewers without widgets still show the result.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import threading
import time
from collections.abc import Callable, Iterable
from importlib.resources import files
from typing import Any, Protocol

import anywidget
import numpy as np
import numpy.typing as npt
import traitlets

from fedlab.dashboard._delta import DeltaEncoder
from fedlab.dashboard._lines import waiting_line
from fedlab.dashboard._model import DashboardModel
from fedlab.dashboard._rows import RowCache
from fedlab.dashboard._status import status_line
from fedlab.dashboard._throttle import Throttle
from fedlab.dashboard._tracker import RunTracker
from fedlab.events import Event, RunFinished, RunStarted, Subscriber

__all__ = ["Dashboard", "Followable", "Replayable"]

#: Server metrics the central-evaluation panel draws at most.
MAX_CENTRAL = 4


class Replayable(Protocol):
    """A record of a run that yields the events which rebuild it, as a History does."""

    def replay(self) -> Iterable[Event]:
        """Yield the run's events: run started, rounds, replies, run finished."""
        ...


class Followable(Protocol):
    """What :meth:`Dashboard.follow` follows: a :class:`~fedlab.Federation` or the like.

    Its latest run's record (None before the first), a way to hear the events of later
    runs, and the stop that the dashboard's Stop button calls.
    """

    @property
    def history(self) -> Replayable | None:
        """The record of the latest run, or None before the first."""
        ...

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber(event)`` for every event of later runs; return the unsubscribe."""
        ...

    def stop(self) -> None:
        """Ask the current run to stop after its round in progress."""
        ...


def _asset(name: str) -> str:
    return files("fedlab.dashboard").joinpath(name).read_text(encoding="utf-8")


class Dashboard(anywidget.AnyWidget):
    """A live view of a federation: metrics, per-client heatmap, participation and timing.

    ``fed.run()``, ``await fed.run_async()`` and ``fed.start()`` show one automatically in
    a notebook; ``fed.dashboard()`` makes one on demand. Call it with events (it is an
    event subscriber) from the thread that created it, or from any thread when it was
    created on a running event loop: events from other threads then hop to that loop.

    Parameters
    ----------
    on_stop
        Called when the Stop button is pressed, e.g. ``fed.stop``.
    max_rate
        The most updates per second sent to the browser.
    full_interval
        Seconds between sends of the whole grids during a run; the updates in between
        carry only the cells that changed.
    clock
        Seconds on a monotonic clock; tests pass a fake one.

    Examples
    --------
    >>> from fedlab.events import ClientReplied, RunStarted
    >>> view = Dashboard()
    >>> view(RunStarted(run_id=1, num_rounds=3, node_ids=(4, 5), strategy="FedAvg"))
    >>> view(ClientReplied(run_id=1, round=1, phase="train", node_id=5,
    ...                    metrics={"loss": 0.25}, duration_s=0.1))
    >>> view.flush(); (view.round, view.last_round, view.metric, view.grid_metric)
    (1, 3, 'train:loss', 'train:loss')
    """

    _esm = _asset("_widget.js")
    _css = _asset("_widget.css")

    title = traitlets.Unicode("fedlab").tag(sync=True)
    status = traitlets.Unicode("waiting for a run").tag(sync=True)
    round = traitlets.Int(0).tag(sync=True)
    last_round = traitlets.Int(0).tag(sync=True)
    start_round = traitlets.Int(1).tag(sync=True)
    finished = traitlets.Bool(False).tag(sync=True)
    stopping = traitlets.Bool(False).tag(sync=True)
    n_clients = traitlets.Int(0).tag(sync=True)
    n_rounds = traitlets.Int(0).tag(sync=True)
    clients: traitlets.List[Any] = traitlets.List().tag(sync=True)
    metrics = traitlets.List(traitlets.Unicode()).tag(sync=True)
    #: The metric asked for: the picker's choice, or the most telling one by default.
    metric = traitlets.Unicode("").tag(sync=True)
    #: The metric that ``values`` and ``band`` hold, always sent in the same update as they.
    #: It differs from ``metric`` while a choice made in the browser waits for the kernel.
    grid_metric = traitlets.Unicode("").tag(sync=True)
    selected = traitlets.Int(-1).tag(sync=True)
    values = traitlets.Bytes(b"").tag(sync=True)
    participation = traitlets.Bytes(b"").tag(sync=True)
    band = traitlets.Bytes(b"").tag(sync=True)
    timing = traitlets.Bytes(b"").tag(sync=True)
    central = traitlets.Bytes(b"").tag(sync=True)
    central_names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    failures: traitlets.List[Any] = traitlets.List().tag(sync=True)
    #: The number of the full state in the traits above; deltas go on counting from it.
    seq = traitlets.Int(0).tag(sync=True)
    #: Never changes: in the browser one object per model, which its views look it up by.
    _store_key: traitlets.Dict[str, Any] = traitlets.Dict().tag(sync=True)

    def __init__(
        self,
        *,
        on_stop: Callable[[], None] | None = None,
        max_rate: float = 10.0,
        full_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = DashboardModel()
        self._throttle = Throttle(1.0 / max_rate, clock)
        self._full_interval = full_interval
        self._full_at: float | None = None
        self._encoder = DeltaEncoder()
        self._shape: tuple[int, int, str] | None = None
        self._rows = RowCache()
        self._on_stop = on_stop
        self._chosen_by_user = False
        self._updating = False
        self._handles: list[Any] = []
        self._lock = threading.RLock()
        self._thread = threading.get_ident()
        self._context = contextvars.copy_context()
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._timer: asyncio.TimerHandle | None = None
        # Which client a round waits on, once it has waited a few seconds (see idle()).
        self._tracker: RunTracker | None = None
        self._waiting = ""
        self._wall_clock: Callable[[], float] = time.time  # events carry Unix timestamps
        self.on_msg(self._on_message)
        self.observe(self._on_metric, names="metric")

    # -- events in -------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        """Take in ``event``; from another thread it is handed to the dashboard's loop."""
        loop = self._loop
        if threading.get_ident() != self._thread and loop is not None and loop.is_running():
            # Widget changes from bare threads break some ipykernel versions: hop over.
            loop.call_soon_threadsafe(self._receive, event, context=self._context)
            return
        self._receive(event)

    def idle(self) -> None:
        """Send pending changes if the interval allows; the run calls this while it waits.

        Once a round has had no reply for a few seconds, the status line says which
        client it waits on, as the terminal consoles do.
        """
        with self._lock:
            stall = None if self._tracker is None else self._tracker.stall(self._wall_clock())
            waiting = "" if stall is None else waiting_line(stall)
            if waiting != self._waiting:
                self._waiting = waiting
                self._throttle.touch()
            if self._throttle.due():
                self._send_changes()

    def flush(self) -> None:
        """Send the whole current state to the browser now."""
        with self._lock:
            self._push(full=True)
            self._throttle.sent()

    def _send_changes(self) -> None:
        # What changed since the last send, or everything when a full send is due.
        self._push(full=False)
        self._throttle.sent()

    def _receive(self, event: Event) -> None:
        with self._lock:
            self.model.feed(event)
            if isinstance(event, RunStarted):
                self._tracker = RunTracker.from_start(event)
            elif self._tracker is not None:
                self._tracker.feed(event)
            self._waiting = ""  # something moved; idle() says so again if the round stalls
            self._throttle.touch()
            if isinstance(event, RunStarted):
                self.stopping = False
                self.flush()
            elif isinstance(event, RunFinished):
                self.flush()
                self._attach_snapshot()
            elif self._throttle.due():
                self._send_changes()
            else:
                self._schedule()

    def _schedule(self) -> None:
        # A trailing send for the last changes of a burst, when the loop is free to run it.
        loop = self._loop
        if loop is None or self._timer is not None or threading.get_ident() != self._thread:
            return
        self._timer = loop.call_later(self._throttle.wait(), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        with self._lock:
            if self._throttle.due():
                self._send_changes()
            elif self._throttle.dirty:  # woken a little early: try again
                self._schedule()

    # -- state out -------------------------------------------------------------------

    def _pick_metric(self) -> str:
        available = self.model.metrics()
        if self._chosen_by_user and self.metric in available:
            return self.metric
        return available[0] if available else ""

    def _push(self, full: bool) -> None:
        model = self.model
        metric = self._pick_metric()
        names = list(model.central)[:MAX_CENTRAL]
        central = [
            (k, r, v) for k, name in enumerate(names) for r, v in sorted(model.central[name].items())
        ]
        arrays: dict[str, npt.NDArray[Any]] = {
            "values": model.grid(metric),
            "participation": model.status(),
            "band": model.band(metric),
            "timing": model.timing(),
            "central": np.asarray(central, np.float32).reshape(-1, 3),
        }
        lists = {"failures": self._rows.failures(model)}
        now = self._throttle.clock()
        shape = (model.num_clients, model.width, metric)
        stale = self._full_at is None or now - self._full_at >= self._full_interval
        full = full or stale or shape != self._shape or names != self.central_names
        self._updating = True
        try:
            with self.hold_sync():
                self.title = f"{model.strategy or 'federation'} · {model.num_clients} clients"
                if model.note:
                    self.title += f" · {model.note}"
                self.status = self._status_text()
                self.round = max(model.progress.round, 0)
                self.last_round = model.last_round if model.run_id is not None else 0
                self.start_round = model.start_round
                self.finished = model.finished
                self.n_clients, self.n_rounds = model.num_clients, model.width
                self.clients = self._rows.clients(model)
                self.metrics = model.metrics()
                self.metric = metric
                if full:
                    self.failures = lists["failures"]
                    self.grid_metric = metric
                    self.values = arrays["values"].tobytes()
                    self.participation = arrays["participation"].tobytes()
                    self.band = arrays["band"].tobytes()
                    self.timing = arrays["timing"].tobytes()
                    self.central_names = names
                    self.central = arrays["central"].tobytes()
                    self.seq = self._encoder.reset(arrays, lists)
                    self._full_at, self._shape = now, shape
        finally:
            self._updating = False
        if not full:
            delta = self._encoder.delta(arrays, lists)
            if delta is not None:
                content, buffers = delta
                self.send(content, buffers)

    def _status_text(self) -> str:
        return status_line(self.model, self._waiting)

    # -- from the browser ------------------------------------------------------------

    def _on_message(self, _widget: Any, content: Any, _buffers: Iterable[Any]) -> None:
        if isinstance(content, dict) and content.get("type") == "stop":
            self.stop()
        elif isinstance(content, dict) and content.get("type") == "resync":
            # A view missed a delta (or was made after some went out): send it all.
            with self._lock:
                self.flush()

    def _on_metric(self, change: dict[str, Any]) -> None:
        if self._updating:
            return
        with self._lock:
            self._chosen_by_user = True
            self.flush()

    def stop(self) -> None:
        """Ask the run to stop after its current round (what the Stop button does)."""
        self.stopping = True
        if self._on_stop is not None:
            self._on_stop()

    @property
    def selected_node(self) -> int | None:
        """The node id of the client selected in the browser, or None."""
        row = self.selected
        return self.model.node_ids[row] if 0 <= row < self.model.num_clients else None

    # -- display ---------------------------------------------------------------------

    def to_png(self) -> bytes | None:
        """A static PNG of the dashboard, or None if matplotlib is not installed."""
        try:
            from fedlab.dashboard._static import render_png
        except ImportError:  # pragma: no cover - matplotlib is optional
            return None
        try:
            return render_png(self.model, self._pick_metric() or None)
        except ImportError:
            return None

    def bundle(self, png: bytes | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """The display bundle: the live view, a text line, and ``png`` if given."""
        bundle = self._repr_mimebundle_()
        data, metadata = bundle if bundle is not None else ({}, {})
        data["text/plain"] = f"fedlab dashboard: {self.title} · {self._status_text()}"
        if png is not None:
            data["image/png"] = base64.b64encode(png).decode("ascii")
        return data, metadata

    def _ipython_display_(self) -> None:
        # A raw bundle with a display id, so the PNG can join the same output at the end.
        from IPython.display import display

        data, metadata = self.bundle(self.to_png() if self.model.finished else None)
        handle = display(data, raw=True, metadata=metadata, display_id=True)  # type: ignore[no-untyped-call]
        if handle is not None:
            self._handles.append(handle)

    def _attach_snapshot(self) -> None:
        if not self._handles:
            return
        data, metadata = self.bundle(self.to_png())
        for handle in self._handles:
            handle.update(data, raw=True, metadata=metadata)

    # -- construction ----------------------------------------------------------------

    @classmethod
    def follow(cls, source: Followable) -> Dashboard:
        """A dashboard showing ``source``'s latest run and following its later runs.

        ``source`` is a :class:`~fedlab.Federation` (``fed.dashboard()`` calls this) or
        anything else with its ``history``, ``subscribe`` and ``stop`` (see
        :class:`Followable`). A run still in progress is shown as it stands at the call;
        its automatic dashboard (or the next run) keeps following it live.
        """
        view = cls(on_stop=source.stop)
        history = source.history
        if history is not None:
            for event in history.replay():
                view._receive(event)
        view.flush()
        source.subscribe(view)
        return view
