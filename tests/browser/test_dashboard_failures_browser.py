"""The failures list in a real browser: JupyterLab 4 and Notebook 7, driven by Chromium.

Six clients, three rounds: client 5 raises in every round and client 3 in round 2. The
header's failure count opens a list of the four failures (client by partition id, round,
phase, error type, first line); clicking client 3's row shows client 3's traceback.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.jupyter_browser import ARTIFACTS, KERNEL_IDLE, alive, chromium, jupyter

NOTEBOOK = Path(__file__).parent / "notebooks" / "failures_list.ipynb"


def check_page(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector(".jp-Notebook >> visible=true", timeout=120_000)
    page.wait_for_function(KERNEL_IDLE, timeout=120_000)
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    page.locator(".jp-OutputArea-output", has_text="failures: 4").wait_for(timeout=150_000)
    count = page.locator(".fedlab-failure-count")
    expect(count).to_have_text("4 client failures")
    expect(page.locator(".fedlab-failures")).to_be_hidden()

    count.click()
    rows = page.locator(".fedlab-failure-row")
    expect(rows).to_have_count(4)
    cells = [row.locator("td").all_inner_texts() for row in rows.all()]
    assert sorted(cells) == sorted(
        [["client 5", str(r), "train", "RuntimeError", f"RuntimeError: client 5 fails in round {r}"]
         for r in (1, 2, 3)]
        + [["client 3", "2", "train", "RuntimeError", "RuntimeError: client 3 fails in round 2"]]
    ), cells
    assert re.fullmatch(r"node \d+", rows.first.locator("td").first.get_attribute("title") or "")

    # The node id on hover is exact, though it exceeds JavaScript's exact integers.
    printed = page.locator(".jp-OutputArea-output", has_text="client 3 is node").inner_text()
    node = re.search(r"client 3 is node (\d+)", printed).group(1)  # type: ignore[union-attr]
    client_3 = rows.filter(has_text="client 3")
    expect(client_3.locator("td").first).to_have_attribute("title", f"node {node}")
    client_3.click()
    head = page.locator(".fedlab-detail-head")
    expect(head).to_have_text(re.compile(rf"^client 3 \(node {node}\): finished 2, failed 1, timed out 0 of 3"))
    opened = page.locator(".fedlab-errors details[open] .fedlab-traceback")
    expect(opened).to_have_count(1)
    text = opened.inner_text()
    assert "Traceback (most recent call last)" in text
    assert "RuntimeError: client 3 fails in round 2" in text
    expect(page.locator(".fedlab-failure-selected")).to_have_count(1)
    expect(page.locator(".fedlab-failure-selected")).to_contain_text("client 3")

    rows.filter(has_text="fails in round 3").click()  # another client's failure
    expect(head).to_have_text(re.compile(r"^client 5 \(node \d+\): finished 0, failed 3,"))
    expect(page.locator(".fedlab-errors details[open]")).to_contain_text("round 3 · train · RuntimeError")
    expect(page.locator(".fedlab-errors details")).to_have_count(3)


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_the_failure_count_lists_every_failure_and_a_row_shows_its_traceback(app: str, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    stopped: list[int] = []
    errors: list[str] = []
    with jupyter(app, root, stopped) as server, chromium(tmp_path / "profile") as browser:
        page = browser.new_page()  # type: ignore[attr-defined]
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            check_page(page, server.url(NOTEBOOK.name))
            ARTIFACTS.mkdir(exist_ok=True)
            page.locator(".fedlab-dashboard").screenshot(path=str(ARTIFACTS / f"failures-{app}.png"))
        except BaseException:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"failed-failures-{app}.png"), full_page=True)
            raise
    assert stopped and not [pid for pid in stopped if alive(pid)]
    assert not [e for e in errors if "fedlab" in e or "anywidget" in e], errors
