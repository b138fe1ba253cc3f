"""`SuperNode`: the client daemon that pulls instructions, runs the ClientApp and replies.

The node registers with the SuperLink, sends heartbeats from a thread of its own (so a
long training step does not make it look dead), long-polls for one instruction at a
time, runs it, and pushes the reply until the SuperLink acknowledges or refuses it. When
the SuperLink goes away the node retries with exponential backoff; if the SuperLink comes
back without knowing it (it lost its state), the node registers again.

A node's identity is its key (``--node-key``). A SuperNode started again with the key of
one that was killed gets that node's id back while the SuperLink still knows it, and the
instructions the killed process held but never answered are delivered again (see
:mod:`fedlab.deploy.superlink.fleet`); to the new process it is just the id it registered
with. The per-run state (``Context.state``) lives in the node's process and dies with it:
after a restart a stateful ClientApp starts each run's state afresh. An ``--insecure``
node has no key and gets a new id on every start.

A run's code executes in a process of the run's own (see
:mod:`fedlab.deploy.supernode.runner`), which ends when the run finishes, after
``run_idle_timeout`` seconds without work, or when the node stops.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import grpc

from fedlab.client import ClientApp
from fedlab.client.clientapp import exception_error
from fedlab.context import UserConfig
from fedlab.deploy import proto as pb
from fedlab.deploy.client.control_client import RunInfo
from fedlab.deploy.security.requests import NodeSigner
from fedlab.deploy.security.settings import ClientSecurity
from fedlab.deploy.supernode.apps import RunApps
from fedlab.deploy.transport.channel import Backoff, check_address, is_retryable, open_channel
from fedlab.deploy.transport.rpc import Stub
from fedlab.deploy.transport.transfer import download, push_objects
from fedlab.deploy.transport.wire import (
    INLINE_MAX_BYTES,
    decode_header,
    inline_content,
    join_message,
    split_message,
)
from fedlab.errors import CodecError, DeployError
from fedlab.message import Error, ErrorCode, Message

__all__ = ["SuperNode"]

T = TypeVar("T")
_log = logging.getLogger("fedlab.supernode")
#: How long one PullInstructions call waits on the SuperLink for work.
_POLL_S = 10.0


class _Lost(Exception):
    """The SuperLink does not know this node (any more): register again."""


class SuperNode:
    """A SuperNode connected to the SuperLink at ``superlink`` (its Fleet API).

    Parameters
    ----------
    superlink
        The Fleet API's ``HOST:PORT``.
    node_config
        This node's settings, e.g. ``{"partition-id": 0, "num-partitions": 3}``.
    app
        Run this ClientApp for every run instead of the code runs ship.
    heartbeat_interval
        Seconds between heartbeats, from 0.1 to 3600 (what a SuperLink accepts).
    max_retries, max_wait_time
        Give up (``run`` returns 1) after this many consecutive failed attempts to reach
        the SuperLink, or after it was unreachable this many seconds; None retries forever.
    max_backoff
        The longest pause between two attempts, in seconds.
    trusted_keys
        Ed25519 public keys; if given, only bundles signed by one of them for the run
        (its config, unexpired, a nonce not seen for another run) are run.
    allow_unsigned
        Run bundles without a trusted signature (``--insecure-allow-unsigned``). A node
        with neither trusted keys nor this (nor an ``app``) refuses to start.
    run_cpu_seconds, run_memory_mb
        Limits of each run's ClientApp process: CPU seconds over its life, and address
        space in MB. Going over is an error reply, never a dead node. None: no limit.
    run_idle_timeout
        Seconds without an instruction after which a run's process is ended.
    security
        TLS settings and this node's key (``node_key``), which signs every request;
        :data:`~fedlab.deploy.security.INSECURE` for an ``--insecure`` SuperLink.
    """

    def __init__(
        self,
        superlink: str,
        *,
        node_config: UserConfig | None = None,
        app: ClientApp | None = None,
        heartbeat_interval: float = 10.0,
        max_retries: int | None = None,
        max_wait_time: float | None = None,
        max_backoff: float = 20.0,
        trusted_keys: Sequence[Any] | None = None,
        security: ClientSecurity,
        allow_unsigned: bool = False,
        run_cpu_seconds: float | None = None,
        run_memory_mb: int | None = None,
        run_idle_timeout: float = 600.0,
    ) -> None:
        if not trusted_keys and not allow_unsigned and app is None:
            raise DeployError(
                "This SuperNode has no trusted keys, so it would run any code a SuperLink sends "
                "it; pass the public key that signs your bundles (trusted_keys=[...], "
                "--trusted-key FILE), or allow_unsigned=True (--insecure-allow-unsigned) on a "
                "network you trust."
            )
        self.superlink = check_address(superlink)
        low, high = pb.HEARTBEAT_INTERVAL_RANGE
        if not low <= heartbeat_interval <= high:  # the SuperLink would refuse to register it
            raise DeployError(
                f"heartbeat_interval (--heartbeat-interval) must be between {low} and {high:.0f} "
                f"seconds, got {heartbeat_interval!r}."
            )
        if not security.insecure and security.node_key is None:
            raise DeployError(
                "A SuperNode authenticates with its own key: pass --node-key FILE (make one with "
                "`fedlab keys NAME` and have the SuperLink's operator run `fedlab node add NAME.pub`), "
                "or --insecure against an --insecure SuperLink."
            )
        self.run_idle_timeout = run_idle_timeout
        self.node_config = dict(node_config or {})
        self.heartbeat_interval = heartbeat_interval
        self.max_retries = max_retries
        self.max_wait_time = max_wait_time
        self.node_id: int | None = None
        self._backoff = Backoff(maximum=max_backoff)
        self._failures = 0
        self._down_since: float | None = None
        self._stop = threading.Event()
        self._poll: Any = None
        self._signer = NodeSigner(security.node_key) if security.node_key is not None else None
        self._channel = open_channel(superlink, security)
        self._stub = Stub(self._channel, "Fleet", signer=self._signer)
        self.apps = RunApps(
            self._get_run,
            self._fetch_bundle,
            self.node_config,
            pinned=app,
            trusted_keys=trusted_keys,
            allow_unsigned=allow_unsigned,
            cpu_seconds=run_cpu_seconds,
            memory_mb=run_memory_mb,
        )

    # -- lifecycle ------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until :meth:`stop` is called (0) or the SuperLink stays unreachable (1)."""
        heartbeat = threading.Thread(target=self._heartbeats, name="supernode-heartbeat", daemon=True)
        try:
            while not self._stop.is_set():
                try:
                    if self.node_id is None:
                        self._register()
                        if not heartbeat.is_alive():
                            heartbeat.start()
                    self._serve_one()
                    self._reachable()
                except _Lost:
                    _log.warning("The SuperLink no longer knows node %s; registering again", self.node_id)
                    self.node_id = None
                except grpc.RpcError as err:
                    if not self._unreachable(err):
                        return 1
        finally:
            self._stop.set()
            if heartbeat.is_alive():  # not mid-call when the channel closes under it
                heartbeat.join()
            self.apps.close()
            self._unregister()
            self._channel.close()
        return 0

    def stop(self) -> None:
        """Ask :meth:`run` to return after the instruction in progress (safe from any thread)."""
        self._stop.set()
        poll = self._poll
        if poll is not None:
            poll.cancel()

    def _register(self) -> None:
        request = pb.RegisterRequest(
            node_config_json=json.dumps(self.node_config), heartbeat_interval=self.heartbeat_interval
        )
        if self._signer is not None:
            self._signer.node_id = 0
        self.node_id = int(self._stub.Register(request, timeout=30.0).node_id)
        if self._signer is not None:
            self._signer.node_id = self.node_id
        _log.info("Registered with %s as node %d", self.superlink, self.node_id)
        print(f"supernode registered node_id={self.node_id} superlink={self.superlink}", flush=True)

    def _unregister(self) -> None:
        if self.node_id is not None:
            try:
                self._stub.Unregister(pb.UnregisterRequest(node_id=self.node_id), timeout=2.0)
            except grpc.RpcError:
                pass  # the SuperLink notices the silence instead

    def _heartbeats(self) -> None:
        while not self._stop.wait(self.heartbeat_interval):
            node_id = self.node_id
            if node_id is None:
                continue
            self.apps.reap(self.run_idle_timeout, check_after_s=self.heartbeat_interval)
            try:
                self._stub.Heartbeat(
                    pb.HeartbeatRequest(node_id=node_id, heartbeat_interval=self.heartbeat_interval),
                    timeout=max(self.heartbeat_interval, 1.0),
                )
            except grpc.RpcError as err:
                _log.debug("Heartbeat failed: %s", err.code())

    def _reachable(self) -> None:
        self._failures = 0
        self._down_since = None
        self._backoff.reset()

    def _unreachable(self, err: grpc.RpcError) -> bool:
        """Wait before the next attempt; return False if it is time to give up."""
        if not is_retryable(err):
            _log.error("The SuperLink refused a request: %s: %s", err.code(), err.details())
        now = time.monotonic()
        self._down_since = self._down_since or now
        self._failures += 1
        if (self.max_retries is not None and self._failures > self.max_retries) or (
            self.max_wait_time is not None and now - self._down_since > self.max_wait_time
        ):
            _log.error("Giving up: the SuperLink at %s stayed unreachable", self.superlink)
            return False
        delay = self._backoff.next_delay()
        _log.info("SuperLink unreachable (%s); retrying in %.1fs", err.code(), delay)
        self._stop.wait(delay)
        return True

    # -- work -----------------------------------------------------------------------------

    def _call(self, method: Any, request: Any, timeout: float = 60.0) -> Any:
        return self._lost_if_unknown(lambda: method(request, timeout=timeout))

    @staticmethod
    def _lost_if_unknown(call: Callable[[], T]) -> T:
        try:
            return call()
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND and "not registered" in (err.details() or ""):
                raise _Lost from None
            raise

    def _serve_one(self) -> None:
        assert self.node_id is not None
        request = pb.PullInstructionsRequest(node_id=self.node_id, max_messages=1, wait_s=_POLL_S)
        # A future, so that stop() can cut the long poll short instead of waiting it out.
        self._poll = self._stub.PullInstructions.future(request, timeout=_POLL_S + 30.0)
        if self._stop.is_set():
            self._poll.cancel()
        # Sleep until the call ends: a future's result() wakes ten times a second to check,
        # which costs nothing for one node but swamps a process that pools many.
        done = threading.Event()
        self._poll.add_done_callback(lambda _: done.set())
        done.wait()
        try:
            response = self._lost_if_unknown(self._poll.result)
        except grpc.FutureCancelledError:
            return
        for wire in response.messages:
            self._handle(wire)
        if not response.messages and response.retry_after_s > 0:  # the SuperLink is busy
            self._stop.wait(min(response.retry_after_s, _POLL_S))

    def _handle(self, wire: Any) -> None:
        node_id = self.node_id
        assert node_id is not None
        try:
            header = decode_header(wire)
        except CodecError as err:
            _log.error("Dropping a malformed instruction: %s", err)
            return
        md = header.metadata
        duration = 0.0
        try:
            app = self.apps.app(md.run_id)
            context = self.apps.context(md.run_id, node_id)
            message = join_message(wire, self._download(wire))
        except _Lost:
            raise
        except Exception as err:  # a bundle that fails its checks or to load, a lost download
            reason = err.details() if isinstance(err, grpc.RpcError) else str(err)
            _log.error("Run %d: cannot run instruction %s: %s", md.run_id, md.message_id, reason)
            reply = header.reply(
                Error(
                    ErrorCode.CLIENT_APP_CRASHED,
                    f"SuperNode {node_id} could not run this instruction: "
                    f"{type(err).__name__}: {reason}",
                )
            )
        else:
            started = time.perf_counter()
            try:
                reply = app(message, context)
            except BaseException as exc:  # the ClientApp catches user errors; this is a crash
                reply = message.reply(Error(ErrorCode.CLIENT_APP_CRASHED, exception_error(exc).reason))
            duration = time.perf_counter() - started
        self._deliver(reply, duration)

    def _download(self, wire: Any) -> bytes:
        blob = inline_content(wire)
        if blob is not None:
            return blob
        ref, node_id = wire.content, self.node_id

        def stream(offset: int) -> Any:
            request = pb.PullObjectRequest(digest=ref.digest, offset=offset, node_id=node_id)
            return self._stub.PullObject(request)

        return download(stream, ref)

    def _deliver(self, reply: Message, duration: float) -> None:
        """Push ``reply`` until the SuperLink accepts or refuses it (or its TTL runs out)."""
        wire, blob = split_message(reply, duration_s=duration)
        if blob is not None and len(blob) <= INLINE_MAX_BYTES:  # one PushReplies carries it all
            wire.inline_content, blob = blob, None
        expires = time.monotonic() + reply.metadata.ttl
        backoff = Backoff(maximum=self._backoff.maximum)
        while not self._stop.is_set() and time.monotonic() < expires:
            node_id = self.node_id
            assert node_id is not None
            try:
                if blob is not None:
                    push_objects(self._stub, {wire.content.digest: blob}, node_id=node_id, timeout=None)
                request = pb.PushRepliesRequest(node_id=node_id, messages=[wire])
                (status,) = self._call(self._stub.PushReplies, request).results
                if status.accepted:
                    _log.info("Reply to %s accepted", reply.metadata.reply_to_message_id)
                else:
                    _log.warning("The SuperLink refused reply %s: %s", status.message_id, status.reason)
                return
            except grpc.RpcError as err:
                if not is_retryable(err):
                    _log.error("Dropping reply to %s: %s", reply.metadata.reply_to_message_id, err.details())
                    return
                self._stop.wait(backoff.next_delay())

    def _get_run(self, run_id: int) -> RunInfo:
        request = pb.GetRunRequest(run_id=run_id, node_id=self.node_id)
        return RunInfo.from_proto(self._call(self._stub.GetRun, request))

    def _fetch_bundle(self, run: RunInfo) -> bytes:
        node_id = self.node_id

        def stream(offset: int) -> Any:
            request = pb.FetchBundleRequest(node_id=node_id, run_id=run.run_id, offset=offset)
            return self._stub.FetchBundle(request)

        return download(stream, pb.ObjectRef(digest=run.bundle_digest, size=run.bundle_size))
