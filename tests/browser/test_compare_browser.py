"""The comparison dashboard in a real browser: JupyterLab 4 and Notebook 7, driven by Chromium.

``fl.compare`` of three federations (6 clients, 6 rounds each) runs in a blocking cell; the
page must draw one curve per federation, live and round by round, then relabel the chart,
the heatmap and the table together when the metric is switched, and show another
federation's heatmap when its tab is clicked. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.jupyter_browser import ARTIFACTS, KERNEL_IDLE, alive, chromium, jupyter
from tests.browser.test_dashboard_browser import PAINTED

NOTEBOOK = Path(__file__).parent / "notebooks" / "compare_dashboard.ipynb"
ROUNDS = 6
NAMES = ["step 1", "step 2", "step 4"]
KNOWN_CONSOLE_NOISE = ("reading 'schema'",)  # Notebook 7's own

#: The points each drawn curve has, in the order of the federations.
POINTS = """() => [...document.querySelectorAll('.fedlab-compare .fedlab-curve')].map(
    (c) => [c.dataset.federation, Number(c.dataset.points)])"""


def check_page(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector(".jp-Notebook >> visible=true", timeout=120_000)
    page.wait_for_function(KERNEL_IDLE, timeout=120_000)
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    page.wait_for_selector(".fedlab-compare", timeout=120_000)

    seen: list[list[Any]] = []
    final = [[name, ROUNDS] for name in NAMES]
    for _ in range(3000):  # about 150 s at most; ends as soon as every curve is complete
        points = page.evaluate(POINTS)
        if not seen or seen[-1] != points:
            seen.append(points)
        if points == final:
            break
        page.wait_for_timeout(50)
    assert seen[-1] == final, seen
    # Live: some state showed fewer curves, or a curve with fewer rounds, than the end.
    partial = [s for s in seen[:-1] if s]
    assert partial, f"the curves only ever appeared complete: {seen}"
    for state in seen:  # curves join in order, and only the newest one is still growing
        assert [n for n, _ in state] == NAMES[: len(state)], seen
        assert all(p == ROUNDS for _, p in state[:-1]), seen
    page.wait_for_function(
        "() => document.querySelector('.fedlab-compare .fedlab-status').textContent"
        ".startsWith('finished')", timeout=60_000,
    )
    page.wait_for_function(KERNEL_IDLE, timeout=60_000)
    box = page.locator(".fedlab-compare")
    expect(box.locator(".fedlab-ylabel")).to_have_text("clients' train loss: mean and p10–p90")
    expect(box.locator(".fedlab-heat-title")).to_have_text(
        "step 4: train loss per client (rows) and round (columns)")
    expect(box.locator(".fedlab-table th").nth(3)).to_have_text("train:loss (mean)")
    expect(box.locator(".fedlab-table tr")).to_have_count(4)
    assert page.evaluate(PAINTED, ".fedlab-compare .fedlab-heat") > 20_000  # the heatmap is drawn

    box.locator(".fedlab-metric").select_option("train:num-examples")
    expect(box.locator(".fedlab-ylabel")).to_have_text("clients' train num-examples: mean and p10–p90")
    expect(box.locator(".fedlab-heat-title")).to_have_text(
        "step 4: train num-examples per client (rows) and round (columns)")
    expect(box.locator(".fedlab-table th").nth(3)).to_have_text("train:num-examples (mean)")
    expect(box.locator(".fedlab-table tr").nth(1).locator("td").nth(3)).to_have_text("10")
    expect(box.locator(".fedlab-note")).to_have_text("")

    box.locator(".fedlab-tab", has_text="step 1").click()
    expect(box.locator(".fedlab-heat-title")).to_have_text(
        "step 1: train num-examples per client (rows) and round (columns)")

    ARTIFACTS.mkdir(exist_ok=True)
    box.screenshot(path=str(ARTIFACTS / "compare-dashboard.png"))
    page.locator(".jp-OutputArea-output", has_text="federations compared: 3").wait_for()


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_a_comparison_of_three_draws_three_curves_live_and_relabels_on_a_metric_switch(
    app: str, tmp_path: Path
) -> None:
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
            check_page(page, server.url(NOTEBOOK.name))
        except BaseException:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"failed-compare-{app}.png"), full_page=True)
            raise
    assert stopped and not [pid for pid in stopped if alive(pid)]
    ours = [e for e in errors if not any(noise in e for noise in KNOWN_CONSOLE_NOISE)]
    assert not [e for e in ours if "fedlab" in e or "anywidget" in e], ours
