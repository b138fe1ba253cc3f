"""OrphanSupervisor: ServerApp processes a restarted SuperLink finds in its state directory."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedlab.deploy.superlink.orphans import OrphanSupervisor
from fedlab.deploy.superlink.state import LinkState

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for child in started:
        child.kill()
        child.wait()


def spawn(children: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    child = subprocess.Popen(SLEEPER, text=True)
    children.append(child)
    return child


def wait_for_status(state: LinkState, run_id: int, status: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while state.runs.require(run_id).status != status:
        assert time.monotonic() < deadline, state.runs.require(run_id)
        time.sleep(0.02)
    return state.runs.require(run_id).error


def test_a_record_names_only_the_very_process_it_was_made_for(
    tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    state = LinkState(tmp_path)
    try:
        child = spawn(children)
        orphans = OrphanSupervisor(state)
        orphans.record(7, child)
        record = orphans.read(7)
        assert record is not None and record.pid == child.pid and record.is_alive()
        # The same pid with another start time or command line is another process.
        assert not dataclasses.replace(record, start_ticks=record.start_ticks + 1).is_alive()
        assert not dataclasses.replace(record, cmdline=("python", "--run-id", "8")).is_alive()
        child.kill()  # and not waited for: a zombie, which does not count as alive either
        deadline = time.monotonic() + 10
        while record.is_alive():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert (tmp_path / "serverapps").stat().st_mode & 0o777 == 0o700
        assert (tmp_path / "serverapps" / "7.json").stat().st_mode & 0o777 == 0o600
    finally:
        state.close()


def test_a_restarted_superlink_adopts_live_serverapps_and_fails_runs_whose_process_is_gone(
    tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    state = LinkState(tmp_path)
    alive_run, gone_run = (state.runs.create({}, attached=False) for _ in range(2))
    attached = state.runs.create({}, attached=True)
    alive, gone = spawn(children), spawn(children)
    OrphanSupervisor(state).record(alive_run, alive)
    OrphanSupervisor(state).record(gone_run, gone)
    gone.kill()
    gone.wait()
    state.close()  # the SuperLink crashed; a new one opens the same directory

    state = LinkState(tmp_path)
    orphans = OrphanSupervisor(state, poll_interval=0.05)
    try:
        assert orphans.adopt() == [alive_run]
        assert "was gone when the SuperLink restarted" in state.runs.require(gone_run).error
        assert state.runs.require(gone_run).status == "failed"
        assert state.runs.require(alive_run).status == "running"
        assert state.runs.require(attached).status == "running"  # the driver-grace rule's job
        assert orphans.running() == [alive_run]
        alive.kill()
        error = wait_for_status(state, alive_run, "failed")
        assert f"(pid {alive.pid}) exited without finishing the run" in error
        assert not (tmp_path / "serverapps" / f"{alive_run}.json").exists()
    finally:
        orphans.shutdown()
        state.close()
