"""The live dashboard's deltas, read back by a Python mirror of what ``_widget.js`` does.

``Browser`` keeps the grids as the view's store does: rebuilt from the traits whenever a
full state arrives (its ``seq`` changes), patched in place by each delta message, and on a
gap it asks the kernel for the whole state. The tests compare its grids, bit for bit, with
what the kernel's model holds at the moment of each message.
"""

from __future__ import annotations

from typing import Any

import comm
import numpy as np
import numpy.typing as npt
import pytest

from fedlab.dashboard import Dashboard
from fedlab.dashboard._model import FAILED, DashboardModel
from fedlab.events import ClientReplied, Event, RoundStarted
from fedlab.message import Error, ErrorCode
from tests.unit.dashboard.test_widget import FakeClock, RecordingComm, events_of_a_run


@pytest.fixture(autouse=True)
def recording_comms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(comm, "create_comm", lambda **kwargs: RecordingComm(**kwargs))


TYPES: dict[str, type[np.generic]] = {
    "values": np.float32, "participation": np.uint8, "band": np.float32, "timing": np.float32,
    "central": np.float32,
}


class Browser:
    """One page's store of a dashboard model, fed the messages the kernel published."""

    def __init__(self, view: Dashboard, state: dict[str, Any] | None = None) -> None:
        self.view, self.channel = view, view.comm
        self.read = len(self.channel.sent)  # messages before this are not seen
        self.state = dict(state if state is not None else view.get_state())
        self.asked = 0
        self.deltas = 0
        self.rebuild()

    def rebuild(self) -> None:
        self.seq = self.state["seq"]
        self.arrays = {name: np.frombuffer(bytes(self.state[name]), t).copy() for name, t in TYPES.items()}
        self.failures = list(self.state["failures"])
        self.waiting = False

    def apply(self, content: dict[str, Any], buffers: list[Any]) -> bool:
        if content["seq"] != self.seq + 1:
            return False
        k = 0
        for part in content["parts"]:
            if part["name"] == "failures":
                self.failures = list(part["items"]) if "items" in part else (
                    self.failures[part["drop"]:] + part["append"])
                continue
            kind = TYPES[part["name"]]
            if part.get("whole"):
                self.arrays[part["name"]] = np.frombuffer(bytes(buffers[k]), kind).copy()
                k += 1
                continue
            cells = np.frombuffer(bytes(buffers[k]), np.uint32)
            data = np.frombuffer(bytes(buffers[k + 1]), kind)
            k += 2
            assert len(cells) == len(data) == part["cells"]
            self.arrays[part["name"]][cells] = data
        self.seq = content["seq"]
        return True

    def receive(self) -> int:
        """Take every message sent since the last call, in order; how many."""
        new = self.channel.sent[self.read :]
        self.read = len(self.channel.sent)
        for message in new:
            data = message["data"]
            if message["type"] != "comm_msg":
                continue
            if data["method"] == "update":
                state = dict(data["state"])
                for (name,), buffer in zip(data["buffer_paths"], message["buffers"]):
                    state[name] = buffer
                self.state.update(state)
                if "seq" in state:
                    self.rebuild()
            elif data["method"] == "custom" and data["content"].get("type") == "delta":
                self.deltas += 1
                if not self.apply(data["content"], message["buffers"]) and not self.waiting:
                    self.waiting = True
                    self.asked += 1
                    self.view._handle_msg({"content": {"data": {"method": "custom", "content": {
                        "type": "resync", "seq": self.seq}}}, "buffers": []})
        return len(new)

    def grid(self) -> npt.NDArray[np.float32]:
        return self.arrays["values"].reshape(self.state["n_clients"], self.state["n_rounds"])


def kernel_arrays(view: Dashboard) -> dict[str, bytes]:
    """What a full send would carry now, from the kernel's own model."""
    model, metric = view.model, view.metric
    return {"values": model.grid(metric).tobytes(), "participation": model.status().tobytes(),
            "band": model.band(metric).tobytes(), "timing": model.timing().tobytes()}


def same(browser: Browser, view: Dashboard) -> bool:
    rows = [f.row() for f in view.model.failures]
    return rows == browser.failures and all(browser.arrays[k].tobytes() == v for k, v in kernel_arrays(view).items())


def test_a_delta_stream_applied_to_the_first_state_reproduces_every_grid_bit_exactly() -> None:
    clock = FakeClock()
    view = Dashboard(clock=clock)
    browser = Browser(view)
    run = list(events_of_a_run(200, 12, failing=3))
    checked = 0
    for event in run[:-1]:  # up to the run's end, which sends everything anyway
        clock.now += 0.002
        view(event)
        if browser.receive():
            assert same(browser, view)
            checked += 1
    clock.now += 1.0
    view.idle()  # the last changes, due now
    browser.receive()
    assert same(browser, view)
    assert browser.deltas > 30 and checked > browser.deltas  # mostly deltas, all checked
    assert browser.asked == 0
    grid = browser.grid()
    assert grid[199, 11] == np.float32(200 / 13) and np.isnan(grid[3]).all()  # client 3 always fails
    deltas = [m for m in view.comm.sent if m["data"].get("method") == "custom"]
    biggest = max(sum(len(bytes(b)) for b in m["buffers"]) for m in deltas)
    assert biggest < len(kernel_arrays(view)["values"]) / 4  # a delta is a fraction of a grid


def test_a_late_failure_rewrites_a_past_rounds_cell_in_the_browser() -> None:
    clock = FakeClock()
    view = Dashboard(clock=clock)
    browser = Browser(view)
    for event in list(events_of_a_run(6, 3, clock=clock, step=0.05))[:-1]:
        view(event)
    clock.now += 1.0
    view.idle()
    browser.receive()
    assert browser.grid()[2, 0] == np.float32(3 / 2)
    late = ClientReplied(run_id=1, round=1, phase="train", node_id=1002, metrics={"loss": 9.0},
                         duration_s=0.1, error=Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, "late"))
    seq = view.seq
    view(late)
    clock.now += 1.0
    view.idle()
    browser.receive()
    assert view.seq == seq  # no full state: a delta carried it
    status = browser.arrays["participation"].reshape(6, 3)
    assert status[2, 0] == FAILED and same(browser, view)


def test_a_view_made_mid_run_asks_for_the_whole_state_and_then_follows_the_deltas() -> None:
    clock = FakeClock()
    view = Dashboard(clock=clock, full_interval=1000.0)  # no full states but asked-for ones
    run = list(events_of_a_run(50, 6))
    for event in run[:200]:
        clock.now += 0.002
        view(event)
    sent = [m["data"]["content"]["seq"] for m in view.comm.sent if m["data"].get("method") == "custom"]
    assert sent and sent[-1] > view.seq  # deltas went out after the full state in the traits
    # A reload: the page gets the kernel's traits (that full state, older than the deltas
    # since) and only then the messages that follow.
    late = Browser(view)
    assert not same(late, view)
    for event in run[200:-1]:
        clock.now += 0.002
        view(event)
        late.receive()
    clock.now += 1.0
    view.idle()
    late.receive()
    assert late.asked == 1 and same(late, view)
    assert late.deltas > late.asked  # after the whole state, deltas again


def test_between_full_states_during_a_run_at_least_full_interval_seconds_pass() -> None:
    clock = FakeClock()
    view = Dashboard(clock=clock, full_interval=2.0)
    channel: RecordingComm = view.comm
    full_at: list[float] = []
    for event in events_of_a_run(40, 30, clock=clock, step=0.01):
        before = len(channel.sent)
        view(event)
        for message in channel.sent[before:]:
            if message["data"].get("method") == "update" and "seq" in message["data"]["state"]:
                full_at.append(clock.now)
    # In the first second the metric and the server's metrics appear (each a full state);
    # the last one is the run's end.
    gaps = np.diff([t for t in full_at[:-1] if t > 1.0])
    assert len(gaps) >= 3 and gaps.min() >= 2.0
    # The traits at the end (what a saved notebook keeps) hold the whole run.
    state = view.get_state()
    np.testing.assert_array_equal(np.frombuffer(state["values"], np.float32),
                                  view.model.grid("train:loss").ravel())


def feed_both(events: list[Event]) -> tuple[DashboardModel, list[bytes]]:
    model, bands = DashboardModel(), []
    for event in events:
        model.feed(event)
        bands.append(model.band("train:loss").tobytes())
    return model, bands


def test_a_band_worked_out_round_by_round_equals_the_band_worked_out_at_once() -> None:
    events: list[Event] = list(events_of_a_run(30, 5, failing=2))
    events.insert(40, RoundStarted(run_id=1, round=1, phase="train", node_ids=(5000,)))
    events.append(ClientReplied(run_id=1, round=1, phase="train", node_id=1004, metrics={"loss": -3.0},
                                duration_s=0.1))
    _, incremental = feed_both(events)
    for k in range(0, len(events), 7):
        fresh = DashboardModel()
        for event in events[: k + 1]:
            fresh.feed(event)
        assert fresh.band("train:loss").tobytes() == incremental[k]


def test_a_new_failure_adds_one_row_to_the_list_in_the_browser_not_the_whole_list() -> None:
    clock = FakeClock()
    view = Dashboard(clock=clock)
    browser = Browser(view)
    appended: list[int] = []
    for event in list(events_of_a_run(20, 8, failing=5))[:-1]:
        clock.now += 0.01
        before = len(view.comm.sent)
        view(event)
        browser.receive()
        for message in view.comm.sent[before:]:
            for part in message["data"].get("content", {}).get("parts", []):
                if part["name"] == "failures":
                    appended.append(len(part["append"]))
    clock.now += 1.0
    view.idle()
    browser.receive()
    assert len(browser.failures) == 8 and same(browser, view)
    assert appended and set(appended) == {1}  # one failure a round, each sent once


def test_a_list_that_lost_its_oldest_items_travels_as_the_count_dropped_and_the_new_ones() -> None:
    from fedlab.dashboard._delta import DeltaEncoder

    a, b, c, d = ({"k": k} for k in range(4))
    encoder = DeltaEncoder()
    encoder.reset({}, {"failures": [a, b, c]})
    content, buffers = encoder.delta({}, {"failures": [c, d]}) or ({}, [])
    assert content["parts"] == [{"name": "failures", "drop": 2, "append": [d]}] and buffers == []
    content, _ = encoder.delta({}, {"failures": [d, {"k": 9}, a]}) or ({}, [])
    assert content["parts"][0]["append"] == [{"k": 9}, a]
    content, _ = encoder.delta({}, {"failures": [a]}) or ({}, [])
    assert content["parts"] == [{"name": "failures", "drop": 2, "append": []}]
    encoder.delta({}, {"failures": [a, b, c]})
    content, _ = encoder.delta({}, {"failures": [b, d]}) or ({}, [])  # c went missing: all of it
    assert content["parts"] == [{"name": "failures", "items": [b, d]}]
    assert encoder.delta({}, {"failures": [b, d]}) is None
