"""The import hook: flwr names served by fedlab, winning over an installed flwr."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fedlab.compat import flower


def test_enabled_serves_flwr_modules_from_the_layer_and_disable_removes_them() -> None:
    with flower.enabled():
        assert flower.is_enabled()
        import flwr.app
        import flwr.serverapp.strategy

        from fedlab.compat.flower.records import ArrayRecord

        assert flwr.app.ArrayRecord is ArrayRecord
        assert "flwr.serverapp.strategy" in sys.modules
    assert not flower.is_enabled()
    assert not any(name == "flwr" or name.startswith("flwr.") for name in sys.modules)


def test_enable_is_idempotent_and_keeps_the_finder_first() -> None:
    flower.enable()
    flower.enable()
    try:
        assert sum(type(f).__name__ == "_FlowerFinder" for f in sys.meta_path) == 1
        assert type(sys.meta_path[0]).__name__ == "_FlowerFinder"
    finally:
        flower.disable()
    assert not flower.is_enabled()


def test_the_layer_wins_over_a_real_flwr_installed_and_already_imported(tmp_path: Path) -> None:
    fake = tmp_path / "flwr"
    (fake / "app").mkdir(parents=True)
    (fake / "__init__.py").write_text("REAL = True\n")
    (fake / "app" / "__init__.py").write_text("WHO = 'real flower'\n")
    script = textwrap.dedent(
        """
        import flwr.app
        assert flwr.app.WHO == "real flower"
        from fedlab.compat import flower
        flower.enable()
        import flwr.app
        print(flwr.app.ArrayRecord.__module__)
        flower.disable()
        import flwr.app
        print(flwr.app.WHO)
        """
    )
    env_path = f"{tmp_path}:{Path.cwd()}"
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["fedlab.compat.flower.records", "real", "flower"]


def test_a_flower_module_the_layer_lacks_names_the_nearest_supported_one() -> None:
    with flower.enabled():
        with pytest.raises(
            flower.FlowerCompatError, match=r"flwr\.serverapp\.strategi .*flwr\.serverapp\.strategy"
        ):
            importlib.import_module("flwr.serverapp.strategi")
        with pytest.raises(flower.FlowerCompatError, match="legacy client API"):
            importlib.import_module("flwr.client")


def test_import_flwr_alone_reaches_nested_modules_by_attribute() -> None:
    with flower.enabled():
        import flwr

        from fedlab.compat.flower.strategy import FedAdam

        assert flwr.serverapp.strategy.FedAdam is FedAdam
        assert flwr.clientapp.typing.ClientAppCallable is not None
        with pytest.raises(
            flower.FlowerCompatError, match=r"nearest supported name is flwr\.serverapp\.strategy"
        ):
            _ = flwr.serverapp.strategi
