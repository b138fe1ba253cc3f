"""Context: a node's identity, configuration and persistent state."""

from __future__ import annotations

import numpy as np
import pytest

from fedlab.context import Context
from fedlab.errors import RecordError
from fedlab.records import ArrayRecord, MetricRecord, RecordDict


def test_a_new_context_has_empty_configs_and_empty_state() -> None:
    ctx = Context(run_id=3, node_id=7)

    assert (ctx.run_id, ctx.node_id) == (3, 7)
    assert ctx.node_config == {} and ctx.run_config == {}
    assert isinstance(ctx.state, RecordDict) and len(ctx.state) == 0


def test_contexts_never_share_default_state_or_config() -> None:
    first, second = Context(run_id=1, node_id=1), Context(run_id=1, node_id=2)

    first.state["counter"] = MetricRecord({"calls": 1})
    first.node_config["partition-id"] = 0

    assert len(second.state) == 0 and second.node_config == {}


def test_state_persists_as_the_same_object_across_calls() -> None:
    ctx = Context(run_id=1, node_id=4, node_config={"partition-id": 2, "num-partitions": 10})

    def one_round(context: Context) -> object:
        if "counter" not in context.state:
            context.state["counter"] = MetricRecord({"calls": 0})
        record = context.state.metric_records["counter"]
        record["calls"] = len(seen) + 1
        seen.append(record)
        return record["calls"]

    seen: list[MetricRecord] = []

    state = ctx.state
    calls = [one_round(ctx) for _ in range(3)]

    assert calls == [1, 2, 3]
    assert ctx.state is state
    assert seen[0] is seen[1] is seen[2] is ctx.state["counter"]
    assert ctx.node_config["partition-id"] == 2


def test_state_keeps_arrays_written_by_the_node() -> None:
    ctx = Context(run_id=1, node_id=1)

    ctx.state["optimizer"] = ArrayRecord([np.arange(3.0)])

    assert ctx.state.array_records["optimizer"]["0"].numpy().tolist() == [0.0, 1.0, 2.0]


def test_state_accepts_only_records() -> None:
    ctx = Context(run_id=1, node_id=1)

    with pytest.raises(RecordError, match="RecordDict\\['counter'\\]"):
        ctx.state["counter"] = {"calls": 1}  # type: ignore[assignment]
