"""LinkState: the SuperLink's memory, run against both backends (memory and SQLite files)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedlab.deploy.superlink.state import LinkState
from fedlab.deploy.transport.events_json import event_from_json, event_to_json
from fedlab.deploy.transport.wire import decode_header, split_message
from fedlab.errors import DeployError
from fedlab.events import RoundAggregated, RunFinished
from fedlab.message import ErrorCode, Message
from fedlab.records import ArrayRecord, MetricRecord, RecordDict


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def instruction(run_id: int, dst: int, *, ttl: float = 3600.0, value: float = 1.0) -> Message:
    content = RecordDict({"arrays": ArrayRecord({"w": np.full(3, value)})})
    return Message(content, dst, "train", group_id="1", ttl=ttl, run_id=run_id)


class LinkStateContract:
    """What every LinkState must do; subclasses say where it keeps its state."""

    def make_state(self, clock: Clock) -> LinkState:
        raise NotImplementedError

    @pytest.fixture
    def clock(self) -> Clock:
        return Clock()

    @pytest.fixture
    def state(self, clock: Clock) -> Iterator[LinkState]:
        state = self.make_state(clock)
        yield state
        state.close()

    def push(self, state: LinkState, *messages: Message) -> list[str]:
        items = []
        for message in messages:
            wire, blob = split_message(message)
            assert blob is not None
            state.objects.put(blob)
            items.append((decode_header(wire), wire))
        return state.messages.push_instructions(messages[0].metadata.run_id, items)

    def reply(self, state: LinkState, node_id: int, delivered: Any, metrics: float = 0.5) -> tuple[bool, str]:
        header = decode_header(delivered.to_wire())
        wire, blob = split_message(header.reply(RecordDict({"m": MetricRecord({"loss": metrics})})))
        state.objects.put(blob)  # type: ignore[arg-type]
        return state.messages.push_reply(node_id, decode_header(wire), wire)

    def test_a_node_is_online_until_it_misses_patience_times_its_heartbeat_interval(
        self, state: LinkState, clock: Clock
    ) -> None:
        node = state.nodes.register({"partition-id": 0}, heartbeat_interval=10.0)
        assert node != 0 and state.nodes.is_online(node)
        clock.now += 19.9  # patience 2 x interval 10
        assert state.nodes.is_online(node)
        clock.now += 0.2
        assert not state.nodes.is_online(node) and state.nodes.list() == []
        assert state.nodes.heartbeat(node)
        assert [n.node_id for n in state.nodes.list()] == [node]
        assert state.nodes.list()[0].node_config == {"partition-id": 0}
        assert not state.nodes.heartbeat(node + 1)

    def test_calls_a_moment_apart_write_liveness_once_yet_no_node_is_seen_later_than_the_grain(
        self, state: LinkState, clock: Clock
    ) -> None:
        node = state.nodes.register({}, heartbeat_interval=10.0)
        registered = state.nodes.get(node)
        assert registered is not None
        writes = state.db._conn.total_changes
        clock.now += 0.9  # within HEARTBEAT_GRAIN_S: only read
        assert state.nodes.heartbeat(node)
        assert state.db._conn.total_changes == writes
        assert state.nodes.get(node) == registered
        clock.now += 0.2  # 1.1 s since it was written: written again
        assert state.nodes.heartbeat(node)
        seen = state.nodes.get(node)
        assert seen is not None and seen.last_seen == clock.now and seen.online_until == clock.now + 20.0
        assert state.nodes.heartbeat(node, heartbeat_interval=5.0)  # a new interval is always written
        seen = state.nodes.get(node)
        assert seen is not None and seen.heartbeat_interval == 5.0
        state.nodes.unregister(node)
        assert state.nodes.heartbeat(node) and state.nodes.is_online(node)  # back at once

    def test_an_instruction_is_handed_out_once_and_only_to_its_node(self, state: LinkState) -> None:
        run = state.runs.create({}, attached=True)
        a, b = (state.nodes.register({}, 10.0) for _ in range(2))
        (sent,) = self.push(state, instruction(run, a))
        assert state.messages.pull_instructions(b, 10) == []
        (got,) = state.messages.pull_instructions(a, 10)
        assert got.message_id == sent
        assert state.messages.pull_instructions(a, 10) == []

    def test_a_reply_is_committed_once_and_a_repeated_push_of_it_is_still_acknowledged(self, state: LinkState) -> None:
        run = state.runs.create({}, attached=True)
        node = state.nodes.register({}, 10.0)
        (sent,) = self.push(state, instruction(run, node))
        (got,) = state.messages.pull_instructions(node, 1)
        header = decode_header(got.to_wire())
        wire, blob = split_message(header.reply(RecordDict({"m": MetricRecord({"loss": 0.5})})))
        state.objects.put(blob)  # type: ignore[arg-type]
        assert state.messages.push_reply(node, decode_header(wire), wire) == (True, "")
        assert state.messages.push_reply(node, decode_header(wire), wire) == (True, "")  # lost ack
        accepted, reason = self.reply(state, node, got, metrics=0.9)  # a second, different answer
        assert not accepted and "already answered" in reason
        (reply,) = state.messages.replies(run, [sent])
        assert reply.reply_to == sent and reply.content_digest == wire.content.digest

    def test_replies_to_instructions_a_node_was_not_given_are_refused(self, state: LinkState) -> None:
        run = state.runs.create({}, attached=True)
        a, b = (state.nodes.register({}, 10.0) for _ in range(2))
        self.push(state, instruction(run, a))
        (got,) = state.messages.pull_instructions(a, 1)
        accepted, reason = self.reply(state, b, got)
        assert not accepted and f"not delivered to node {b}" in reason

    def test_a_node_that_rejoins_gets_back_only_its_unanswered_unexpired_instructions(
        self, state: LinkState, clock: Clock
    ) -> None:
        run = state.runs.create({}, attached=True)
        node, other = state.nodes.register({"partition-id": 0}, 1.0), state.nodes.register({}, 100.0)
        held, answered, short, _elsewhere = self.push(
            state, instruction(run, node), instruction(run, node, value=2.0),
            instruction(run, node, ttl=5.0, value=3.0), instruction(run, other),
        )  # fmt: skip
        got = {m.message_id: m for m in state.messages.pull_instructions(node, 10)}
        assert set(got) == {held, answered, short}
        assert self.reply(state, node, got[answered]) == (True, "")
        clock.now += 6.0  # node offline (patience 2 x 1 s), ``short`` expired
        assert not state.nodes.is_online(node)
        assert state.nodes.rejoin(node, {"partition-id": 1}, 50.0)
        assert state.nodes.is_online(node) and state.nodes.get(node).node_config == {"partition-id": 1}  # type: ignore[union-attr]
        assert state.messages.redeliver(node) == 1
        (again,) = state.messages.pull_instructions(node, 10)
        assert again.message_id == held
        assert self.reply(state, node, again) == (True, "")
        accepted, reason = self.reply(state, node, got[held], metrics=0.9)  # the old process's answer
        assert not accepted and "already answered" in reason
        assert state.messages.redeliver(node) == 0
        assert not state.nodes.rejoin(12345, {}, 1.0) and state.nodes.get(12345) is None

    def test_an_unknown_node_gets_a_node_unavailable_reply_at_once(self, state: LinkState) -> None:
        run = state.runs.create({}, attached=True)
        (sent,) = self.push(state, instruction(run, 12345))
        (reply,) = state.messages.replies(run, [sent])
        error = decode_header(reply.to_wire()).error
        assert error is not None and error.code == ErrorCode.NODE_UNAVAILABLE
        assert "12345" in error.reason

    def test_a_node_that_goes_offline_is_answered_for_and_its_late_reply_refused(
        self, state: LinkState, clock: Clock
    ) -> None:
        run = state.runs.create({}, attached=True)
        node = state.nodes.register({}, 1.0)
        (sent,) = self.push(state, instruction(run, node))
        (got,) = state.messages.pull_instructions(node, 1)
        assert state.messages.replies(run, [sent]) == []  # still working on it
        clock.now += 2.5
        (reply,) = state.messages.replies(run, [sent])
        header = decode_header(reply.to_wire())
        assert header.error is not None and header.error.code == ErrorCode.NODE_UNAVAILABLE
        assert str(node) in header.error.reason and header.metadata.src_node_id == node
        state.nodes.heartbeat(node)
        accepted, reason = self.reply(state, node, got)
        assert not accepted and "already answered" in reason

    def test_an_expired_instruction_is_not_delivered_and_is_answered_as_unavailable(
        self, state: LinkState, clock: Clock
    ) -> None:
        run = state.runs.create({}, attached=True)
        node = state.nodes.register({}, 100.0)
        (sent,) = self.push(state, instruction(run, node, ttl=5.0))
        clock.now += 6.0
        assert state.messages.pull_instructions(node, 1) == []
        (reply,) = state.messages.replies(run, [sent])
        error = decode_header(reply.to_wire()).error
        assert error is not None and error.code == ErrorCode.REPLY_MESSAGE_UNAVAILABLE

    def test_forgotten_messages_are_gone_and_their_late_replies_refused(self, state: LinkState) -> None:
        run = state.runs.create({}, attached=True)
        node = state.nodes.register({}, 10.0)
        (sent,) = self.push(state, instruction(run, node))
        (got,) = state.messages.pull_instructions(node, 1)
        state.messages.forget(run, [sent])
        assert state.messages.replies(run, [sent]) == []
        accepted, reason = self.reply(state, node, got)
        assert not accepted and "unknown" in reason

    def test_a_broadcast_to_three_nodes_stores_its_content_once(self, state: LinkState) -> None:
        run = state.runs.create({}, attached=True)
        nodes = [state.nodes.register({}, 10.0) for _ in range(3)]
        self.push(state, *[instruction(run, n) for n in nodes])
        assert len(state.objects.digests()) == 1
        digests = {state.messages.pull_instructions(n, 1)[0].content_digest for n in nodes}
        assert len(digests) == 1 and all(state.messages.node_may_read(n, *digests) for n in nodes)

    def test_runs_are_numbered_and_a_finished_run_hands_out_no_more_work(self, state: LinkState) -> None:
        first = state.runs.create({"lr": 0.1}, attached=True)
        second = state.runs.create({"lr": 0.2}, attached=False, bundle_digest="ab" * 32, bundle_size=7)
        assert (first, second) == (1, 2)
        assert [r.run_config for r in state.runs.list()] == [{"lr": 0.1}, {"lr": 0.2}]
        node = state.nodes.register({}, 10.0)
        self.push(state, instruction(first, node))
        state.finish_run(first, "failed", "boom")
        assert state.messages.pull_instructions(node, 1) == []
        run = state.runs.require(first)
        assert (run.status, run.error, run.finished) == ("failed", "boom", True)
        assert state.runs.require(second).status == "running"
        with pytest.raises(DeployError, match="no run 9"):
            state.runs.require(9)

    def test_a_run_stopped_on_request_finishes_as_stopped_with_one_run_finished_event(self, state: LinkState) -> None:
        run = state.runs.create({}, attached=True)
        state.journal.add_events(run, [event_to_json(RoundAggregated(
            run_id=run, round=1, metrics={}, num_replies=1, num_failures=0,
            train_duration_s=0.0, aggregate_duration_s=0.0))])  # fmt: skip
        assert state.runs.request_stop(run).status == "stopping"
        assert state.finish_run(run, "completed").status == "stopped"
        late = RunFinished(run_id=run, rounds_completed=1, duration_s=1.0)
        state.journal.add_events(run, [event_to_json(late)])
        events = [event_from_json(body) for _, body in state.journal.events(run)]
        finished = [e for e in events if isinstance(e, RunFinished)]
        assert len(finished) == 1 and finished[0].rounds_completed == 1 and finished[0].stopped_early

    def test_events_and_logs_are_numbered_per_run_in_arrival_order(self, state: LinkState) -> None:
        a, b = state.runs.create({}, attached=True), state.runs.create({}, attached=True)
        bodies = [json.dumps({"type": "StrategyReport", "round": i}) for i in range(3)]
        state.journal.add_events(a, bodies[:2])
        state.journal.add_events(b, bodies[2:])
        state.journal.add_events(a, bodies[2:])
        assert state.journal.events(a) == [(1, bodies[0]), (2, bodies[1]), (3, bodies[2])]
        assert state.journal.events(a, after=2) == [(3, bodies[2])]
        assert state.journal.events(b) == [(1, bodies[2])]
        state.journal.add_logs(a, ["one", "two"])
        assert [(seq, text) for seq, text, _ in state.journal.logs(a)] == [(1, "one"), (2, "two")]
        with pytest.raises(DeployError, match="Not a JSON event"):
            state.journal.add_events(a, ["not json"])

    def test_a_sweep_drops_only_objects_nothing_refers_to(self, state: LinkState) -> None:
        run = state.runs.create({}, attached=True)
        node = state.nodes.register({}, 10.0)
        self.push(state, instruction(run, node))
        orphan = state.objects.put(b"nobody points at me")
        state.object_grace = -1.0  # everything counts as unused since long ago
        state.sweep()
        assert not state.objects.has(orphan) and len(state.objects.digests()) == 1

    def test_a_sweep_forgets_nodes_long_gone_unless_work_still_waits_for_them(
        self, state: LinkState, clock: Clock
    ) -> None:
        run = state.runs.create({}, attached=True)
        gone, awaited = state.nodes.register({}, 1.0), state.nodes.register({}, 1.0)
        self.push(state, instruction(run, awaited, ttl=10 * state.node_retention))
        clock.now += state.node_retention + 10
        state.sweep()
        assert state.nodes.get(gone) is None and state.nodes.get(awaited) is not None

    def test_a_sweep_fails_an_attached_run_whose_driver_stayed_silent_past_the_grace(
        self, state: LinkState, clock: Clock
    ) -> None:
        quiet, busy = state.runs.create({}, attached=True), state.runs.create({}, attached=True)
        launched = state.runs.create({}, attached=False)  # its process is supervised instead
        clock.now += state.driver_grace - 1
        state.runs.seen(busy)
        state.sweep()
        assert [r.status for r in state.runs.list()] == ["running"] * 3
        clock.now += 2
        state.sweep()
        failed = state.runs.require(quiet)
        assert failed.status == "failed" and "--driver-grace" in failed.error
        assert state.journal.has_event_type(quiet, "RunFinished")
        assert state.runs.require(busy).status == "running"
        clock.now += state.driver_grace
        state.sweep()
        assert state.runs.require(busy).status == "failed"
        assert state.runs.require(launched).status == "running"


class TestMemoryLinkState(LinkStateContract):
    def make_state(self, clock: Clock) -> LinkState:
        return LinkState(None, clock=clock)


class TestSqliteLinkState(LinkStateContract):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path / "state"

    def make_state(self, clock: Clock) -> LinkState:
        return LinkState(self.directory, clock=clock)

    def test_a_reopened_state_still_holds_acknowledged_replies_and_their_content(self, clock: Clock) -> None:
        state = self.make_state(clock)
        run = state.runs.create({"lr": 0.5}, attached=True)
        node = state.nodes.register({"partition-id": 3}, 10.0)
        (sent,) = self.push(state, instruction(run, node, value=7.0))
        (got,) = state.messages.pull_instructions(node, 1)
        assert self.reply(state, node, got, metrics=0.25) == (True, "")
        state.close()  # as good as a crash: every acknowledged write was committed

        reopened = self.make_state(clock)
        try:
            (reply,) = reopened.messages.replies(run, [sent])
            data = b"".join(reopened.objects.read(reply.content_digest, 0, 1 << 20))
            from fedlab.wire.codec import decode_record_dict

            assert decode_record_dict(data)["m"] == MetricRecord({"loss": 0.25})
            assert reopened.runs.require(run).run_config == {"lr": 0.5}
            assert reopened.nodes.get(node) is not None and reopened.nodes.is_online(node)
        finally:
            reopened.close()

    def test_two_superlinks_cannot_share_a_state_directory(self, clock: Clock) -> None:
        state = self.make_state(clock)
        try:
            with pytest.raises(DeployError, match="Another SuperLink"):
                self.make_state(clock)
        finally:
            state.close()
