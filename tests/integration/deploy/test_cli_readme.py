"""The README's `fedlab new` + `fedlab run` commands work as written in an empty directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[3] / "README.md"


def readme_commands() -> list[str]:
    """The README's bash block that creates and runs a project."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.DOTALL)
    (block,) = [b for b in blocks if b.startswith("fedlab new ")]
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def test_the_readme_creates_and_runs_a_project_from_nothing(tmp_path: Path) -> None:
    commands = readme_commands()
    assert commands[0].startswith("fedlab new") and any(
        c.startswith("fedlab run") for c in commands
    )
    bin_dir = str(Path(sys.executable).parent)
    # A fresh user: empty home, fedlab on PATH, nothing else set up; the templates ship
    # inside the package, so nothing is downloaded.
    env = dict(
        os.environ,
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        HOME=str(tmp_path / "home"),
        FEDLAB_DISPLAY="plain",
        PIP_NO_INDEX="1",
    )
    (tmp_path / "home").mkdir()
    cwd = tmp_path / "work"
    cwd.mkdir()
    outputs = []
    for command in commands:
        if command.startswith("cd "):
            cwd = cwd / command.removeprefix("cd ").strip()
            continue
        done = subprocess.run(
            command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"{command!r} failed:\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    assert "round 3/3" in outputs[1]  # `fedlab run .`: the project's three rounds
    report = json.loads(outputs[2])  # `fedlab run . --run-config num-server-rounds=5 --format json`
    assert report["success"] and report["rounds_completed"] == 5
    losses = [report["evaluate_metrics"][str(r)]["loss"] for r in range(1, 6)]
    assert losses == sorted(losses, reverse=True)
