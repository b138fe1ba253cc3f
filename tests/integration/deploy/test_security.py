"""An outsider, a rogue node and users of every role against a real SuperLink process.

The SuperLink runs as a user would start it, over TLS with ``fedlab certs`` files, an
allow-list of two node keys and an admin token file. The outsider knows the CA (it is
public) but holds no credentials; the rogue node holds an allowed key and tries to act
as the other node.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from fedlab.deploy import proto as pb
from fedlab.deploy.client.control_client import ControlClient
from fedlab.deploy.client.grpcgrid import GrpcGrid
from fedlab.deploy.local._cluster import SuperLinkAddresses, stop_processes
from fedlab.deploy.security import ClientSecurity
from fedlab.deploy.security import requests as signed_requests
from fedlab.deploy.security.keys import load_private_key, write_key_pair
from fedlab.deploy.security.requests import NodeSigner
from fedlab.deploy.security.tls import make_dev_certs
from fedlab.deploy.transport.channel import open_channel
from fedlab.deploy.transport.rpc import Stub
from fedlab.deploy.transport.wire import decode_header, split_message
from fedlab.errors import DeployError
from fedlab.message import Error, ErrorCode, MessageType
from fedlab.records import ArrayRecord, RecordDict


@dataclass
class Link:
    """The running SuperLink and what its operator holds."""

    addresses: SuperLinkAddresses
    directory: Path
    ca: bytes
    admin: str

    def security(self, token: str | None = None) -> ClientSecurity:
        return ClientSecurity(root_certificates=self.ca, token=token)

    def stub(self, api: str, *, token: str | None = None, signer: NodeSigner | None = None) -> Any:
        address = getattr(self.addresses, api.lower())
        service = {"fleet": "Fleet", "serverappio": "ServerAppIo", "control": "Control"}[api.lower()]
        return Stub(open_channel(address, self.security()), service, token=token, signer=signer)


@pytest.fixture(scope="module")
def link(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Link]:
    directory = tmp_path_factory.mktemp("secure-link")
    certs = make_dev_certs(directory / "certs")
    for name in ("node-a", "node-m", "node-r", "node-x", "node-late"):
        write_key_pair(directory / name)
    allowed = ("node-a", "node-m", "node-r")
    (directory / "allowed.pub").write_text("".join((directory / f"{n}.pub").read_text() for n in allowed))
    log = open(directory / "superlink.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "fedlab.deploy.superlink", "--fleet-address", "127.0.0.1:0",
         "--serverappio-address", "127.0.0.1:0", "--control-address", "127.0.0.1:0",
         "--state-dir", str(directory / "state"), "--tls-cert", str(certs.server_cert),
         "--tls-key", str(certs.server_key), "--node-keys", str(directory / "allowed.pub")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        addresses = None
        while addresses is None and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
            for line in (directory / "superlink.log").read_text().splitlines():
                addresses = addresses or SuperLinkAddresses.parse(line)
        assert addresses is not None, (directory / "superlink.log").read_text()
        admin = (directory / "state" / "admin.token").read_text().strip()
        yield Link(addresses, directory, certs.ca_cert.read_bytes(), admin)
    finally:
        stop_processes([process])  # type: ignore[list-item]
        log.close()


def code_of(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        result = call()
        if hasattr(result, "__next__"):
            next(result)
    return caught.value.code()  # type: ignore[no-any-return]


def register(stub: Any, signer: NodeSigner, **config: object) -> int:
    request = pb.RegisterRequest(node_config_json=json.dumps(config), heartbeat_interval=30.0)
    signer.node_id = int(stub.Register(request).node_id)
    return signer.node_id


def node(link: Link, name: str) -> tuple[Any, NodeSigner]:
    signer = NodeSigner(load_private_key(link.directory / f"{name}.key"))
    return link.stub("fleet", signer=signer), signer


CONTROL_CALLS = [
    ("CreateRun", lambda: pb.CreateRunRequest(attached=True)),
    ("ListRuns", lambda: pb.ListRunsRequest()),
    ("GetRun", lambda: pb.GetRunRequest(run_id=1)),
    ("ListNodes", lambda: pb.ListNodesRequest(all=True)),
    ("StreamEvents", lambda: pb.StreamRequest(run_id=1)),
    ("StreamLogs", lambda: pb.StreamRequest(run_id=1)),
    ("StopRun", lambda: pb.StopRunRequest(run_id=1)),
    ("FinishRun", lambda: pb.FinishRunRequest(run_id=1, status="failed")),
    ("GetInfo", lambda: pb.GetInfoRequest()),
    ("AddNodeKey", lambda: pb.AddNodeKeyRequest(public_key="x")),
    ("ListNodeKeys", lambda: pb.ListNodeKeysRequest()),
    ("AddUser", lambda: pb.AddUserRequest(name="eve", role="admin")),
    ("ListUsers", lambda: pb.ListUsersRequest()),
]


@pytest.mark.parametrize("token", [None, "forged-token"], ids=["no-token", "wrong-token"])
def test_every_control_call_of_an_outsider_is_unauthenticated(link: Link, token: str | None) -> None:
    stub = link.stub("control", token=token)
    for name, request in CONTROL_CALLS:
        assert code_of(lambda: getattr(stub, name)(request(), timeout=10)) == grpc.StatusCode.UNAUTHENTICATED, name
    chunk = pb.ObjectChunk(ref=pb.ObjectRef(digest="0" * 64, size=1), data=b"x")
    assert code_of(lambda: stub.PushObject(iter([chunk]), timeout=10)) == grpc.StatusCode.UNAUTHENTICATED


def test_plaintext_and_an_unknown_ca_do_not_even_connect(link: Link) -> None:
    plain = Stub(grpc.insecure_channel(link.addresses.control), "Control", token=link.admin)
    assert code_of(lambda: plain.GetInfo(pb.GetInfoRequest(), timeout=5)) == grpc.StatusCode.UNAVAILABLE
    other_ca = make_dev_certs(link.directory / "other-ca").ca_cert.read_bytes()
    channel = open_channel(link.addresses.control, ClientSecurity(root_certificates=other_ca))
    stub = Stub(channel, "Control", token=link.admin)
    assert code_of(lambda: stub.GetInfo(pb.GetInfoRequest(), timeout=5)) == grpc.StatusCode.UNAVAILABLE


def test_an_outsider_cannot_register_or_drive_serverappio(link: Link) -> None:
    unsigned = link.stub("fleet")
    request = pb.RegisterRequest(node_config_json="{}", heartbeat_interval=30.0)
    assert code_of(lambda: unsigned.Register(request)) == grpc.StatusCode.UNAUTHENTICATED
    outsider, _ = node(link, "node-x")  # a well-formed signature, but not an admitted key
    assert code_of(lambda: outsider.Register(request)) == grpc.StatusCode.UNAUTHENTICATED
    for name, body in [("PullInstructions", pb.PullInstructionsRequest(node_id=1)),
                       ("GetRun", pb.GetRunRequest(run_id=1, node_id=1)),
                       ("PullObject", pb.PullObjectRequest(digest="0" * 64, node_id=1))]:  # fmt: skip
        assert code_of(lambda: getattr(outsider, name)(body)) == grpc.StatusCode.UNAUTHENTICATED, name
    serverappio = link.stub("serverappio")
    assert code_of(lambda: serverappio.GetNodes(pb.GetNodesRequest(run_id=1))) == grpc.StatusCode.UNAUTHENTICATED


def test_a_rogue_node_cannot_take_or_answer_another_nodes_work(link: Link) -> None:
    victim, victim_signer = node(link, "node-a")
    rogue, rogue_signer = node(link, "node-m")
    victim_id, rogue_id = register(victim, victim_signer), register(rogue, rogue_signer)
    with ControlClient(link.addresses.control, security=link.security(link.admin)) as admin:
        alice = admin.add_user("alice-rogue-test", "user")
        run_id = ControlClient(link.addresses.control, security=link.security(alice)).create_run(b"", attached=True)
    grid = GrpcGrid(link.addresses.serverappio, run_id, security=link.security(alice), forward_events=False)
    try:
        content = RecordDict({"arrays": ArrayRecord([np.arange(4, dtype=np.float32)])})
        (message_id,) = grid.push_messages([grid.create_message(content, MessageType.TRAIN, victim_id)])
        # The rogue asks for the victim's instructions, signing as itself: refused.
        steal = pb.PullInstructionsRequest(node_id=victim_id, max_messages=10)
        assert code_of(lambda: rogue.PullInstructions(steal)) == grpc.StatusCode.PERMISSION_DENIED
        # ... or claiming the victim's node id with its own key: not bound to that key.
        rogue_signer.node_id = victim_id
        assert code_of(lambda: rogue.PullInstructions(steal)) == grpc.StatusCode.UNAUTHENTICATED
        rogue_signer.node_id = rogue_id
        assert not rogue.PullInstructions(pb.PullInstructionsRequest(node_id=rogue_id, max_messages=10)).messages
        # It may not read the run or its objects, for it was never addressed in it.
        get_run = pb.GetRunRequest(run_id=run_id, node_id=rogue_id)
        assert code_of(lambda: rogue.GetRun(get_run)) == grpc.StatusCode.PERMISSION_DENIED
        # The victim still gets its instruction: nothing was stolen.
        (wire,) = victim.PullInstructions(pb.PullInstructionsRequest(node_id=victim_id, max_messages=10)).messages
        pull = pb.PullObjectRequest(digest=wire.content.digest, node_id=rogue_id)
        assert code_of(lambda: rogue.PullObject(pull)) == grpc.StatusCode.PERMISSION_DENIED
        # The rogue cannot push a reply as the victim either.
        forged = pb.PushRepliesRequest(node_id=victim_id, messages=[wire])
        assert code_of(lambda: rogue.PushReplies(forged)) == grpc.StatusCode.PERMISSION_DENIED
        assert victim.GetRun(pb.GetRunRequest(run_id=run_id, node_id=victim_id)).run_id == run_id
        assert message_id
    finally:
        grid.close()


def test_a_key_that_registers_again_gets_its_node_id_and_its_unanswered_work_back(link: Link) -> None:
    # Two processes holding one key (a SuperNode restarted while the old one still runs).
    old, old_signer = node(link, "node-r")
    node_id = register(old, old_signer, **{"partition-id": 0})
    with ControlClient(link.addresses.control, security=link.security(link.admin)) as admin:
        run_id = admin.create_run(b"", attached=True)
    grid = GrpcGrid(link.addresses.serverappio, run_id, security=link.security(link.admin), forward_events=False)
    try:
        content = RecordDict({"arrays": ArrayRecord([np.arange(4, dtype=np.float32)])})
        (message_id,) = grid.push_messages([grid.create_message(content, MessageType.TRAIN, node_id)])
        pull = pb.PullInstructionsRequest(node_id=node_id, max_messages=10)
        (held,) = old.PullInstructions(pull).messages
        assert not old.PullInstructions(pull).messages  # delivered once

        new, new_signer = node(link, "node-r")
        assert register(new, new_signer, **{"partition-id": 1}) == node_id
        (again,) = new.PullInstructions(pull).messages
        assert decode_header(again).metadata.message_id == message_id == decode_header(held).metadata.message_id
        with ControlClient(link.addresses.control, security=link.security(link.admin)) as admin:
            (info,) = [n for n in admin.list_nodes() if n.node_id == node_id]
        assert info.node_config == {"partition-id": 1}

        def answer(stub: Any, wire: Any, reason: str) -> Any:
            reply, _ = split_message(decode_header(wire).reply(Error(ErrorCode.CLIENT_APP_CRASHED, reason)))
            (status,) = stub.PushReplies(pb.PushRepliesRequest(node_id=node_id, messages=[reply])).results
            return status

        # The newest process answers first; the old one is still the same node, but its
        # answer to the same instruction is refused: one reply per instruction.
        assert answer(new, again, "from the new process").accepted
        late = answer(old, held, "from the old process")
        assert not late.accepted and "already answered" in late.reason
        old.Heartbeat(pb.HeartbeatRequest(node_id=node_id, heartbeat_interval=30.0))
        (reply,) = grid.pull_messages([message_id])
        assert reply.error is not None and reply.error.reason == "from the new process"
        # Nothing unanswered is left to hand out again on a third registration.
        third, third_signer = node(link, "node-r")
        assert register(third, third_signer) == node_id
        assert not third.PullInstructions(pull).messages
    finally:
        grid.close()


def test_a_replayed_or_stale_request_is_refused(link: Link, monkeypatch: pytest.MonkeyPatch) -> None:
    stub, signer = node(link, "node-m")
    node_id = register(stub, signer)
    request = pb.HeartbeatRequest(node_id=node_id, heartbeat_interval=30.0)
    body = request.SerializeToString()
    metadata = signer.metadata("/fedlab.deploy.v1.Fleet/Heartbeat", body)
    raw = link.stub("fleet")  # sends exactly the metadata given
    raw.Heartbeat(request, metadata=metadata)
    assert code_of(lambda: raw.Heartbeat(request, metadata=metadata)) == grpc.StatusCode.UNAUTHENTICATED
    # A signature over another body does not verify.
    other = pb.HeartbeatRequest(node_id=node_id, heartbeat_interval=99.0)
    fresh = signer.metadata("/fedlab.deploy.v1.Fleet/Heartbeat", body)
    assert code_of(lambda: raw.Heartbeat(other, metadata=fresh)) == grpc.StatusCode.UNAUTHENTICATED
    hour_ago = time.time() - 3600
    monkeypatch.setattr(signed_requests.time, "time", lambda: hour_ago)
    stale = signer.metadata("/fedlab.deploy.v1.Fleet/Heartbeat", body)
    monkeypatch.undo()
    with pytest.raises(grpc.RpcError) as caught:
        raw.Heartbeat(request, metadata=stale)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED and "clock" in caught.value.details()


def test_users_see_and_stop_only_their_own_runs_and_a_reader_changes_nothing(link: Link) -> None:
    def client(token: str) -> ControlClient:
        return ControlClient(link.addresses.control, security=link.security(token))

    admin = client(link.admin)
    tokens = {name: admin.add_user(name, role) for name, role in [("ann", "user"), ("bo", "user"), ("rita", "reader")]}
    ann, bo, rita = (client(tokens[n]) for n in ("ann", "bo", "rita"))
    run_id = ann.create_run(b"", attached=True)
    assert ann.get_run(run_id).owner == "ann" and run_id in [r.run_id for r in ann.list_runs()]
    assert run_id not in [r.run_id for r in bo.list_runs()]
    for action in (lambda: bo.get_run(run_id), lambda: bo.stop_run(run_id), lambda: rita.stop_run(run_id),
                   lambda: rita.create_run(b"", attached=True), lambda: bo.add_user("mallory", "admin"),
                   lambda: rita.list_nodes() and bo.list_node_keys()):  # fmt: skip
        with pytest.raises(DeployError, match="may not|that you may"):
            action()
    assert rita.get_run(run_id).status == "running" and run_id in [r.run_id for r in rita.list_runs()]
    assert rita.whoami() == ("rita", "reader")
    ann.stop_run(run_id)
    assert admin.get_run(run_id).stop_requested
    for c in (admin, ann, bo, rita):
        c.close()


def test_node_keys_added_and_removed_at_run_time_through_the_cli(link: Link) -> None:
    late, late_signer = node(link, "node-late")
    request = pb.RegisterRequest(node_config_json="{}", heartbeat_interval=30.0)
    assert code_of(lambda: late.Register(request)) == grpc.StatusCode.UNAUTHENTICATED
    (link.directory / "admin.tok").write_text(link.admin)
    base = [sys.executable, "-m", "fedlab.cli.main", "node"]
    target = ["--superlink", link.addresses.control, "--root-cert", str(link.directory / "certs" / "ca.pem"),
              "--token-file", str(link.directory / "admin.tok"), "--format", "json"]  # fmt: skip

    def cli(*args: str) -> dict[str, Any]:
        out = subprocess.run([*base, *args, *target], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    fingerprint = cli("add", str(link.directory / "node-late.pub"))["fingerprint"]
    node_id = register(late, late_signer)
    assert fingerprint in [k["fingerprint"] for k in cli("ls")["keys"]]
    cli("remove", fingerprint)
    heartbeat = pb.HeartbeatRequest(node_id=node_id, heartbeat_interval=30.0)
    assert code_of(lambda: late.Heartbeat(heartbeat)) == grpc.StatusCode.UNAUTHENTICATED


def test_the_audit_log_and_the_state_files_are_the_operators_alone(link: Link) -> None:
    # Earlier tests of this module made the refusals, users and runs recorded here.
    state = link.directory / "state"
    records = [json.loads(line) for line in (state / "audit.jsonl").read_text().splitlines()]
    actions = {r["action"] for r in records}
    assert {"auth.refused", "user.added", "run.created", "node.registered", "permission.denied"} <= actions
    refused = [r for r in records if r["action"] == "auth.refused"]
    assert all(r["peer"].startswith("ipv4:127.0.0.1") and r["reason"] for r in refused)
    assert any(r["action"] == "run.created" and r["actor"] == "user:ann" for r in records)
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    for path in [p for p in state.rglob("*") if p.is_file()]:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    # Refusals are logged on one line each, and not once per request.
    log = (link.directory / "superlink.log").read_text()
    assert "Traceback" not in log
    assert log.count("Refused ") < len(refused)


SERVERAPP_PROJECT = '''
from fedlab import ClientApp, ServerApp

client = ClientApp()
server = ServerApp()


@server.main()
def main(grid, context):
    open("/tmp/fedlab-outsider-code-ran", "w").write("it ran")
'''


def test_unsigned_code_is_never_launched_and_the_refusal_is_audited(link: Link, tmp_path: Path) -> None:
    from fedlab.deploy.bundle import build_bundle

    (tmp_path / "outsider_app.py").write_text(SERVERAPP_PROJECT)
    bundle = build_bundle("outsider_app:client", "outsider_app:server", project_dir=tmp_path)
    with ControlClient(link.addresses.control, security=link.security(link.admin)) as admin:
        run_id = admin.create_run(bundle, attached=False)
        run = admin.wait_for_run(run_id, timeout=60)
    assert run.status == "failed" and "trusted" in (run.error or "")
    assert not Path("/tmp/fedlab-outsider-code-ran").exists()
    records = [json.loads(line) for line in (link.directory / "state" / "audit.jsonl").read_text().splitlines()]
    assert any(r["action"] == "bundle.refused" and r.get("run_id") == run_id for r in records)
