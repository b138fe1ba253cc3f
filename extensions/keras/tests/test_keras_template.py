"""`fedlab new --template keras` makes a project that `fedlab run` trains in simulation."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedlab.cli.main import main


@pytest.fixture
def isolated_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep the project's package and path out of the other tests."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    monkeypatch.setenv("FEDLAB_DISPLAY", "plain")
    yield
    for name in set(sys.modules) - before:
        if name.startswith("keras_app"):
            del sys.modules[name]


def test_a_new_keras_project_runs_in_simulation_and_its_loss_falls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_imports: None
) -> None:
    assert main(["new", "keras-app", "--template", "keras", "--dir", str(tmp_path)]) == 0
    capsys.readouterr()
    root = tmp_path / "keras-app"
    assert '"fedlab-keras"' in (root / "pyproject.toml").read_text()
    status = main(["run", str(root), "--run-config", "num-server-rounds=2", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["success"] and report["mode"] == "simulation"
    assert report["rounds_completed"] == 2
    losses = [report["evaluate_metrics"][r]["loss"] for r in ("1", "2")]
    assert losses[1] < losses[0]
    assert report["evaluate_metrics"]["2"]["accuracy"] > 0.8
    # fraction-train 0.5 of 10 clients: 5 clients train per round, on 179-180 digits each.
    for rnd in ("1", "2"):
        assert 5 * 179 <= report["train_metrics"][rnd]["num-examples"] <= 5 * 180
