"""The README's secured deployment walkthrough works as written, in a fresh project.

Only the ports change (free ones instead of 9091-9093, so parallel runs cannot collide);
every credential is made by the commands themselves.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

README = Path(__file__).resolve().parents[3] / "README.md"


def walkthrough() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.DOTALL)
    (block,) = [b for b in blocks if b.startswith("fedlab certs creds")]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.split("  #")[0].strip()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(path: Path, text: str, process: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        assert process.poll() is None and time.monotonic() < deadline, path.read_text(errors="replace")
        time.sleep(0.1)


def test_the_readme_walkthrough_runs_a_project_on_a_secured_superlink(tmp_path: Path) -> None:
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", FEDLAB_DISPLAY="plain")
    env.pop("FEDLAB_TOKEN", None)
    subprocess.run(["fedlab", "new", "my-app", "--template", "numpy"], cwd=tmp_path, env=env, check=True,
                   capture_output=True)  # fmt: skip
    project = tmp_path / "my-app"
    fleet, serverappio, control = free_port(), free_port(), free_port()
    toml = project / "pyproject.toml"
    toml.write_text(toml.read_text().replace("127.0.0.1:9093", f"127.0.0.1:{control}"))
    daemons: list[subprocess.Popen[bytes]] = []
    outputs: dict[str, str] = {}
    try:
        for number, command in enumerate(walkthrough()):
            command = command.replace("127.0.0.1:9092", f"127.0.0.1:{fleet}")
            if command.endswith("&"):
                command = command.rstrip("& ")
                if command.startswith("fedlab superlink"):
                    command += (f" --fleet-address 127.0.0.1:{fleet} --serverappio-address 127.0.0.1:{serverappio}"
                                f" --control-address 127.0.0.1:{control}")  # fmt: skip
                log = tmp_path / f"daemon-{number}.log"
                with open(log, "wb") as out:
                    daemons.append(subprocess.Popen(command, shell=True, cwd=project, env=env, stdout=out,
                                                    stderr=subprocess.STDOUT, start_new_session=True))  # fmt: skip
                ready = "superlink ready" if command.startswith("fedlab superlink") else "supernode registered"
                wait_for(log, ready, daemons[-1])
                continue
            done = subprocess.run(command, shell=True, cwd=project, env=env, capture_output=True, text=True,
                                  timeout=300)  # fmt: skip
            assert done.returncode == 0, f"{command!r} failed:\n{done.stdout}\n{done.stderr}"
            outputs[command.split()[1]] = done.stdout
        assert "finished after 3 round(s)" in outputs["run"]
        listed = subprocess.run(["fedlab", "ls", ".", "local-deployment", "--format", "json"], cwd=project, env=env,
                                capture_output=True, text=True, check=True).stdout  # fmt: skip
        (run,) = json.loads(listed)["runs"]
        assert (run["status"], run["owner"]) == ("completed", "admin")
        # An outsider on the same machine, without the token, gets nothing.
        refused = subprocess.run(["fedlab", "ls", "--superlink", f"127.0.0.1:{control}", "--root-cert",
                                  "creds/ca.pem", "--token", "guess"], cwd=project, env=env,
                                 capture_output=True, text=True)  # fmt: skip
        assert refused.returncode == 1 and "not valid" in refused.stderr
    finally:
        for daemon in reversed(daemons):
            try:
                os.killpg(daemon.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for daemon in daemons:
            try:
                daemon.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
