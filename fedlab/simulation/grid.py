"""`SimulationGrid`: a Grid whose nodes are ClientApp instances in this process."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, wait
from functools import partial

from fedlab.client import ClientApp
from fedlab.client.clientapp import exception_error
from fedlab.context import Context, UserConfig
from fedlab.errors import GridError, SimulationError
from fedlab.events import EventBus
from fedlab.message import SERVER_NODE_ID, Error, ErrorCode, Message
from fedlab.records import RecordDict
from fedlab.server.grid import Grid, unavailable_reply
from fedlab.simulation._node_turns import NodeTurns
from fedlab.simulation.backend import Backend, make_backend, missing_backend_members
from fedlab.simulation.nodes import NodeIdList
from fedlab.simulation.population import Population

__all__ = ["SimulationGrid"]


class SimulationGrid(Grid):
    """Simulated nodes in this process: each node is a Context plus a call to the ClientApp.

    Messages are passed as objects, never serialised, by the in-process backends. Each
    client receives its own copy of the records, sharing the arrays, which are read-only:
    a client that wants to change an array makes a copy (``arr.numpy().copy()``), so
    nothing it does is seen by another client or by the server (copy-on-write).

    A node's Context (and so ``context.state``) is created the first time the node is
    addressed and persists across rounds; calls to one node never overlap. Nothing is
    held per node before that, so a population of millions costs a few bytes a node.

    A client that does not reply by the deadline of :meth:`send_and_receive` (or
    :meth:`send_and_stream`) is reported as timed out (:attr:`ErrorCode.TIMEOUT`) at that
    deadline, whatever the backend, and its call is given up: the backend kills the
    worker process or actor running it, or leaves the thread running it behind, and a
    fresh worker serves later calls. A node whose abandoned call still runs in a thread
    gets no new work until that call returns: its messages wait, as for any busy node,
    and so time out too; with the inline backend, where that wait would spend the rest
    of the round, they are answered at once with :attr:`ErrorCode.NODE_UNAVAILABLE`.

    Parameters
    ----------
    client_app
        The ClientApp every node runs.
    num_nodes
        How many nodes to simulate.
    backend
        ``"inline"`` (sequential, deterministic), ``"threads"``, ``"processes"``, ``"ray"``
        or a Backend instance.
    node_configs
        Extra per-node settings, one mapping per node; ``partition-id`` and
        ``num-partitions`` are always set.
    node_ids
        The nodes' ids, in partition order (a resumed run reuses its ids); by default
        :func:`~fedlab.simulation.make_node_ids` draws them from ``seed``.
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
        self._nodes = Population(
            num_nodes,
            run_id=run_id,
            node_configs=node_configs,
            run_config=run_config,
            seed=seed,
            node_ids=node_ids,
        )
        self._node_ids = self._nodes.ids
        self._app = client_app
        self._backend = make_backend(backend, max_workers) if isinstance(backend, str) else backend
        _check_backend(self._backend)
        self._backend.start(client_app)
        self._lock = threading.Lock()
        # Notified whenever a message stops being pending, so pull_any can sleep until then.
        self._settled = threading.Condition(self._lock)
        # Calls to one node never overlap: each waits for its node's turn.
        self._turns = NodeTurns(self._lock)
        # Bookkeeping of messages in flight, all guarded by self._lock.
        self._replies: dict[str, Message] = {}
        self._futures: dict[str, Future[None]] = {}
        self._deadlines: dict[str, float] = {}
        self._pending: set[str] = set()
        self._abandoned: set[str] = set()
        # Work a deferred (inline) backend has not run yet, in the order it was pushed.
        self._queue: deque[tuple[str, Callable[[], None]]] = deque()
        self._queued: set[str] = set()

    @property
    def backend(self) -> Backend:
        """The backend running the clients."""
        return self._backend

    @property
    def stream_window(self) -> int | None:
        """Messages kept in flight while streaming: about twice the backend's concurrency."""
        return None if self._backend.deferred else 2 * self._backend.concurrency

    def context(self, node_id: int) -> Context:
        """Return the persistent Context of ``node_id``, creating it on first use."""
        return self._nodes.context(node_id)

    def created_contexts(self) -> dict[int, Context]:
        """The Contexts made so far (one per node ever addressed), by node id."""
        return self._nodes.created_contexts()

    def node_state(self, node_id: int) -> RecordDict:
        """Return ``node_id``'s ``context.state`` without creating its Context (empty if none)."""
        return self._nodes.state(node_id)

    def get_node_ids(self) -> NodeIdList:
        """Return the simulated node ids, in partition order (fixed for the grid's lifetime)."""
        return self._node_ids

    def get_node_config(self, node_id: int) -> UserConfig:
        """Return a copy of ``node_id``'s node_config (empty for an unknown node)."""
        return self._nodes.node_config(node_id)

    def partition_id(self, node_id: int) -> int | None:
        """Return the partition index of ``node_id``."""
        return self._node_ids.index_of(node_id)

    def wait_for_nodes(self, count: int, timeout: float) -> NodeIdList:
        """Return the node ids at once: simulated nodes never join later."""
        if count > len(self._node_ids):
            raise GridError(
                f"{count} nodes are required but the simulation has {len(self._node_ids)}; "
                f"raise num_clients to at least {count} or lower the strategy's minimums "
                "(min_available_nodes, min_train_nodes, min_evaluate_nodes)."
            )
        return self._node_ids

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        """Hand each message to its node; the backend decides when it runs.

        The inline backend runs each call here, before returning.
        """
        return self._submit(messages, deadline=None, defer=False)

    def _push_before(self, messages: Sequence[Message], deadline: float | None) -> list[str]:
        """Push ``messages``; a reply completing after ``deadline`` is dropped as late.

        A deferred backend (inline) queues the calls: each runs when its reply is awaited,
        so a streamed round computes and aggregates one client at a time.
        """
        return self._submit(messages, deadline, defer=self._backend.deferred)

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        """Return and forget the replies that have arrived for ``message_ids``.

        With a deferred backend (``inline``), the calls for ``message_ids`` that have not
        run yet run now, in the order they were pushed.
        """
        ids = list(message_ids)
        if self._queue:
            self._run_queued(lambda: not any(i in self._queued for i in ids))
        return self._take(ids)

    def pull_any(
        self, message_ids: Iterable[str], *, timeout: float | None = None
    ) -> list[Message]:
        """Like :meth:`Grid.pull_any`, but woken by the arrival itself instead of polling.

        Also returns ``[]`` at once when none of ``message_ids`` can still be answered
        (already pulled, or abandoned and finished). With a deferred backend, queued calls
        run, in push order, until one of ``message_ids`` is answered.
        """
        ids = list(message_ids)
        deadline = None if timeout is None else time.monotonic() + timeout

        def arrived() -> bool:
            return any(i in self._replies for i in ids)

        if self._queue:
            self._run_queued(lambda: arrived() or not any(i in self._queued for i in ids))

        def arrived_or_hopeless() -> bool:
            return arrived() or not any(i in self._pending for i in ids)

        with self._settled:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            self._settled.wait_for(arrived_or_hopeless, left)
        return self._take(ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> list[Message]:
        """Run ``messages`` on their nodes and return the replies in message order.

        A reply that completes more than ``timeout`` seconds after the call started counts
        as a time-out. With the inline backend, where clients run one after another, each
        client's call gets ``timeout`` seconds of its own.
        """
        return list(self.send_and_stream(messages, timeout=timeout))

    def send_and_stream(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterator[Message]:
        """Like :meth:`Grid.send_and_stream`; inline, each call has ``timeout`` of its own.

        One round-wide deadline would make a client that hangs cost the replies of every
        client queued after it, which never got to run; with one client at a time, the
        deadline that is fair to each starts when its own call does.
        """
        if not self._backend.deferred:
            yield from super().send_and_stream(messages, timeout=timeout)
            return
        for message in messages:
            yield from super().send_and_stream([message], timeout=timeout)

    def abandon(self, message_ids: Sequence[str]) -> None:
        """Forget ``message_ids``: their replies are dropped now or whenever they arrive.

        Calls not started are dropped without running; the backend gives up on those
        still running (see the class documentation).
        """
        running = []
        with self._lock:
            never_run = self._queued & set(message_ids)
            if never_run:
                self._queue = deque(item for item in self._queue if item[0] not in never_run)
                self._queued -= never_run
            for message_id in message_ids:
                self._replies.pop(message_id, None)
                future = self._futures.pop(message_id, None)
                self._deadlines.pop(message_id, None)
                if message_id in never_run or (future is not None and future.cancel()):
                    self._pending.discard(message_id)
                elif message_id in self._pending:
                    self._abandoned.add(message_id)
                    running.append(message_id)
            self._settled.notify_all()
            self._turns.wake()
        if running:
            self._backend.cancel(running)

    def close(self) -> None:
        """Shut the backend down; calls not yet started are dropped."""
        with self._lock:
            self._pending -= self._queued
            self._queue.clear()
            self._queued.clear()
        self._backend.close()

    # -- internals ----------------------------------------------------------------------

    def _take(self, ids: Iterable[str]) -> list[Message]:
        with self._lock:
            found = [self._replies.pop(i) for i in ids if i in self._replies]
            for reply in found:
                self._futures.pop(reply.metadata.reply_to_message_id, None)
        return found

    def _run_queued(self, done: Callable[[], bool]) -> None:
        """Run deferred calls in push order until ``done()`` (checked before each).

        Each runs on the backend's thread while this one waits, until the call's deadline
        at most: a call still running then is left to whoever waits for its reply, who
        reports the time-out and abandons it.
        """
        while True:
            with self._lock:
                if not self._queue or done():
                    return
                message_id, work = self._queue.popleft()
                self._queued.discard(message_id)
                deadline = self._deadlines.get(message_id)
            future = self._backend.submit(work)
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            if not wait([future], left).done:
                return
            future.result()  # a failure of the grid's own bookkeeping is not swallowed

    def _submit(self, messages: Iterable[Message], deadline: float | None, *, defer: bool) -> list[str]:
        ids = []
        for message in messages:
            message = message.with_metadata(run_id=self.run_id, src_node_id=SERVER_NODE_ID)
            message_id = message.metadata.message_id
            ids.append(message_id)
            with self._lock:
                self._pending.add(message_id)
                if deadline is not None:
                    self._deadlines[message_id] = deadline
            if message.metadata.dst_node_id not in self._node_ids:
                reply = unavailable_reply(
                    message,
                    f"Node {message.metadata.dst_node_id} is not part of this simulation; "
                    "address messages to ids from grid.get_node_ids().",
                )
                self._store(message, reply, 0.0)
                continue
            work = partial(self._execute, message)
            if defer:
                with self._lock:
                    self._queue.append((message_id, work))
                    self._queued.add(message_id)
                continue
            future = self._backend.submit(work)
            if self._backend.deferred:  # one call at a time: it is done before the next
                wait([future])
                future.result()
                continue
            with self._lock:
                if message_id in self._pending:  # not finished yet
                    self._futures[message_id] = future
        return ids

    def _execute(self, message: Message) -> None:
        node_id = message.metadata.dst_node_id
        # Each client gets its own records; the arrays inside stay shared and read-only.
        incoming = Message.from_parts(message.metadata, content=message.content.copy())
        context = self.context(node_id)
        with self._lock:
            deadline = self._deadlines.get(message.metadata.message_id)
        claim = self._turns.claim(
            node_id,
            message.metadata.message_id,
            deadline=deadline,
            abandoned=self._abandoned,
            # One call at a time (inline): waiting for a call that may never end would
            # starve the rest of the round.
            refuse_stuck=self._backend.deferred and not self._backend.cancel_stops,
        )
        if claim == "stuck":
            reply = incoming.reply(Error(ErrorCode.NODE_UNAVAILABLE, _STUCK.format(node=node_id)))
            self._store(message, reply, 0.0)
            return
        if claim == "given up":
            self._store(message, reply=None, duration=0.0)
            return
        started = time.perf_counter()
        try:
            reply = self._backend.call(incoming, context)
        except BaseException as exc:  # the ClientApp catches user errors; this is a crash
            reply = incoming.reply(Error(ErrorCode.CLIENT_APP_CRASHED, exception_error(exc).reason))
        finally:
            self._turns.release(node_id)
        self._store(message, reply, time.perf_counter() - started)

    def _store(self, instruction: Message, reply: Message | None, duration: float) -> None:
        """Report and keep ``reply``; drop it if abandoned, late or None (given up)."""
        message_id = instruction.metadata.message_id
        with self._lock:
            deadline = self._deadlines.pop(message_id, None)
            late = deadline is not None and time.monotonic() > deadline
            if message_id in self._abandoned or late or reply is None:
                # Abandoned: its time-out was already reported. Late: the caller reports it.
                self._abandoned.discard(message_id)
                self._pending.discard(message_id)
                self._settled.notify_all()
                return
        # Reported before it can be pulled, so whoever got the reply has seen its event.
        self.report_reply(instruction, reply, duration)
        with self._lock:
            self._pending.discard(message_id)
            if message_id in self._abandoned:
                self._abandoned.discard(message_id)
            else:
                self._replies[message_id] = reply
            self._settled.notify_all()


_STUCK = (
    "Node {node} is still running an earlier call that did not return in time (a client that "
    "hangs, e.g. waiting for something that never comes); it gets no new work until that "
    "call returns."
)


def _check_backend(backend: Backend) -> None:
    missing = missing_backend_members(backend)
    if missing:
        raise SimulationError(
            f"The backend {type(backend).__name__} lacks {', '.join(missing)} of the "
            "fedlab.simulation.Backend protocol; add them, or use a built-in backend."
        )
