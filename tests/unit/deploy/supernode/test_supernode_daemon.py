"""A SuperNode in-process: bundles, trusted keys, Contexts per run, giving up on a dead link."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedlab.deploy.bundle import build_bundle
from fedlab.deploy.client.control_client import ControlClient
from fedlab.deploy.client.grpcgrid import GrpcGrid
from fedlab.deploy.security import INSECURE
from fedlab.deploy.superlink import SuperLink
from fedlab.deploy.supernode import SuperNode
from fedlab.message import ErrorCode, Message
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict

LOOPBACK = {"fleet_address": "127.0.0.1:0", "serverappio_address": "127.0.0.1:0", "control_address": "127.0.0.1:0"}
COUNTER = '''
from fedlab import ClientApp
from fedlab.records import ConfigRecord, MetricRecord, RecordDict

app = ClientApp()


@app.train()
def train(msg, ctx):
    seen = ctx.state.get("seen", MetricRecord({"n": 0}))
    seen["n"] = seen["n"] + 1
    ctx.state["seen"] = seen
    return msg.reply(RecordDict({
        "metrics": MetricRecord({"n": seen["n"], "partition": ctx.node_config["partition-id"]}),
        "run": ConfigRecord({"tag": ctx.run_config["tag"]}),
    }))
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("counter")
    (root / "counterapp.py").write_text(COUNTER)
    yield root
    sys.modules.pop("counterapp", None)


@pytest.fixture
def superlink() -> Iterator[SuperLink]:
    with SuperLink(**LOOPBACK, insecure=True) as link:
        yield link


def start_node(superlink: SuperLink, **kwargs: Any) -> tuple[SuperNode, threading.Thread]:
    kwargs.setdefault("allow_unsigned", "trusted_keys" not in kwargs)
    node = SuperNode(superlink.addresses["fleet"], node_config={"partition-id": 4}, heartbeat_interval=5.0, **kwargs, security=INSECURE)
    thread = threading.Thread(target=node.run)
    thread.start()
    return node, thread


def train(grid: GrpcGrid, node_id: int) -> Message:
    content = RecordDict({"arrays": ArrayRecord([np.zeros(2)]), "config": ConfigRecord()})
    (reply,) = grid.send_and_receive([grid.create_message(content, "train", node_id, "1")], timeout=60)
    return reply


def test_a_node_runs_each_runs_bundle_with_a_context_that_persists_per_run(superlink: SuperLink, project: Path) -> None:
    node, thread = start_node(superlink)
    try:
        control = ControlClient(superlink.addresses["control"], security=INSECURE)
        (info,) = control.wait_for_nodes(1, timeout=30)
        bundle = build_bundle("counterapp:app", project_dir=project)
        grids = [GrpcGrid(superlink.addresses["serverappio"], control.create_run(bundle, {"tag": tag}, attached=True), security=INSECURE)
                 for tag in ("a", "b")]  # fmt: skip
        seen = [train(grids[0], info.node_id), train(grids[0], info.node_id), train(grids[1], info.node_id)]
        got = [(dict(r.content["metrics"]), r.content["run"]["tag"]) for r in seen]  # type: ignore[call-overload, index]
        assert got == [({"n": 1, "partition": 4}, "a"), ({"n": 2, "partition": 4}, "a"),
                       ({"n": 1, "partition": 4}, "b")]  # fmt: skip
        for grid in grids:
            grid.close()
        control.close()
    finally:
        node.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_a_node_with_trusted_keys_refuses_a_bundle_signed_by_another_key(superlink: SuperLink, project: Path) -> None:
    trusted, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    node, thread = start_node(superlink, trusted_keys=[trusted.public_key()])
    try:
        control = ControlClient(superlink.addresses["control"], security=INSECURE)
        (info,) = control.wait_for_nodes(1, timeout=30)
        for key, ok in ((stranger, False), (None, False), (trusted, True)):
            bundle = build_bundle("counterapp:app", project_dir=project, signing_key=key, run_config={"tag": "x"})
            grid = GrpcGrid(superlink.addresses["serverappio"], control.create_run(bundle, {"tag": "x"}, attached=True), security=INSECURE)
            reply = train(grid, info.node_id)
            grid.close()
            if ok:
                assert reply.has_content(), reply.error
            else:
                assert reply.error is not None and reply.error.code == ErrorCode.CLIENT_APP_CRASHED
                assert "BundleError" in reply.error.reason
        control.close()
    finally:
        node.stop()
        thread.join(timeout=30)


def test_a_run_without_code_needs_a_node_started_with_an_app(superlink: SuperLink) -> None:
    node, thread = start_node(superlink)
    try:
        control = ControlClient(superlink.addresses["control"], security=INSECURE)
        (info,) = control.wait_for_nodes(1, timeout=30)
        grid = GrpcGrid(superlink.addresses["serverappio"], control.create_run(b"", {}, attached=True), security=INSECURE)
        reply = train(grid, info.node_id)
        assert reply.error is not None and "--app package.module:attr" in reply.error.reason
        grid.close()
        control.close()
    finally:
        node.stop()
        thread.join(timeout=30)


def test_a_node_gives_up_after_max_retries_when_no_superlink_answers() -> None:
    node = SuperNode("127.0.0.1:1", max_retries=2, max_backoff=0.05, allow_unsigned=True, security=INSECURE)
    assert node.run() == 1


def test_the_grid_reports_the_replying_nodes_partition() -> None:
    with SuperLink(**LOOPBACK, insecure=True) as superlink:
        node, thread = start_node(superlink, app=_app())
        try:
            control = ControlClient(superlink.addresses["control"], security=INSECURE)
            (info,) = control.wait_for_nodes(1, timeout=30)
            grid = GrpcGrid(superlink.addresses["serverappio"], control.create_run(b"", {}, attached=True), security=INSECURE)
            assert grid.get_node_config(info.node_id) == {"partition-id": 4}
            assert grid.partition_id(info.node_id) == 4
            grid.close()
            control.close()
        finally:
            node.stop()
            thread.join(timeout=30)


def _app() -> Any:
    from fedlab import ClientApp

    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Any) -> Message:
        return msg.reply(RecordDict({"metrics": MetricRecord({"num-examples": 1})}))

    return app


def test_a_stopped_node_closes_its_channel_only_after_a_heartbeat_in_flight_returns(superlink: SuperLink) -> None:
    node = SuperNode(superlink.addresses["fleet"], heartbeat_interval=0.1, allow_unsigned=True, security=INSECURE)
    beat = node._stub.Heartbeat
    in_call, closed_mid_call, failures = threading.Event(), threading.Event(), []

    def slow_heartbeat(request: Any, timeout: float) -> Any:
        in_call.set()
        node._stop.wait()  # still in flight when the node is told to stop
        threading.Event().wait(0.2)
        if node._stop.is_set() and getattr(node._channel, "_closed", False):
            closed_mid_call.set()
        return beat(request, timeout=timeout)  # raises on a closed channel

    node._stub.Heartbeat = slow_heartbeat  # type: ignore[method-assign]
    close = node._channel.close

    def close_and_mark() -> None:
        node._channel._closed = True  # type: ignore[attr-defined]
        close()

    node._channel.close = close_and_mark  # type: ignore[method-assign]
    previous = threading.excepthook
    threading.excepthook = lambda args: failures.append(args.exc_value)
    try:
        thread = threading.Thread(target=node.run)
        thread.start()
        assert in_call.wait(30)
        node.stop()
        thread.join(30)
    finally:
        threading.excepthook = previous
    assert not thread.is_alive()
    assert not closed_mid_call.is_set()
    assert failures == []
