"""`fedlab new --template jax` and `--template xgboost` make projects that `fedlab run` trains."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedlab.cli.main import main
from fedlab.cli.new import create_project


@pytest.fixture
def isolated_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep each project's package and path out of the other tests."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    monkeypatch.setenv("FEDLAB_DISPLAY", "plain")
    yield
    for name in set(sys.modules) - before:
        if name.startswith("tpl_run_"):
            del sys.modules[name]


def run_two_rounds(template: str, root_parent: Path, capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    root = create_project(f"tpl-run-{template}", template, root_parent)
    status = main(["run", str(root), "--run-config", "num-server-rounds=2", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["success"] and report["mode"] == "simulation"
    assert report["rounds_completed"] == 2
    return report  # type: ignore[no-any-return]


def test_the_jax_project_trains_its_flax_mlp_in_simulation_and_its_loss_falls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_imports: None
) -> None:
    report = run_two_rounds("jax", tmp_path, capsys)
    losses = [report["evaluate_metrics"][r]["loss"] for r in ("1", "2")]
    assert losses[1] < losses[0]
    assert report["evaluate_metrics"]["2"]["accuracy"] >= 0.8
    # fraction-train 0.5 of 10 clients: 5 clients of 179-180 digits each train per round.
    assert all(5 * 179 <= report["train_metrics"][r]["num-examples"] <= 5 * 180 for r in ("1", "2"))


def test_the_xgboost_project_bags_trees_in_simulation_and_its_logloss_falls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_imports: None
) -> None:
    report = run_two_rounds("xgboost", tmp_path, capsys)
    losses = [report["evaluate_metrics"][r]["logloss"] for r in ("1", "2")]
    assert losses[1] < losses[0]
    assert report["evaluate_metrics"]["2"]["accuracy"] >= 0.9
