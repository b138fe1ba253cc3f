from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from fedlab.client import ClientApp
from fedlab.context import Context
from fedlab.errors import SimulationError
from fedlab.events import EventBus
from fedlab.message import Message
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.simulation import SimulationGrid, make_node_ids
from tests.contracts.grid_contract import GridContract


class TestInlineSimulationGridContract(GridContract):
    def make_grid(self, app: ClientApp, num_nodes: int, events: EventBus) -> SimulationGrid:
        return SimulationGrid(app, num_nodes, backend="inline", events=events, seed=0)


class TestThreadSimulationGridContract(GridContract):
    def make_grid(self, app: ClientApp, num_nodes: int, events: EventBus) -> SimulationGrid:
        return SimulationGrid(app, num_nodes, backend="threads", max_workers=4, events=events, seed=0)


def _train_message(grid: SimulationGrid, node: int) -> Message:
    content = RecordDict({"arrays": ArrayRecord({"w": np.zeros(4, np.float32)}), "config": ConfigRecord()})
    return grid.create_message(content, "train", node, group_id="1")


def test_node_ids_are_reproducible_for_a_seed_and_not_partition_indices() -> None:
    assert make_node_ids(5, seed=3) == make_node_ids(5, seed=3)
    assert make_node_ids(5, seed=3) != make_node_ids(5, seed=4)
    assert set(make_node_ids(5, seed=3)).isdisjoint(range(5))


def test_nodes_get_partition_ids_and_extra_node_config() -> None:
    grid = SimulationGrid(ClientApp(), 3, seed=1, node_configs=[{"region": r} for r in ("eu", "us", "eu")])
    configs = [grid.context(n).node_config for n in grid.get_node_ids()]
    assert configs == [
        {"partition-id": 0, "num-partitions": 3, "region": "eu"},
        {"partition-id": 1, "num-partitions": 3, "region": "us"},
        {"partition-id": 2, "num-partitions": 3, "region": "eu"},
    ]


def test_a_client_that_changes_its_records_does_not_change_what_others_receive() -> None:
    app = ClientApp()
    seen: list[list[str]] = []

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        seen.append(sorted(msg.content))
        arrays = msg.content["arrays"]
        assert isinstance(arrays, ArrayRecord)
        arrays["injected"] = np.ones(1)  # changes this client's copy only
        with pytest.raises(ValueError):
            arrays["w"].numpy()[0] = 1.0  # the shared array is read-only
        msg.content["extra"] = MetricRecord({"x": 1})
        return msg.reply(RecordDict({"metrics": MetricRecord({"num-examples": 1})}))

    grid = SimulationGrid(app, 3, seed=0)
    shared = _train_message(grid, 0).content
    messages = [grid.create_message(shared, "train", n, group_id="1") for n in grid.get_node_ids()]
    replies = grid.send_and_receive(messages, timeout=10)
    assert all(r.has_content() for r in replies)
    assert seen == [["arrays", "config"]] * 3
    assert list(shared) == ["arrays", "config"] and list(shared["arrays"]) == ["w"]


def test_calls_to_one_node_never_overlap_with_the_threads_backend() -> None:
    app = ClientApp()
    active = {"now": 0, "max": 0}
    lock = threading.Lock()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        with lock:
            active["now"] += 1
            active["max"] = max(active["max"], active["now"])
        time.sleep(0.05)
        with lock:
            active["now"] -= 1
        return msg.reply(RecordDict({"metrics": MetricRecord({"num-examples": 1})}))

    grid = SimulationGrid(app, 1, backend="threads", max_workers=4, seed=0)
    node = grid.get_node_ids()[0]
    replies = grid.send_and_receive([_train_message(grid, node) for _ in range(4)], timeout=10)
    grid.close()
    assert all(r.has_content() for r in replies)
    assert active["max"] == 1


def test_threads_backend_runs_different_nodes_concurrently() -> None:
    app = ClientApp()
    barrier = threading.Barrier(3, timeout=5)

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        barrier.wait()  # only passes if all three clients run at the same time
        return msg.reply(RecordDict({"metrics": MetricRecord({"num-examples": 1})}))

    grid = SimulationGrid(app, 3, backend="threads", max_workers=3, seed=0)
    replies = grid.send_and_receive([_train_message(grid, n) for n in grid.get_node_ids()], timeout=10)
    grid.close()
    assert all(r.has_content() for r in replies)


def test_a_late_reply_after_a_timeout_is_dropped_and_not_reported_twice() -> None:
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        time.sleep(0.4)
        return msg.reply(RecordDict({"metrics": MetricRecord({"num-examples": 1})}))

    bus = EventBus()
    events: list[object] = []
    bus.subscribe(events.append)
    grid = SimulationGrid(app, 1, backend="threads", events=bus, seed=0)
    node = grid.get_node_ids()[0]
    message = _train_message(grid, node)
    (reply,) = grid.send_and_receive([message], timeout=0.1)
    assert reply.has_error()
    time.sleep(0.6)  # the client finishes after the round gave up on it
    assert grid.pull_messages([message.metadata.message_id]) == []
    assert len(events) == 1
    grid.close()


def test_invalid_simulation_settings_are_rejected_with_the_fix() -> None:
    with pytest.raises(SimulationError, match="positive int"):
        SimulationGrid(ClientApp(), 0)
    with pytest.raises(SimulationError, match="one mapping per node"):
        SimulationGrid(ClientApp(), 2, node_configs=[{}])
    with pytest.raises(SimulationError, match="'inline', 'threads', 'processes', 'ray'"):
        SimulationGrid(ClientApp(), 2, backend="gpu")

