"""The CLI against a real SuperLink: concurrent runs, `ls`, `log` and `stop`."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fedlab.deploy.client.control_client import ControlClient
from fedlab.deploy.local._cluster import LocalCluster
from fedlab.events import Evaluated, RoundAggregated
from fedlab.deploy.security import INSECURE

FEDLAB = str(Path(sys.executable).with_name("fedlab"))
NODES = ["partition-id=0 num-partitions=2", "partition-id=1 num-partitions=2"]


def fedlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([FEDLAB, *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def fedlab_json(*args: str, cwd: Path) -> Any:
    return json.loads(fedlab(*args, "--format", "json", cwd=cwd).stdout)


@pytest.fixture(scope="module")
def cluster() -> Any:
    """A SuperLink whose two SuperNodes start only when a test calls start_nodes()."""
    running = LocalCluster(2, NODES, insecure=True)
    try:
        running.start_superlink()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def project(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `fedlab new` project with a 2-client simulation and the test SuperLink."""
    parent = tmp_path_factory.mktemp("cli")
    fedlab("new", "cli-runs", "--template", "numpy", cwd=parent)
    root = parent / "cli-runs"
    assert cluster.addresses is not None
    text = (
        (root / "pyproject.toml").read_text().replace("127.0.0.1:9093", cluster.addresses.control)
    )
    text = text.replace("fraction-train = 0.5", "fraction-train = 1.0")
    # This cluster is the insecure one (test_readme_deployment runs the secured walkthrough).
    start = text.index('root-cert = "creds/ca.pem"')
    end = text.index("\n", text.index('signing-key = "creds/signer.key"'))
    text = text[:start] + "insecure = true" + text[end:]
    text += "\n[tool.fedlab.federations.two-clients]\nsimulation = { num-clients = 2 }\n"
    (root / "pyproject.toml").write_text(text)
    return root


def event_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_two_concurrent_runs_complete_with_the_results_of_a_simulation(
    cluster: LocalCluster, project: Path
) -> None:
    first = fedlab_json("run", ".", "local-deployment", "--detach", cwd=project)["run-id"]
    second = fedlab_json(
        "run", ".", "local-deployment", "--detach", "--run-config", "lr=0.05", cwd=project
    )["run-id"]
    listed = fedlab_json("ls", ".", "local-deployment", cwd=project)["runs"]
    assert {first, second} <= {run["run_id"] for run in listed}
    # No SuperNode was up while they were submitted, so both runs share the nodes from
    # their first round to their last.
    cluster.start_nodes()
    # `fedlab log` follows the first run live, to its end, one JSON event per line.
    events = event_lines(
        fedlab("log", str(first), ".", "local-deployment", "--format", "json", cwd=project).stdout
    )
    assert events[0]["type"] == "RunStarted" and events[-1]["type"] == "RunFinished"
    assert events[-1]["error"] is None and events[-1]["rounds_completed"] == 3
    for run_id, overrides in ((first, []), (second, ["--run-config", "lr=0.05"])):
        simulated = fedlab_json("run", ".", "two-clients", *overrides, cwd=project)[
            "evaluate_metrics"
        ]
        with ControlClient(_address(project), security=INSECURE) as control:
            assert control.wait_for_run(run_id, timeout=240).status == "completed"
            stream = list(control.stream_events(run_id))
        deployed = {
            e.round: dict(e.metrics)
            for e in stream
            if isinstance(e, Evaluated) and e.source == "clients"
        }
        # Two clients, full participation: the same data and sums as the simulation.
        assert deployed == {int(r): m for r, m in simulated.items()}
    runs = {
        run["run_id"]: run
        for run in fedlab_json("ls", ".", "local-deployment", cwd=project)["runs"]
    }
    assert max(runs[first]["created_at"], runs[second]["created_at"]) < min(
        runs[first]["finished_at"], runs[second]["finished_at"]
    )
    table = fedlab("ls", ".", "local-deployment", cwd=project).stdout
    assert "run " in table and f"│ {first} " in table and "completed" in table


def test_run_follows_its_run_on_the_superlink_to_the_end(
    cluster: LocalCluster, project: Path
) -> None:
    cluster.start_nodes()
    out = fedlab(
        "run", ".", "local-deployment", "--run-config", "num-server-rounds=2", cwd=project
    ).stdout
    assert "round 1/2" in out and "round 2/2" in out and "finished after 2 round(s)" in out


def test_stop_ends_one_run_after_its_current_round(cluster: LocalCluster, project: Path) -> None:
    cluster.start_nodes()
    long_run = fedlab_json(
        "run",
        ".",
        "local-deployment",
        "--detach",
        "--run-config",
        "num-server-rounds=100000",
        cwd=project,
    )["run-id"]
    with ControlClient(_address(project), security=INSECURE) as control:
        for event in control.stream_events(long_run):
            if isinstance(event, RoundAggregated):
                break  # it is under way
        stopped = fedlab_json("stop", str(long_run), ".", "local-deployment", cwd=project)
        assert stopped == {"success": True, "run-id": long_run}
        info = control.wait_for_run(long_run, timeout=240)
        assert info.status == "stopped"
    runs = {
        run["run_id"]: run
        for run in fedlab_json("ls", ".", "local-deployment", cwd=project)["runs"]
    }
    assert runs[long_run]["status"] == "stopped"
    assert [run["status"] for run_id, run in runs.items() if run_id != long_run] == [
        "completed"
    ] * (len(runs) - 1)


def test_detach_prints_a_log_command_that_finds_the_superlink_from_anywhere(
    cluster: LocalCluster, project: Path, tmp_path: Path
) -> None:
    cluster.start_nodes()
    address = _address(project)
    out = fedlab(
        "run", ".", "local-deployment", "--detach", "--run-config", "num-server-rounds=1",
        cwd=project,
    ).stdout  # fmt: skip
    run_id = int(re.fullmatch(r"Started run (\d+) .*\n", out).group(1))  # type: ignore[union-attr]
    command = f"fedlab log {run_id} --superlink {address} --insecure"
    assert out == f"Started run {run_id} on {address}; follow it with `{command}`.\n"
    # Run as printed, from a folder with no project in it.
    logged = fedlab(*shlex.split(command)[1:], cwd=tmp_path).stdout
    assert "round 1/1" in logged


def test_run_sends_a_simulation_project_to_the_superlink_given_on_the_command_line(
    cluster: LocalCluster, project: Path
) -> None:
    cluster.start_nodes()
    address = _address(project)
    args = ["run", ".", "two-clients", "--superlink", address, "--run-config", "num-server-rounds=1"]
    refused = subprocess.run(
        [FEDLAB, *args], cwd=project, capture_output=True, text=True, timeout=300
    )
    assert refused.returncode == 1 and "pass --insecure" in refused.stderr
    out = fedlab(*args, "--insecure", cwd=project).stdout
    run_id = int(re.search(r"Started run (\d+) on ", out).group(1))  # type: ignore[union-attr]
    assert f"Started run {run_id} on {address} (two-clients)." in out
    assert f"Run {run_id} finished after 1 round(s)." in out
    with ControlClient(address, security=INSECURE) as control:
        assert control.wait_for_run(run_id, timeout=240).status == "completed"


def _address(project: Path) -> str:
    from fedlab.cli._project import load_project

    address = load_project(project).federation("local-deployment").address
    assert address is not None
    return address
