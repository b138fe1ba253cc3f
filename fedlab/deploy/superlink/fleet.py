"""The Fleet service: what SuperNodes call (register, heartbeat, pull work, push replies).

Every call from a node also counts as a sign of life. A node may only read objects that
instructions addressed to it point at, or the bundle of a run; it may only answer
instructions it was given.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import grpc

from fedlab.deploy import proto as pb
from fedlab.deploy.superlink._serving import (
    abort,
    guarded,
    parse_config,
    receive_object,
    run_proto,
    send_object,
)
from fedlab.deploy.superlink.state import LinkState
from fedlab.deploy.transport.wire import decode_header
from fedlab.errors import CodecError

__all__ = ["FleetServicer"]

_log = logging.getLogger("fedlab.superlink")
#: Longest a PullInstructions call waits for work before answering with none.
MAX_WAIT_S = 30.0
_MIN_INTERVAL, _MAX_INTERVAL = 0.1, 3600.0


class FleetServicer:
    """Serves the Fleet API from a :class:`LinkState`."""

    def __init__(self, state: LinkState, *, max_object_size: int) -> None:
        self.state = state
        self.max_object_size = max_object_size

    def _alive(self, node_id: int, context: Any) -> None:
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
        node_id = self.state.nodes.register(config, interval)
        _log.info("Node %d registered with config %s", node_id, config)
        return pb.RegisterResponse(node_id=node_id)

    @guarded
    def Unregister(self, request: Any, context: Any) -> Any:
        self.state.nodes.unregister(request.node_id)
        _log.info("Node %d unregistered", request.node_id)
        return pb.UnregisterResponse()

    @guarded
    def Heartbeat(self, request: Any, context: Any) -> Any:
        # The bound first, so that a NaN interval becomes the bound instead of passing through.
        interval = min(_MAX_INTERVAL, max(_MIN_INTERVAL, request.heartbeat_interval))
        if not self.state.nodes.heartbeat(request.node_id, interval):
            self._alive(request.node_id, context)  # aborts with NOT_FOUND
        return pb.HeartbeatResponse()

    @guarded
    def PullInstructions(self, request: Any, context: Any) -> Any:
        self._alive(request.node_id, context)
        limit = min(max(request.max_messages, 1), 100)

        def probe() -> list[Any]:
            if not context.is_active():  # the node hung up: hand nothing out, nothing is lost
                return []
            return self.state.messages.pull_instructions(request.node_id, limit)

        wait = min(max(request.wait_s, 0.0), MAX_WAIT_S)
        rows = self.state.wait_until(probe, wait, active=context.is_active)
        return pb.PullInstructionsResponse(messages=[row.to_wire() for row in rows])

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
            if wire.HasField("content") and not self.state.objects.has(wire.content.digest):
                abort(
                    context,
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"The content object {wire.content.digest[:12]} of reply {message_id} has not "
                    "been uploaded; push it first (PushObject).",
                )
            accepted, reason = self.state.messages.push_reply(node_id, header, wire)
            if not accepted:
                _log.info("Refused a reply from node %d: %s", node_id, reason)
            results.append(pb.ReplyStatus(message_id=message_id, accepted=accepted, reason=reason))
        return pb.PushRepliesResponse(results=results)

    @guarded
    def GetRun(self, request: Any, context: Any) -> Any:
        self._alive(request.node_id, context)
        run = self.state.runs.get(request.run_id)
        if run is None:
            abort(context, grpc.StatusCode.NOT_FOUND, f"There is no run {request.run_id}.")
        return run_proto(run)

    @guarded
    def FetchBundle(self, request: Any, context: Any) -> Iterator[Any]:
        self._alive(request.node_id, context)
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
        first = next(request_iterator, None)
        if first is not None:
            self._alive(first.node_id, context)
        chunks = request_iterator if first is None else _prepend(first, request_iterator)
        return receive_object(chunks, context, self.state.objects, self.max_object_size)

    @guarded
    def PullObject(self, request: Any, context: Any) -> Iterator[Any]:
        self._alive(request.node_id, context)
        if not self.state.messages.node_may_read(request.node_id, request.digest):
            abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"Node {request.node_id} has no instruction carrying object {request.digest[:12]}.",
            )
        yield from send_object(request.digest, request.offset, context, self.state.objects)


def _prepend(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest
