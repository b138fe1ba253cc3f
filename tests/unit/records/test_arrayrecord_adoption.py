"""ArrayRecord keeps a temporary's buffer without a copy, and copies anything still held."""

from __future__ import annotations

import numpy as np
import pytest

from fedlab.client import ClientApp
from fedlab.context import Context
from fedlab.message import Message
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict, _ownership
from fedlab.simulation import SimulationGrid

_addresses: list[int] = []


def _fresh(values: list[float]) -> np.ndarray:
    made = np.array(values, dtype=np.float32)
    _addresses.append(made.ctypes.data)
    return made


def test_this_interpreter_adopts_temporaries() -> None:
    # CI runs CPython 3.10-3.13, where the import-time check must enable adoption.
    assert _ownership.enabled(), _ownership._observed


def test_a_temporary_is_kept_without_a_copy_and_read_only() -> None:
    _addresses.clear()
    rec = ArrayRecord([_fresh([1.0, 2.0]), _fresh([3.0])])
    first, second = rec.to_numpy()
    assert [first.ctypes.data, second.ctypes.data] == _addresses  # the same memory, not a copy
    assert first.tolist() == [1.0, 2.0] and second.tolist() == [3.0]
    with pytest.raises(ValueError):
        first[0] = 9.0


def test_an_array_held_in_a_variable_is_copied_and_later_changes_do_not_reach_the_record() -> None:
    held = np.arange(4, dtype=np.float32)
    rec = ArrayRecord([held])
    held += 100.0
    assert rec["0"].numpy().tolist() == [0.0, 1.0, 2.0, 3.0]
    assert not np.shares_memory(rec["0"].numpy(), held) and held.flags.writeable


def test_an_array_in_a_held_list_is_copied() -> None:
    items = [np.arange(3, dtype=np.float32) + 1.0]
    rec = ArrayRecord(items)
    items[0] += 10.0
    assert rec["0"].numpy().tolist() == [1.0, 2.0, 3.0]


def test_a_view_of_another_array_is_copied() -> None:
    base = np.zeros(6, dtype=np.float32)
    rec = ArrayRecord([base[2:4]])
    base[:] = 7.0
    assert rec["0"].numpy().tolist() == [0.0, 0.0]


def test_the_same_temporary_twice_is_copied() -> None:
    rec = ArrayRecord([np.ones(2, dtype=np.float32)] * 2)
    assert not np.shares_memory(rec["0"].numpy(), rec["1"].numpy())


def test_a_client_that_changes_its_array_after_replying_does_not_change_its_reply() -> None:
    app = ClientApp()
    kept: list[np.ndarray] = []

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        update = msg.content.array_record("arrays").to_numpy()[0] + np.float32(1.0)
        kept.append(update)
        reply = msg.reply(RecordDict({"arrays": ArrayRecord([update]),
                                      "metrics": MetricRecord({"num-examples": 1})}))
        update *= 5.0  # after building the reply, before returning it
        return reply

    grid = SimulationGrid(app, 2, backend="inline", seed=0)
    content = RecordDict({"arrays": ArrayRecord({"w": np.zeros(3, np.float32)}), "config": ConfigRecord()})
    messages = [grid.create_message(content, "train", n, group_id="1") for n in grid.get_node_ids()]
    replies = grid.send_and_receive(messages, timeout=10)
    for kept_array in kept:
        kept_array += 1000.0  # and again after the round
    assert [r.content.array_record("arrays").to_numpy()[0].tolist() for r in replies] == [[1.0, 1.0, 1.0]] * 2


def test_a_temporary_reply_in_a_client_is_adopted() -> None:
    app = ClientApp()
    addresses: list[int] = []

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        rec = ArrayRecord([msg.content.array_record("arrays").to_numpy()[0] + np.float32(2.0)])
        addresses.append(rec["0"].numpy().ctypes.data)
        return msg.reply(RecordDict({"arrays": rec, "metrics": MetricRecord({"num-examples": 1})}))

    grid = SimulationGrid(app, 1, backend="inline", seed=0)
    content = RecordDict({"arrays": ArrayRecord({"w": np.zeros(2, np.float32)}), "config": ConfigRecord()})
    (reply,) = grid.send_and_receive([grid.create_message(content, "train", grid.get_node_ids()[0], group_id="1")],
                                     timeout=10)
    got = reply.content.array_record("arrays").to_numpy()[0]
    assert got.tolist() == [2.0, 2.0] and got.ctypes.data == addresses[0]
