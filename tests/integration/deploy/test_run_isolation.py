"""Only code signed for the run runs, and each run's ClientApp runs in a process of its own.

A SuperLink (in-process, ``--insecure``) and real SuperNode processes on 127.0.0.1. Runs
the tests create straight in the SuperLink's state stand for a SuperLink that does not
check bundles (an older or a compromised one): the nodes must refuse on their own.
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fedlab.deploy.bundle import build_bundle, load_bundle
from fedlab.deploy.client.control_client import ControlClient
from fedlab.deploy.client.grpcgrid import GrpcGrid
from fedlab.deploy.security import INSECURE
from fedlab.deploy.superlink import SuperLink
from fedlab.errors import DeployError
from fedlab.message import ErrorCode, Message
from fedlab.records import ArrayRecord, ConfigRecord, RecordDict
from tests.integration.deploy.deploy_cluster import Cluster, Proc

LOOPBACK: dict[str, Any] = {
    "fleet_address": "127.0.0.1:0",
    "serverappio_address": "127.0.0.1:0",
    "control_address": "127.0.0.1:0",
}
KEY = Ed25519PrivateKey.generate()
ISOAPP = """
import json
import os
import sys

from fedlab import ClientApp, ServerApp
from fedlab.records import ConfigRecord, MetricRecord, RecordDict

app = ClientApp()
server = ServerApp()


@server.main()
def main(grid, context):
    open(context.run_config["marker"], "w").close()


@app.train()
def train(msg, ctx):
    action = msg.content["config"]["action"]
    if action == "sys.exit":
        sys.exit(3)
    if action == "os._exit":
        os._exit(7)
    if action == "spin":
        while True:
            pass
    if action == "hog":
        hog = bytearray(4 * 1024**3)  # above the node's memory limit for a run
        hog[-1] = 1
    runs = ctx.state.get("runs", MetricRecord({"n": 0}))
    runs["n"] = runs["n"] + 1
    ctx.state["runs"] = runs
    return msg.reply(RecordDict({
        "info": ConfigRecord({
            "json": json.__file__, "shadowed": hasattr(json, "SHADOW"), "pid": os.getpid(),
            "data-path": str(ctx.run_config.get("data-path", "")), "calls": runs["n"],
        }),
        "metrics": MetricRecord({"num-examples": 1}),
    }))
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("isolation")
    (root / "isoapp.py").write_text(ISOAPP)
    return root


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[SuperLink, Cluster]]:
    procs = Cluster(tmp_path)
    with SuperLink(**LOOPBACK, insecure=True) as link:
        procs.fleet, procs.serverappio = link.addresses["fleet"], link.addresses["serverappio"]
        procs.control_address = link.addresses["control"]
        try:
            yield link, procs
        finally:
            procs.stop()


def start_node(procs: Cluster, *extra: str) -> tuple[Proc, int]:
    proc = procs.start_node("partition-id=0", heartbeat_interval=1.0, extra=extra)
    return proc, Cluster.node_id(proc)


def trusted_key_file(directory: Path) -> str:
    path = directory / "trusted.pem"
    path.write_bytes(KEY.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return str(path)


def unchecked_run(link: SuperLink, bundle: bytes, config: dict[str, Any]) -> int:
    """A run created without the SuperLink's CreateRun checks (as an unchecking SuperLink would)."""
    assert link.state is not None
    digest = link.state.objects.put(bundle)
    return link.state.runs.create(
        config, attached=True, bundle_digest=digest, bundle_size=len(bundle)
    )


def send(link: SuperLink, run_id: int, node_id: int, action: str = "echo") -> Message:
    content = RecordDict(
        {"arrays": ArrayRecord([np.zeros(2)]), "config": ConfigRecord({"action": action})}
    )
    grid = GrpcGrid(link.addresses["serverappio"], run_id, security=INSECURE)
    try:
        (reply,) = grid.send_and_receive(
            [grid.create_message(content, "train", node_id, "1")], timeout=120
        )
    finally:
        grid.close()
    return reply


def info(reply: Message) -> dict[str, Any]:
    assert reply.has_content(), reply.error
    return dict(reply.content["info"])


def with_file(bundle: bytes, path: str, content: bytes) -> bytes:
    """Rebuild an unsigned bundle with one more shipped file (as a crafted bundle would)."""
    import hashlib

    source = zipfile.ZipFile(io.BytesIO(bundle))
    manifest = json.loads(source.read("manifest.json"))
    manifest["files"][path] = {"sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        target.writestr("manifest.json", json.dumps(manifest))
        for name in source.namelist():
            if name.startswith("code/"):
                target.writestr(name, source.read(name))
        target.writestr("code/" + path, content)
    return out.getvalue()


def test_a_signed_bundle_replayed_with_another_config_is_refused_by_the_node_and_the_server_hears_why(
    cluster: tuple[SuperLink, Cluster], project: Path, tmp_path: Path
) -> None:
    link, procs = cluster
    _, node_id = start_node(procs, "--trusted-key", trusted_key_file(tmp_path))
    bundle = build_bundle(
        "isoapp:app", project_dir=project, run_config={"data-path": "/data"}, signing_key=KEY
    )
    assert (
        info(send(link, unchecked_run(link, bundle, {"data-path": "/data"}), node_id))["data-path"]
        == "/data"
    )
    replayed = send(link, unchecked_run(link, bundle, {"data-path": "/etc"}), node_id)
    assert replayed.error is not None and replayed.error.code == ErrorCode.CLIENT_APP_CRASHED
    assert "not the config the bundle was signed for" in replayed.error.reason
    # The same config, but another run: the nonce was seen for the first run.
    again = send(link, unchecked_run(link, bundle, {"data-path": "/data"}), node_id)
    assert again.error is not None and "a signed bundle runs for one run only" in again.error.reason
    # An unsigned bundle never runs on a node with trusted keys.
    unsigned = build_bundle("isoapp:app", project_dir=project, run_config={"data-path": "/data"})
    refused = send(link, unchecked_run(link, unsigned, {"data-path": "/data"}), node_id)
    assert refused.error is not None and "not signed" in refused.error.reason


def test_the_superlink_refuses_to_create_a_run_with_a_bundle_signed_for_another_config_or_run(
    cluster: tuple[SuperLink, Cluster], project: Path
) -> None:
    link, _ = cluster
    bundle = build_bundle(
        "isoapp:app", project_dir=project, run_config={"data-path": "/data"}, signing_key=KEY
    )
    with ControlClient(link.addresses["control"], security=INSECURE) as control:
        with pytest.raises(DeployError, match="not the config the bundle was signed for"):
            control.create_run(bundle, {"data-path": "/etc"}, attached=True)
        control.create_run(bundle, {"data-path": "/data"}, attached=True)
        with pytest.raises(DeployError, match="already ran as an earlier run"):
            control.create_run(bundle, {"data-path": "/data"}, attached=True)


def test_the_superlinks_launcher_runs_no_unsigned_serverapp_and_fails_the_run_saying_why(
    cluster: tuple[SuperLink, Cluster], project: Path, tmp_path: Path
) -> None:
    link, _ = cluster
    marker = tmp_path / "the-serverapp-ran"
    bundle = build_bundle("isoapp:app", "isoapp:server", project_dir=project)
    with ControlClient(link.addresses["control"], security=INSECURE) as control:
        run = control.get_run(control.create_run(bundle, {"marker": str(marker)}, attached=False))
    assert link.launcher is not None and link.launcher.running() == []
    assert run.status == "failed" and run.error is not None and "--trusted-key" in run.error
    assert not marker.exists()


def test_a_clientapp_that_exits_gives_an_error_reply_and_the_node_serves_the_next_instruction(
    cluster: tuple[SuperLink, Cluster], project: Path
) -> None:
    link, procs = cluster
    proc, node_id = start_node(procs)
    run_id = unchecked_run(link, build_bundle("isoapp:app", project_dir=project), {})
    first = info(send(link, run_id, node_id))
    assert info(send(link, run_id, node_id))["pid"] == first["pid"]  # one process for the run
    exited = send(link, run_id, node_id, "sys.exit")
    assert exited.error is not None and "sys.exit(3)" in exited.error.reason
    killed = send(link, run_id, node_id, "os._exit")
    assert killed.error is not None and "exited with code 7" in killed.error.reason
    after = info(send(link, run_id, node_id))
    assert after["pid"] != first["pid"] and after["calls"] == 3  # a fresh process, the state kept
    assert proc.popen.poll() is None


def test_a_bundled_json_module_shadows_neither_the_standard_library_nor_another_run(
    cluster: tuple[SuperLink, Cluster], project: Path
) -> None:
    link, procs = cluster
    _, node_id = start_node(procs)
    plain = build_bundle("isoapp:app", project_dir=project)
    crafted = with_file(plain, "json.py", b"SHADOW = True\nimport os\nos._exit(99)\n")
    assert "json.py" in load_bundle(crafted).files
    shadowing = info(send(link, unchecked_run(link, crafted, {}), node_id))
    other = info(send(link, unchecked_run(link, plain, {}), node_id))
    for seen in (shadowing, other):
        assert not seen["shadowed"] and Path(seen["json"]).parent.name == "json"
        assert Path(seen["json"]).is_relative_to(Path(json.__file__).parents[1])
    assert shadowing["pid"] != other["pid"] != os.getpid()


def test_a_clientapp_over_its_memory_limit_gets_an_error_reply_instead_of_killing_the_node(
    cluster: tuple[SuperLink, Cluster], project: Path
) -> None:
    link, procs = cluster
    proc, node_id = start_node(procs, "--run-memory-mb", "768")
    run_id = unchecked_run(link, build_bundle("isoapp:app", project_dir=project), {})
    hogged = send(link, run_id, node_id, "hog")
    assert hogged.error is not None and "MemoryError" in hogged.error.reason
    assert info(send(link, run_id, node_id))["calls"] == 1
    assert proc.popen.poll() is None


def test_a_clientapp_over_its_cpu_time_limit_gets_an_error_reply_and_the_next_call_a_fresh_process(
    cluster: tuple[SuperLink, Cluster], project: Path
) -> None:
    link, procs = cluster
    proc, node_id = start_node(procs, "--run-cpu-seconds", "3")
    run_id = unchecked_run(link, build_bundle("isoapp:app", project_dir=project), {})
    spun = send(link, run_id, node_id, "spin")
    assert spun.error is not None and "CPU-time limit of 3.0 s" in spun.error.reason
    assert info(send(link, run_id, node_id))["calls"] == 1
    assert proc.popen.poll() is None


def gone(pid: int, timeout: float = 60.0) -> bool:
    """Wait until process ``pid`` no longer exists (the node reaps its children)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_a_runs_process_ends_when_its_run_finishes_and_every_one_when_the_node_stops(
    cluster: tuple[SuperLink, Cluster], project: Path
) -> None:
    link, procs = cluster
    proc, node_id = start_node(procs)
    bundle = build_bundle("isoapp:app", project_dir=project)
    finished, running = unchecked_run(link, bundle, {}), unchecked_run(link, bundle, {})
    first, second = (info(send(link, run_id, node_id))["pid"] for run_id in (finished, running))
    assert link.state is not None
    link.state.finish_run(finished, "completed", "")
    assert gone(first)
    os.kill(second, 0)  # the other run's process still serves it
    proc.popen.terminate()
    assert proc.popen.wait(30) == 0 and gone(second)
