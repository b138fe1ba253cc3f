"""`make demo`'s job, run as a user would: a fresh process, real torch, real digits."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def run_demo(*args: str) -> str:
    env = dict(os.environ, FEDLAB_DISPLAY="plain")
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600, check=True)
    return out.stdout


def test_demo_reaches_the_promised_accuracy_with_live_progress_lines() -> None:
    stdout = run_demo(sys.executable, "-m", "fedlab.demo")
    assert re.findall(r"^round (\d+)/10  clients", stdout, re.MULTILINE) == [str(r) for r in range(1, 11)]
    match = re.search(r"final held-out accuracy: (\d\.\d+)", stdout)
    assert match is not None, stdout
    assert float(match.group(1)) >= 0.90


def test_fedlab_demo_command_runs_the_same_demo() -> None:
    stdout = run_demo(sys.executable, "-m", "fedlab.cli.main", "demo", "--rounds", "2", "--clients", "4")
    assert "round 2/2" in stdout and "final held-out accuracy" in stdout
