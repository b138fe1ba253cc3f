"""Small contents travel inside their messages: no object upload or download, same checks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from fedlab.deploy import proto as pb
from fedlab.deploy.security import INSECURE
from fedlab.deploy.superlink import SuperLink
from fedlab.deploy.transport.channel import open_channel
from fedlab.deploy.transport.rpc import Stub
from fedlab.deploy.transport.transfer import object_ref, push_objects
from fedlab.deploy.transport.wire import (
    INLINE_MAX_BYTES,
    Inliner,
    decode_header,
    inline_content,
    join_message,
    split_message,
)
from fedlab.errors import TransferError
from fedlab.message import Message
from fedlab.records import ArrayRecord, RecordDict

LOOPBACK = {"fleet_address": "127.0.0.1:0", "serverappio_address": "127.0.0.1:0", "control_address": "127.0.0.1:0"}


@pytest.fixture(scope="module")
def stubs() -> Iterator[dict[str, Any]]:
    with SuperLink(**LOOPBACK, max_object_size=64 * 2**20, insecure=True) as link:
        channels = {name: open_channel(address, INSECURE) for name, address in link.addresses.items()}
        yield {name: Stub(channels[name], service) for name, service in
               (("fleet", "Fleet"), ("serverappio", "ServerAppIo"), ("control", "Control"))}  # fmt: skip
        for channel in channels.values():
            channel.close()


def _instruct(stubs: dict[str, Any], run_id: int, node: int, values: np.ndarray) -> tuple[Any, bytes]:
    wire, blob = split_message(Message(RecordDict({"a": ArrayRecord([values])}), node, "train", run_id=run_id))
    assert blob is not None
    push_objects(stubs["serverappio"], {wire.content.digest: blob})
    stubs["serverappio"].PushInstructions(pb.PushInstructionsRequest(run_id=run_id, messages=[wire]))
    return wire, blob


def _node_in_a_run(stubs: dict[str, Any]) -> tuple[int, int]:
    run_id = stubs["control"].CreateRun(pb.CreateRunRequest(attached=True)).run_id
    request = pb.RegisterRequest(node_config_json=json.dumps({}), heartbeat_interval=30.0)
    return run_id, stubs["fleet"].Register(request).node_id


def _pull(stubs: dict[str, Any], node: int, n: int) -> list[Any]:
    request = pb.PullInstructionsRequest(node_id=node, max_messages=n, wait_s=0)
    return list(stubs["fleet"].PullInstructions(request).messages)


def test_a_small_instruction_reaches_its_node_inline_and_a_large_one_by_reference(stubs: dict[str, Any]) -> None:
    run_id, node = _node_in_a_run(stubs)
    _, small = _instruct(stubs, run_id, node, np.arange(5.0))
    _, large = _instruct(stubs, run_id, node, np.arange(INLINE_MAX_BYTES // 8 + 1, dtype=np.float64))
    pulled = {w.content.size: w for w in _pull(stubs, node, 2)}
    assert inline_content(pulled[len(small)]) == small  # checked against its ref, bit-exact
    assert len(large) > INLINE_MAX_BYTES and pulled[len(large)].inline_content == b""


def test_a_small_reply_needs_no_upload_and_reaches_the_serverapp_inline(stubs: dict[str, Any]) -> None:
    run_id, node = _node_in_a_run(stubs)
    _instruct(stubs, run_id, node, np.arange(3.0))
    (instruction,) = _pull(stubs, node, 1)
    header = decode_header(instruction)
    values = np.random.default_rng(0).standard_normal(100).astype(np.float32)
    wire, blob = split_message(header.reply(RecordDict({"a": ArrayRecord([values])})))
    assert blob is not None
    wire.inline_content = blob  # what a SuperNode sends: no FindMissingObjects, no PushObject
    (status,) = stubs["fleet"].PushReplies(pb.PushRepliesRequest(node_id=node, messages=[wire])).results
    assert status.accepted, status.reason
    missing = stubs["serverappio"].FindMissingObjects(pb.FindMissingObjectsRequest(digests=[wire.content.digest]))
    assert list(missing.missing) == []  # stored as an object, as an upload would have been
    request = pb.PullRepliesRequest(run_id=run_id, message_ids=[header.metadata.message_id], wait_s=5)
    (reply,) = stubs["serverappio"].PullReplies(request).messages
    got = join_message(reply, inline_content(reply))
    assert got.content["a"]["0"].numpy().tobytes() == values.tobytes()


def test_a_reply_whose_inline_bytes_are_not_its_content_is_refused_and_not_stored(stubs: dict[str, Any]) -> None:
    run_id, node = _node_in_a_run(stubs)
    _instruct(stubs, run_id, node, np.arange(3.0))
    (instruction,) = _pull(stubs, node, 1)
    wire, blob = split_message(decode_header(instruction).reply(RecordDict({"a": ArrayRecord([np.ones(4)])})))
    assert blob is not None
    tampered = bytearray(blob)
    tampered[-1] ^= 1
    wire.inline_content = bytes(tampered)
    (status,) = stubs["fleet"].PushReplies(pb.PushRepliesRequest(node_id=node, messages=[wire])).results
    assert not status.accepted and "not used" in status.reason
    missing = stubs["serverappio"].FindMissingObjects(
        pb.FindMissingObjectsRequest(digests=[wire.content.digest, object_ref(bytes(tampered)).digest])
    )
    assert len(missing.missing) == 2  # neither the named object nor the tampered bytes were kept


def test_inline_bytes_that_lie_about_their_ref_or_are_too_large_are_refused() -> None:
    wire, blob = split_message(Message(RecordDict({"a": ArrayRecord([np.ones(2)])}), 1, "train"))
    assert blob is not None
    wire.inline_content = blob + b"x"
    with pytest.raises(TransferError, match="not used"):
        inline_content(wire)
    big = b"y" * (INLINE_MAX_BYTES + 1)
    wire.content.CopyFrom(object_ref(big))
    wire.inline_content = big
    with pytest.raises(TransferError, match="allowed inline"):
        inline_content(wire)


def test_one_response_inlines_contents_only_up_to_its_budget() -> None:
    blobs = {ref.digest: data for data in (b"a" * 1000, b"b" * 1000, b"c" * 1000) if (ref := object_ref(data))}
    inliner = Inliner(blobs.get, budget=2500)
    wires = []
    for digest, data in blobs.items():
        wire = pb.WireMessage(frame=b"")
        wire.content.CopyFrom(pb.ObjectRef(digest=digest, size=len(data)))
        wires.append(inliner.fill(wire))
    assert [len(w.inline_content) for w in wires] == [1000, 1000, 0]
    assert inliner.budget == 500
