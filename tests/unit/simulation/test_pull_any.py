"""Grid.pull_any: hand out replies as they arrive, without waiting for the whole batch."""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np

from fedlab.client import ClientApp
from fedlab.context import Context, UserConfig
from fedlab.message import Message
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.server import Grid
from fedlab.simulation import SimulationGrid


def _instruction(grid: Grid, node: int) -> Message:
    content = RecordDict({"arrays": ArrayRecord({"w": np.zeros(2)}), "config": ConfigRecord()})
    return grid.create_message(content, "train", node, group_id="1")


def test_pull_any_returns_the_fast_reply_while_a_slow_node_still_works() -> None:
    gate = threading.Event()
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        if ctx.node_config["partition-id"] == 0:
            gate.wait(timeout=60)
        return msg.reply(RecordDict({"metrics": MetricRecord({"num-examples": 1})}))

    grid = SimulationGrid(app, 2, backend="threads", max_workers=2, seed=0)
    try:
        slow, fast = grid.get_node_ids()
        ids = grid.push_messages([_instruction(grid, slow), _instruction(grid, fast)])
        first = grid.pull_any(ids, timeout=60)
        assert [r.metadata.src_node_id for r in first] == [fast]
        assert grid.pull_any(ids, timeout=0.05) == []  # the slow node is still held at the gate
        gate.set()
        assert [r.metadata.src_node_id for r in grid.pull_any(ids, timeout=60)] == [slow]
    finally:
        gate.set()
        grid.close()


class _LateGrid(Grid):
    """A grid whose single reply shows up only on the third pull."""

    poll_interval = 0.001

    def __init__(self) -> None:
        super().__init__(run_id=1)
        self.pulls = 0
        self.reply = Message(RecordDict(), 5, "train").reply(RecordDict())

    def get_node_ids(self) -> list[int]:
        return [5]

    def get_node_config(self, node_id: int) -> UserConfig:
        return {}

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        return []

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        self.pulls += 1
        return [self.reply] if self.pulls == 3 else []


def test_the_default_pull_any_polls_until_a_reply_arrives_or_time_is_up() -> None:
    grid = _LateGrid()
    assert grid.pull_any(["m"], timeout=30) == [grid.reply]
    assert grid.pulls == 3
    assert grid.pull_any(["m"], timeout=0.01) == []
    assert grid.pull_any([], timeout=None) == []
