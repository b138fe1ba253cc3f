"""deploy(local=N)'s processes forked warm: real, killable, isolated, and all gone at the end.

A LocalCluster (TLS, node keys, a signed bundle) whose SuperLink and SuperNodes the
template process forks, and whose SuperNodes fork their ClientApp processes through a
fork server; the process tree is read from ``/proc``.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedlab.deploy.bundle import build_bundle
from fedlab.deploy.client.control_client import ControlClient
from fedlab.deploy.client.grpcgrid import GrpcGrid
from fedlab.deploy.local._cluster import LocalCluster
from fedlab.deploy.local._forked import template
from fedlab.message import Message
from fedlab.records import ArrayRecord, ConfigRecord, RecordDict

APP = """
import os
import sys

from fedlab import ClientApp
from fedlab.records import ConfigRecord, MetricRecord, RecordDict

app = ClientApp()


@app.train()
def train(msg, ctx):
    action = msg.content["config"]["action"]
    if action == "os._exit":
        os._exit(7)
    if action == "sys.exit":
        sys.exit(3)
    calls = ctx.state.get("calls", MetricRecord({"n": 0}))
    calls["n"] = calls["n"] + 1
    ctx.state["calls"] = calls
    return msg.reply(RecordDict({
        "info": ConfigRecord({"pid": os.getpid(), "calls": calls["n"],
                              "loaded": sorted(m for m in sys.modules if m.startswith("forkapp"))}),
        "metrics": MetricRecord({"num-examples": 1}),
    }))
"""
KEY = Ed25519PrivateKey.generate()
NODES = ["partition-id=0 num-partitions=2", "partition-id=1 num-partitions=2"]


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def children(pid: int) -> list[int]:
    return [
        int(task)
        for task in os.listdir("/proc")
        if task.isdigit() and _parent_or_none(int(task)) == pid
    ]


def _parent_or_none(pid: int) -> int | None:
    try:
        return parent(pid)
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def send(cluster: LocalCluster, run_id: int, node_id: int, action: str) -> Message:
    assert cluster.addresses is not None
    grid = GrpcGrid(cluster.addresses.serverappio, run_id, security=cluster.security)
    try:
        content = RecordDict(
            {"arrays": ArrayRecord([np.zeros(2)]), "config": ConfigRecord({"action": action})}
        )
        (reply,) = grid.send_and_receive(
            [grid.create_message(content, "train", node_id, "1")], timeout=120
        )
    finally:
        grid.close()
    return reply


def info(reply: Message) -> dict[str, Any]:
    assert reply.has_content(), reply.error
    return dict(reply.content["info"])


def test_the_template_forks_the_cluster_and_its_nodes_fork_isolated_clientapp_processes(
    tmp_path: Path,
) -> None:
    (tmp_path / "forkapp.py").write_text(APP)
    bundle = build_bundle("forkapp:app", project_dir=tmp_path, signing_key=KEY)
    cluster = LocalCluster(2, NODES, trusted_keys=[KEY.public_key()])
    assert cluster.fork
    with cluster:
        assert cluster.addresses is not None
        link, *nodes = cluster.pids
        template = parent(link)
        assert template != os.getpid() and parent(template) == os.getpid()
        assert [parent(pid) for pid in nodes] == [template, template]
        assert all(os.getpgid(pid) == pid for pid in cluster.pids)  # a session each
        with ControlClient(cluster.addresses.control, security=cluster.security) as control:
            run_id = control.create_run(bundle, {}, attached=True)
            grid = GrpcGrid(cluster.addresses.serverappio, run_id, security=cluster.security)
            node_ids = sorted(grid.wait_for_nodes(2, 60.0))
            grid.close()
            first = info(send(cluster, run_id, node_ids[0], "echo"))
            runner = int(first["pid"])
            # A process of its own, the node's child, the bundle imported there only.
            owner = parent(runner)
            assert owner in nodes and runner not in cluster.pids
            assert (
                first["loaded"] == ["forkapp"]
                and info(send(cluster, run_id, node_ids[0], "echo"))["pid"] == runner
            )
            exited = send(cluster, run_id, node_ids[0], "os._exit")
            assert exited.error is not None and "exited with code 7" in exited.error.reason
            left = send(cluster, run_id, node_ids[0], "sys.exit")
            assert left.error is not None and "sys.exit(3)" in left.error.reason
            after = info(send(cluster, run_id, node_ids[0], "echo"))
            assert (
                after["pid"] != runner
                and after["calls"] == 3
                and parent(int(after["pid"])) == owner
            )
            assert cluster.processes[nodes.index(owner) + 1].poll() is None  # the node lives on
            # A SuperNode the template forked is a real process: killed, it is reported dead.
            other = next(pid for pid in nodes if pid != owner)
            os.kill(other, signal.SIGKILL)
            killed = cluster.processes[nodes.index(other) + 1]
            assert killed.wait(30) == -signal.SIGKILL
            served = info(send(cluster, run_id, node_ids[0], "echo"))
            assert served["calls"] == 4
            control.finish_run(run_id, "completed", None)
        descendants = [*cluster.pids, int(after["pid"]), *children(owner)]
    deadline = time.monotonic() + 30
    while any(exists(pid) for pid in descendants) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in descendants if exists(pid)] == []
    assert not cluster.directory.exists()


def test_fresh_interpreters_remain_the_path_where_forking_is_off(tmp_path: Path) -> None:
    class Cold(LocalCluster):
        fork = False

    with Cold(1, NODES[:1], insecure=True) as cluster:
        link, node = cluster.pids
        assert parent(link) == os.getpid() and parent(node) == os.getpid()
    assert not exists(link) and not exists(node)


def test_a_forked_process_ends_as_python_m_would_its_output_written_and_its_status_kept(
    tmp_path: Path,
) -> None:
    # The template skips the interpreter's teardown in its children: what a normal exit
    # does first (buffered output written, the exit status) must still happen.
    spawner = template(60.0)
    env = dict(os.environ)
    zen = spawner.spawn("this", [], log=tmp_path / "this.log", cwd=tmp_path, env=env)
    assert zen.wait(60) == 0
    assert "Beautiful is better than ugly." in (tmp_path / "this.log").read_text()
    failed = spawner.spawn(
        "json.tool", [str(tmp_path / "missing.json")], log=tmp_path / "tool.log", cwd=tmp_path, env=env
    )
    assert failed.wait(60) == 2  # argparse's status for a file it cannot open
    assert "missing.json" in (tmp_path / "tool.log").read_text()
