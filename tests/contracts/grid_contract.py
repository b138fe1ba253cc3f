"""The Grid contract: one suite that every Grid implementation must pass.

A test module subclasses :class:`GridContract` and implements ``make_grid``; the
simulation runs it now, the gRPC Grid will run the very same tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest

from fedlab.client import ClientApp
from fedlab.errors import FedlabError
from fedlab.events import ClientReplied, Event, EventBus
from fedlab.message import ErrorCode, Message
from fedlab.records import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.server import Grid

MakeGrid = Callable[[ClientApp, int, EventBus], Grid]


def contract_app() -> ClientApp:
    """A ClientApp whose behaviour each test steers through the message's config."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: object) -> Message:
        config = msg.content["config"]
        assert isinstance(config, ConfigRecord)
        if config.get("raise"):
            raise ValueError("client exploded on purpose")
        time.sleep(float(config.get("sleep", 0.0)))  # type: ignore[arg-type]
        state = ctx.state  # type: ignore[attr-defined]
        calls = state.get("calls", MetricRecord({"n": 0}))
        calls["n"] = int(calls["n"]) + 1  # type: ignore[call-overload]
        state["calls"] = calls
        return msg.reply(
            RecordDict(
                {
                    "arrays": msg.content["arrays"],
                    "metrics": MetricRecord({"calls": calls["n"], "num-examples": 1}),
                }
            )
        )

    return app


class GridContract:
    """Behaviour every Grid must have. Subclasses provide ``make_grid``."""

    num_nodes = 3

    def make_grid(self, app: ClientApp, num_nodes: int, events: EventBus) -> Grid:
        raise NotImplementedError

    @pytest.fixture
    def events(self) -> list[Event]:
        return []

    @pytest.fixture
    def grid(self, events: list[Event]) -> Grid:
        bus = EventBus()
        bus.subscribe(events.append)
        grid = self.make_grid(contract_app(), self.num_nodes, bus)
        yield grid
        grid.close()

    def instruction(self, grid: Grid, node_id: int, **config: object) -> Message:
        content = RecordDict(
            {
                "arrays": ArrayRecord({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}),
                "config": ConfigRecord(dict(config)),  # type: ignore[arg-type]
            }
        )
        return grid.create_message(content, "train", node_id, group_id="1")

    def test_grid_lists_distinct_nonzero_node_ids(self, grid: Grid) -> None:
        ids = grid.get_node_ids()
        assert len(ids) == self.num_nodes == len(set(ids))
        assert all(isinstance(i, int) and i != 0 for i in ids)

    def test_created_message_belongs_to_the_grids_run(self, grid: Grid) -> None:
        node = grid.get_node_ids()[0]
        msg = self.instruction(grid, node)
        assert msg.metadata.run_id == grid.run_id
        assert (msg.metadata.dst_node_id, msg.metadata.message_type, msg.metadata.group_id) == (
            node, "train", "1",
        )

    def test_pushed_messages_can_be_pulled_once_as_replies(self, grid: Grid) -> None:
        messages = [self.instruction(grid, n) for n in grid.get_node_ids()]
        ids = grid.push_messages(messages)
        assert len(ids) == len(set(ids)) == len(messages)
        replies: dict[str, Message] = {}
        deadline = time.monotonic() + 10
        while len(replies) < len(ids) and time.monotonic() < deadline:
            for reply in grid.pull_messages(ids):
                replies[reply.metadata.reply_to_message_id] = reply
            time.sleep(0.01)
        assert set(replies) == set(ids)
        for message_id, reply in replies.items():
            sent = messages[ids.index(message_id)]
            assert reply.metadata.src_node_id == sent.metadata.dst_node_id
            assert reply.metadata.run_id == grid.run_id
        assert grid.pull_messages(ids) == []

    def test_send_and_receive_returns_one_reply_per_message_in_order(self, grid: Grid) -> None:
        nodes = grid.get_node_ids()
        messages = [self.instruction(grid, n) for n in reversed(nodes)]
        replies = grid.send_and_receive(messages, timeout=30)
        assert [r.metadata.src_node_id for r in replies] == list(reversed(nodes))
        assert all(r.has_content() for r in replies)

    def test_arrays_reach_the_client_and_come_back_bit_exact(self, grid: Grid) -> None:
        node = grid.get_node_ids()[0]
        sent = self.instruction(grid, node)
        (reply,) = grid.send_and_receive([sent], timeout=30)
        returned = reply.content["arrays"]
        assert isinstance(returned, ArrayRecord)
        assert returned["w"] == Array.from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3))

    def test_client_exception_becomes_an_error_reply_and_others_still_answer(self, grid: Grid) -> None:
        first, *rest = grid.get_node_ids()
        messages = [self.instruction(grid, first, **{"raise": True})]
        messages += [self.instruction(grid, n) for n in rest]
        replies = grid.send_and_receive(messages, timeout=30)
        assert replies[0].has_error()
        assert replies[0].error is not None
        assert replies[0].error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
        assert replies[0].error.reason.startswith("ValueError: client exploded on purpose")
        assert "Traceback" in replies[0].error.reason
        assert all(r.has_content() for r in replies[1:])

    def test_a_node_slower_than_the_timeout_gets_a_timeout_error_reply(self, grid: Grid) -> None:
        slow, *rest = grid.get_node_ids()
        # Generous margins: real processes on a busy 2-core machine still answer well within 2 s.
        messages = [self.instruction(grid, n) for n in rest] + [self.instruction(grid, slow, sleep=4.0)]
        started = time.monotonic()
        replies = grid.send_and_receive(messages, timeout=2.0)
        assert time.monotonic() - started < 10
        assert all(r.has_content() for r in replies[:-1])
        assert replies[-1].error is not None and replies[-1].error.code == ErrorCode.TIMEOUT
        assert replies[-1].metadata.src_node_id == slow

    def test_a_message_to_an_unknown_node_gets_a_node_unavailable_reply(self, grid: Grid) -> None:
        unknown = max(grid.get_node_ids()) + 1
        (reply,) = grid.send_and_receive([self.instruction(grid, unknown)], timeout=5)
        assert reply.error is not None and reply.error.code == ErrorCode.NODE_UNAVAILABLE

    def test_every_reply_and_failure_is_reported_exactly_once(
        self, grid: Grid, events: list[Event]
    ) -> None:
        first, *rest = grid.get_node_ids()
        messages = [self.instruction(grid, first, **{"raise": True})]
        messages += [self.instruction(grid, n) for n in rest]
        grid.send_and_receive(messages, timeout=30)
        reported = [e for e in events if isinstance(e, ClientReplied)]
        assert sorted(e.node_id for e in reported) == sorted(grid.get_node_ids())
        failed = [e for e in reported if e.error is not None]
        assert [e.node_id for e in failed] == [first]
        assert all(e.round == 1 and e.phase == "train" for e in reported)
        ok = [e for e in reported if e.error is None]
        assert all(e.metrics["num-examples"] == 1 and e.duration_s >= 0 for e in ok)

    def test_a_nodes_state_persists_between_messages(self, grid: Grid) -> None:
        node = grid.get_node_ids()[0]
        for expected in (1, 2, 3):
            (reply,) = grid.send_and_receive([self.instruction(grid, node)], timeout=30)
            metrics = reply.content["metrics"]
            assert isinstance(metrics, MetricRecord)
            assert metrics["calls"] == expected

    def test_waiting_for_more_nodes_than_exist_fails_with_a_fedlab_error(self, grid: Grid) -> None:
        with pytest.raises(FedlabError, match="min_available_nodes"):
            grid.wait_for_nodes(self.num_nodes + 1, timeout=0.2)

    def test_a_stop_request_is_visible_to_the_strategy(self, grid: Grid) -> None:
        assert not grid.stop_requested
        grid.request_stop()
        assert grid.stop_requested

    def test_node_configs_are_dicts_for_known_nodes_and_empty_for_unknown_ones(self, grid: Grid) -> None:
        for node in grid.get_node_ids():
            assert isinstance(grid.get_node_config(node), dict)
        assert grid.get_node_config(max(grid.get_node_ids()) + 1) == {}

    def test_pull_any_hands_out_every_reply_once_as_replies_arrive(self, grid: Grid) -> None:
        nodes = grid.get_node_ids()
        sleeps = [0.0] * (len(nodes) - 1) + [0.3]
        ids = grid.push_messages([self.instruction(grid, n, sleep=s) for n, s in zip(nodes, sleeps)])
        received: list[str] = []
        while len(received) < len(ids):
            batch = grid.pull_any([i for i in ids if i not in received], timeout=30)
            assert batch, "pull_any returned nothing although replies were still due"
            received += [r.metadata.reply_to_message_id for r in batch]
        assert sorted(received) == sorted(ids)
        assert grid.pull_any(ids, timeout=0.05) == []
        assert grid.pull_any([], timeout=None) == []

    def test_send_and_stream_yields_every_reply_in_message_order(self, grid: Grid) -> None:
        nodes = list(grid.get_node_ids())
        # The first node is the slowest: the others' replies wait for it, in order.
        sleeps = [0.3] + [0.0] * (len(nodes) - 1)
        messages = [self.instruction(grid, n, sleep=s) for n, s in zip(nodes, sleeps)]
        replies = list(grid.send_and_stream(messages, timeout=30))
        assert [r.metadata.reply_to_message_id for r in replies] == [
            m.metadata.message_id for m in messages
        ]
        assert [r.metadata.src_node_id for r in replies] == nodes
        assert all(r.has_content() for r in replies)

    def test_send_and_stream_turns_a_late_node_into_a_timeout_reply(self, grid: Grid) -> None:
        slow, *rest = grid.get_node_ids()
        messages = [self.instruction(grid, n) for n in rest] + [self.instruction(grid, slow, sleep=4.0)]
        replies = list(grid.send_and_stream(messages, timeout=2.0))
        assert all(r.has_content() for r in replies[:-1])
        assert replies[-1].error is not None and replies[-1].error.code == ErrorCode.TIMEOUT
