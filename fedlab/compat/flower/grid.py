"""Flower's ``Grid``: a fedlab Grid whose replies are this layer's messages.

A ServerApp of this layer hands its ``main`` a :class:`Grid` wrapping the runtime's own
(simulation or deployment). Everything is delegated; what comes back is turned into
``flwr.app`` types, so ``reply.content["arrays"].to_numpy_ndarrays()`` works in a
custom ServerApp, and in strategies' ``aggregate_train``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from fedlab.compat.flower.error import FlowerCompatError
from fedlab.compat.flower.message import Message, as_flower_message
from fedlab.context import UserConfig
from fedlab.message import DEFAULT_TTL
from fedlab.message import Message as _Message
from fedlab.records import RecordDict
from fedlab.server import Grid as _Grid

__all__ = ["Grid", "as_flower_grid"]


class Grid(_Grid):
    """The server's view of the federation with Flower's methods, over a fedlab Grid."""

    def __init__(self, inner: _Grid) -> None:
        super().__init__(inner.run_id, inner.events)
        self._inner = inner

    @property
    def inner(self) -> _Grid:
        """The runtime's Grid this one delegates to."""
        return self._inner

    def get_node_ids(self) -> list[int]:
        """Return the ids of the connected nodes."""
        return list(self._inner.get_node_ids())

    def get_nodes(self) -> list[object]:
        """Not supported: Flower's NodeInfo records have no fedlab counterpart."""
        raise FlowerCompatError(
            "grid.get_nodes() is not supported by fedlab's Flower compatibility layer; use "
            "grid.get_node_ids(), and grid.get_node_config(node_id) for what a node declared."
        )

    def get_node_config(self, node_id: int) -> UserConfig:
        """Return the settings ``node_id`` declared."""
        return self._inner.get_node_config(node_id)

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str = "",
        ttl: float | None = None,
    ) -> Message:
        """Build an instruction of this run: Flower's ``grid.create_message(...)``."""
        made = self._inner.create_message(
            content,
            message_type,
            dst_node_id,
            group_id=group_id,
            ttl=DEFAULT_TTL if ttl is None else ttl,
        )
        return as_flower_message(made)

    def push_messages(self, messages: Iterable[_Message]) -> list[str]:
        """Send instructions; return their ids."""
        return self._inner.push_messages([self._of_run(m) for m in messages])

    def pull_messages(self, message_ids: Iterable[str]) -> list[_Message]:
        """Return the replies that have arrived for ``message_ids``."""
        return [as_flower_message(m) for m in self._inner.pull_messages(message_ids)]

    def pull_any(
        self, message_ids: Iterable[str], *, timeout: float | None = None
    ) -> list[_Message]:
        """Return replies for ``message_ids``, waiting for at least one."""
        return [as_flower_message(m) for m in self._inner.pull_any(message_ids, timeout=timeout)]

    def send_and_receive(
        self, messages: Iterable[_Message], *, timeout: float | None = None
    ) -> list[_Message]:
        """Push ``messages`` and return one reply per message, in their order."""
        sent = [self._of_run(m) for m in messages]
        return [as_flower_message(m) for m in self._inner.send_and_receive(sent, timeout=timeout)]

    def send_and_stream(
        self, messages: Iterable[_Message], *, timeout: float | None = None
    ) -> Iterator[_Message]:
        """Like :meth:`send_and_receive`, one reply at a time as they can be used."""
        sent = [self._of_run(m) for m in messages]
        for reply in self._inner.send_and_stream(sent, timeout=timeout):
            yield as_flower_message(reply)

    def wait_for_nodes(self, count: int, timeout: float) -> Sequence[int]:
        """Return the node ids once at least ``count`` nodes are connected."""
        return self._inner.wait_for_nodes(count, timeout)

    def request_stop(self) -> None:
        """Ask the running strategy to stop after the current round."""
        self._inner.request_stop()

    @property
    def stop_requested(self) -> bool:
        """True once a stop was requested."""
        return self._inner.stop_requested

    @property
    def stream_window(self) -> int | None:
        """How many messages :meth:`send_and_stream` keeps in flight."""
        return self._inner.stream_window

    def partition_id(self, node_id: int) -> int | None:
        """Return the data partition of ``node_id`` if the runtime knows it."""
        return self._inner.partition_id(node_id)

    def report_reply(self, instruction: _Message, reply: _Message, duration_s: float) -> None:
        """Emit the reply's event on the runtime's Grid."""
        self._inner.report_reply(instruction, reply, duration_s)

    def abandon(self, message_ids: Sequence[str]) -> None:
        """Forget ``message_ids``."""
        self._inner.abandon(message_ids)

    def _of_run(self, message: _Message) -> _Message:
        # Flower apps build instructions with Message(...), which knows no run id.
        if message.metadata.run_id != self.run_id:
            return as_flower_message(message.with_metadata(run_id=self.run_id))
        return message


def as_flower_grid(grid: _Grid) -> Grid:
    """Return ``grid`` wrapped as this layer's Grid (itself if it is one already)."""
    return grid if isinstance(grid, Grid) else Grid(grid)
