"""Long polls at the SuperLink: bounded, each woken for its own node, freed when a node hangs up."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest

from fedlab.deploy import proto as pb
from fedlab.deploy.security import INSECURE
from fedlab.deploy.superlink import SuperLink
from fedlab.deploy.superlink import fleet as fleet_module
from fedlab.deploy.superlink.fleet import BUSY_RETRY_S
from fedlab.deploy.transport.channel import open_channel
from fedlab.deploy.transport.rpc import Stub
from fedlab.deploy.transport.transfer import push_objects
from fedlab.deploy.transport.wire import split_message
from fedlab.message import Message
from fedlab.records import ArrayRecord, RecordDict

LOOPBACK = {"fleet_address": "127.0.0.1:0", "serverappio_address": "127.0.0.1:0", "control_address": "127.0.0.1:0"}


@pytest.fixture
def link() -> Iterator[tuple[SuperLink, dict[str, Any]]]:
    with SuperLink(**LOOPBACK, insecure=True, max_long_polls=1) as superlink:
        channels = [open_channel(superlink.addresses[name], INSECURE) for name in ("fleet", "serverappio", "control")]
        stubs = dict(zip(("fleet", "serverappio", "control"), (Stub(c, n) for c, n in
                                                            zip(channels, ("Fleet", "ServerAppIo", "Control")))))  # fmt: skip
        yield superlink, stubs
        for channel in channels:
            channel.close()


def register(fleet: Any) -> int:
    request = pb.RegisterRequest(node_config_json=json.dumps({}), heartbeat_interval=30.0)
    return int(fleet.Register(request).node_id)


def long_poll(fleet: Any, node: int, wait_s: float = 60.0) -> Any:
    return fleet.PullInstructions.future(pb.PullInstructionsRequest(node_id=node, max_messages=1, wait_s=wait_s))


def held(superlink: SuperLink) -> int:
    assert superlink.fleet_servicer is not None
    return superlink.fleet_servicer.long_polls


def wait_for(condition: Any) -> None:
    event = threading.Event()
    for _ in range(6000):
        if condition():
            return
        event.wait(0.01)
    raise AssertionError("condition not reached in 60 s")


def push_instruction(stubs: dict[str, Any], run_id: int, node: int) -> str:
    message = Message(RecordDict({"a": ArrayRecord([np.arange(3.0)])}), node, "train", run_id=run_id)
    wire, blob = split_message(message)
    push_objects(stubs["serverappio"], {wire.content.digest: blob})  # type: ignore[dict-item]
    stubs["serverappio"].PushInstructions(pb.PushInstructionsRequest(run_id=run_id, messages=[wire]))
    return str(wire.content.digest)


def test_a_long_poll_past_the_limit_is_answered_at_once_with_a_retry_delay(link: tuple[SuperLink, dict[str, Any]]) -> None:
    superlink, stubs = link
    first, second = register(stubs["fleet"]), register(stubs["fleet"])
    waiting = long_poll(stubs["fleet"], first)
    wait_for(lambda: held(superlink) == 1)
    busy = stubs["fleet"].PullInstructions(pb.PullInstructionsRequest(node_id=second, max_messages=1, wait_s=60))
    assert list(busy.messages) == [] and busy.retry_after_s == BUSY_RETRY_S
    assert not waiting.done()
    # The waiting node still gets its work the moment it is pushed.
    run_id = stubs["control"].CreateRun(pb.CreateRunRequest(attached=True)).run_id
    digest = push_instruction(stubs, run_id, first)
    assert [w.content.digest for w in waiting.result(timeout=60).messages] == [digest]
    wait_for(lambda: held(superlink) == 0)


def test_a_node_that_hangs_up_frees_its_long_poll_at_once(
    link: tuple[SuperLink, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    superlink, stubs = link
    # Without its own re-check, only the hang-up can end the wait.
    monkeypatch.setattr(fleet_module, "_LONG_POLL_RECHECK_S", 3600.0)
    monkeypatch.setattr(fleet_module, "MAX_WAIT_S", 3600.0)
    node = register(stubs["fleet"])
    waiting = long_poll(stubs["fleet"], node, wait_s=3600.0)
    wait_for(lambda: held(superlink) == 1)
    waiting.cancel()
    with pytest.raises(grpc.FutureCancelledError):
        waiting.result()
    wait_for(lambda: held(superlink) == 0)
    again = long_poll(stubs["fleet"], node, wait_s=30.0)
    wait_for(lambda: held(superlink) == 1)
    again.cancel()
