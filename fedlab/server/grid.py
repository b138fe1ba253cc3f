"""`Grid`: the server's view of the federation, one contract for every runtime."""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence

from fedlab.context import UserConfig
from fedlab.errors import GridError
from fedlab.events import ClientReplied, EventBus, Phase
from fedlab.message import DEFAULT_TTL, Error, ErrorCode, Message
from fedlab.records import RecordDict

__all__ = ["Grid", "timeout_reply", "unavailable_reply"]

#: For this many seconds :meth:`Grid.wait_for_nodes` asks every ``_EAGER_STEP_S`` at most.
_EAGER_S, _EAGER_STEP_S = 2.0, 0.02


class Grid(ABC):
    """Where a ServerApp or Strategy sends instructions and collects replies.

    Implementations: :class:`~fedlab.simulation.SimulationGrid` (clients in this process)
    and, for deployments, a gRPC Grid talking to a SuperLink. Both pass the same contract
    test suite, so a strategy written against this class runs unchanged on either.

    Every implementation emits a :class:`~fedlab.events.ClientReplied` event on
    :attr:`events` for each reply or failure, so observers see clients as they finish.
    """

    #: How often :meth:`send_and_receive` polls :meth:`pull_messages` (seconds).
    poll_interval: float = 0.05
    #: How many ids :meth:`send_and_stream` hands to one :meth:`pull_any` call.
    _PULL_BATCH = 256

    def __init__(self, run_id: int, events: EventBus | None = None) -> None:
        self.run_id = run_id
        self.events = events if events is not None else EventBus()
        self._stop = threading.Event()

    # -- the contract -------------------------------------------------------------------

    @abstractmethod
    def get_node_ids(self) -> Sequence[int]:
        """Return the ids of the nodes currently connected."""

    @abstractmethod
    def get_node_config(self, node_id: int) -> UserConfig:
        """Return the settings ``node_id`` declared (e.g. ``region``); empty if unknown.

        Strategies use it to select nodes by a predicate over their config.
        """

    @abstractmethod
    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        """Send instructions to their destination nodes; return their message ids."""

    @abstractmethod
    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        """Return (and forget) the replies that have arrived for ``message_ids`` so far."""

    def pull_any(
        self, message_ids: Iterable[str], *, timeout: float | None = None
    ) -> list[Message]:
        """Return the replies that have arrived for ``message_ids``, waiting for at least one.

        Waits at most ``timeout`` seconds (None: until a reply comes) and returns ``[]``
        if none came. Asynchronous strategies use it to handle each reply as soon as it
        arrives, without waiting for the whole batch. This default polls
        :meth:`pull_messages` every :attr:`poll_interval`; a runtime that can be woken by
        an arrival overrides it.
        """
        ids = list(message_ids)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found = self.pull_messages(ids)
            remaining = None if deadline is None else deadline - time.monotonic()
            if found or not ids or (remaining is not None and remaining <= 0):
                return found
            time.sleep(min(self.poll_interval, remaining if remaining is not None else math.inf))

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str = "",
        ttl: float = DEFAULT_TTL,
    ) -> Message:
        """Build an instruction for ``dst_node_id`` belonging to this grid's run."""
        return Message(
            content, dst_node_id, message_type, group_id=group_id, ttl=ttl, run_id=self.run_id
        )

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> list[Message]:
        """Push ``messages`` and wait for their replies, for at most ``timeout`` seconds.

        Returns one reply per message, in the order of ``messages``. A node that does not
        answer in time gets an error reply with :attr:`ErrorCode.TIMEOUT`; this method
        never raises because a node failed.
        """
        instructions = list(messages)
        started = time.monotonic()
        ids = self.push_messages(instructions)
        deadline = None if timeout is None else started + timeout
        replies: dict[str, Message] = {}
        while len(replies) < len(ids):
            waiting = [i for i in ids if i not in replies]
            for reply in self.pull_messages(waiting):
                replies[reply.metadata.reply_to_message_id] = reply
            if len(replies) == len(ids):
                break
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            time.sleep(self.poll_interval if remaining is None else min(self.poll_interval, remaining))
        return self._complete_with_timeouts(instructions, ids, replies, timeout)

    def send_and_stream(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterator[Message]:
        """Like :meth:`send_and_receive`, but yield each reply as soon as it can be used.

        Replies come in the order of ``messages`` (so sums over them are reproducible),
        each one as soon as it and every reply before it have arrived; a caller that lets
        go of each reply after using it never holds more than a few. At most
        :attr:`stream_window` messages are in flight at once. Nodes that do not answer
        within ``timeout`` seconds of the call get :attr:`ErrorCode.TIMEOUT` replies.
        """
        instructions = list(messages)
        deadline = None if timeout is None else time.monotonic() + timeout
        window = self.stream_window or len(instructions)
        ids: list[str] = []
        arrived: dict[str, Message] = {}
        index = 0
        try:
            while index < len(instructions):
                wanted = min(len(instructions), index + window)
                if len(ids) < wanted:
                    ids.extend(self._push_before(instructions[len(ids):wanted], deadline))
                head = ids[index]
                if head in arrived:
                    index += 1
                    yield arrived.pop(head)
                    continue
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                batch = [i for i in ids[index : index + self._PULL_BATCH] if i not in arrived]
                for reply in self.pull_any(batch, timeout=remaining):
                    arrived[reply.metadata.reply_to_message_id] = reply
        finally:
            unanswered = [i for i in ids[index:] if i not in arrived]
            if unanswered:
                self.abandon(unanswered)
        for position in range(index, len(instructions)):
            answer: Message | None = arrived.pop(ids[position], None) if position < len(ids) else None
            if answer is None:  # no reply in time
                answer = timeout_reply(instructions[position], timeout)
                self.report_reply(instructions[position], answer, float(timeout or 0.0))
            yield answer

    def wait_for_nodes(self, count: int, timeout: float) -> Sequence[int]:
        """Return the node ids once at least ``count`` nodes are connected.

        Raises
        ------
        GridError
            If fewer than ``count`` nodes are connected after ``timeout`` seconds.
        """
        started = time.monotonic()
        deadline = started + timeout
        while True:
            nodes = self.get_node_ids()
            now = time.monotonic()
            if len(nodes) >= count or now >= deadline:
                break
            # Nodes that are starting usually connect within a second: look often until then.
            step = self.poll_interval if now - started > _EAGER_S else min(self.poll_interval, _EAGER_STEP_S)
            time.sleep(min(step, deadline - now))
        if len(nodes) < count:
            raise GridError(
                f"Only {len(nodes)} node(s) connected after {timeout:.0f}s, but {count} are required. "
                "Start more nodes or lower the strategy's min_available_nodes."
            )
        return nodes

    def request_stop(self) -> None:
        """Ask the running strategy to stop after the current round."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        """True once :meth:`request_stop` was called."""
        return self._stop.is_set()

    def close(self) -> None:
        """Release what the grid holds (threads, connections). Safe to call twice."""

    # -- helpers for implementations ----------------------------------------------------

    @property
    def stream_window(self) -> int | None:
        """How many messages :meth:`send_and_stream` keeps in flight at once (None: all)."""
        return None

    def _push_before(self, messages: Sequence[Message], deadline: float | None) -> list[str]:
        """Push ``messages`` for :meth:`send_and_stream`; a runtime that can tell a reply
        completed after ``deadline`` (monotonic clock) drops it as late."""
        return self.push_messages(messages)

    def partition_id(self, node_id: int) -> int | None:
        """Return the data partition of ``node_id`` if the runtime knows it."""
        return None

    def report_reply(self, instruction: Message, reply: Message, duration_s: float) -> None:
        """Emit the :class:`ClientReplied` event for ``reply`` (implementations call this)."""
        content = reply.content if reply.has_content() else RecordDict()
        metrics: dict[str, object] = {}
        for record in content.metric_records.values():
            metrics.update(record)
        md = instruction.metadata
        phase: Phase = md.message_type.split(".")[0]  # type: ignore[assignment]
        self.events.emit(
            ClientReplied(
                run_id=self.run_id,
                round=md.round,
                phase=phase,
                node_id=md.dst_node_id,
                metrics=metrics,
                duration_s=duration_s,
                error=reply.error,
                partition_id=self.partition_id(md.dst_node_id),
            )
        )

    def abandon(self, message_ids: Sequence[str]) -> None:
        """Forget ``message_ids``: replies arriving for them later are dropped."""

    def _complete_with_timeouts(
        self,
        instructions: Sequence[Message],
        ids: Sequence[str],
        replies: dict[str, Message],
        timeout: float | None,
    ) -> list[Message]:
        missing = [i for i in ids if i not in replies]
        if missing:
            self.abandon(missing)
        ordered = []
        for instruction, message_id in zip(instructions, ids, strict=True):
            reply = replies.get(message_id)
            if reply is None:
                reply = timeout_reply(instruction, timeout)
                self.report_reply(instruction, reply, float(timeout or 0.0))
            ordered.append(reply)
        return ordered


def timeout_reply(instruction: Message, timeout: float | None) -> Message:
    """The error reply standing in for a node that did not answer within ``timeout``."""
    return instruction.reply(
        Error(
            ErrorCode.TIMEOUT,
            f"Node {instruction.metadata.dst_node_id} did not reply within {timeout}s. "
            "Raise the timeout if this client is just slow.",
        )
    )


def unavailable_reply(instruction: Message, reason: str) -> Message:
    """The error reply for an instruction addressed to a node that does not exist."""
    return instruction.reply(Error(ErrorCode.NODE_UNAVAILABLE, reason))

