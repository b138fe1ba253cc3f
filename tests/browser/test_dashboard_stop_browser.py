"""The dashboard's Stop button ends a background run (``fed.start()``) after its round."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tests.browser.jupyter_browser import ARTIFACTS, KERNEL_IDLE, alive, chromium, jupyter

NOTEBOOK = Path(__file__).parent / "notebooks" / "stop_button.ipynb"
ROUNDS = 40


def test_the_stop_button_ends_a_background_run_after_the_current_round(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    stopped: list[int] = []
    with jupyter("lab", root, stopped) as server, chromium(tmp_path / "profile") as browser:
        page = browser.new_page()  # type: ignore[attr-defined]
        page.goto(server.url(NOTEBOOK.name))
        page.wait_for_selector(".jp-Notebook >> visible=true", timeout=120_000)
        page.wait_for_function(KERNEL_IDLE, timeout=120_000)
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        round_counter = page.locator(".fedlab-round")
        round_counter.wait_for(timeout=120_000)
        # The cell returned at once, yet the run goes on and the view follows it.
        page.wait_for_function(
            "() => /^round ([2-9]|[1-9][0-9]) of 40$/.test(document.querySelector('.fedlab-round').textContent)",
            timeout=120_000,
        )
        page.locator(".fedlab-stop").click()
        page.wait_for_function(
            "() => document.querySelector('.fedlab-status').textContent.startsWith('stopped early')",
            timeout=120_000,
        )
        status = page.locator(".fedlab-status").inner_text()
        done = int(re.match(r"stopped early: (\d+) rounds", status).group(1))  # type: ignore[union-attr]
        assert 2 <= done < ROUNDS
        assert round_counter.inner_text() == f"round {done} of {ROUNDS}"
        assert page.locator(".fedlab-stop").inner_text() == "Finished"
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator(".fedlab-dashboard").screenshot(path=str(ARTIFACTS / "dashboard-stopped.png"))
    assert stopped and not [pid for pid in stopped if alive(pid)]
