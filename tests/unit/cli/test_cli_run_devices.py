"""`fedlab run --devices` and a federation's ``devices = ...`` reach the Federation, checked."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedlab.cli.main import main
from fedlab.cli.new import create_project


@pytest.fixture
def isolated_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep the project's package and path out of the other tests."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    monkeypatch.setenv("FEDLAB_DISPLAY", "plain")
    yield
    for name in set(sys.modules) - before:
        if name.startswith("cli_run_devices"):
            del sys.modules[name]


def test_a_bad_devices_flag_or_option_is_refused_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_imports: None
) -> None:
    root = create_project("cli-run-devices", "numpy", tmp_path)
    with (root / "pyproject.toml").open("a") as toml:
        toml.write('\n[tool.fedlab.federations.odd]\nsimulation = { num-clients = 4, devices = ["cuda:0", "gpu1"] }\n')
    assert main(["run", str(root), "--devices", "cuda:0,gpu:1"]) != 0
    assert "'gpu:1' is not a device string" in capsys.readouterr().err
    assert main(["run", str(root), "odd"]) != 0
    assert "'gpu1' is not a device string" in capsys.readouterr().err
    # A good value runs: the numpy template ignores its device.
    assert main(["run", str(root), "--devices", "cpu", "--run-config", "num-server-rounds=1", "--format", "json"]) == 0
