"""A client that never returns: scripts still exit, and its worker process is really killed.

How rounds go on around such a client, on every backend, is part of the backend contract
(tests/contracts/backend_contract.py).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import fedlab as fl
from fedlab.message import ErrorCode, Message
from fedlab.records import ArrayRecord, MetricRecord, RecordDict
from fedlab.simulation import ProcessBackend
from fedlab.strategy import FedAvg

ROOT = Path(__file__).resolve().parents[2]

# A script whose partition 0 blocks forever; it prints that run() returned and then ends.
SCRIPT = textwrap.dedent(
    """
    import sys, threading
    import numpy as np
    import fedlab as fl
    from fedlab.strategy import FedAvg

    app = fl.ClientApp()

    @app.train()
    def train(msg, ctx):
        if ctx.node_config["partition-id"] == 0:
            threading.Event().wait()  # never set
        metrics = fl.MetricRecord({"num-examples": 1})
        return msg.reply(fl.RecordDict({"arrays": msg.content["arrays"], "metrics": metrics}))

    if __name__ == "__main__":
        backend, timeout = sys.argv[1], float(sys.argv[2])
        strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_available_nodes=3)
        fed = fl.Federation(app, strategy, num_clients=3, initial_arrays=[np.zeros(2)], seed=0,
                            backend=backend, timeout=timeout, display="plain")
        result = fed.run(rounds=1)
        (hung,) = [c for c in result.history.clients if c["partition_id"] == 0]
        print(f"run returned; partition 0 (node {hung['node_id']}) error code:",
              hung["error_code"], flush=True)
    """
)


def run_script(backend: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run SCRIPT; a script that does not exit fails the test after two minutes."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FEDLAB_DISPLAY": "plain"}
    try:
        return subprocess.run(
            [sys.executable, "-c", SCRIPT, backend, str(timeout)],
            check=False,
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=120,
        )
    except subprocess.TimeoutExpired as err:  # subprocess.run has killed it
        pytest.fail(f"The script with a hung client on {backend!r} did not exit:\n{err.stdout!r}")


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_a_script_whose_client_hangs_exits_once_run_returns(backend: str) -> None:
    done = run_script(backend, 1.0)
    assert done.returncode == 0, done.stderr
    assert re.search(
        rf"run returned; partition 0 \(node \d+\) error code: {int(ErrorCode.TIMEOUT)}$",
        done.stdout,
        re.MULTILINE,
    ), done.stdout


def test_a_script_on_the_inline_backend_says_which_client_it_waits_on_and_exits() -> None:
    done = run_script("inline", 8.0)  # the line comes once 5 s passed without a reply
    assert done.returncode == 0, done.stderr
    found = re.search(
        rf"run returned; partition 0 \(node (\d+)\) error code: {int(ErrorCode.TIMEOUT)}$",
        done.stdout,
        re.MULTILINE,
    )
    assert found, done.stdout
    waiting = [line for line in done.stdout.splitlines() if "waiting on" in line]
    # Named by its partition, known since the round started, though it never replied.
    assert waiting and waiting[0].startswith(
        f"round 1 train: waiting on client 0 (node {found[1]}) for "
    )
    assert f"client 0 (node {found[1]}) failed in round 1 (train)" in done.stdout
    # The clients queued after it still ran, each with a timeout of its own, and the
    # round aggregated their replies.
    assert "clients 2/3 (1 failed)" in done.stdout, done.stdout


app = fl.ClientApp()


@app.train()
def hang_in_partition_zero(msg: Message, ctx: fl.Context) -> Message:
    """Partition 0 writes its worker's pid to the file the run config names and sleeps."""
    if ctx.node_config["partition-id"] == 0:
        with open(str(ctx.run_config["pid-file"]), "a") as out:
            out.write(f"{os.getpid()}\n")
        time.sleep(10**6)
    metrics = MetricRecord({"num-examples": 1})
    return msg.reply(RecordDict({"arrays": msg.content.array_record("arrays"), "metrics": metrics}))


def test_the_worker_process_of_a_hung_client_is_killed_and_replaced_each_round(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "pids"
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_available_nodes=3)
    backend = ProcessBackend(2)
    fed = fl.Federation(
        app,
        strategy,
        num_clients=3,
        initial_arrays=ArrayRecord([np.zeros(2)]),
        seed=0,
        backend=backend,
        timeout=2.0,
        display="none",
        run_config={"pid-file": str(pid_file)},
    )
    result = fed.run(rounds=2)

    assert result.history is not None
    hung = [c for c in result.history.clients if c["partition_id"] == 0]
    assert [c["error_code"] for c in hung] == [int(ErrorCode.TIMEOUT)] * 2
    others = [c for c in result.history.clients if c["partition_id"] != 0]
    assert len(others) == 4 and all(c["error_code"] is None for c in others)
    pids = [int(line) for line in pid_file.read_text().split()]
    assert len(pids) == 2 and len(set(pids)) == 2  # round 2 ran on a replacement
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
