"""The test cluster stops only what it started: other runs' clusters on the machine live on."""

from __future__ import annotations

import subprocess
import time

from tests.integration.ray_cluster import session_processes, stop_session

# A session leader with two children, standing in for `ray start` and the daemons it leaves.
FAMILY = ["sh", "-c", "sleep 600 & sleep 600 & wait"]


def test_stopping_a_session_kills_all_its_processes_and_nothing_else() -> None:
    ours = subprocess.Popen(FAMILY, start_new_session=True)
    theirs = subprocess.Popen(FAMILY, start_new_session=True)
    try:
        for family in (ours, theirs):
            _wait_for(3, family.pid)
        survivors = session_processes(theirs.pid)

        stop_session(ours.pid)

        assert session_processes(ours.pid) == []
        assert ours.wait(timeout=10) == -9  # SIGKILL
        assert session_processes(theirs.pid) == survivors
        assert theirs.poll() is None
    finally:
        stop_session(ours.pid)
        stop_session(theirs.pid)
        ours.wait(timeout=10)
        theirs.wait(timeout=10)


def _wait_for(count: int, session: int) -> None:
    deadline = time.monotonic() + 60  # a guard against a hang, not a timing assertion
    while len(session_processes(session)) < count:
        assert time.monotonic() < deadline, f"session {session} never had {count} processes"
        time.sleep(0.01)
