"""``fed.deploy(local=N, keep=True)``: the next run reuses the running cluster, and gets
the same result as a cold one; a dead node means a fresh cluster; shutdown() ends it."""

from __future__ import annotations

import os
import signal
import time

import numpy as np

import fedlab as fl
from fedlab.deploy.local import shutdown, warm
from fedlab.records import ArrayRecord, MetricRecord, RecordDict
from fedlab.server import Result
from fedlab.strategy import FedAvg

app = fl.ClientApp()


@app.train()
def train(msg, ctx):  # type: ignore[no-untyped-def]
    pid = int(ctx.node_config["partition-id"])
    w = msg.content.array_record("arrays").to_numpy()[0] * 0.5 + (pid + 1)
    return msg.reply(RecordDict({"arrays": ArrayRecord([w]),
                                 "metrics": MetricRecord({"num-examples": pid + 1})}))  # fmt: skip


def fed() -> fl.Federation:
    strategy = FedAvg(fraction_evaluate=0.0, min_train_nodes=2, min_available_nodes=2)
    return fl.Federation(app, strategy, initial_arrays=[np.zeros(3, np.float32)], display="none")


def exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def gone(pids: list[int]) -> list[int]:
    deadline = time.monotonic() + 30
    while any(exists(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [pid for pid in pids if exists(pid)]


def weights(result: Result) -> np.ndarray:
    return np.asarray(result.arrays.to_numpy()[0])


def test_a_kept_cluster_serves_the_next_run_and_a_dead_node_gets_a_fresh_cluster() -> None:
    # w_r = w_{r-1} / 2 + (1*1 + 2*2) / 3, from 0.
    expected = np.full(3, 5 / 3 / 2 + 5 / 3, np.float32)
    try:
        first = fed().deploy(local=2, rounds=2, keep=True)
        kept = warm.current()
        assert kept is not None
        pids = list(kept.pids)
        assert all(exists(pid) for pid in pids)  # still running after the run
        second = fed().deploy(local=2, rounds=2, keep=True)
        assert warm.current() is kept and kept.pids == pids  # the same SuperLink and nodes
        cold = fed().deploy(local=2, rounds=2)
        for result in (first, second, cold):
            np.testing.assert_allclose(weights(result), expected, rtol=1e-6)
        assert kept.pids == pids and all(exists(pid) for pid in pids)  # a cold run is apart
        os.kill(pids[2], signal.SIGKILL)
        assert kept.processes[2].wait(30) == -signal.SIGKILL
        healed = fed().deploy(local=2, rounds=2, keep=True)
        np.testing.assert_allclose(weights(healed), expected, rtol=1e-6)
        fresh = warm.current()
        assert fresh is not None and fresh is not kept and fresh.pids[0] != pids[0]
        assert gone(pids) == [] and not kept.directory.exists()
        new_pids, directory = list(fresh.pids), fresh.directory
    finally:
        stopped = shutdown()
    assert stopped and warm.current() is None and not shutdown()
    assert gone(new_pids) == [] and not directory.exists()
