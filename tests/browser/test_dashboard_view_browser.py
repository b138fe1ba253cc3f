"""Switching metrics in the dashboard view, in Chromium, with the kernel's replies held back.

The view (``_widget.js``) runs in a bare page and talks to a real ``Dashboard`` through a
comm the test delivers by hand (see ``view_page.py``), so the moments between "the person
picked a metric" and "the kernel's grid for it was drawn" can be looked at one by one.
Client ``c`` reports loss ``(c + 1) / (r + 1)`` and num-examples ``10 * (c + 1)`` in round ``r``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from fedlab.dashboard import Dashboard
from fedlab.events import ClientReplied, Event, RoundAggregated, RoundStarted, RunStarted
from tests.browser.jupyter_browser import ARTIFACTS, chromium
from tests.browser.view_page import ViewPage, install_recording_comm

CLIENTS = 20
ROUNDS = 4
NODES = tuple(1000 + c for c in range(CLIENTS))


def run_start() -> list[Event]:
    return [RunStarted(run_id=1, num_rounds=ROUNDS, node_ids=NODES, strategy="FedAvg")]


def one_round(r: int) -> list[Event]:
    replies: list[Event] = [
        ClientReplied(run_id=1, round=r, phase="train", node_id=node, partition_id=c, duration_s=0.01,
                      metrics={"loss": (c + 1) / (r + 1), "num-examples": 10 * (c + 1)})
        for c, node in enumerate(NODES)
    ]
    return [RoundStarted(run_id=1, round=r, phase="train", node_ids=NODES), *replies,
            RoundAggregated(run_id=1, round=r, metrics={}, num_replies=CLIENTS, num_failures=0,
                            train_duration_s=1.0, aggregate_duration_s=0.25)]


def heat_cell(page: Any, row: int, round_: int) -> dict[str, float]:
    """The middle of heatmap cell (``row``, ``round_``) in the page (layout in _widget.js)."""
    box = page.locator(".fedlab-canvas").bounding_box()
    scale = box["width"] / 880
    heat_height = max(100, min(480, CLIENTS * 16))
    x = 54 + (round_ - 0.5) * 480 / ROUNDS
    y = 214 + (row + 0.5) * heat_height / CLIENTS
    return {"x": box["x"] + x * scale, "y": box["y"] + y * scale}


@pytest.fixture
def view_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ViewPage]:
    install_recording_comm(monkeypatch)
    view = Dashboard(clock=lambda: 0.0)  # time stands still: only flush() sends
    for event in run_start() + one_round(1) + one_round(2):
        view(event)
    view.flush()
    with chromium(tmp_path / "profile") as browser:
        page = browser.new_page()  # type: ignore[attr-defined]
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield ViewPage(page, view)
        assert errors == []


def test_until_the_kernel_sends_the_new_grid_the_old_numbers_keep_their_own_name(view_page: ViewPage) -> None:
    page, view = view_page.page, view_page.view
    canvas, tip = page.locator(".fedlab-canvas"), page.locator(".fedlab-tooltip")
    picker, note = page.locator(".fedlab-metric"), page.locator(".fedlab-note")
    expect(canvas).to_have_attribute("data-drawn-metric", "train:loss")
    page.mouse.move(**heat_cell(page, 4, 2))
    expect(tip).to_have_text("client 4 (node 1004) · round 2 · train loss = 1.6667")

    picker.select_option("train:num-examples")  # the kernel is busy: it hears of it later
    for event in one_round(3):  # and meanwhile still sends the grid it has been sending
        view(event)
    view.flush()
    assert view_page.deliver_to_browser() == 1
    expect(canvas).to_have_attribute("aria-label", re.compile(r"; train loss per client \(rows\) and round"))
    page.mouse.move(**heat_cell(page, 4, 3))
    expect(tip).to_have_text("client 4 (node 1004) · round 3 · train loss = 1.2500")
    expect(canvas).to_have_attribute("data-drawn-metric", "train:loss")
    expect(picker).to_have_value("train:num-examples")  # what the person asked for stays picked
    expect(note).to_have_text(re.compile(r"^Switching to train num-examples: .* the view shows train loss\.$"))
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".fedlab-dashboard").screenshot(path=str(ARTIFACTS / "view-switch-pending.png"))

    assert view_page.deliver_to_kernel() == 1  # the kernel is free: it reads the choice
    assert view.grid_metric == "train:num-examples"
    assert view_page.deliver_to_browser() == 1
    expect(canvas).to_have_attribute("data-drawn-metric", "train:num-examples")
    # The pointer did not move, yet the tooltip now describes the new grid (at the cell now
    # under the pointer: the note above the canvas is gone, so the canvas moved up).
    shown = re.fullmatch(r"client (\d+) \(node (\d+)\) · round 3 · train num-examples = (\d+)", tip.inner_text())
    assert shown is not None, tip.inner_text()
    client, node, examples = map(int, shown.groups())
    assert (node, examples) == (1000 + client, 10 * (client + 1))
    page.mouse.move(**heat_cell(page, 4, 3))
    expect(tip).to_have_text("client 4 (node 1004) · round 3 · train num-examples = 50")
    expect(canvas).to_have_attribute("aria-label", re.compile(r"; train num-examples per client \(rows\) and round"))
    expect(picker).to_have_value("train:num-examples")
    expect(note).to_have_text("")
    page.locator(".fedlab-dashboard").screenshot(path=str(ARTIFACTS / "view-switch-done.png"))


def test_a_redraw_after_the_pointer_left_the_canvas_shows_no_tooltip(view_page: ViewPage) -> None:
    page, view = view_page.page, view_page.view
    canvas, tip = page.locator(".fedlab-canvas"), page.locator(".fedlab-tooltip")
    page.mouse.move(**heat_cell(page, 0, 1))
    expect(tip).to_have_text("client 0 (node 1000) · round 1 · train loss = 0.5000")
    page.mouse.move(5, 5)  # off the canvas
    expect(tip).to_be_hidden()
    draws = int(canvas.get_attribute("data-draws") or "0")
    for event in one_round(3):
        view(event)
    view.flush()
    assert view_page.deliver_to_browser() == 1
    expect(canvas).to_have_attribute("data-draws", str(draws + 1))
    expect(tip).to_be_hidden()
