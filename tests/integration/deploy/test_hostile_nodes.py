"""Hostile nodes against a real SuperLink and a real ServerApp process, on loopback.

One node's lying reply fails that node only, and the ServerApp's memory stays bounded; a
flood of slow uploads leaves the SuperLink answering the nodes that behave.
"""

from __future__ import annotations

import json
import os
import queue
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from fedlab.deploy import proto as pb
from fedlab.deploy.security import INSECURE
from fedlab.deploy.superlink import SuperLink, UploadLimits
from fedlab.deploy.transport.channel import open_channel
from fedlab.deploy.transport.chunks import Chunk
from fedlab.deploy.transport.rpc import Stub
from fedlab.deploy.transport.transfer import object_ref, push_objects
from fedlab.deploy.transport.wire import decode_header, split_message
from fedlab.message import ErrorCode, Message
from fedlab.proto import RecordDictProto
from fedlab.records import ArrayRecord, MetricRecord, RecordDict
from fedlab.wire.codec import encode_record_dict

LOOPBACK = {
    "fleet_address": "127.0.0.1:0",
    "serverappio_address": "127.0.0.1:0",
    "control_address": "127.0.0.1:0",
}
LIE = 4 * 2**30
REPO = Path(__file__).resolve().parents[3]

# The ServerApp side, in its own process so that its peak memory is its own: two rounds
# to every node, each reply summarised as one JSON line, then the growth of its peak RSS.
SERVERAPP = """
import json, resource, sys
import numpy as np
from fedlab.deploy.client.grpcgrid import GrpcGrid
from fedlab.deploy.security import INSECURE
from fedlab.records import ArrayRecord, RecordDict

address, run_id, nodes, timeouts = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4])
grid = GrpcGrid(address, run_id, forward_events=False, security=INSECURE)
model = RecordDict({"arrays": ArrayRecord([np.arange(1000.0)])})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
for round_, (targets, timeout) in enumerate(zip(nodes, timeouts), start=1):
    messages = [grid.create_message(model, "train", node, group_id=str(round_)) for node in targets]
    for reply in grid.send_and_receive(messages, timeout=timeout):
        print(json.dumps({"round": round_, "node": reply.metadata.src_node_id,
                          "error": int(reply.error.code) if reply.has_error() else None,
                          "reason": reply.error.reason if reply.has_error() else ""}), flush=True)
grid.close()
print(json.dumps({"rss_growth": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before}))
"""


def lying_content() -> bytes:
    """A RecordDict frame whose header declares a 4 GiB array and carries 16 bytes."""
    frame = encode_record_dict(RecordDict({"arrays": ArrayRecord([np.ones(4, np.float32)])}))
    (length,) = struct.unpack_from("<I", frame, 4)
    header = RecordDictProto.FromString(frame[8 : 8 + length])
    array = header.records[0].array_record.arrays[0]
    del array.shape[:]
    array.shape.append(LIE // 4)
    array.nbytes = LIE
    lie = header.SerializeToString()
    return frame[:4] + struct.pack("<I", len(lie)) + lie + frame[8 + length :]


Reply = Callable[[Message], tuple[Any, bytes]]


def honest(instruction: Message) -> tuple[Any, bytes]:
    wire, blob = split_message(instruction.reply(RecordDict({"m": MetricRecord({"loss": 0.25})})))
    assert blob is not None
    return wire, blob


def lies_in_content(instruction: Message) -> tuple[Any, bytes]:
    wire, _ = split_message(instruction.reply(RecordDict()))
    blob = lying_content()
    wire.content.CopyFrom(object_ref(blob))
    return wire, blob


def lies_about_size(instruction: Message) -> tuple[Any, bytes]:
    wire, blob = honest(instruction)
    wire.content.size = LIE
    return wire, blob


class RawNode:
    """A SuperNode written with bare Fleet calls, answering every instruction with ``reply``."""

    def __init__(self, address: str, reply: Reply) -> None:
        self._channel = open_channel(address, INSECURE)
        self.fleet = Stub(self._channel, "Fleet")
        request = pb.RegisterRequest(node_config_json="{}", heartbeat_interval=30.0)
        self.node_id = int(self.fleet.Register(request).node_id)
        self.statuses: queue.Queue[Any] = queue.Queue()
        self._reply = reply
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            request = pb.PullInstructionsRequest(node_id=self.node_id, wait_s=0.5)
            for wire in self.fleet.PullInstructions(request).messages:
                wire_reply, blob = self._reply(decode_header(wire))
                push_objects(self.fleet, {wire_reply.content.digest: blob}, node_id=self.node_id)
                reply = pb.PushRepliesRequest(node_id=self.node_id, messages=[wire_reply])
                self.statuses.put(self.fleet.PushReplies(reply).results[0])

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._channel.close()


@pytest.fixture
def superlink() -> Iterator[SuperLink]:
    with SuperLink(**LOOPBACK, insecure=True) as link:
        yield link


def test_a_size_lying_reply_fails_that_node_only_and_the_serverapp_memory_stays_bounded(
    superlink: SuperLink,
) -> None:
    assert superlink.state is not None
    run_id = superlink.state.runs.create({}, attached=True)
    fleet = superlink.addresses["fleet"]
    nodes = {name: RawNode(fleet, reply) for name, reply in
             [("honest", honest), ("content", lies_in_content), ("size", lies_about_size)]}  # fmt: skip
    ids = {name: node.node_id for name, node in nodes.items()}
    # Round 1 goes to all three (the node whose reply the SuperLink refuses times out);
    # round 2 only to the two whose replies arrive, so it ends as soon as they do.
    rounds = [[ids["honest"], ids["content"], ids["size"]], [ids["honest"], ids["content"]]]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        done = subprocess.run(
            [sys.executable, "-c", SERVERAPP, superlink.addresses["serverappio"], str(run_id),
             json.dumps(rounds), json.dumps([8.0, 60.0])],
            capture_output=True, text=True, timeout=120, env=env, check=False,
        )  # fmt: skip
        refusal = nodes["size"].statuses.get(timeout=10)
    finally:
        for node in nodes.values():
            node.close()

    assert done.returncode == 0, done.stderr  # the run is alive: both rounds completed
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    replies = {(line["round"], line["node"]): line for line in lines if "round" in line}
    for round_ in (1, 2):
        assert replies[round_, ids["honest"]]["error"] is None
        lied = replies[round_, ids["content"]]
        assert lied["error"] == ErrorCode.INVALID_REPLY and "cannot be used" in lied["reason"]
    assert replies[1, ids["size"]]["error"] == ErrorCode.TIMEOUT
    assert not refusal.accepted and "stored object is" in refusal.reason
    growth = lines[-1]["rss_growth"]
    assert growth < 100 * 2**20, (
        f"the ServerApp's peak memory grew by {growth} bytes for a {LIE}-byte lie"
    )


def test_sixty_four_slow_uploads_do_not_stop_a_node_from_registering() -> None:
    limits = UploadLimits(idle_s=3.0)  # the default worker pool (64 threads) and stream caps
    with SuperLink(**LOOPBACK, upload_limits=limits, insecure=True) as link:
        channel = open_channel(link.addresses["fleet"], INSECURE)
        fleet = Stub(channel, "Fleet")
        release = threading.Event()
        ended: queue.Queue[Any] = queue.Queue()
        try:
            attackers = [
                int(fleet.Register(pb.RegisterRequest(heartbeat_interval=30.0)).node_id)
                for _ in range(64)
            ]
            data = b"x" * 2**20
            ref = object_ref(data)

            def trickle(node_id: int, first: bool) -> Iterator[Chunk]:
                if first:  # half announce a 1 MiB object and send 1 KiB of it ...
                    yield Chunk(offset=0, data=data[:1024], ref=ref, node_id=node_id)
                release.wait(60)  # ... half send nothing at all

            started = time.monotonic()
            for index, node_id in enumerate(attackers):
                future = fleet.PushObject.future(trickle(node_id, index % 2 == 0), timeout=60)
                future.add_done_callback(ended.put)

            # Once half of them were turned away at once, the rest hold every slot they may.
            refused = [ended.get(timeout=10) for _ in range(32)]
            assert {call.code() for call in refused} == {grpc.StatusCode.UNAVAILABLE}
            assert time.monotonic() - started < limits.idle_s

            t0 = time.monotonic()
            request = pb.RegisterRequest(
                node_config_json='{"who": "legit"}', heartbeat_interval=5.0
            )
            node_id = fleet.Register(request, timeout=5).node_id
            fleet.Heartbeat(pb.HeartbeatRequest(node_id=node_id, heartbeat_interval=5.0), timeout=5)
            registered_in = time.monotonic() - t0
            assert registered_in < 2.0, f"a legitimate Register took {registered_in:.1f} s"

            # The held streams end at their idle deadline, without anyone releasing them.
            held = [ended.get(timeout=limits.idle_s * 3) for _ in range(32)]
            assert {call.code() for call in held} == {grpc.StatusCode.DEADLINE_EXCEEDED}
            assert push_objects(fleet, {ref.digest: data}, node_id=node_id) == len(data)
        finally:
            release.set()
            channel.close()
