"""The SuperLink's gRPC services, in-process: limits, checksums and who may read what."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest

from fedlab.deploy import proto as pb
from fedlab.deploy.superlink import SuperLink
from fedlab.deploy.transport.channel import MAX_RPC_BYTES, open_channel
from fedlab.deploy.transport.rpc import Stub
from fedlab.deploy.transport.transfer import download, iter_chunks, object_ref, push_objects
from fedlab.deploy.transport.wire import split_message
from fedlab.message import Message
from fedlab.records import ArrayRecord, RecordDict
from fedlab.deploy.security import INSECURE
from fedlab.deploy.security.access import OpenGate

LOOPBACK = {"fleet_address": "127.0.0.1:0", "serverappio_address": "127.0.0.1:0", "control_address": "127.0.0.1:0"}


@pytest.fixture(scope="module")
def superlink() -> Iterator[SuperLink]:
    with SuperLink(**LOOPBACK, max_object_size=64 * 2**20, insecure=True) as link:
        yield link


@pytest.fixture(scope="module")
def stubs(superlink: SuperLink) -> Iterator[dict[str, Any]]:
    channels = {name: open_channel(address, INSECURE) for name, address in superlink.addresses.items()}
    yield {
        "fleet": Stub(channels["fleet"], "Fleet"),
        "serverappio": Stub(channels["serverappio"], "ServerAppIo"),
        "control": Stub(channels["control"], "Control"),
    }
    for channel in channels.values():
        channel.close()


def register(stubs: dict[str, Any], **config: object) -> int:
    request = pb.RegisterRequest(node_config_json=json.dumps(config), heartbeat_interval=30.0)
    return int(stubs["fleet"].Register(request).node_id)


def test_an_object_several_times_the_grpc_message_limit_travels_intact(stubs: dict[str, Any]) -> None:
    data = np.random.default_rng(1).bytes(2 * MAX_RPC_BYTES + 12345)
    ref = object_ref(data)
    assert push_objects(stubs["serverappio"], {ref.digest: data}) == len(data)
    assert push_objects(stubs["serverappio"], {ref.digest: data}) == 0  # already stored: not re-sent

    def stream(offset: int) -> Any:
        return stubs["serverappio"].PullObject(pb.PullObjectRequest(digest=ref.digest, offset=offset))

    assert download(stream, ref) == data


def test_a_single_frame_above_the_limit_is_refused_as_resource_exhausted(superlink: SuperLink) -> None:
    # A client that ignores fedlab's limits, sending a 17 MiB chunk in one frame.
    channel = grpc.insecure_channel(superlink.addresses["serverappio"], options=[("grpc.max_send_message_length", -1)])
    data = b"x" * (MAX_RPC_BYTES + 2**20)
    try:
        with pytest.raises(grpc.RpcError) as caught:
            Stub(channel, "ServerAppIo").PushObject(iter_chunks(data, object_ref(data), chunk_size=len(data)))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        channel.close()


def test_an_object_announced_above_max_object_size_is_refused_before_its_bytes(stubs: dict[str, Any]) -> None:
    chunk = pb.ObjectChunk(ref=pb.ObjectRef(digest="ab" * 32, size=2**40), data=b"x")
    with pytest.raises(grpc.RpcError) as caught:
        stubs["serverappio"].PushObject(iter([chunk]))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--max-object-size" in caught.value.details()


def test_an_upload_that_does_not_match_its_digest_is_refused_and_not_stored(stubs: dict[str, Any]) -> None:
    ref = object_ref(b"the real content")
    with pytest.raises(grpc.RpcError) as caught:
        stubs["serverappio"].PushObject(iter_chunks(b"tampered content", ref))
    assert caught.value.code() == grpc.StatusCode.DATA_LOSS
    missing = stubs["serverappio"].FindMissingObjects(pb.FindMissingObjectsRequest(digests=[ref.digest]))
    assert list(missing.missing) == [ref.digest]


def test_instructions_whose_content_was_not_uploaded_are_refused(superlink: SuperLink, stubs: dict[str, Any]) -> None:
    run_id = stubs["control"].CreateRun(pb.CreateRunRequest(attached=True)).run_id
    wire, _ = split_message(Message(RecordDict({"a": ArrayRecord([np.arange(3)])}), 1, "train", run_id=run_id))
    with pytest.raises(grpc.RpcError) as caught:
        stubs["serverappio"].PushInstructions(pb.PushInstructionsRequest(run_id=run_id, messages=[wire]))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "upload it first" in caught.value.details()


def test_an_instruction_that_lies_about_its_content_size_is_refused(stubs: dict[str, Any]) -> None:
    run_id = stubs["control"].CreateRun(pb.CreateRunRequest(attached=True)).run_id
    wire, blob = split_message(Message(RecordDict({"a": ArrayRecord([np.arange(3)])}), 1, "train", run_id=run_id))
    assert blob is not None
    push_objects(stubs["serverappio"], {wire.content.digest: blob})
    wire.content.size = len(blob) + 10**6  # nodes would be told to expect a megabyte more
    with pytest.raises(grpc.RpcError) as caught:
        stubs["serverappio"].PushInstructions(pb.PushInstructionsRequest(run_id=run_id, messages=[wire]))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"holds {len(blob)}" in caught.value.details()


def test_a_node_reads_only_objects_addressed_to_it(stubs: dict[str, Any]) -> None:
    run_id = stubs["control"].CreateRun(pb.CreateRunRequest(attached=True)).run_id
    alice, mallory = register(stubs), register(stubs)
    message = Message(RecordDict({"a": ArrayRecord([np.arange(5.0)])}), alice, "train", run_id=run_id)
    wire, blob = split_message(message)
    push_objects(stubs["serverappio"], {wire.content.digest: blob})  # type: ignore[dict-item]
    stubs["serverappio"].PushInstructions(pb.PushInstructionsRequest(run_id=run_id, messages=[wire]))
    request = pb.PullObjectRequest(digest=wire.content.digest, node_id=mallory)
    with pytest.raises(grpc.RpcError) as caught:
        list(stubs["fleet"].PullObject(request))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    request.node_id = alice
    assert b"".join(c.data for c in stubs["fleet"].PullObject(request)) == blob


def test_an_unregistered_node_is_told_to_register_again(stubs: dict[str, Any]) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stubs["fleet"].PullInstructions(pb.PullInstructionsRequest(node_id=424242, wait_s=0))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "register again" in caught.value.details()


def test_a_node_config_that_is_not_a_flat_json_object_is_refused(stubs: dict[str, Any]) -> None:
    for bad in ("[1]", '{"a": {"nested": 1}}', "{oops"):
        with pytest.raises(grpc.RpcError) as caught:
            stubs["fleet"].Register(pb.RegisterRequest(node_config_json=bad, heartbeat_interval=5.0))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_waiting_node_receives_an_instruction_pushed_while_it_waits(stubs: dict[str, Any]) -> None:
    run_id = stubs["control"].CreateRun(pb.CreateRunRequest(attached=True)).run_id
    node = register(stubs)
    message = Message(RecordDict({"a": ArrayRecord([np.arange(2.0)])}), node, "train", run_id=run_id)
    wire, blob = split_message(message)
    pulled: list[Any] = []
    waiting = threading.Thread(
        target=lambda: pulled.extend(
            stubs["fleet"].PullInstructions(pb.PullInstructionsRequest(node_id=node, max_messages=1, wait_s=30)).messages
        )
    )
    waiting.start()
    push_objects(stubs["serverappio"], {wire.content.digest: blob})  # type: ignore[dict-item]
    stubs["serverappio"].PushInstructions(pb.PushInstructionsRequest(run_id=run_id, messages=[wire]))
    waiting.join(timeout=60)
    assert [w.content.digest for w in pulled] == [wire.content.digest]


@pytest.mark.parametrize(
    ("service", "hint"),
    [("control", "; list runs with `fedlab ls`."), ("serverappio", ".")],
)
def test_the_calls_control_and_serverappio_share_each_refuse_an_unknown_run_in_their_own_words(
    stubs: dict[str, Any], service: str, hint: str
) -> None:
    expected = f"There is no run 424242 on this SuperLink{hint}"
    for call, request in [
        ("GetRun", pb.GetRunRequest(run_id=424242)),
        ("FinishRun", pb.FinishRunRequest(run_id=424242, status="completed")),
    ]:
        with pytest.raises(grpc.RpcError) as caught:
            getattr(stubs[service], call)(request)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert caught.value.details() == expected


def test_control_takes_uploads_up_to_the_bundle_limit_and_serverappio_up_to_the_object_limit() -> None:
    size = 64 * 2**20 + 1  # above the bundle limit (64 MiB), below this SuperLink's object limit
    chunk = pb.ObjectChunk(ref=pb.ObjectRef(digest="cd" * 32, size=size), data=b"x")
    with SuperLink(**LOOPBACK, max_object_size=128 * 2**20, insecure=True) as link:
        control, serverappio = (open_channel(link.addresses[name], INSECURE) for name in ("control", "serverappio"))
        try:
            with pytest.raises(grpc.RpcError) as caught:
                Stub(control, "Control").PushObject(iter([chunk]))
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert f"above this SuperLink's limit of {64 * 2**20};" in caught.value.details()
            with pytest.raises(grpc.RpcError) as caught:  # taken, then found short of its size
                Stub(serverappio, "ServerAppIo").PushObject(iter([chunk]))
            assert caught.value.code() == grpc.StatusCode.DATA_LOSS
        finally:
            control.close()
            serverappio.close()


def test_every_rpc_of_every_service_is_served() -> None:
    from fedlab.deploy.proto import SERVICES, service_descriptor
    from fedlab.deploy.transport.rpc import service_handler

    assert SERVICES == ("Control", "Fleet", "ServerAppIo")
    for service in SERVICES:
        names = [m.name for m in service_descriptor(service).methods]
        assert names  # and service_handler would raise TypeError for a missing one
    with pytest.raises(TypeError, match="does not implement Fleet.Register"):
        service_handler("Fleet", object(), OpenGate())
