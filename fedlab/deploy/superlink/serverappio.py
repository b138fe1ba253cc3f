"""The ServerAppIo service: what a ServerApp's :class:`~fedlab.deploy.client.grpcgrid.GrpcGrid` calls.

A caller acts on one run only: the ServerApp process the SuperLink launched for it (its
per-run secret), or the run's owner or an admin (a Control token: attached runs, driven
from the user's own process by ``deploy()``).
"""

from __future__ import annotations

import json
from typing import Any

import grpc

from fedlab.deploy import proto as pb
from fedlab.deploy.security.access import USER, caller_of
from fedlab.deploy.superlink._serving import RunObjectCalls, abort, guarded
from fedlab.deploy.superlink.credentials import Credentials
from fedlab.deploy.superlink.messages import replies_key
from fedlab.deploy.superlink.runs import RunRow
from fedlab.deploy.superlink.state import LinkState
from fedlab.deploy.transport.wire import Inliner, decode_header
from fedlab.message import SERVER_NODE_ID

__all__ = ["ServerAppIoServicer"]

MAX_WAIT_S = 30.0


class ServerAppIoServicer(RunObjectCalls):
    """Serves the ServerAppIo API from a :class:`LinkState`.

    GetRun, FinishRun, FindMissingObjects, PushObject and PullObject come from
    :class:`~fedlab.deploy.superlink._serving.RunObjectCalls`.
    """

    def __init__(self, state: LinkState, *, max_object_size: int, credentials: Credentials) -> None:
        self.state = state
        self.max_object_size = self.upload_limit = max_object_size
        self.credentials = credentials

    def _run(self, run_id: int, context: Any) -> RunRow:
        caller = caller_of(context)
        run = self.state.runs.get(run_id)
        allowed = (caller.kind == "serverapp" and caller.run_id == run_id) or (
            caller.kind != "serverapp" and caller.owns(self.credentials.run_owner(run_id))
        )
        if run is None and caller.is_admin:
            abort(context, grpc.StatusCode.NOT_FOUND, f"There is no run {run_id} on this SuperLink.")
        if run is None or not allowed:
            abort(context, grpc.StatusCode.PERMISSION_DENIED,
                  f"There is no run {run_id} on this SuperLink that {caller.describe()} may drive.")  # fmt: skip
        self.state.runs.seen(run_id)  # its driver is alive (see LinkState.driver_grace)
        return run

    def _driver(self, context: Any) -> None:
        """Let only ServerApps and users who may start runs move objects."""
        caller = caller_of(context)
        if not (caller.kind == "serverapp" or caller.is_admin or (caller.kind == "user" and caller.role == USER)):
            abort(context, grpc.StatusCode.PERMISSION_DENIED,
                  f"{caller.describe()} may not move objects through the ServerAppIo API.")  # fmt: skip

    @guarded
    def FindMissingObjects(self, request: Any, context: Any) -> Any:
        self._driver(context)
        return super().FindMissingObjects(request, context)

    @guarded
    def PushObject(self, request_iterator: Any, context: Any) -> Any:
        self._driver(context)
        return super().PushObject(request_iterator, context)

    @guarded
    def PullObject(self, request: Any, context: Any) -> Any:
        self._driver(context)
        yield from super().PullObject(request, context)

    @guarded
    def GetNodes(self, request: Any, context: Any) -> Any:
        run = self._run(request.run_id, context)
        nodes = [
            pb.Node(node_id=n.node_id, node_config_json=json.dumps(n.node_config), online=True,
                    last_seen=n.last_seen)
            for n in self.state.nodes.list()
        ]  # fmt: skip
        return pb.GetNodesResponse(nodes=nodes, stop_requested=run.stop_requested)

    @guarded
    def PushInstructions(self, request: Any, context: Any) -> Any:
        run = self._run(request.run_id, context)
        if run.finished:
            abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Run {run.run_id} has finished ({run.status}); start a new run to send more work.",
            )
        items = []
        for wire in request.messages:
            header = decode_header(wire)
            md = header.metadata
            if md.run_id != run.run_id or md.src_node_id != SERVER_NODE_ID or header.has_error():
                abort(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Instruction {md.message_id} must belong to run {run.run_id}, come from node "
                    f"{SERVER_NODE_ID} and carry content (it says run {md.run_id}, node "
                    f"{md.src_node_id}).",
                )
            if wire.content.size > self.max_object_size or not self.state.objects.has(wire.content.digest):
                abort(
                    context,
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"The content object {wire.content.digest[:12]} of instruction {md.message_id} "
                    "is not stored here; upload it first (PushObject).",
                )
            stored = self.state.objects.size(wire.content.digest)
            if stored != wire.content.size:
                abort(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Instruction {md.message_id} says its content is {wire.content.size} bytes, but object "
                    f"{wire.content.digest[:12]} holds {stored}; nodes would be told the wrong size, so it is refused.",
                )
            items.append((header, wire))
        ids = self.state.messages.push_instructions(run.run_id, items)
        return pb.PushInstructionsResponse(message_ids=ids)

    @guarded
    def PullReplies(self, request: Any, context: Any) -> Any:
        run = self._run(request.run_id, context)
        ids = list(request.message_ids)

        def probe() -> list[Any]:
            return self.state.messages.replies(run.run_id, ids) if context.is_active() else []

        wait = min(max(request.wait_s, 0.0), MAX_WAIT_S)
        # Woken by replies of this run only (not by every heartbeat and pull of a thousand
        # nodes: each wake-up checks every id); time-decided answers come with the recheck.
        key = replies_key(run.run_id)
        rows = self.state.wait_until(probe, wait, active=context.is_active, key=key) if ids else []
        for row in rows:
            if row.content_digest:
                self.state.objects.touch(row.content_digest)
        run = self._run(request.run_id, context)
        inliner = Inliner(self.state.objects.read_small)  # small replies need no PullObject
        return pb.PullRepliesResponse(
            messages=[inliner.fill(row.to_wire()) for row in rows], stop_requested=run.stop_requested
        )

    @guarded
    def ForgetMessages(self, request: Any, context: Any) -> Any:
        self._run(request.run_id, context)
        self.state.messages.forget(request.run_id, request.message_ids)
        return pb.ForgetMessagesResponse()

    @guarded
    def PushEvents(self, request: Any, context: Any) -> Any:
        self._run(request.run_id, context)
        self.state.journal.add_events(request.run_id, list(request.events_json))
        return pb.PushEventsResponse()
