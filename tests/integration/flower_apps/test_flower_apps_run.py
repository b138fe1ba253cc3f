"""Flower app projects, unchanged, under `fedlab run`: in simulation and on real SuperNodes.

The apps beside this file are written against Flower's public Message API. Their results are
hand-derivable: every client's reply depends only on its partition id, weights are equal, and
values are dyadic, so the FedAvg means below are exact.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits

from fedlab.cli._flower_run import FLOWER_LINE
from fedlab.deploy.local._cluster import LocalCluster

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
FEDLAB = str(Path(sys.executable).with_name("fedlab"))
NODES = 4


def fedlab(args: list[str], cwd: Path, home: Path, **env: str) -> str:
    environment = {**os.environ, "FLWR_HOME": str(home), "FEDLAB_DISPLAY": "plain", **env}
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    done = subprocess.run(
        [FEDLAB, *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def copy(app: str, tmp_path: Path) -> Path:
    target = tmp_path / app
    shutil.copytree(HERE / app, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def saved(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


def histogram(partitions: int) -> np.ndarray:
    images, _ = load_digits(return_X_y=True)
    counts, _ = np.histogram(images.mean(axis=1), bins=8, range=(0.0, 16.0))
    return counts


def check(app: str, result: dict[str, np.ndarray], nodes: int) -> None:
    """The final values each app must reach with ``nodes`` clients, by hand."""
    mean_pid = (nodes - 1) / 2
    if app == "numpy_quickstart":
        shift = 0.5 * (mean_pid + 1)  # step * (partition-id + 1), averaged
        assert np.array_equal(result["arr_0"], np.full((2, 3), 3 * shift))
        assert np.array_equal(result["arr_1"], np.full(4, 3 * shift))
        assert result["train_shift"] == shift and result["eval_total"] == 10 * 3 * shift
    elif app == "mods_app":
        # outer_mod is listed first, so it wraps inner_mod: inner adds 2, then outer adds 1.
        assert result["order"] == 21
        assert np.array_equal(result["arr_0"], np.full(3, 1 + 2 * 2.0 * mean_pid))
    elif app == "analytics":
        assert np.array_equal(result["counts"], histogram(nodes)) and result["rows"] == 1797
    elif app == "digits_torch":
        assert result["central_acc"] > 0.8 and result["eval_acc"] > 0.8
    else:  # the run_simulation script: x -> x / 2 + mean partition id, three times from 8
        value = 8.0
        for _ in range(3):
            value = value / 2 + mean_pid
        assert np.array_equal(result["arr_0"], np.full(5, value))


@pytest.mark.parametrize(
    ("app", "nodes"),
    [("numpy_quickstart", 4), ("mods_app", 4), ("analytics", 5), ("digits_torch", 5)],
)
def test_a_flower_project_runs_unchanged_in_simulation_with_flowers_numbers(
    app: str, nodes: int, tmp_path: Path
) -> None:
    project = copy(app, tmp_path)
    out = tmp_path / "result.npz"
    printed = fedlab(
        ["run", str(project), "--run-config", f'result-path="{out}"'], tmp_path, tmp_path / "home"
    )
    assert printed.splitlines().count(FLOWER_LINE) == 1 and "Flower" not in printed.replace(
        FLOWER_LINE, ""
    )
    assert f"({nodes} clients)" in printed
    check(app, saved(out), nodes)
    assert (project / "pyproject.toml").read_text() == (HERE / app / "pyproject.toml").read_text()


def test_a_run_simulation_script_runs_with_fedlab_run(tmp_path: Path) -> None:
    script = copy("run_simulation", tmp_path) / "simulate_numpy.py"
    out = tmp_path / "result.npz"
    printed = fedlab(["run", str(script)], tmp_path, tmp_path / "home", RESULT_PATH=str(out))
    assert printed.splitlines()[0] == FLOWER_LINE
    check("run_simulation", saved(out), 4)


def test_federation_config_changes_the_number_of_supernodes(tmp_path: Path) -> None:
    project = copy("numpy_quickstart", tmp_path)
    out = tmp_path / "result.npz"
    printed = fedlab(
        ["run", str(project), "--federation-config", "num-supernodes=2",
         "--run-config", f'result-path="{out}" step=0.25'],
        tmp_path,
        tmp_path / "home",
    )  # fmt: skip
    assert "(2 clients)" in printed
    # step 0.25, partition ids 0 and 1: shifts 0.25 and 0.5, mean 0.375 per round.
    assert np.array_equal(saved(out)["arr_1"], np.full(4, 3 * 0.375))


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """A real SuperLink and four real SuperNodes on loopback, each with its partition."""
    nodes = [f"partition-id={i} num-partitions={NODES}" for i in range(NODES)]
    running = LocalCluster(NODES, nodes, insecure=True)
    try:
        running.start_superlink()
        running.start_nodes()
        yield running
    finally:
        running.stop()


@pytest.fixture
def home(cluster: LocalCluster, tmp_path: Path) -> Path:
    """FLWR_HOME with Flower's connection file naming the test SuperLink."""
    assert cluster.addresses is not None
    path = tmp_path / "flwr-home"
    path.mkdir()
    (path / "config.toml").write_text(
        f'[superlink]\ndefault = "lab"\n\n[superlink.lab]\n'
        f'address = "{cluster.addresses.control}"\ninsecure = true\n'
    )
    return path


@pytest.mark.parametrize("app", ["numpy_quickstart", "mods_app", "analytics"])
def test_a_flower_project_runs_unchanged_on_real_supernodes(
    app: str, cluster: LocalCluster, home: Path, tmp_path: Path
) -> None:
    project = copy(app, tmp_path)
    out = tmp_path / "result.npz"
    config = f'result-path="{out}"' + (f" min-nodes={NODES}" if app == "analytics" else "")
    printed = fedlab(["run", str(project), "lab", "--run-config", config], tmp_path, home)
    assert printed.splitlines().count(FLOWER_LINE) == 1
    check(app, saved(out), NODES)
    assert cluster.addresses is not None
    target = ["--superlink", cluster.addresses.control, "--insecure", "--format", "json"]
    runs: list[dict[str, Any]] = json.loads(fedlab(["ls", *target], tmp_path, home))["runs"]
    mine = [run for run in runs if run["run_config"].get("result-path") == str(out)]
    assert len(mine) == 1 and mine[0]["status"] == "completed", mine


def test_a_flower_run_on_supernodes_is_listed_logged_and_stopped_like_a_native_one(
    cluster: LocalCluster, home: Path, tmp_path: Path
) -> None:
    from fedlab.deploy.client.control_client import ControlClient
    from fedlab.deploy.security import INSECURE
    from fedlab.events import RoundAggregated

    assert cluster.addresses is not None
    target = ["--superlink", cluster.addresses.control, "--insecure", "--format", "json"]
    project = copy("numpy_quickstart", tmp_path)
    command = ["run", str(project), "lab", "--detach", "--format", "json"]
    command += ["--run-config", "num-server-rounds=100000"]
    run_id = int(json.loads(fedlab(command, tmp_path, home))["run-id"])
    with ControlClient(cluster.addresses.control, security=INSECURE) as control:
        for event in control.stream_events(run_id):
            if isinstance(event, RoundAggregated):
                break  # under way
        stopped = json.loads(fedlab(["stop", str(run_id), *target], tmp_path, home))
        assert stopped == {"success": True, "run-id": run_id}
        assert control.wait_for_run(run_id, timeout=240).status == "stopped"
    events = [
        json.loads(line)
        for line in fedlab(["log", str(run_id), *target], tmp_path, home).splitlines()
        if line.strip()
    ]
    assert events[0]["type"] == "RunStarted" and events[-1]["type"] == "RunFinished"
    rounds = [e for e in events if e["type"] == "RoundAggregated"]
    # Four nodes with step 0.5: shifts 0.5, 1.0, 1.5 and 2.0, mean 1.25 in every round.
    assert rounds
    assert all(e["metrics"]["shift"] == 1.25 and e["num_replies"] == NODES for e in rounds)
    assert 1 <= events[-1]["rounds_completed"] < 100000
    listed = json.loads(fedlab(["ls", *target], tmp_path, home))["runs"]
    assert [run["status"] for run in listed if run["run_id"] == run_id] == ["stopped"]
