"""`ControlClient`: start, list, follow and stop runs on a SuperLink (its Control API).

The client side of the API that :mod:`fedlab.deploy.superlink.control` serves; this is
what ``fedlab run/ls/log/stop`` and ``Federation.deploy`` use. Example against a SuperLink
on loopback::

    from fedlab.deploy import ControlClient, build_bundle

    with ControlClient("127.0.0.1:9093") as control:
        run_id = control.create_run(build_bundle("app.client:app", "app.server:app"),
                                    {"num-server-rounds": 3}, attached=False)
        for event in control.stream_events(run_id):   # ends when the run has finished
            print(event)
        print(control.get_run(run_id).status)          # "completed"
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from fedlab.context import UserConfig
from fedlab.deploy import proto as pb
from fedlab.deploy.security.settings import ClientSecurity
from fedlab.deploy.transport.channel import check_address, is_retryable, open_channel, retry_call
from fedlab.deploy.transport.events_json import event_from_json
from fedlab.deploy.transport.rpc import Stub
from fedlab.deploy.transport.transfer import object_ref, push_objects
from fedlab.errors import DeployError
from fedlab.events import Event

__all__ = ["ControlClient", "NodeInfo", "RunInfo"]

T = TypeVar("T")
_log = logging.getLogger("fedlab.deploy")


@dataclass(frozen=True)
class RunInfo:
    """A run as the SuperLink reports it.

    ``status`` is ``running``, ``stopping``, ``completed``, ``failed`` or ``stopped``;
    ``finished_at`` and ``error`` are None until (and unless) they apply.
    """

    run_id: int
    status: str
    attached: bool
    run_config: UserConfig
    bundle_digest: str
    created_at: float
    finished_at: float | None
    error: str | None
    stop_requested: bool
    bundle_size: int = 0
    owner: str = ""

    @property
    def finished(self) -> bool:
        """True once the run has ended (completed, failed or stopped)."""
        return self.status in ("completed", "failed", "stopped")

    @classmethod
    def from_proto(cls, run: Any) -> RunInfo:
        """Build a RunInfo from a ``Run`` message."""
        return cls(
            run_id=run.run_id,
            status=run.status,
            attached=run.attached,
            run_config=json.loads(run.run_config_json or "{}"),
            bundle_digest=run.bundle.digest,
            created_at=run.created_at,
            finished_at=run.finished_at or None,
            error=run.error or None,
            stop_requested=run.stop_requested,
            bundle_size=run.bundle.size,
            owner=run.owner,
        )


@dataclass(frozen=True)
class NodeInfo:
    """A SuperNode as the SuperLink reports it."""

    node_id: int
    node_config: UserConfig
    online: bool
    last_seen: float


class ControlClient:
    """A connection to a SuperLink's Control API.

    Parameters
    ----------
    address
        The Control API's ``HOST:PORT`` (``--control-address`` of the SuperLink).
    timeout
        Seconds each call may take, and how long to keep retrying while the SuperLink
        cannot be reached.
    security
        TLS settings and the user's token; the default is TLS verified against the
        system's CAs with the token from ``FEDLAB_TOKEN``.
        :data:`~fedlab.deploy.security.INSECURE` for an ``--insecure`` SuperLink.
    """

    def __init__(self, address: str, *, timeout: float = 30.0, security: ClientSecurity | None = None) -> None:
        self.address = check_address(address)
        self.timeout = timeout
        self.security = security if security is not None else ClientSecurity.from_options()
        self._channel = open_channel(address, self.security)
        self._stub = Stub(self._channel, "Control", token=self.security.token)

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return retry_call(fn, within=self.timeout, what=f"The SuperLink at {self.address}")
        except grpc.RpcError as err:
            raise DeployError(f"The SuperLink refused the request: {err.details()}") from None

    def create_run(self, bundle: bytes, run_config: Mapping[str, Any] | None = None, *, attached: bool) -> int:
        """Upload ``bundle`` (if not there yet) and start a run; return its run id.

        Parameters
        ----------
        bundle
            An app bundle (:func:`fedlab.deploy.bundle.build_bundle`), or ``b""`` to ship
            no code (every SuperNode must then have been started with ``--app``).
        run_config
            The run's config: ``context.run_config`` on every node and in the ServerApp.
        attached
            True: the caller drives the run with a :class:`~fedlab.deploy.client.grpcgrid.GrpcGrid`
            and ends it with :meth:`finish_run`. False: the SuperLink starts the bundle's
            ServerApp in a process of its own.
        """
        request = pb.CreateRunRequest(run_config_json=json.dumps(dict(run_config or {})), attached=attached)
        if bundle:
            ref = object_ref(bundle)
            self._call(lambda: push_objects(self._stub, {ref.digest: bundle}, timeout=self.timeout))
            request.bundle.CopyFrom(ref)
        return int(self._call(lambda: self._stub.CreateRun(request, timeout=self.timeout)).run_id)

    def get_run(self, run_id: int) -> RunInfo:
        """Return the current state of ``run_id``."""
        run = self._call(lambda: self._stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=self.timeout))
        return RunInfo.from_proto(run)

    def list_runs(self) -> list[RunInfo]:
        """Return every run the SuperLink knows, oldest first."""
        response = self._call(lambda: self._stub.ListRuns(pb.ListRunsRequest(), timeout=self.timeout))
        return [RunInfo.from_proto(run) for run in response.runs]

    def list_nodes(self, *, include_offline: bool = False) -> list[NodeInfo]:
        """Return the SuperNodes that are online (or all that ever registered)."""
        response = self._call(
            lambda: self._stub.ListNodes(pb.ListNodesRequest(all=include_offline), timeout=self.timeout)
        )
        return [
            NodeInfo(n.node_id, json.loads(n.node_config_json or "{}"), n.online, n.last_seen)
            for n in response.nodes
        ]

    def wait_for_nodes(self, count: int, timeout: float) -> list[NodeInfo]:
        """Return the online nodes once there are at least ``count`` of them.

        Raises
        ------
        DeployError
            If fewer than ``count`` nodes are online after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            nodes = self.list_nodes()
            if len(nodes) >= count:
                return nodes
            if time.monotonic() >= deadline:
                raise DeployError(
                    f"Only {len(nodes)} SuperNode(s) connected to {self.address} after "
                    f"{timeout:.0f}s, but {count} are needed; start more SuperNodes."
                )
            time.sleep(0.2)

    def stream_events(self, run_id: int, *, follow: bool = True) -> Iterator[Event]:
        """Yield the events of ``run_id`` from its start; with ``follow``, until it finishes.

        A dropped connection is resumed where it broke. Events of types this fedlab does
        not know (from a newer ServerApp) are skipped.
        """
        for record in self._stream("StreamEvents", run_id, follow):
            try:
                yield event_from_json(record.event_json)
            except DeployError as err:
                _log.warning("Skipping an event of run %d: %s", run_id, err)

    def stream_logs(self, run_id: int, *, follow: bool = True) -> Iterator[str]:
        """Yield the output lines of ``run_id``'s ServerApp process (runs the SuperLink started)."""
        for record in self._stream("StreamLogs", run_id, follow):
            yield record.text

    def _stream(self, rpc: str, run_id: int, follow: bool) -> Iterator[Any]:
        after = 0
        down_since: float | None = None
        while True:
            request = pb.StreamRequest(run_id=run_id, after_seq=after, follow=follow)
            try:
                for record in getattr(self._stub, rpc)(request):
                    down_since = None
                    after = record.seq
                    yield record
                return
            except grpc.RpcError as err:
                if not is_retryable(err):
                    raise DeployError(f"The SuperLink refused the request: {err.details()}") from None
                now = time.monotonic()
                down_since = now if down_since is None else down_since
                if now - down_since > self.timeout:
                    raise DeployError(
                        f"Lost the SuperLink at {self.address} for {self.timeout:.0f}s while "
                        f"following run {run_id}; check that it is running."
                    ) from None
                time.sleep(0.5)  # then resume after the last record received

    def stop_run(self, run_id: int) -> None:
        """Ask ``run_id`` to stop after its current round (its process is ended if it lingers)."""
        self._call(lambda: self._stub.StopRun(pb.StopRunRequest(run_id=run_id), timeout=self.timeout))

    def finish_run(self, run_id: int, status: str, error: str | None = None) -> RunInfo:
        """Record how an attached run ended: ``completed``, ``failed`` or ``stopped``."""
        request = pb.FinishRunRequest(run_id=run_id, status=status, error=error or "")
        return RunInfo.from_proto(self._call(lambda: self._stub.FinishRun(request, timeout=self.timeout)).run)

    def wait_for_run(self, run_id: int, timeout: float) -> RunInfo:
        """Return ``run_id``'s state once it has finished.

        Raises
        ------
        DeployError
            If it is still going after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            run = self.get_run(run_id)
            if run.finished:
                return run
            if time.monotonic() >= deadline:
                raise DeployError(f"Run {run_id} is still {run.status} after {timeout:.0f}s.")
            time.sleep(0.2)

    def add_node_key(self, public_key: str, comment: str = "") -> str:
        """Allow a SuperNode's key (an OpenSSH line or PEM) on the Fleet API; return its fingerprint."""
        request = pb.AddNodeKeyRequest(public_key=public_key, comment=comment)
        return str(self._call(lambda: self._stub.AddNodeKey(request, timeout=self.timeout)).fingerprint)

    def remove_node_key(self, fingerprint: str) -> bool:
        """Remove a node key by fingerprint; return False if no such key was allowed."""
        request = pb.RemoveNodeKeyRequest(fingerprint=fingerprint)
        return bool(self._call(lambda: self._stub.RemoveNodeKey(request, timeout=self.timeout)).removed)

    def list_node_keys(self) -> list[Any]:
        """The allowed node keys (``NodeKey`` messages: public_key, fingerprint, comment, ...)."""
        request = pb.ListNodeKeysRequest()
        return list(self._call(lambda: self._stub.ListNodeKeys(request, timeout=self.timeout)).keys)

    def add_user(self, name: str, role: str) -> str:
        """Add a Control API user with ``role`` (admin, user, reader); return its token (shown once)."""
        request = pb.AddUserRequest(name=name, role=role)
        return str(self._call(lambda: self._stub.AddUser(request, timeout=self.timeout)).token)

    def remove_user(self, name: str) -> bool:
        """Remove a user; return False if there was none of that name."""
        request = pb.RemoveUserRequest(name=name)
        return bool(self._call(lambda: self._stub.RemoveUser(request, timeout=self.timeout)).removed)

    def list_users(self) -> list[tuple[str, str]]:
        """Every user as (name, role)."""
        response = self._call(lambda: self._stub.ListUsers(pb.ListUsersRequest(), timeout=self.timeout))
        return [(user.name, user.role) for user in response.users]

    def whoami(self) -> tuple[str, str]:
        """(name, role) of the credentials this client presents."""
        user = self._call(lambda: self._stub.WhoAmI(pb.WhoAmIRequest(), timeout=self.timeout))
        return str(user.name), str(user.role)

    @property
    def serverappio_address(self) -> str:
        """Where a GrpcGrid reaches this SuperLink's ServerAppIo API (same host, its port)."""
        info = self._call(lambda: self._stub.GetInfo(pb.GetInfoRequest(), timeout=self.timeout))
        host = self.address.rpartition(":")[0]
        return f"{host}:{info.serverappio_port}"

    def close(self) -> None:
        """Close the connection."""
        self._channel.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
