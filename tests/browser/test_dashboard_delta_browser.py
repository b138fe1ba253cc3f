"""The dashboard view in Chromium fed deltas: new cells, a past cell rewritten, a lost message.

As in ``test_dashboard_view_browser.py`` the view runs in a bare page on a comm the test
delivers by hand (``view_page.py``), so a delta can be lost on purpose. The cells are read
back from the tooltip, which reads the view's own grids.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from fedlab.dashboard import Dashboard
from fedlab.events import ClientReplied, Event
from fedlab.message import Error, ErrorCode
from tests.browser.jupyter_browser import ARTIFACTS, chromium
from tests.browser.test_dashboard_view_browser import CLIENTS, heat_cell, one_round, run_start
from tests.browser.view_page import ViewPage, install_recording_comm
from tests.unit.dashboard.test_widget import FakeClock


def raster_cell(page: Any, row: int, round_: int) -> dict[str, float]:
    """The middle of participation cell (``row``, ``round_``) in the page (layout in _widget.js)."""
    box = page.locator(".fedlab-canvas").bounding_box()
    scale = box["width"] / 880
    heat_height = max(100, min(480, CLIENTS * 16))
    x = 580 + (round_ - 0.5) * 260 / 4
    y = 214 + (row + 0.5) * heat_height / CLIENTS
    return {"x": box["x"] + x * scale, "y": box["y"] + y * scale}


class Page:
    def __init__(self, view_page: ViewPage, clock: FakeClock) -> None:
        self.page, self.view, self.clock, self.comm = view_page.page, view_page.view, clock, view_page.comm
        self.view_page = view_page

    def play(self, events: list[Event]) -> None:
        for event in events:
            self.clock.now += 0.03  # a few sends a round, as in a live run
            self.view(event)
        self.clock.now += 1.0
        self.view.idle()  # and the last changes

    def deltas_waiting(self) -> list[int]:
        return [k for k, m in enumerate(self.comm.outbox) if m["method"] == "custom"]


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Page]:
    install_recording_comm(monkeypatch)
    clock = FakeClock()
    view = Dashboard(clock=clock, full_interval=1000.0)  # whole states only when asked
    for event in run_start() + one_round(1):
        view(event)
    view.flush()
    with chromium(tmp_path / "profile") as browser:
        page = browser.new_page()  # type: ignore[attr-defined]
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield Page(ViewPage(page, view), clock)
        assert errors == []


def test_deltas_fill_new_cells_rewrite_past_ones_and_a_lost_one_brings_the_whole_state(live: Page) -> None:
    page, view = live.page, live.view
    tip = page.locator(".fedlab-tooltip")
    seq = view.seq
    live.play(one_round(2))
    assert len(live.deltas_waiting()) >= 2 and view.seq == seq  # round 2 went out as deltas
    live.view_page.deliver_to_browser()
    page.mouse.move(**heat_cell(page, 4, 2))
    expect(tip).to_have_text("client 4 (node 1004) · round 2 · train loss = 1.6667")
    page.mouse.move(**heat_cell(page, 19, 2))
    expect(tip).to_have_text("client 19 (node 1019) · round 2 · train loss = 6.6667")

    # A late failure of round 1: a delta rewrites a cell the browser already had.
    live.play([ClientReplied(run_id=1, round=1, phase="train", node_id=1004, partition_id=4, metrics={},
                             duration_s=0.1, error=Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, "late"))])
    assert live.deltas_waiting()
    live.view_page.deliver_to_browser()
    page.mouse.move(**raster_cell(page, 4, 1))
    expect(tip).to_have_text("client 4 (node 1004) · round 1 · failed")

    # Round 3 with its first delta lost: the view ignores the rest and asks for everything.
    live.play(one_round(3))
    first = live.deltas_waiting()[0]
    live.view_page.drop_next(first + 1)
    live.view_page.deliver_to_browser()
    page.mouse.move(**heat_cell(page, 19, 3))
    expect(tip).to_have_text("client 19 (node 1019) · round 3 · train loss = –")
    asked = page.evaluate("() => window.toKernel.slice()")
    assert [m["custom"]["type"] for m in asked if "custom" in m] == ["resync"]
    assert live.view_page.deliver_to_kernel() == 1
    assert view.seq > seq  # the kernel answered with the whole state
    assert live.view_page.deliver_to_browser() == 1
    page.mouse.move(**heat_cell(page, 4, 3))
    expect(tip).to_have_text("client 4 (node 1004) · round 3 · train loss = 1.2500")
    page.mouse.move(**heat_cell(page, 19, 3))
    expect(tip).to_have_text("client 19 (node 1019) · round 3 · train loss = 5")  # whole numbers print bare
    page.mouse.move(**raster_cell(page, 4, 1))
    expect(tip).to_have_text("client 4 (node 1004) · round 1 · failed")
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".fedlab-dashboard").screenshot(path=str(ARTIFACTS / "view-deltas.png"))

    # And deltas follow the whole state again.
    live.play(one_round(4))
    assert live.deltas_waiting()
    live.view_page.deliver_to_browser()
    page.mouse.move(**heat_cell(page, 19, 4))
    expect(tip).to_have_text("client 19 (node 1019) · round 4 · train loss = 4")
