"""Flower app projects under real Flower 1.42 (``flwr run``) and under ``fedlab run``, side by side.

Runs each app of ``tests/integration/flower_apps/`` twice, unchanged: with Flower's own CLI and
simulation (``flwr run APP local-simulation --stream`` from a Flower venv, default
``/tmp/flwr-venv``, made by ``bench/flower/setup.sh``) and with ``fedlab run APP``. Every app
saves its final arrays and metrics to the ``result-path`` of its run config (the script reads
``RESULT_PATH``); the table compares them and the wall time of the whole command::

    python bench/flower_apps.py [--flwr-venv /tmp/flwr-venv] [--apps numpy_quickstart ...]

The deterministic apps (NumPy quickstart, mods, analytics, run_simulation) are built so that
their aggregates do not depend on the order replies arrive in (dyadic values, equal weights):
there the values must be equal bit for bit. The PyTorch app trains in float32, where Flower and
fedlab may sum replies in other orders; its column shows the largest difference.

Each app runs in a copy, because ``flwr run`` rewrites a project's ``[tool.flwr.federations]``
into its own configuration file. Flower's local SuperLink, which ``flwr run`` starts and leaves
running, is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
APPS = ROOT / "tests" / "integration" / "flower_apps"
PROJECTS = ("numpy_quickstart", "mods_app", "analytics")
SCRIPT = "run_simulation/simulate_numpy.py"
FEDLAB = str(Path(sys.executable).parent / "fedlab")


def run_timed(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> float:
    """Run ``command`` to its end; return its wall time, raise with its log if it fails."""
    started = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.call(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed ({code}):\n{log.read_text()[-3000:]}")
    return elapsed


def attempts(
    command: list[str], env: dict[str, str], cwd: Path, log: Path, out: Path, tries: int
) -> float:
    """Run ``command`` until it writes ``out``, at most ``tries`` times; its last wall time.

    ``flwr run`` exits 0 when its simulation crashed, and on a loaded machine its local
    SuperLink (15 s) or Ray's node startup (30 s) may time out: Flower gets retries.
    """
    elapsed = 0.0
    for attempt in range(tries):
        try:
            elapsed = run_timed(command, env, cwd, log)
        except SystemExit:
            if attempt == tries - 1:
                raise
        if out.exists():
            break
    return elapsed


def load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


def compare(flower: dict[str, np.ndarray], fedlab: dict[str, np.ndarray]) -> tuple[bool, float]:
    """(bit-for-bit equal, largest absolute difference) over every saved value."""
    if sorted(flower) != sorted(fedlab):
        return False, float("inf")
    equal = all(np.array_equal(flower[k], fedlab[k]) for k in flower)
    gap = max(
        float(
            np.max(np.abs(flower[k].astype(np.float64) - fedlab[k].astype(np.float64)), initial=0)
        )
        for k in flower
    )
    return equal, gap


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop_local_superlinks(home: Path) -> None:
    """Stop the local SuperLink (and its children) that ``flwr run`` started for ``home``."""
    listing = subprocess.run(
        ["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=False
    ).stdout
    for line in listing.splitlines():
        pid, _, args = line.strip().partition(" ")
        if str(home) in args and "flower-superlink" in args:
            subprocess.call(["kill", pid])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flwr-venv", default="/tmp/flwr-venv", type=Path)
    parser.add_argument("--apps", nargs="*", default=[*PROJECTS, "run_simulation", "digits_torch"])
    parser.add_argument("--sides", nargs="*", default=["flower", "fedlab"], help="which to run")
    args = parser.parse_args()
    flwr_bin = args.flwr_venv / "bin"
    if not (flwr_bin / "flwr").exists():
        raise SystemExit(f"No Flower at {flwr_bin}/flwr; run bench/flower/setup.sh first.")
    work = Path(tempfile.mkdtemp(prefix="flower-apps-"))
    home = work / "flwr-home"
    flower_env = {**os.environ, "FLWR_HOME": str(home), "PATH": f"{flwr_bin}:{os.environ['PATH']}"}
    flower_env.pop("PYTHONPATH", None)
    # Our own local SuperLink, on free ports, not one that another user's flwr run started.
    flower_env["FLWR_LOCAL_CONTROL_API_PORT"] = str(free_port())
    flower_env["FLWR_LOCAL_SUPERLINK_HTTP_API_PORT"] = str(free_port())
    fedlab_env = {**os.environ, "FLWR_HOME": str(work / "fedlab-home"), "FEDLAB_DISPLAY": "plain"}
    fedlab_env["PYTHONPATH"] = f"{ROOT}:{os.environ.get('PYTHONPATH', '')}".rstrip(":")
    rows = []
    try:
        for app in args.apps:
            results = {}
            times = {}
            for side in args.sides:
                copy = work / side / app
                shutil.copytree(APPS / app, copy)
                out = work / f"{side}-{app}.npz"
                log = work / f"{side}-{app}.log"
                if app == "run_simulation":
                    script = copy / Path(SCRIPT).name
                    env = {
                        **(flower_env if side == "flower" else fedlab_env),
                        "RESULT_PATH": str(out),
                    }
                    command = (
                        [str(flwr_bin / "python"), str(script)]
                        if side == "flower"
                        else [FEDLAB, "run", str(script)]
                    )
                    times[side] = attempts(
                        command, env, copy, log, out, 3 if side == "flower" else 1
                    )
                else:
                    override = f'result-path="{out}"'
                    if side == "flower":
                        command = [str(flwr_bin / "flwr"), "run", str(copy), "local-simulation",
                                   "--stream", "--run-config", override]  # fmt: skip
                        env = flower_env
                    else:
                        command = [FEDLAB, "run", str(copy),
                                   "local-simulation", "--run-config", override]  # fmt: skip
                        env = fedlab_env
                    times[side] = attempts(
                        command, env, copy, log, out, 3 if side == "flower" else 1
                    )
                if not out.exists():
                    raise SystemExit(f"{side} wrote no result for {app}; see {log}")
                results[side] = load(out)
            if len(results) < 2:
                print(f"done {app} ({side} only): {times[side]:.1f} s", flush=True)
                for name, value in results[side].items():
                    print(f"  {name}: {np.array2string(value.ravel()[:6], precision=6)}")
                continue
            equal, gap = compare(results["flower"], results["fedlab"])
            rows.append((app, equal, gap, times["flower"], times["fedlab"]))
            print(f"done {app}: equal={equal} max|diff|={gap:.3g}", flush=True)
    finally:
        stop_local_superlinks(home)
    print()
    print("| app | final values | max abs diff | Flower 1.42 (s) | fedlab (s) | speed-up |")
    print("|---|---|---|---|---|---|")
    for app, equal, gap, flower_s, fedlab_s in rows:
        verdict = "equal" if equal else "differ"
        print(
            f"| {app} | {verdict} | {gap:.3g} | {flower_s:.1f} | {fedlab_s:.1f} | "
            f"{flower_s / fedlab_s:.1f}x |"
        )
    print(f"\nLogs and results: {work}")


if __name__ == "__main__":
    main()
