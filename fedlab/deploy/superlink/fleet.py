"""The Fleet service: what SuperNodes call (register, heartbeat, pull work, push replies).

Every call from a node also counts as a sign of life. Unless the SuperLink runs
``--insecure``, every call is a signed request of an allow-listed node key
(:class:`~fedlab.deploy.security.access.NodeGate`) and names the node id bound to that
key. A node may only read objects that instructions addressed to it point at, and the run
and bundle of runs it was addressed in; it may only answer instructions it was given.

A node's identity is its key. A key that registers again while the SuperLink still knows
the node id bound to it (a SuperNode restarted after a crash, on the same machine or not)
gets that id back, with the config and heartbeat interval it registers with now, and the
instructions it had been given but not answered (and that have not expired) are delivered
again, so a round in progress finishes as if the node had never stopped. Its per-run
state (``Context.state``) lived in the old process and is gone: a stateful ClientApp
starts it afresh. Two live processes holding one key are one node to the SuperLink: the
newest registration takes back what was handed out, both pull from the node's one queue,
and each instruction keeps exactly one reply, the first pushed after it was last handed
out (the other process's reply is refused as already answered, or as not delivered to it
if it comes before the instruction was handed out again). On an ``--insecure`` SuperLink
no request says who sends it, so every Register is a new node with a new id.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from fedlab.deploy import proto as pb
from fedlab.deploy.security.access import caller_of
from fedlab.deploy.security.audit import AuditLog
from fedlab.deploy.security.keys import fingerprint
from fedlab.deploy.superlink._deadlines import StreamDeadlines
from fedlab.deploy.superlink._ratelog import quiet_grpc_decoding_errors, refusals
from fedlab.deploy.superlink._serving import (
    abort,
    guarded,
    parse_config,
    progressing,
    receive_object,
    refuse,
    run_proto,
    send_object,
)
from fedlab.deploy.superlink.credentials import Credentials
from fedlab.deploy.superlink.messages import instructions_key
from fedlab.deploy.superlink.quotas import UploadLimits, UploadQuotas
from fedlab.deploy.superlink.state import LinkState
from fedlab.deploy.transport.wire import Inliner, decode_header, inline_content
from fedlab.errors import CodecError, TransferError

__all__ = ["FleetServicer"]

_log = logging.getLogger("fedlab.superlink")
#: Longest a PullInstructions call waits for work before answering with none.
MAX_WAIT_S = 30.0
#: Long polls past the SuperLink's ``max_long_polls`` answer at once and ask the node to
#: pull again after this many seconds, so that they never hold every server thread.
BUSY_RETRY_S = 1.0
#: A long poll re-checks on its own this often; changes for its node wake it at once.
_LONG_POLL_RECHECK_S = 5.0
_MIN_INTERVAL, _MAX_INTERVAL = pb.HEARTBEAT_INTERVAL_RANGE


class FleetServicer:
    """Serves the Fleet API from a :class:`LinkState`.

    Uploads are held to ``limits`` (:mod:`fedlab.deploy.superlink.quotas`); ``max_workers``
    is the size of the server's thread pool for calls other than long polls, half of which
    object streams may take. Up to ``max_long_polls`` PullInstructions calls wait for work
    at once, each on its own node's wake-up (the server needs that many threads more);
    one more answers at once with ``retry_after_s``.
    """

    def __init__(
        self,
        state: LinkState,
        *,
        max_object_size: int,
        limits: UploadLimits | None = None,
        max_workers: int = 64,
        max_long_polls: int = 4096,
        credentials: Credentials,
        audit: AuditLog,
    ) -> None:
        self.state = state
        self.max_long_polls = max_long_polls
        self._long_polls = 0
        self._long_polls_lock = threading.Lock()
        self.max_object_size = max_object_size
        self.credentials = credentials
        self.audit = audit
        self.limits = limits or UploadLimits()
        self.uploads = UploadQuotas(self.limits, max_streams=max(max_workers // 2, 1), is_stored=state.objects.has)
        self.deadlines = StreamDeadlines(self.limits.idle_s)
        quiet_grpc_decoding_errors()  # the Fleet API faces other organisations' machines

    @property
    def long_polls(self) -> int:
        """How many PullInstructions calls are waiting for work now."""
        return self._long_polls

    def _me(self, node_id: int, context: Any) -> None:
        """Refuse a request about another node than the one whose key signed it."""
        caller = caller_of(context)
        if caller.kind != "open" and (caller.kind != "node" or caller.node_id != node_id):
            abort(context, grpc.StatusCode.PERMISSION_DENIED,
                  f"This request names node {node_id}, but it was signed by {caller.describe()}.")  # fmt: skip

    def _in_run(self, node_id: int, run_id: int, context: Any) -> None:
        if caller_of(context).kind != "open" and not self.state.messages.node_in_run(node_id, run_id):
            abort(context, grpc.StatusCode.PERMISSION_DENIED,
                  f"Node {node_id} has no instruction of run {run_id}.")  # fmt: skip

    def _alive(self, node_id: int, context: Any) -> None:
        self._me(node_id, context)
        if not self.state.nodes.heartbeat(node_id):
            abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"Node {node_id} is not registered with this SuperLink (it may have lost its "
                "state in a restart); register again.",
            )

    @guarded
    def Register(self, request: Any, context: Any) -> Any:
        config = parse_config(request.node_config_json, "node config")
        interval = request.heartbeat_interval
        if not _MIN_INTERVAL <= interval <= _MAX_INTERVAL:
            abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"heartbeat_interval must be between {_MIN_INTERVAL} and {_MAX_INTERVAL} s, "
                f"got {interval}.",
            )
        caller = caller_of(context)
        if caller.kind != "node":  # --insecure: nothing says who calls, so every node is new
            node_id = self.state.nodes.register(config, interval)
            self.audit.record("node.registered", f"node:{node_id}", key="", peer=context.peer())
            _log.info("Node %d registered with config %s", node_id, config)
            return pb.RegisterResponse(node_id=node_id)
        key = fingerprint(caller.node_key)
        bound = self.credentials.bound_node(caller.node_key)
        if bound is not None and self.state.nodes.rejoin(bound, config, interval):
            pending = self.state.messages.redeliver(bound)
            self.audit.record("node.registered", f"node:{bound}", key=key, peer=context.peer(), again=True,
                              redelivered=pending)  # fmt: skip
            _log.info("Node %d registered again with config %s; %d instruction(s) redelivered", bound, config, pending)
            return pb.RegisterResponse(node_id=bound)
        node_id = self.state.nodes.register(config, interval)
        self.credentials.bind_node(caller.node_key, node_id)
        self.audit.record("node.registered", f"node:{node_id}", key=key, peer=context.peer())
        _log.info("Node %d registered with config %s", node_id, config)
        return pb.RegisterResponse(node_id=node_id)

    @guarded
    def Unregister(self, request: Any, context: Any) -> Any:
        self._me(request.node_id, context)
        self.state.nodes.unregister(request.node_id)
        self.audit.record("node.unregistered", f"node:{request.node_id}")
        _log.info("Node %d unregistered", request.node_id)
        return pb.UnregisterResponse()

    @guarded
    def Heartbeat(self, request: Any, context: Any) -> Any:
        self._me(request.node_id, context)
        # The bound first, so that a NaN interval becomes the bound instead of passing through.
        interval = min(_MAX_INTERVAL, max(_MIN_INTERVAL, request.heartbeat_interval))
        if not self.state.nodes.heartbeat(request.node_id, interval):
            self._alive(request.node_id, context)  # aborts with NOT_FOUND
        return pb.HeartbeatResponse()

    @guarded
    def PullInstructions(self, request: Any, context: Any) -> Any:
        self._alive(request.node_id, context)
        limit = min(max(request.max_messages, 1), 100)
        key = instructions_key(request.node_id)

        def probe() -> list[Any]:
            if not context.is_active():  # the node hung up: hand nothing out, nothing is lost
                return []
            return self.state.messages.pull_instructions(request.node_id, limit)

        wait = min(max(request.wait_s, 0.0), MAX_WAIT_S)
        with self._long_poll_slot(wait > 0) as waiting:
            if not waiting:
                rows = probe()
                retry = 0.0 if rows or wait <= 0 else BUSY_RETRY_S
                return pb.PullInstructionsResponse(messages=self._wires(rows), retry_after_s=retry)
            # A node that hangs up wakes its own wait, so the thread is free at once.
            context.add_callback(lambda: self.state.wake_key(key))
            rows = self.state.wait_until(probe, wait, active=context.is_active, key=key,
                                         recheck=_LONG_POLL_RECHECK_S)  # fmt: skip
        return pb.PullInstructionsResponse(messages=self._wires(rows))

    def _wires(self, rows: list[Any]) -> list[Any]:
        """The rows as WireMessages, small contents inside them (no PullObject needed)."""
        inliner = Inliner(self.state.objects.read_small)
        return [inliner.fill(row.to_wire()) for row in rows]

    @contextmanager
    def _long_poll_slot(self, wanted: bool) -> Iterator[bool]:
        """Yield True while holding one of the ``max_long_polls`` slots, False if none is free."""
        with self._long_polls_lock:
            granted = wanted and self._long_polls < self.max_long_polls
            self._long_polls += granted
        try:
            yield granted
        finally:
            if granted:
                with self._long_polls_lock:
                    self._long_polls -= 1

    @guarded
    def PushReplies(self, request: Any, context: Any) -> Any:
        node_id = request.node_id
        self._alive(node_id, context)
        results = []
        for wire in request.messages:
            try:
                header = decode_header(wire)
            except CodecError as err:
                results.append(pb.ReplyStatus(accepted=False, reason=f"malformed reply: {err}"))
                continue
            message_id = header.metadata.message_id
            if wire.inline_content:
                try:
                    self._store_inline(node_id, wire, context)
                except TransferError as err:
                    refusals.refused("damaged reply", f"node {node_id}", str(err))
                    results.append(pb.ReplyStatus(message_id=message_id, accepted=False, reason=str(err)))
                    continue
            if wire.HasField("content"):
                try:
                    stored = self.state.objects.size(wire.content.digest)
                except TransferError as err:  # not a digest
                    abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(err))
                if stored is None:
                    abort(
                        context,
                        grpc.StatusCode.FAILED_PRECONDITION,
                        f"The content object {wire.content.digest[:12]} of reply {message_id} has "
                        "not been uploaded; push it first (PushObject).",
                    )
                if stored != wire.content.size:
                    # Refused here so that no reader ever allocates what the reply declares.
                    reason = (
                        f"the reply declares its content {wire.content.digest[:12]} as "
                        f"{wire.content.size} bytes, the stored object is {stored}"
                    )
                    refusals.refused("reply size mismatch", f"node {node_id}", reason)
                    results.append(pb.ReplyStatus(message_id=message_id, accepted=False, reason=reason))
                    continue
            accepted, reason = self.state.messages.push_reply(node_id, header, wire)
            if not accepted:
                refusals.refused("reply", f"node {node_id}", reason)
            elif wire.HasField("content"):
                self.uploads.claim(node_id, wire.content.digest)
            results.append(pb.ReplyStatus(message_id=message_id, accepted=accepted, reason=reason))
        return pb.PushRepliesResponse(results=results)

    def _store_inline(self, node_id: int, wire: Any, context: Any) -> None:
        """Store a reply's inline content as an object, held to the same caps as an upload.

        Raises
        ------
        TransferError
            If the bytes are not the object the reply names.
        """
        data = inline_content(wire)
        assert data is not None
        wire.ClearField("inline_content")
        if self.state.objects.has(wire.content.digest):
            self.state.objects.touch(wire.content.digest)
            return
        ended = self._admit(node_id, wire.content, context)
        stored = False
        try:
            writer = self.state.objects.writer(wire.content.digest, len(data))
            writer.write(0, data)
            writer.commit()
            stored = True
        finally:
            ended(stored)

    @guarded
    def GetRun(self, request: Any, context: Any) -> Any:
        self._alive(request.node_id, context)
        self._in_run(request.node_id, request.run_id, context)
        run = self.state.runs.get(request.run_id)
        if run is None:
            abort(context, grpc.StatusCode.NOT_FOUND, f"There is no run {request.run_id}.")
        return run_proto(run)

    @guarded
    def FetchBundle(self, request: Any, context: Any) -> Iterator[Any]:
        self._alive(request.node_id, context)
        self._in_run(request.node_id, request.run_id, context)
        run = self.state.runs.get(request.run_id)
        if run is None or not run.bundle_digest:
            abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"Run {request.run_id} ships no app bundle; start the SuperNode with "
                "--app package.module:attr to run it.",
            )
        yield from send_object(run.bundle_digest, request.offset, context, self.state.objects)

    @guarded
    def FindMissingObjects(self, request: Any, context: Any) -> Any:
        self._alive(request.node_id, context)
        return pb.FindMissingObjectsResponse(missing=self.state.objects.missing(request.digests))

    @guarded
    def PushObject(self, request_iterator: Iterator[Any], context: Any) -> Any:
        # The slot is taken before the first chunk is read: a sender that opens streams and
        # sends nothing holds no more than its share of the worker threads, and that only
        # until the stream's idle deadline. A full house is UNAVAILABLE, not RESOURCE_EXHAUSTED:
        # it is no fault of this node, which retries its upload after a backoff.
        verdict = self.uploads.open_stream()
        if not verdict:
            refuse(context, grpc.StatusCode.UNAVAILABLE, "busy", f"Upload refused: {verdict.reason}.")
        try:
            with self.deadlines.watch(context, "An upload") as watch:
                chunks = progressing(request_iterator, watch)
                first = next(chunks, None)
                if first is not None:
                    self._alive(first.node_id, context)
                    chunks = _prepend(first, chunks)
                node_id = 0 if first is None else first.node_id
                return receive_object(
                    chunks, context, self.state.objects, self.max_object_size,
                    admit=lambda ref: self._admit(node_id, ref, context),
                )  # fmt: skip
        finally:
            self.uploads.close_stream()

    def _admit(self, node_id: int, ref: Any, context: Any) -> Callable[[bool], None]:
        """Refuse an upload above the node's per-run cap or quotas; else say how to end it."""
        cap = min(self.max_object_size, self.limits.run_cap(self.state.messages.largest_open_instruction(node_id)))
        if ref.size > cap:
            refuse(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "oversized upload",
                f"Object {ref.digest[:12]} is {ref.size} bytes, above the {cap} bytes a reply of "
                f"node {node_id} may hold (at most {self.limits.reply_factor} times the largest "
                f"instruction of its runs, at least {self.limits.reply_floor}).",
            )
        token = object()
        verdict = self.uploads.begin(node_id, token, ref.size)
        if not verdict:
            refuse(context, grpc.StatusCode.RESOURCE_EXHAUSTED, "upload quota", f"Upload refused: {verdict.reason}.")
        return lambda stored: self.uploads.end(node_id, token, ref.digest if stored else None)

    @guarded
    def PullObject(self, request: Any, context: Any) -> Iterator[Any]:
        self._alive(request.node_id, context)
        if not self.state.messages.node_may_read(request.node_id, request.digest):
            abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"Node {request.node_id} has no instruction carrying object {request.digest[:12]}.",
            )
        with self.deadlines.watch(context, "A download") as watch:
            yield from send_object(request.digest, request.offset, context, self.state.objects, watch=watch)


def _prepend(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest
