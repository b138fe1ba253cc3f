"""`SimulationGrid`: a Grid whose nodes are ClientApp instances in this process."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, wait
from functools import partial

from fedlab.client import ClientApp
from fedlab.client.clientapp import exception_error
from fedlab.context import Context, UserConfig
from fedlab.errors import GridError, SimulationError
from fedlab.events import EventBus
from fedlab.message import SERVER_NODE_ID, Error, ErrorCode, Message
from fedlab.server.grid import Grid, unavailable_reply
from fedlab.simulation.backend import Backend, make_backend

__all__ = ["SimulationGrid", "make_node_ids"]


def make_node_ids(num_nodes: int, seed: int | None) -> list[int]:
    """Return ``num_nodes`` distinct random 63-bit node ids, reproducible for a seed.

    Node ids are deliberately not 0..n-1, so that code relying on them being partition
    ids fails in simulation as it would in a deployment; use ``node_config["partition-id"]``.
    """
    rng = random.Random(seed)
    ids: list[int] = []
    seen: set[int] = {SERVER_NODE_ID}
    while len(ids) < num_nodes:
        node_id = rng.getrandbits(63)
        if node_id not in seen:
            seen.add(node_id)
            ids.append(node_id)
    return ids


class SimulationGrid(Grid):
    """Simulated nodes in this process: each node is a Context plus a call to the ClientApp.

    Messages are passed as objects, never serialised. Each client receives its own copy of
    the records, sharing the (immutable) arrays, so a client cannot change what another sees.
    A node's Context (and so ``context.state``) persists across rounds, and calls to one
    node never overlap.

    Parameters
    ----------
    client_app
        The ClientApp every node runs.
    num_nodes
        How many nodes to simulate.
    backend
        ``"inline"`` (sequential, deterministic), ``"threads"``, or a Backend instance.
    node_configs
        Extra per-node settings, one mapping per node; ``partition-id`` and
        ``num-partitions`` are always set.
    node_ids
        The nodes' ids, in partition order (a resumed run reuses its ids); by default
        :func:`make_node_ids` draws them from ``seed``.
    """

    def __init__(
        self,
        client_app: ClientApp,
        num_nodes: int,
        *,
        run_id: int = 1,
        backend: str | Backend = "inline",
        max_workers: int | None = None,
        node_configs: Sequence[Mapping[str, bool | int | float | str]] | None = None,
        run_config: UserConfig | None = None,
        events: EventBus | None = None,
        seed: int | None = None,
        node_ids: Sequence[int] | None = None,
    ) -> None:
        super().__init__(run_id, events)
        if not isinstance(num_nodes, int) or isinstance(num_nodes, bool) or num_nodes < 1:
            raise SimulationError(f"num_nodes must be a positive int, got {num_nodes!r}.")
        if node_configs is not None and len(node_configs) != num_nodes:
            raise SimulationError(
                f"node_configs has {len(node_configs)} entries but there are {num_nodes} nodes; "
                "give one mapping per node."
            )
        self._app = client_app
        self._backend = make_backend(backend, max_workers) if isinstance(backend, str) else backend
        self._node_ids = make_node_ids(num_nodes, seed) if node_ids is None else list(node_ids)
        if len(set(self._node_ids) - {SERVER_NODE_ID}) != num_nodes:
            raise SimulationError(
                f"node_ids must be {num_nodes} distinct non-zero ids, one per node; "
                f"got {node_ids!r}."
            )
        self._contexts: dict[int, Context] = {}
        self._partitions: dict[int, int] = {}
        for index, node_id in enumerate(self._node_ids):
            config: UserConfig = {"partition-id": index, "num-partitions": num_nodes}
            if node_configs is not None:
                config.update(node_configs[index])
            self._contexts[node_id] = Context(
                run_id=run_id, node_id=node_id, node_config=config, run_config=dict(run_config or {})
            )
            self._partitions[node_id] = index
        self._node_locks = {node_id: threading.Lock() for node_id in self._node_ids}
        self._lock = threading.Lock()
        # Notified whenever a message stops being pending, so pull_any can sleep until then.
        self._settled = threading.Condition(self._lock)
        # Bookkeeping of messages in flight, all guarded by self._lock.
        self._replies: dict[str, Message] = {}
        self._futures: dict[str, Future[None]] = {}
        self._deadlines: dict[str, float] = {}
        self._pending: set[str] = set()
        self._abandoned: set[str] = set()

    @property
    def backend(self) -> Backend:
        """The backend running the clients."""
        return self._backend

    def context(self, node_id: int) -> Context:
        """Return the persistent Context of ``node_id``."""
        return self._contexts[node_id]

    def get_node_ids(self) -> list[int]:
        """Return the simulated node ids (fixed for the grid's lifetime)."""
        return list(self._node_ids)

    def get_node_config(self, node_id: int) -> UserConfig:
        """Return a copy of ``node_id``'s node_config (empty for an unknown node)."""
        context = self._contexts.get(node_id)
        return dict(context.node_config) if context is not None else {}

    def partition_id(self, node_id: int) -> int | None:
        """Return the partition index of ``node_id``."""
        return self._partitions.get(node_id)

    def wait_for_nodes(self, count: int, timeout: float) -> list[int]:
        """Return the node ids at once: simulated nodes never join later."""
        if count > len(self._node_ids):
            raise GridError(
                f"{count} nodes are required but the simulation has {len(self._node_ids)}; "
                f"raise num_clients to at least {count} or lower the strategy's minimums "
                "(min_available_nodes, min_train_nodes, min_evaluate_nodes)."
            )
        return self.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        """Hand each message to its node; the backend decides when it runs."""
        return self._submit(messages, deadline=None)

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        """Return and forget the replies that have arrived for ``message_ids``."""
        with self._lock:
            found = [self._replies.pop(i) for i in message_ids if i in self._replies]
            for reply in found:
                self._futures.pop(reply.metadata.reply_to_message_id, None)
        return found

    def pull_any(
        self, message_ids: Iterable[str], *, timeout: float | None = None
    ) -> list[Message]:
        """Like :meth:`Grid.pull_any`, but woken by the arrival itself instead of polling.

        Also returns ``[]`` at once when none of ``message_ids`` can still be answered
        (already pulled, or abandoned and finished).
        """
        ids = list(message_ids)

        def arrived_or_hopeless() -> bool:
            return any(i in self._replies for i in ids) or not any(i in self._pending for i in ids)

        with self._settled:
            self._settled.wait_for(arrived_or_hopeless, timeout)
        return self.pull_messages(ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> list[Message]:
        """Run ``messages`` on their nodes and return the replies in message order.

        A reply that completes more than ``timeout`` seconds after the call started counts
        as a time-out (with the inline backend, clients run one after another, so the
        timeout is the budget of the whole round).
        """
        instructions = list(messages)
        deadline = None if timeout is None else time.monotonic() + timeout
        ids = self._submit(instructions, deadline)
        with self._lock:
            pending = [self._futures[i] for i in ids if i in self._futures]
        wait(pending, timeout=None if deadline is None else max(deadline - time.monotonic(), 0.0))
        with self._lock:
            replies = {i: self._replies.pop(i) for i in ids if i in self._replies}
            for message_id in replies:
                self._futures.pop(message_id, None)
        return self._complete_with_timeouts(instructions, ids, replies, timeout)

    def abandon(self, message_ids: Sequence[str]) -> None:
        """Forget ``message_ids``: their replies are dropped now or whenever they arrive."""
        with self._lock:
            for message_id in message_ids:
                self._replies.pop(message_id, None)
                self._futures.pop(message_id, None)
                self._deadlines.pop(message_id, None)
                if message_id in self._pending:
                    self._abandoned.add(message_id)

    def close(self) -> None:
        """Shut the backend down."""
        self._backend.close()

    def _submit(self, messages: Iterable[Message], deadline: float | None) -> list[str]:
        ids = []
        for message in messages:
            message = message.with_metadata(run_id=self.run_id, src_node_id=SERVER_NODE_ID)
            message_id = message.metadata.message_id
            ids.append(message_id)
            with self._lock:
                self._pending.add(message_id)
                if deadline is not None:
                    self._deadlines[message_id] = deadline
            if message.metadata.dst_node_id not in self._contexts:
                reply = unavailable_reply(
                    message,
                    f"Node {message.metadata.dst_node_id} is not part of this simulation; "
                    "address messages to ids from grid.get_node_ids().",
                )
                self._store(message, reply, 0.0)
                continue
            future = self._backend.submit(partial(self._execute, message))
            with self._lock:
                if message_id in self._pending:  # not finished yet (threads backend)
                    self._futures[message_id] = future
        return ids

    def _execute(self, message: Message) -> None:
        node_id = message.metadata.dst_node_id
        # Each client gets its own records; the arrays inside stay shared and read-only.
        incoming = Message.from_parts(message.metadata, content=message.content.copy())
        with self._node_locks[node_id]:
            started = time.perf_counter()
            try:
                reply = self._app(incoming, self._contexts[node_id])
            except BaseException as exc:  # the ClientApp catches user errors; this is a crash
                reply = incoming.reply(
                    Error(ErrorCode.CLIENT_APP_CRASHED, exception_error(exc).reason)
                )
            duration = time.perf_counter() - started
        self._store(message, reply, duration)

    def _store(self, instruction: Message, reply: Message, duration: float) -> None:
        message_id = instruction.metadata.message_id
        with self._lock:
            self._pending.discard(message_id)
            self._settled.notify_all()
            deadline = self._deadlines.pop(message_id, None)
            if message_id in self._abandoned:
                self._abandoned.discard(message_id)
                return  # its time-out was already reported
            if deadline is not None and time.monotonic() > deadline:
                return  # too late: send_and_receive reports the time-out
            self._replies[message_id] = reply
        self.report_reply(instruction, reply, duration)
