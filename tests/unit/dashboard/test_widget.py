"""The notebook dashboard without a browser: traits and buffers, throttling, display bundle."""

from __future__ import annotations

import asyncio
import base64
import contextvars
import threading
from collections.abc import Iterator
from typing import Any

import comm
import numpy as np
import pytest
from comm.base_comm import BaseComm

from fedlab.dashboard import Dashboard
from fedlab.events import (
    ClientReplied,
    Evaluated,
    Event,
    RoundAggregated,
    RoundStarted,
    RunFinished,
    RunStarted,
)
from fedlab.message import Error, ErrorCode

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class RecordingComm(BaseComm):
    """Keeps every message a widget sends, as the kernel's comm would publish it."""

    def __init__(self, **kwargs: Any) -> None:
        self.sent: list[dict[str, Any]] = []
        super().__init__(**kwargs)

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any) -> None:
        self.sent.append({"type": msg_type, "data": data, "buffers": buffers or []})

    def updates(self) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["type"] == "comm_msg" and m["data"].get("method") == "update"]


@pytest.fixture(autouse=True)
def recording_comms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(comm, "create_comm", lambda **kwargs: RecordingComm(**kwargs))


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def events_of_a_run(
    clients: int, rounds: int, failing: int | None = None, clock: FakeClock | None = None, step: float = 0.0
) -> Iterator[Event]:
    """A FedAvg-like run; client ``c`` reports loss ``(c + 1) / (r + 1)`` in round ``r``."""

    def tick() -> float:
        if clock is not None:
            clock.now += step
            return clock.now
        return 0.0

    nodes = tuple(1000 + c for c in range(clients))
    yield RunStarted(run_id=1, num_rounds=rounds, node_ids=nodes, strategy="FedAvg", timestamp=tick())
    for r in range(1, rounds + 1):
        yield RoundStarted(run_id=1, round=r, phase="train", node_ids=nodes, timestamp=tick())
        for c, node in enumerate(nodes):
            error = Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, "ValueError: no data\nTraceback ...") if c == failing else None
            metrics = {} if error else {"loss": (c + 1) / (r + 1), "accuracy": r / rounds}
            yield ClientReplied(run_id=1, round=r, phase="train", node_id=node, metrics=metrics,
                                duration_s=0.01 * (c + 1), error=error, partition_id=c, timestamp=tick())
        yield RoundAggregated(run_id=1, round=r, metrics={}, num_replies=clients, num_failures=0,
                              train_duration_s=1.0, aggregate_duration_s=0.25, timestamp=tick())
        yield Evaluated(run_id=1, round=r, source="server", metrics={"accuracy": r / 10}, duration_s=0.5,
                        timestamp=tick())
    yield RunFinished(run_id=1, rounds_completed=rounds, duration_s=float(rounds), timestamp=tick())


def floats(data: bytes, *shape: int) -> np.ndarray[Any, Any]:
    return np.frombuffer(data, np.float32).reshape(shape)


def test_events_become_float32_and_uint8_buffers_and_progress_traits() -> None:
    view = Dashboard()
    for event in events_of_a_run(4, 3, failing=2):
        view(event)
    assert (view.n_clients, view.n_rounds, view.round, view.last_round) == (4, 3, 3, 3)
    assert view.metric == "train:loss" and view.metrics == ["train:loss", "train:accuracy"]
    values = floats(view.values, 4, 3)
    expected = np.array([[(c + 1) / (r + 1) for r in range(1, 4)] for c in range(4)], np.float32)
    expected[2] = np.nan
    np.testing.assert_array_equal(values, expected)
    np.testing.assert_array_equal(np.frombuffer(view.participation, np.uint8).reshape(4, 3)[:, 0], [2, 2, 3, 2])
    band = floats(view.band, 3, 3)
    np.testing.assert_allclose(band[:, 1], [(1 + 2 + 4) / 3 / (r + 1) for r in range(1, 4)], rtol=1e-6)
    np.testing.assert_allclose(floats(view.timing, 3, 4)[0], [1.0, 0.25, 0.5, 0.04], rtol=1e-6)
    assert view.central_names == ["accuracy"]
    np.testing.assert_allclose(floats(view.central, 3, 3), [[0, 1, 0.1], [0, 2, 0.2], [0, 3, 0.3]], rtol=1e-6)
    assert view.clients == [["1000", 0], ["1001", 1], ["1002", 2], ["1003", 3]]
    assert [(f["client"], f["round"], f["code"]) for f in view.failures] == [(2, r, "CLIENT_APP_RAISED_EXCEPTION") for r in (1, 2, 3)]
    assert view.failures[0]["reason"].startswith("ValueError: no data\nTraceback")
    assert view.finished and view.status == "finished: 3 rounds in 3.00s, 3 client failures"


def test_the_title_says_what_the_run_left_out() -> None:
    view = Dashboard()
    note = "federated evaluation skipped: the ClientApp has no @app.evaluate()"
    view(RunStarted(run_id=1, num_rounds=1, node_ids=(5, 6), strategy="FedAvg", note=note))
    assert view.title == f"FedAvg · 2 clients · {note}"
    view(RunStarted(run_id=2, num_rounds=1, node_ids=(5, 6), strategy="FedAvg"))
    assert view.title == "FedAvg · 2 clients"


def test_a_thousand_clients_over_fifty_rounds_send_at_most_ten_updates_a_second() -> None:
    clock = FakeClock()
    view = Dashboard(clock=clock)
    channel: RecordingComm = view.comm
    sent_at: list[float] = []
    send = channel.publish_msg

    def stamp(msg_type: str, data: Any = None, *args: Any, **kwargs: Any) -> None:
        if msg_type == "comm_msg" and data.get("method") == "update":
            sent_at.append(clock.now)
        send(msg_type, data, *args, **kwargs)

    channel.publish_msg = stamp  # type: ignore[method-assign]
    events = 0
    for event in events_of_a_run(1000, 50, clock=clock, step=0.0005):
        view(event)
        events += 1
    seconds = clock.now
    assert events == 1 + 50 * 1003 + 1 and seconds == pytest.approx(events * 0.0005)
    # Forced sends at the start and the end; in between at least 0.1 s apart.
    gaps = np.diff(sent_at[:-1])
    assert gaps.min() >= 0.1 - 1e-9
    assert len(sent_at) <= 10 * seconds + 2
    assert len(sent_at) >= 9 * seconds  # and it does keep the view fresh
    values = floats(view.values, 1000, 50)
    assert values[999, 49] == np.float32(1000 / 51) and values[0, 0] == np.float32(0.5)
    assert view.round == 50 and view.finished


def test_an_update_carries_only_what_changed_in_one_message() -> None:
    clock = FakeClock()
    view = Dashboard(clock=clock)
    channel: RecordingComm = view.comm
    run = list(events_of_a_run(3, 2))
    for event in run[:3]:  # RunStarted is sent at once; the next two wait for the interval
        view(event)
    assert len(channel.updates()) == 1
    clock.now = 0.5
    view.idle()
    (update,) = channel.updates()[1:]
    buffers = {path[0] for path in update["data"]["buffer_paths"]}
    assert buffers == {"values", "participation", "band", "timing"}
    assert len(update["buffers"]) == 4
    assert "title" not in update["data"]["state"]  # unchanged traits are not resent
    view.idle()
    assert len(channel.updates()) == 2  # nothing pending: nothing sent


def test_the_stop_button_message_stops_the_run() -> None:
    calls: list[str] = []
    view = Dashboard(on_stop=lambda: calls.append("stop"))
    view._handle_msg({"content": {"data": {"method": "custom", "content": {"type": "stop"}}}, "buffers": []})
    assert calls == ["stop"] and view.stopping


def test_a_metric_chosen_in_the_browser_is_sent_at_once_and_kept() -> None:
    clock = FakeClock()
    view = Dashboard(clock=clock)
    for event in list(events_of_a_run(2, 2))[:-1]:
        view(event)
    view._handle_msg({"content": {"data": {"method": "update", "state": {"metric": "train:accuracy"}, "buffer_paths": []}}, "buffers": []})
    np.testing.assert_allclose(floats(view.values, 2, 2), [[0.5, 1.0], [0.5, 1.0]])
    view(RunFinished(run_id=1, rounds_completed=2, duration_s=2.0))
    assert (view.metric, view.grid_metric) == ("train:accuracy", "train:accuracy")


def browser_asks_for(view: Dashboard, metric: str) -> None:
    view._handle_msg({"content": {"data": {"method": "update", "state": {"metric": metric}, "buffer_paths": []}}, "buffers": []})


def sent_buffers(update: dict[str, Any]) -> dict[str, bytes]:
    return {path[0]: bytes(data) for path, data in zip(update["data"]["buffer_paths"], update["buffers"])}


def test_the_grid_travels_with_the_name_of_its_metric_in_one_update_message() -> None:
    clock = FakeClock()
    view = Dashboard(clock=clock)
    channel: RecordingComm = view.comm
    for event in list(events_of_a_run(2, 2))[:4]:  # up to both replies of round 1
        view(event)
    view.flush()
    update = channel.updates()[-1]
    assert update["data"]["state"]["grid_metric"] == "train:loss"
    grids = sent_buffers(update)
    np.testing.assert_allclose(floats(grids["values"], 2, 2), [[0.5, np.nan], [1.0, np.nan]])
    np.testing.assert_allclose(floats(grids["band"], 2, 3)[0], [0.55, 0.75, 0.95], rtol=1e-6)


def test_a_metric_asked_for_by_the_browser_comes_back_as_its_grid_named_after_it() -> None:
    clock = FakeClock()
    view = Dashboard(clock=clock)
    channel: RecordingComm = view.comm
    for event in list(events_of_a_run(2, 2))[:-1]:
        view(event)
    sent_before = len(channel.updates())
    browser_asks_for(view, "train:accuracy")
    (update,) = channel.updates()[sent_before:]
    assert update["data"]["state"]["grid_metric"] == "train:accuracy"
    grids = sent_buffers(update)
    np.testing.assert_allclose(floats(grids["values"], 2, 2), [[0.5, 1.0], [0.5, 1.0]])
    np.testing.assert_allclose(floats(grids["band"], 2, 3), [[0.5, 0.5, 0.5], [1.0, 1.0, 1.0]])
    assert (view.metric, view.grid_metric) == ("train:accuracy", "train:accuracy")


def test_a_metric_the_kernel_has_no_grid_for_is_answered_with_the_one_it_shows() -> None:
    view = Dashboard(clock=FakeClock())
    channel: RecordingComm = view.comm
    for event in list(events_of_a_run(2, 2))[:-1]:
        view(event)
    view.flush()
    sent_before = len(channel.updates())
    browser_asks_for(view, "train:f1")
    (update,) = channel.updates()[sent_before:]
    assert update["data"]["state"] == {"metric": "train:loss"}  # the picker goes back to it
    assert (view.metric, view.grid_metric) == ("train:loss", "train:loss")


def test_clicking_a_client_in_the_browser_tells_the_kernel_its_node() -> None:
    view = Dashboard()
    for event in events_of_a_run(3, 1):
        view(event)
    assert view.selected_node is None
    view._handle_msg({"content": {"data": {"method": "update", "state": {"selected": 2}, "buffer_paths": []}}, "buffers": []})
    assert view.selected_node == 1002


def test_at_run_finished_every_displayed_output_gains_a_png_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display

    shown: list[dict[str, Any]] = []

    class Handle:
        def update(self, data: dict[str, Any], **kwargs: Any) -> None:
            shown.append({"update": data, **kwargs})

    def display(data: dict[str, Any], **kwargs: Any) -> Handle:
        shown.append({"display": data, **kwargs})
        return Handle()

    monkeypatch.setattr(IPython.display, "display", display)
    view = Dashboard()
    view._ipython_display_()
    first = shown[0]
    assert first["raw"] and first["display_id"] is True
    assert first["display"][WIDGET_VIEW]["model_id"] == view.model_id
    assert "image/png" not in first["display"]
    for event in events_of_a_run(5, 3, failing=1):
        view(event)
    final = shown[-1]["update"]
    assert final[WIDGET_VIEW]["model_id"] == view.model_id
    png = base64.b64decode(final["image/png"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    assert final["text/plain"].startswith("fedlab dashboard: FedAvg · 5 clients · finished: 3 rounds")


def test_events_from_another_thread_reach_the_widget_on_its_loop_with_the_cells_context() -> None:
    cell = contextvars.ContextVar("cell", default="none")

    async def scenario() -> tuple[Dashboard, list[tuple[int, str]]]:
        cell.set("cell 3")
        view = Dashboard()
        seen: list[tuple[int, str]] = []
        receive = view._receive

        def spy(event: Event) -> None:
            seen.append((threading.get_ident(), cell.get()))
            receive(event)

        view._receive = spy  # type: ignore[method-assign]
        worker = threading.Thread(target=lambda: [view(e) for e in events_of_a_run(2, 1)])
        worker.start()
        while worker.is_alive() or len(seen) < 7:
            await asyncio.sleep(0.01)
        worker.join()
        return view, seen

    loop_thread = threading.get_ident()
    view, seen = asyncio.run(scenario())
    assert seen == [(loop_thread, "cell 3")] * 7  # RunStarted … RunFinished
    assert view.finished and view.round == 1


def test_fed_dashboard_shows_the_latest_run_and_follows_the_next() -> None:
    from tests.unit.test_federation import make_fed

    fed = make_fed(num_clients=4, strategy=__import__("fedlab").strategy.FedAvg(fraction_evaluate=0.0))
    first = fed.run(rounds=2)
    view = fed.dashboard()
    assert first.history is not None
    losses = first.history.client_metric("loss", by="node")
    assert losses
    values = floats(view.values, 4, 2)
    for row, node in enumerate(view.model.node_ids):
        for r, loss in losses.get(node, {}).items():
            assert values[row, r - 1] == np.float32(loss)
    assert view.finished and view.round == 2
    fed.run(rounds=3)
    assert view.last_round == 3 and view.round == 3 and view.model.run_id == fed.history.run_id  # type: ignore[union-attr]


class RecordedRun:
    """Not a Federation: only the history, subscribe and stop that Dashboard.follow needs."""

    def __init__(self, history: Any) -> None:
        self.history = history
        self.subscribers: list[Any] = []
        self.stops = 0

    def subscribe(self, subscriber: Any) -> Any:
        self.subscribers.append(subscriber)
        return lambda: self.subscribers.remove(subscriber)

    def stop(self) -> None:
        self.stops += 1


def test_dashboard_follow_shows_any_source_with_a_history_subscribe_and_stop() -> None:
    from fedlab.history import History

    history = History()
    for event in events_of_a_run(3, 2, failing=1):
        history(event)
    source = RecordedRun(history)
    view = Dashboard.follow(source)
    assert (view.n_clients, view.round, view.last_round, view.finished) == (3, 2, 2, True)
    assert len(view.failures) == 2  # client 1 in both rounds
    assert source.subscribers == [view]
    view.stop()  # the Stop button
    assert source.stops == 1
    for event in events_of_a_run(2, 4):  # the source's next run reaches the view
        source.subscribers[0](event)
    assert (view.n_clients, view.round, view.last_round) == (2, 4, 4)
    fresh = Dashboard.follow(RecordedRun(None))  # nothing run yet
    assert (fresh.status, fresh.finished) == ("waiting for a run", False)


def test_on_a_running_loop_the_last_changes_of_a_burst_are_sent_by_a_timer() -> None:
    async def scenario() -> int:
        view = Dashboard(max_rate=20)
        run = list(events_of_a_run(2, 1))
        view(run[0])  # RunStarted: sent at once
        view(run[1])  # within the interval: left for the timer
        sent_before = len(view.comm.updates())
        await asyncio.sleep(0.2)  # the timer (due after 0.05 s) runs before this sleep ends
        return len(view.comm.updates()) - sent_before

    assert asyncio.run(scenario()) == 1
