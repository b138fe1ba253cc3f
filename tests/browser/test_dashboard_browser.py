"""The live dashboard in a real browser: JupyterLab 4 and Notebook 7, driven by Chromium.

A 20-client federation (client 7 always fails) runs with a blocking ``fed.run()``; the page
must show the rounds advancing live, a painted canvas, a client's history on click, the
failing client's traceback, and after a switch of metric the new metric's names and numbers
together. A screenshot of each is left in ``test-artifacts/``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.jupyter_browser import ARTIFACTS, KERNEL_IDLE, alive, chromium, jupyter

NOTEBOOK = Path(__file__).parent / "notebooks" / "live_dashboard.ipynb"
ROUNDS = 8
CLIENTS = 20
FAILING = 7

# Notebook 7 logs this whatever the notebook holds; it is not ours.
KNOWN_CONSOLE_NOISE = ("reading 'schema'",)

PAINTED = """(selector) => {
    const canvas = document.querySelector(selector);
    if (!canvas || !canvas.width) return 0;
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let i = 0; i < pixels.length; i += 4) {
        if (pixels[i] < 250 || pixels[i + 1] < 250 || pixels[i + 2] < 250) painted++;
    }
    return painted;
}"""

#: From now on, keep every text the tooltip shows in ``window.tooltipsShown``.
RECORD_TOOLTIPS = """() => {
    const tip = document.querySelector('.fedlab-tooltip');
    window.tooltipsShown = [tip.textContent];
    new MutationObserver((changes) => changes.forEach((change) => change.addedNodes.forEach(
        (node) => window.tooltipsShown.push(node.textContent)))).observe(tip, { childList: true });
}"""


def heat_row_point(page: Any, row: int) -> dict[str, float]:
    """Where row ``row`` of the heatmap is, in the canvas's own CSS pixels (see _widget.js)."""
    box = page.locator(".fedlab-canvas").bounding_box()
    scale = box["width"] / 880
    heat_top, heat_height = 214, max(100, min(480, CLIENTS * 16))
    return {"x": (54 + 200) * scale, "y": (heat_top + (row + 0.5) * heat_height / CLIENTS) * scale}


def drive(app: str, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    stopped: list[int] = []
    errors: list[str] = []
    with jupyter(app, root, stopped) as server, chromium(tmp_path / "profile") as browser:
        page = browser.new_page()  # type: ignore[attr-defined]
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        try:
            check_page(page, server.url(NOTEBOOK.name), app)
        except BaseException:
            ARTIFACTS.mkdir(exist_ok=True)  # what the page showed when it failed
            page.screenshot(path=str(ARTIFACTS / f"failed-{app}.png"), full_page=True)
            raise
    assert stopped and not [pid for pid in stopped if alive(pid)]
    ours = [e for e in errors if not any(noise in e for noise in KNOWN_CONSOLE_NOISE)]
    assert not [e for e in ours if "fedlab" in e or "anywidget" in e], ours


def check_page(page: Any, url: str, app: str) -> None:
    page.goto(url)
    page.wait_for_selector(".jp-Notebook >> visible=true", timeout=120_000)
    page.wait_for_function(KERNEL_IDLE, timeout=120_000)
    # execute() resolves only when every cell is done: start it and do not wait.
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    page.wait_for_selector(".fedlab-round", timeout=120_000)

    seen: list[str] = []
    final = f"round {ROUNDS} of {ROUNDS}"
    for _ in range(3000):  # about 150 s at most; ends as soon as the final round shows
        text = page.locator(".fedlab-round").first.inner_text()
        if not seen or seen[-1] != text:
            seen.append(text)
        if text == final:
            break
        page.wait_for_timeout(50)
    assert seen[-1] == final, seen
    live = [t for t in seen if t.startswith("round ") and t != final]
    assert live, f"the round counter never showed a round before the last: {seen}"
    page.wait_for_function(
        "() => document.querySelector('.fedlab-status').textContent.startsWith('finished')",
        timeout=60_000,
    )
    page.wait_for_function(KERNEL_IDLE, timeout=60_000)
    assert page.evaluate(PAINTED, ".fedlab-canvas") > 20_000

    # The view redraws on the next animation frame: wait for the text instead of reading it.
    page.locator(".fedlab-canvas").hover(position=heat_row_point(page, 3))
    expect(page.locator(".fedlab-tooltip")).to_have_text(re.compile(r"^client 3 \(node \d+\) · round \d+ · train loss = "))

    page.locator(".fedlab-canvas").click(position=heat_row_point(page, 2))
    head = page.locator(".fedlab-detail-head")
    expect(head).to_have_text(re.compile(rf"^client 2 \(node \d+\): finished {ROUNDS}, failed 0,"))
    expect(page.locator(".fedlab-errors")).to_have_text("no failures")
    assert page.evaluate(PAINTED, ".fedlab-history") > 1000

    page.locator(".fedlab-canvas").click(position=heat_row_point(page, FAILING))
    expect(head).to_have_text(re.compile(rf"^client {FAILING} \(node \d+\): finished 0, failed {ROUNDS},"))
    tracebacks = page.locator(".fedlab-traceback")
    expect(tracebacks).to_have_count(ROUNDS)
    text = tracebacks.first.inner_text()
    assert "ValueError: client 7 is broken on purpose" in text
    assert "Traceback (most recent call last)" in text

    # Another metric: the kernel (idle now) sends its grid, and the view shows it. Every
    # tooltip shown on the way names the metric its number belongs to.
    canvas, tip, picker = page.locator(".fedlab-canvas"), page.locator(".fedlab-tooltip"), page.locator(".fedlab-metric")
    expect(canvas).to_have_attribute("data-drawn-metric", "train:loss")
    expect(canvas).to_have_attribute("aria-label", re.compile(r"^clients' train loss: mean and p10–p90; "))
    canvas.hover(position=heat_row_point(page, 4))
    expect(tip).to_have_text(re.compile(r"^client 4 \(node \d+\) · round \d+ · train loss = \d"))
    page.evaluate(RECORD_TOOLTIPS)
    picker.select_option("train:num-examples")
    expect(canvas).to_have_attribute("data-drawn-metric", "train:num-examples")  # set when drawn
    expect(picker).to_have_value("train:num-examples")
    expect(page.locator(".fedlab-note")).to_have_text("")  # cleared by the draw of the new grid
    expect(canvas).to_have_attribute("aria-label", re.compile(
        r"^clients' train num-examples: mean and p10–p90; .*; train num-examples per client \(rows\)"))
    canvas.hover(position=heat_row_point(page, 4))
    expect(tip).to_have_text(re.compile(r"^client 4 \(node \d+\) · round \d+ · train num-examples = 10$"))
    shown: list[str] = page.evaluate("() => window.tooltipsShown")
    # Every client reported 10 examples; client 7 reported none (it failed).
    wrong = [t for t in shown if re.search(r"num-examples = (?!10$|–$)", t) or "loss = 10" in t]
    assert shown and not wrong, shown

    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".fedlab-dashboard").screenshot(path=str(ARTIFACTS / f"dashboard-{app}.png"))
    page.screenshot(path=str(ARTIFACTS / f"page-{app}.png"), full_page=True)
    page.locator(".jp-OutputArea-output", has_text=f"rounds completed: {ROUNDS}").wait_for()


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_dashboard_updates_live_and_shows_a_clients_history_and_traceback_in_a_browser(
    app: str, tmp_path: Path
) -> None:
    drive(app, tmp_path)
