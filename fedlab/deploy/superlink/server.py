"""`SuperLink`: the three gRPC services, their state, and the housekeeping thread."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from fedlab.deploy import proto as pb
from fedlab.deploy.superlink.control import ControlServicer
from fedlab.deploy.superlink.fleet import FleetServicer
from fedlab.deploy.superlink.launcher import ServerAppLauncher
from fedlab.deploy.superlink.nodes import DEFAULT_PATIENCE
from fedlab.deploy.superlink.quotas import UploadLimits
from fedlab.deploy.superlink.serverappio import ServerAppIoServicer
from fedlab.deploy.superlink.state import LinkState
from fedlab.deploy.transport.channel import check_address, open_server
from fedlab.deploy.transport.rpc import service_handler
from fedlab.errors import DeployError

__all__ = [
    "DEFAULT_CONTROL_ADDRESS",
    "DEFAULT_FLEET_ADDRESS",
    "DEFAULT_MAX_OBJECT_SIZE",
    "DEFAULT_SERVERAPPIO_ADDRESS",
    "SuperLink",
]

_log = logging.getLogger("fedlab.superlink")

#: SuperNodes connect here, usually from other machines.
DEFAULT_FLEET_ADDRESS = "0.0.0.0:9092"
#: ServerApps connect here; loopback by default (runs started by this SuperLink).
DEFAULT_SERVERAPPIO_ADDRESS = "127.0.0.1:9091"
#: The CLI connects here; loopback by default, as it can start runs (that is, ship code).
DEFAULT_CONTROL_ADDRESS = "127.0.0.1:9093"
#: The largest object (one message's content) accepted: 8 GiB. A model of a few GiB fits;
#: one node cannot make the SuperLink store tens of GiB (its uploads are further capped per
#: run, see :mod:`fedlab.deploy.superlink.quotas`). Raise it with --max-object-size.
DEFAULT_MAX_OBJECT_SIZE = 8 * 2**30
_MAX_BUNDLE_SIZE = 64 * 2**20
_SWEEP_S = 10.0


class SuperLink:
    """A SuperLink: Fleet, ServerAppIo and Control APIs on three addresses, one state.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. A port of 0 picks a
    free port; :attr:`addresses` gives the real ones once started.

    Parameters
    ----------
    fleet_address, serverappio_address, control_address
        ``HOST:PORT`` to listen on for each API.
    state_dir
        Keep state in SQLite and files here (survives restarts); None keeps it in memory.
    heartbeat_patience
        Heartbeat intervals a node may miss before it counts as offline.
    max_object_size
        The largest message content (bytes) a node or ServerApp may upload.
    stop_grace
        Seconds a run asked to stop may take before its ServerApp process is terminated.
    max_workers
        Threads serving each API; at most half of the Fleet API's may serve object uploads.
    upload_limits
        Streams, bytes and object sizes each SuperNode may upload, and the idle deadline
        of object streams (:class:`~fedlab.deploy.superlink.quotas.UploadLimits`).
    """

    def __init__(
        self,
        *,
        fleet_address: str = DEFAULT_FLEET_ADDRESS,
        serverappio_address: str = DEFAULT_SERVERAPPIO_ADDRESS,
        control_address: str = DEFAULT_CONTROL_ADDRESS,
        state_dir: str | os.PathLike[str] | None = None,
        heartbeat_patience: float = DEFAULT_PATIENCE,
        max_object_size: int = DEFAULT_MAX_OBJECT_SIZE,
        stop_grace: float = 10.0,
        max_workers: int = 64,
        upload_limits: UploadLimits | None = None,
    ) -> None:
        self._requested = {
            "fleet": check_address(fleet_address),
            "serverappio": check_address(serverappio_address),
            "control": check_address(control_address),
        }
        self.state_dir = state_dir
        self.heartbeat_patience = heartbeat_patience
        self.max_object_size = max_object_size
        self.stop_grace = stop_grace
        self.max_workers = max_workers
        self.upload_limits = upload_limits or UploadLimits()
        self.addresses: dict[str, str] = {}
        self.state: LinkState | None = None
        self.launcher: ServerAppLauncher | None = None
        self._servers: list[Any] = []
        self._stopped = threading.Event()
        self._janitor: threading.Thread | None = None

    def start(self) -> SuperLink:
        """Open the state and start listening.

        Raises
        ------
        DeployError
            If an address cannot be bound (in use?) or the state directory is taken.
        """
        state = self.state = LinkState(self.state_dir, patience=self.heartbeat_patience)
        try:
            servers = {name: open_server(self.max_workers) for name in self._requested}
            for name, server in servers.items():
                port = _bind(server, self._requested[name])
                host = self._requested[name].rpartition(":")[0]
                self.addresses[name] = f"{host}:{port}"
            self.launcher = ServerAppLauncher(
                state, _reachable(self.addresses["serverappio"]), stop_grace=self.stop_grace
            )
            fleet = FleetServicer(
                state, max_object_size=self.max_object_size, limits=self.upload_limits,
                max_workers=self.max_workers,
            )  # fmt: skip
            servers["fleet"].add_generic_rpc_handlers((service_handler("Fleet", fleet),))
            servers["serverappio"].add_generic_rpc_handlers(
                (service_handler(
                    "ServerAppIo", ServerAppIoServicer(state, max_object_size=self.max_object_size)
                ),)
            )  # fmt: skip
            control = ControlServicer(state, self.launcher, max_bundle_size=_MAX_BUNDLE_SIZE, info=self.info)
            servers["control"].add_generic_rpc_handlers((service_handler("Control", control),))
            for server in servers.values():
                server.start()
            self._servers = list(servers.values())
        except BaseException:
            state.close()
            raise
        self._janitor = threading.Thread(target=self._sweep, name="superlink-janitor", daemon=True)
        self._janitor.start()
        _log.info("SuperLink listening: %s", self.ready_line())
        return self

    def info(self) -> Any:
        """The ``SuperLinkInfo`` message (ports, version, persistence)."""
        from fedlab.version import __version__

        port = {name: int(address.rpartition(":")[2]) for name, address in self.addresses.items()}
        return pb.SuperLinkInfo(
            version=__version__,
            fleet_port=port["fleet"],
            serverappio_port=port["serverappio"],
            control_port=port["control"],
            persistent=self.state is not None and self.state.persistent,
        )

    def ready_line(self) -> str:
        """The line printed once listening: ``superlink ready fleet=... serverappio=... control=...``."""
        a = self.addresses
        return f"superlink ready fleet={a['fleet']} serverappio={a['serverappio']} control={a['control']}"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`stop` was called (or ``timeout``); return True if stopped."""
        return self._stopped.wait(timeout)

    def stop(self, grace: float = 1.0) -> None:
        """Stop ServerApp processes and servers, and close the state. Safe to call twice."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.launcher is not None:
            self.launcher.shutdown()
        if self.state is not None:
            self.state.db.wake()
        events = [server.stop(grace) for server in self._servers]
        for event in events:
            event.wait()
        if self._janitor is not None:
            self._janitor.join()
        if self.state is not None:
            self.state.close()

    def __enter__(self) -> SuperLink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _sweep(self) -> None:
        while not self._stopped.wait(_SWEEP_S):
            try:
                assert self.state is not None
                self.state.sweep()
            except Exception:  # housekeeping must never take the SuperLink down
                _log.exception("State sweep failed; retrying later")


def _bind(server: Any, address: str) -> int:
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as err:  # newer grpcio raises instead of returning 0
        port = 0
        cause: Exception | None = err
    else:
        cause = None
    if not port:
        raise DeployError(
            f"Cannot listen on {address}: the port is in use or the host is not an address of "
            "this machine. Pick another port (0 picks a free one)."
        ) from cause
    return int(port)


def _reachable(address: str) -> str:
    # A wildcard bind is reachable on loopback, which is where ServerApp processes run.
    host, _, port = address.rpartition(":")
    if host in ("0.0.0.0", "[::]", "::", ""):
        host = "127.0.0.1"
    return f"{host}:{port}"
