"""What one SuperNode may make the SuperLink hold: uploads, streams, replies and log lines.

Every test talks gRPC to a real in-process SuperLink on loopback, as a (misbehaving) node.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest

from fedlab.deploy import proto as pb
from fedlab.deploy.security import INSECURE
from fedlab.deploy.superlink import SuperLink, UploadLimits
from fedlab.deploy.superlink._ratelog import RefusalLog
from fedlab.deploy.transport.channel import open_channel
from fedlab.deploy.transport.chunks import Chunk
from fedlab.deploy.transport.rpc import Stub
from fedlab.deploy.transport.transfer import iter_chunks, object_ref, push_objects
from fedlab.deploy.transport.wire import decode_header, split_message
from fedlab.message import Message
from fedlab.records import ArrayRecord, MetricRecord, RecordDict

LOOPBACK = {
    "fleet_address": "127.0.0.1:0",
    "serverappio_address": "127.0.0.1:0",
    "control_address": "127.0.0.1:0",
}
MiB = 2**20
IDLE_S = 2.0
LIMITS = UploadLimits(
    streams_per_node=4, pending_bytes_per_node=3 * MiB, reply_floor=2 * MiB, idle_s=IDLE_S
)


@pytest.fixture(scope="module")
def superlink() -> Iterator[SuperLink]:
    with SuperLink(**LOOPBACK, upload_limits=LIMITS, insecure=True) as link:
        yield link


@pytest.fixture(scope="module")
def fleet(superlink: SuperLink) -> Iterator[Any]:
    channel = open_channel(superlink.addresses["fleet"], INSECURE)
    yield Stub(channel, "Fleet")
    channel.close()


class Lines(logging.Handler):
    """Collects the SuperLink's log records; :meth:`wait_for` blocks until one matches."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self._changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._changed:
            self.records.append(record)
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 10.0) -> logging.LogRecord:
        with self._changed:
            found = self._changed.wait_for(lambda: self._find(text), timeout)
            assert found, f"no log line with {text!r} in {[r.getMessage() for r in self.records]}"
            return found

    def _find(self, text: str) -> logging.LogRecord | None:
        return next((r for r in self.records if text in r.getMessage()), None)


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger("fedlab.superlink")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def register(fleet: Any) -> int:
    request = pb.RegisterRequest(node_config_json=json.dumps({}), heartbeat_interval=30.0)
    return int(fleet.Register(request).node_id)


def instruct(superlink: SuperLink, fleet: Any, node_id: int, model_bytes: int = 1000) -> Any:
    """Give ``node_id`` an instruction of a fresh run (stored directly) and pull it as the node."""
    state = superlink.state
    assert state is not None
    run_id = state.runs.create({}, attached=True)
    content = RecordDict({"arrays": ArrayRecord([np.zeros(model_bytes, np.uint8)])})
    wire, blob = split_message(Message(content, node_id, "train", run_id=run_id))
    assert blob is not None
    state.objects.put(blob)
    state.messages.push_instructions(run_id, [(decode_header(wire), wire)])
    (pulled,) = fleet.PullInstructions(
        pb.PullInstructionsRequest(node_id=node_id, wait_s=0)
    ).messages
    return pulled


def reply_to(
    instruction: Any, metrics: dict[str, float], model_bytes: int = 0
) -> tuple[Any, bytes]:
    content = RecordDict({"m": MetricRecord(metrics)})
    if model_bytes:
        content["arrays"] = ArrayRecord(
            [np.random.default_rng(model_bytes).integers(0, 255, model_bytes, np.uint8)]
        )
    reply = decode_header(instruction).reply(content)
    wire, blob = split_message(reply)
    assert blob is not None
    return wire, blob


def stalled_upload(fleet: Any, node_id: int, size: int) -> tuple[Any, threading.Event]:
    """Open a PushObject that sends its first chunk, then nothing until the event is set."""
    release = threading.Event()
    data = np.random.default_rng(node_id).bytes(size)
    ref = object_ref(data)

    def chunks() -> Iterator[Chunk]:
        yield Chunk(offset=0, data=data[:1000], ref=ref, node_id=node_id)
        release.wait(30)

    return fleet.PushObject.future(chunks(), timeout=30), release


def test_a_reply_declaring_another_size_than_its_stored_content_is_refused_alone(
    superlink: SuperLink, fleet: Any, lines: Lines
) -> None:
    node = register(fleet)
    honest_wire, honest_blob = reply_to(instruct(superlink, fleet, node), {"loss": 0.1})
    lying_wire, lying_blob = reply_to(instruct(superlink, fleet, node), {"loss": 0.2})
    push_objects(
        fleet,
        {honest_wire.content.digest: honest_blob, lying_wire.content.digest: lying_blob},
        node_id=node,
    )
    lying_wire.content.size = 4 * 2**30  # the object holds a few hundred bytes

    response = fleet.PushReplies(
        pb.PushRepliesRequest(node_id=node, messages=[lying_wire, honest_wire])
    )

    lie, honest = response.results
    assert not lie.accepted and "stored object is" in lie.reason and str(4 * 2**30) in lie.reason
    assert honest.accepted
    assert "reply size mismatch" in lines.wait_for("stored object is").getMessage()


def test_a_fifth_concurrent_upload_of_one_node_is_refused_at_once(fleet: Any) -> None:
    node = register(fleet)
    finished: queue.Queue[Any] = queue.Queue()
    started = time.monotonic()
    held = [stalled_upload(fleet, node, 100_000) for _ in range(5)]
    for future, _ in held:
        future.add_done_callback(finished.put)
    try:
        first = finished.get(timeout=IDLE_S * 5)
        assert time.monotonic() - started < IDLE_S  # long before any idle deadline
        assert first.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "already has 4 uploads open" in first.details()
    finally:
        for _, release in held:
            release.set()
    for _ in range(4):  # the others end as incomplete uploads once released
        assert finished.get(timeout=IDLE_S * 5).code() == grpc.StatusCode.DATA_LOSS


def test_an_upload_above_the_run_cap_is_refused_before_its_bytes(
    superlink: SuperLink, fleet: Any
) -> None:
    node = register(fleet)
    # No instruction open: the cap is the floor (2 MiB here).
    chunk = pb.ObjectChunk(
        ref=pb.ObjectRef(digest="cd" * 32, size=3 * MiB), data=b"x", node_id=node
    )
    with pytest.raises(grpc.RpcError) as caught:
        fleet.PushObject(iter([chunk]))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "4 times the largest instruction" in caught.value.details()

    # An open instruction of a 1 MiB model raises this node's cap to 4 MiB.
    instruct(superlink, fleet, node, model_bytes=MiB)
    data = np.random.default_rng(3).bytes(3 * MiB)
    ref = object_ref(data)
    assert not fleet.PushObject(iter_chunks(data, ref, node_id=node)).existed


def test_uploads_no_reply_refers_to_are_held_to_a_byte_budget(
    superlink: SuperLink, fleet: Any
) -> None:
    node = register(fleet)
    wire, blob = reply_to(
        instruct(superlink, fleet, node), {"loss": 0.5}, model_bytes=int(1.5 * MiB)
    )
    filler = np.random.default_rng(4).bytes(MiB // 2)
    push_objects(
        fleet, {object_ref(filler).digest: filler, wire.content.digest: blob}, node_id=node
    )
    big = np.random.default_rng(5).bytes(2 * MiB)  # 0.5 + 1.5 + 2 MiB: above the 3 MiB budget
    with pytest.raises(grpc.RpcError) as caught:
        push_objects(fleet, {object_ref(big).digest: big}, node_id=node)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "no reply refers to" in caught.value.details()

    # The reply that refers to its content is accepted: that upload stops counting.
    (status,) = fleet.PushReplies(pb.PushRepliesRequest(node_id=node, messages=[wire])).results
    assert status.accepted
    assert push_objects(fleet, {object_ref(big).digest: big}, node_id=node) == len(big)


def test_an_upload_that_stops_sending_is_ended_with_deadline_exceeded_and_not_stored(
    superlink: SuperLink, fleet: Any, lines: Lines
) -> None:
    node = register(fleet)
    future, release = stalled_upload(fleet, node, 50_000)
    try:
        with pytest.raises(grpc.RpcError) as caught:
            future.result(timeout=IDLE_S * 10)
    finally:
        release.set()
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "no progress" in caught.value.details()
    record = lines.wait_for("made no progress")
    assert record.exc_info is None and "\n" not in record.getMessage()
    # ... and the node may upload again at once: its stream slot was given back.
    data = np.random.default_rng(6).bytes(10_000)
    assert push_objects(fleet, {object_ref(data).digest: data}, node_id=node) == len(data)


def test_a_download_that_is_not_read_is_ended_so_it_frees_its_thread(
    superlink: SuperLink, fleet: Any, lines: Lines
) -> None:
    node = register(fleet)
    instruction = instruct(
        superlink, fleet, node, model_bytes=32 * MiB
    )  # far above the flow-control window
    request = pb.PullObjectRequest(digest=instruction.content.digest, node_id=node)
    # A connection of its own (refusals are logged once per peer and reason per window),
    # whose receive window stays small (no BDP probing): a reader that stops reading
    # really stops the sender, instead of its transport buffering the whole object.
    options = [
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.http2.bdp_probe", 0),
        ("grpc.max_receive_message_length", 16 * MiB),
    ]
    channel = grpc.insecure_channel(superlink.addresses["fleet"], options=options)
    try:
        stream = Stub(channel, "Fleet").PullObject(request, timeout=60)
        next(stream)  # then read nothing: the SuperLink blocks sending
        lines.wait_for("A download made no progress")
        with pytest.raises(grpc.RpcError) as caught:
            for _ in stream:
                pass
    finally:
        channel.close()
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_refusals_are_logged_one_line_per_reason_and_peer_per_window(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    log = RefusalLog(logging.getLogger("test.refusals"), window=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.refusals"):
        for second in range(25):  # a flood: 4 a second from one peer, for 25 s
            now[0] = float(second)
            for _ in range(4):
                log.refused("upload quota", "ipv4:10.0.0.9:4000", "too many\nstreams")
        log.refused("upload quota", "ipv4:10.0.0.7:4000", "too many streams")  # another peer
        log.refused("damaged upload", "ipv4:10.0.0.9:4000", "bad sha256")  # another reason

    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3 + 2  # at 0 s, 10 s and 20 s; then the two others once each
    assert all(
        "\n" not in m and r.exc_info is None for m, r in zip(messages, caplog.records, strict=True)
    )
    assert messages[0] == "Refused upload quota from ipv4:10.0.0.9:4000: too many streams"
    assert messages[1].endswith("(39 more like this from ipv4:10.0.0.9:4000 in the last 10 s)")
    assert "10.0.0.7" in messages[3] and "bad sha256" in messages[4]


def test_requests_that_do_not_decode_are_logged_as_one_line_without_traceback(
    superlink: SuperLink, caplog: pytest.LogCaptureFixture
) -> None:
    channel = grpc.insecure_channel(superlink.addresses["fleet"])
    try:
        with caplog.at_level(logging.INFO):
            for _ in range(10):
                for call in (
                    lambda: channel.stream_unary("/fedlab.deploy.v1.Fleet/PushObject")(
                        iter([b"\xff\xff"])
                    ),
                    lambda: channel.unary_unary("/fedlab.deploy.v1.Fleet/Register")(b"\xff\xff"),
                ):
                    with pytest.raises(grpc.RpcError):
                        call()
    finally:
        channel.close()
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    undecodable = [r for r in caplog.records if "undecodable request" in r.getMessage()]
    assert len(undecodable) <= 1  # 20 garbage requests within the window: one line at most
    assert all("\n" not in r.getMessage() for r in caplog.records)
