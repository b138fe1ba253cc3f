"""The dispatch-and-collect loop behind `FedBuff.start`: work without a round barrier."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol

from fedlab.errors import AggregationError, StrategyError
from fedlab.events import RoundStarted
from fedlab.message import Message
from fedlab.records import ArrayRecord, ConfigRecord
from fedlab.server.grid import Grid, timeout_reply
from fedlab.strategy._reply_check import reject
from fedlab.strategy._round_loop import ConfigSource, partitions_of, round_config

__all__ = ["BufferedLoop", "BufferedWork", "OnFullBuffer"]

#: ``on_full(round, replies, failures, started)`` applies a server update and returns the
#: new global arrays; ``failures`` counts the round's failed replies, ``started`` is the
#: ``time.perf_counter()`` at which the round began.
OnFullBuffer = Callable[[int, list[Message], int, float], ArrayRecord]

# The longest wait for a reply, so that a stop request is seen promptly.
_POLL_S = 0.25


class BufferedWork(Protocol):
    """What :class:`BufferedLoop` needs of the strategy that hands out the work."""

    @property
    def buffer_size(self) -> int:
        """Successful replies per server update."""

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Work for idle nodes on ``arrays``, the global model of ``server_round``."""

    def check_train_reply(self, instruction: Message, reply: Message) -> str | None:
        """Why a successful reply cannot be buffered, or None."""

    def node_done(self, node_id: int) -> None:
        """The node's work ended (it replied, failed or timed out): it is idle again."""

    def forget_models_before(self, version: int) -> None:
        """No work in flight or buffered started from a global model older than ``version``."""


class BufferedLoop:
    """Keeps up to ``concurrency`` nodes busy and hands each full buffer to ``on_full``.

    A node gets new work as soon as its reply (or its time-out) is handled, on the
    newest global arrays. Replies are handled in the order :meth:`Grid.pull_any` returns
    them, which with the inline backend is the order the work was handed out.
    """

    def __init__(
        self,
        strategy: BufferedWork,
        grid: Grid,
        timeout: float | None,
        train_config: ConfigSource | None,
    ) -> None:
        self.strategy, self.grid = strategy, grid
        self.timeout, self.train_config = timeout, train_config
        #: Work handed out and not yet answered: message id -> (instruction, deadline).
        self.in_flight: dict[str, tuple[Message, float | None]] = {}
        self._buffer: list[Message] = []
        self._failed_in_a_row = 0

    def run(
        self, arrays: ArrayRecord, start_round: int, num_rounds: int, on_full: OnFullBuffer
    ) -> int:
        """Run rounds ``start_round .. num_rounds``; return the last one completed."""
        rnd = start_round
        if rnd > num_rounds:
            return num_rounds
        failures, started, announce = 0, time.perf_counter(), True
        try:
            while not self.grid.stop_requested:
                self._dispatch(rnd, arrays, announce)
                announce = False
                for reply in self._collect():
                    if reply.has_error():
                        failures += 1
                        continue
                    self._buffer.append(reply)
                    if len(self._buffer) < self.strategy.buffer_size:
                        continue
                    arrays = on_full(rnd, self._buffer, failures, started)
                    self._buffer = []
                    if rnd == num_rounds:
                        return rnd
                    rnd, failures, started = rnd + 1, 0, time.perf_counter()
                    self._announce(rnd, [])  # the nodes still training work toward it
            return rnd - 1
        finally:
            self.grid.abandon(list(self.in_flight))  # their replies are no longer wanted

    def _dispatch(self, rnd: int, arrays: ArrayRecord, announce: bool) -> None:
        # Keep only the global models that work in flight or buffered replies started from.
        bases = [int(m.metadata.group_id) for m, _ in self.in_flight.values()]
        self.strategy.forget_models_before(
            min([rnd, *bases, *(r.metadata.round for r in self._buffer)]) - 1
        )
        config = round_config(self.train_config, rnd)
        messages = list(self.strategy.configure_train(rnd, arrays, config, self.grid))
        if not messages and not self.in_flight:
            raise StrategyError(
                "FedBuff could not give work to any node: none is eligible (check node_ids and "
                "node_filter) or concurrency is 0."
            )
        if announce:
            self._announce(rnd, [m.metadata.dst_node_id for m in messages])
        if not messages:
            return
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        # An inline backend has answered by now; the replies wait in the grid until pulled.
        for message_id, message in zip(self.grid.push_messages(messages), messages, strict=True):
            self.in_flight[message_id] = (message, deadline)

    def _announce(self, rnd: int, new_nodes: list[int]) -> None:
        busy = [m.metadata.dst_node_id for m, _ in self.in_flight.values()]
        nodes = tuple(sorted(busy + new_nodes))
        self.grid.events.emit(
            RoundStarted(
                run_id=self.grid.run_id,
                round=rnd,
                phase="train",
                node_ids=nodes,
                partition_ids=partitions_of(self.grid, nodes),
            )
        )

    def _collect(self) -> list[Message]:
        """Wait for replies (time-outs count as error replies) and free their nodes.

        A reply the strategy refuses (``check_train_reply``) becomes an error reply.
        """
        now = time.monotonic()
        waits = [_POLL_S] + [
            max(due - now, 0.0) for _, due in self.in_flight.values() if due is not None
        ]
        replies = (
            self.grid.pull_any(list(self.in_flight), timeout=min(waits)) if self.in_flight else []
        )
        answered = {r.metadata.reply_to_message_id for r in replies}
        now = time.monotonic()
        expired = [
            i
            for i, (_, due) in self.in_flight.items()
            if i not in answered and due is not None and due <= now
        ]
        if expired:
            self.grid.abandon(expired)
            for message_id in expired:
                instruction, _ = self.in_flight[message_id]
                reply = timeout_reply(instruction, self.timeout)
                self.grid.report_reply(instruction, reply, float(self.timeout or 0.0))
                replies.append(reply)
        checked = []
        for reply in replies:
            instruction, _ = self.in_flight.pop(reply.metadata.reply_to_message_id)
            self.strategy.node_done(instruction.metadata.dst_node_id)
            check = self.strategy.check_train_reply
            reason = None if reply.has_error() else check(instruction, reply)
            if reason is not None:  # that node failed this piece of work after all
                reply = reject(self.grid, instruction, reply, reason)
            self._check_failures(reply)
            checked.append(reply)
        return checked

    def _check_failures(self, reply: Message) -> None:
        if not reply.has_error():
            self._failed_in_a_row = 0
            return
        self._failed_in_a_row += 1
        patience = 3 * max(len(self.in_flight) + 1, self.strategy.buffer_size)
        if self._failed_in_a_row >= patience:
            reason = (
                reply.error.reason.splitlines()[0] if reply.error and reply.error.reason else ""
            )
            raise AggregationError(
                f"FedBuff stopped: the last {self._failed_in_a_row} replies all failed, the last "
                f"with: {reason!r}. Fix the ClientApp (history.failures() lists every failure) or "
                "raise the timeout if clients are just slow."
            )
