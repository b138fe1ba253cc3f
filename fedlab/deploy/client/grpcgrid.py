"""`GrpcGrid`: the Grid of a real deployment, talking to a SuperLink's ServerAppIo API.

It passes the same contract suite as :class:`~fedlab.simulation.SimulationGrid`, so a
strategy runs on it unchanged. Contents travel as objects (:mod:`fedlab.deploy.transport.wire`):
a model sent to N nodes is uploaded once. Every event emitted on :attr:`events` is also
forwarded to the SuperLink, where ``fedlab log RUN`` streams it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import grpc

from fedlab.context import UserConfig
from fedlab.deploy import proto as pb
from fedlab.deploy.client._events_forward import EventForwarder
from fedlab.deploy.client._keepalive import KeepAlive
from fedlab.deploy.client.control_client import RunInfo
from fedlab.deploy.security.settings import ClientSecurity
from fedlab.deploy.transport.channel import check_address, open_channel, retry_call
from fedlab.deploy.transport.events_json import event_to_json
from fedlab.deploy.transport.rpc import Stub
from fedlab.deploy.transport.transfer import download, push_objects
from fedlab.deploy.transport.wire import decode_header, inline_content, join_message, split_messages
from fedlab.errors import CodecError, DeployError, GridError, TransferError
from fedlab.events import Event, EventBus
from fedlab.message import SERVER_NODE_ID, Error, ErrorCode, Message
from fedlab.server.grid import Grid

__all__ = ["GrpcGrid"]

_log = logging.getLogger("fedlab.deploy")
#: Longest a single PullReplies call waits on the SuperLink for a reply.
_LONG_POLL_S = 5.0
#: Instructions per PushInstructions request (a header is a few hundred bytes).
_PUSH_BATCH = 2000


class GrpcGrid(Grid):
    """A Grid whose nodes are the SuperNodes connected to a SuperLink.

    Parameters
    ----------
    address
        The SuperLink's ServerAppIo API, ``HOST:PORT``.
    run_id
        The run this grid drives (from :meth:`ControlClient.create_run`).
    events
        Where to emit events (a new bus if None).
    forward_events
        Also send every event emitted on :attr:`events` to the SuperLink.
    reconnect_timeout
        Seconds to keep retrying while the SuperLink cannot be reached (it may be
        restarting) before a call fails.
    security
        TLS settings and the token (the run's owner's, or the secret of a ServerApp the
        SuperLink launched); :data:`~fedlab.deploy.security.INSECURE` for an
        ``--insecure`` SuperLink.
    keepalive_interval
        Seconds between two calls that tell the SuperLink this driver is alive while it is
        busy elsewhere (it fails an attached run silent for its ``--driver-grace``).
    """

    poll_interval = 0.2

    def __init__(
        self,
        address: str,
        run_id: int,
        *,
        events: EventBus | None = None,
        forward_events: bool = True,
        reconnect_timeout: float = 60.0,
        keepalive_interval: float = 30.0,
        security: ClientSecurity,
    ) -> None:
        super().__init__(run_id, events)
        self.address = check_address(address)
        self.reconnect_timeout = reconnect_timeout
        self._channel = open_channel(address, security)
        self._stub = Stub(self._channel, "ServerAppIo", token=security.token)
        self._lock = threading.Lock()
        self._sent: dict[str, Message] = {}  # instruction headers awaiting a reply
        self._configs: dict[int, UserConfig] = {}
        self._forwarder: EventForwarder | None = None
        if forward_events:
            self._forwarder = EventForwarder(self._push_events)
            self._unsubscribe = self.events.subscribe(self._forwarder.put)
        self._keepalive = KeepAlive(self._ping, keepalive_interval)

    # -- calls ----------------------------------------------------------------------------

    def _call(self, rpc: str, request: Any, timeout: float = 60.0) -> Any:
        method = getattr(self._stub, rpc)
        try:
            return retry_call(
                lambda: method(request, timeout=timeout),
                within=self.reconnect_timeout,
                what=f"The SuperLink at {self.address}",
            )
        except grpc.RpcError as err:
            raise GridError(f"The SuperLink refused {rpc} for run {self.run_id}: {err.details()}") from None
        except DeployError as err:
            raise GridError(str(err)) from None

    def _ping(self) -> None:
        self._stub.GetRun(pb.GetRunRequest(run_id=self.run_id), timeout=10.0)

    def _push_events(self, events: list[Event]) -> None:
        bodies = [event_to_json(dataclasses.replace(e, run_id=self.run_id)) for e in events]
        self._call("PushEvents", pb.PushEventsRequest(run_id=self.run_id, events_json=bodies))

    # -- the Grid contract ----------------------------------------------------------------

    def get_node_ids(self) -> list[int]:
        """Return the ids of the SuperNodes online now."""
        response = self._call("GetNodes", pb.GetNodesRequest(run_id=self.run_id))
        if response.stop_requested:
            self.request_stop()
        with self._lock:
            for node in response.nodes:
                self._configs[node.node_id] = json.loads(node.node_config_json or "{}")
        return [node.node_id for node in response.nodes]

    def get_node_config(self, node_id: int) -> UserConfig:
        """Return the ``--node-config`` of ``node_id`` (empty for an unknown node)."""
        with self._lock:
            known = node_id in self._configs
        if not known:
            self.get_node_ids()
        with self._lock:
            return dict(self._configs.get(node_id, {}))

    def partition_id(self, node_id: int) -> int | None:
        """The node's ``partition-id`` if its config declares an int one."""
        with self._lock:
            value = self._configs.get(node_id, {}).get("partition-id")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        """Upload the contents (each distinct one once) and queue the instructions."""
        wires, blobs, headers = [], {}, []
        stamped = [m.with_metadata(run_id=self.run_id, src_node_id=SERVER_NODE_ID) for m in messages]
        for wire, blob in split_messages(stamped):
            if blob is None:
                raise GridError(
                    "An instruction carries content, not an error; build it with grid.create_message()."
                )
            blobs[wire.content.digest] = blob
            wires.append(wire)
            headers.append(decode_header(wire))
        if not wires:
            return []
        self._upload(blobs)
        ids: list[str] = []
        for start in range(0, len(wires), _PUSH_BATCH):  # keeps each request far below the limit
            ids += self._push_batch(wires[start : start + _PUSH_BATCH], blobs)
        with self._lock:
            for header in headers:
                self._sent[header.metadata.message_id] = header
        return ids

    def _push_batch(self, wires: list[Any], blobs: dict[str, bytes]) -> list[str]:
        request = pb.PushInstructionsRequest(run_id=self.run_id, messages=wires)
        for attempt in (1, 2):
            try:
                response = retry_call(
                    lambda: self._stub.PushInstructions(request, timeout=60.0),
                    within=self.reconnect_timeout,
                    what=f"The SuperLink at {self.address}",
                )
                return list(response.message_ids)
            except grpc.RpcError as err:
                # An object can be collected between the upload and the push (another run
                # sent the same content and just finished); uploading again settles it.
                if attempt == 2 or "upload it first" not in (err.details() or ""):
                    raise GridError(f"The SuperLink refused the instructions: {err.details()}") from None
                self._upload(blobs)
            except DeployError as err:
                raise GridError(str(err)) from None
        raise AssertionError("unreachable")

    def _upload(self, blobs: dict[str, bytes]) -> None:
        try:
            retry_call(
                lambda: push_objects(self._stub, blobs),
                within=self.reconnect_timeout,
                what=f"The SuperLink at {self.address}",
            )
        except grpc.RpcError as err:
            raise GridError(f"The SuperLink refused an upload: {err.details()}") from None
        except DeployError as err:
            raise GridError(str(err)) from None

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        """Return (and forget on the SuperLink) the replies that have arrived so far."""
        return self._pull(list(message_ids), wait_s=0.0)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> list[Message]:
        """Push ``messages`` and wait for their replies, for at most ``timeout`` seconds.

        Waits on the SuperLink (long polls) rather than polling from here, so a reply is
        seen as soon as it is committed.
        """
        instructions = list(messages)
        started = time.monotonic()
        ids = self.push_messages(instructions)
        deadline = None if timeout is None else started + timeout
        replies: dict[str, Message] = {}
        while len(replies) < len(ids):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            wait = _LONG_POLL_S if remaining is None else min(_LONG_POLL_S, remaining)
            for reply in self._pull([i for i in ids if i not in replies], wait_s=wait):
                replies[reply.metadata.reply_to_message_id] = reply
        return self._complete_with_timeouts(instructions, ids, replies, timeout)

    def pull_any(self, message_ids: Iterable[str], *, timeout: float | None = None) -> list[Message]:
        """Return the replies that have arrived for ``message_ids``, waiting for at least one.

        The wait happens on the SuperLink, which answers as soon as a reply is committed.
        """
        ids = list(message_ids)
        deadline = None if timeout is None else time.monotonic() + timeout
        while ids:
            remaining = None if deadline is None else deadline - time.monotonic()
            wait = _LONG_POLL_S if remaining is None else max(min(_LONG_POLL_S, remaining), 0.0)
            found = self._pull(ids, wait_s=wait)
            if found or (remaining is not None and remaining <= wait):
                return found
        return []

    def abandon(self, message_ids: Sequence[str]) -> None:
        """Stop waiting for ``message_ids``; the SuperLink drops them and refuses late replies."""
        ids = list(message_ids)
        with self._lock:
            for message_id in ids:
                self._sent.pop(message_id, None)
        try:
            self._call("ForgetMessages", pb.ForgetMessagesRequest(run_id=self.run_id, message_ids=ids))
        except GridError as err:  # they expire on the SuperLink anyway
            _log.warning("Could not tell the SuperLink to drop abandoned messages: %s", err)

    def _pull(self, ids: list[str], wait_s: float) -> list[Message]:
        if not ids:
            return []
        request = pb.PullRepliesRequest(run_id=self.run_id, message_ids=ids, wait_s=wait_s)
        response = self._call("PullReplies", request, timeout=wait_s + 60.0)
        if response.stop_requested:
            self.request_stop()
        replies = []
        for wire in response.messages:
            try:
                reply = self._receive(wire)
            except CodecError as err:  # the SuperLink checked the header: not expected
                _log.warning("Dropping a reply whose header does not decode: %s", err)
                continue
            with self._lock:
                instruction = self._sent.pop(reply.metadata.reply_to_message_id, None)
            if instruction is None:  # abandoned meanwhile: its time-out was reported
                continue
            self.report_reply(instruction, reply, wire.duration_s)
            replies.append(reply)
        if replies:
            done = [r.metadata.reply_to_message_id for r in replies]
            self._call("ForgetMessages", pb.ForgetMessagesRequest(run_id=self.run_id, message_ids=done))
        return replies

    def _receive(self, wire: Any) -> Message:
        """The reply in ``wire``; content that cannot be used makes it an error reply.

        One node's broken or lying reply fails that node's reply, never the run.

        Raises
        ------
        CodecError
            If the header does not decode (then the reply cannot be matched to its instruction).
        """
        header = decode_header(wire)
        if header.has_error():
            return header

        def stream(offset: int) -> Any:
            return self._stub.PullObject(pb.PullObjectRequest(digest=wire.content.digest, offset=offset))

        try:
            blob = inline_content(wire)
            return join_message(wire, blob if blob is not None else download(stream, wire.content))
        except grpc.RpcError as err:
            raise GridError(f"Could not download a reply from the SuperLink: {err.details()}") from None
        except (CodecError, TransferError) as err:
            md = header.metadata
            _log.warning("Node %d sent an unusable reply to %s: %s", md.src_node_id, md.reply_to_message_id, err)
            reason = f"Node {md.src_node_id} sent a reply whose content cannot be used: {err}"
            return Message.from_parts(md, error=Error(int(ErrorCode.INVALID_REPLY), reason))

    # -- the run --------------------------------------------------------------------------

    def run_info(self) -> RunInfo:
        """Return this grid's run as the SuperLink reports it."""
        return RunInfo.from_proto(self._call("GetRun", pb.GetRunRequest(run_id=self.run_id)))

    def fetch_object(self, ref: Any) -> bytes:
        """Download an object (e.g. the run's bundle) by its ``ObjectRef``."""

        def stream(offset: int) -> Any:
            return self._stub.PullObject(pb.PullObjectRequest(digest=ref.digest, offset=offset))

        return download(stream, ref)

    def finish_run(self, status: str, error: str | None = None) -> RunInfo:
        """Flush forwarded events, then record how the run ended."""
        if self._forwarder is not None:
            self._forwarder.flush()
        request = pb.FinishRunRequest(run_id=self.run_id, status=status, error=error or "")
        return RunInfo.from_proto(self._call("FinishRun", request).run)

    def close(self) -> None:
        """Send the events not yet forwarded, then close the connection. Safe to call twice."""
        self._keepalive.close()
        if self._forwarder is not None:
            self._unsubscribe()
            self._forwarder.close()
            self._forwarder = None
        self._channel.close()
