"""`SuperLink`: the three gRPC services, their state, and the housekeeping thread."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fedlab.deploy import proto as pb
from fedlab.deploy.security.access import Gate, NodeGate, OpenGate, TokenGate
from fedlab.deploy.security.audit import AuditLog
from fedlab.deploy.security.requests import NodeVerifier
from fedlab.deploy.security.tls import ServerTls
from fedlab.deploy.superlink.control import ControlServicer
from fedlab.deploy.superlink._ratelog import refusals
from fedlab.deploy.superlink.credentials import Credentials
from fedlab.deploy.superlink.fleet import FleetServicer
from fedlab.deploy.superlink.launcher import ServerAppLauncher
from fedlab.deploy.superlink.nodes import DEFAULT_PATIENCE
from fedlab.deploy.superlink.quotas import UploadLimits
from fedlab.deploy.superlink.serverappio import ServerAppIoServicer
from fedlab.deploy.superlink.state import DEFAULT_DRIVER_GRACE, LinkState
from fedlab.deploy.transport.channel import check_address, open_server
from fedlab.deploy.transport.rpc import service_handler
from fedlab.errors import DeployError

__all__ = [
    "DEFAULT_CONTROL_ADDRESS",
    "DEFAULT_FLEET_ADDRESS",
    "DEFAULT_MAX_LONG_POLLS",
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
#: SuperNodes that may wait for work at once (one sleeping thread each, created as needed).
DEFAULT_MAX_LONG_POLLS = 4096
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
    tls
        The server certificate chain and key (TLS on all three APIs). Required unless
        ``insecure``.
    insecure
        Plaintext and no authentication at all: anyone who reaches an API may use it.
        Only for loopback or a network you trust.
    node_keys
        SuperNode public keys admitted on the Fleet API (more can be added at run time
        with ``fedlab node add``); deny by default.
    admin_token
        The bootstrap admin's token for the Control API; None makes a random one
        (:attr:`admin_token`).
    audit_log
        Where to append the audit log (JSONL); None: ``STATE_DIR/audit.jsonl`` with a
        state directory, else no log.
    trusted_keys, allow_unsigned
        The ServerApp of a run this SuperLink launches must be signed for that run by one
        of ``trusted_keys``; ``allow_unsigned`` launches unsigned bundles (with neither,
        every launched run is refused; attached runs are unaffected).
    driver_grace
        Seconds an attached run may go without any ServerAppIo call before it is marked
        failed (the process driving it died).
    max_workers
        Threads serving each API; at most half of the Fleet API's may serve object uploads.
    max_long_polls
        SuperNodes that may wait for work at once (PullInstructions long polls). The Fleet
        API gets that many threads beyond ``max_workers``, so waiting nodes never hold
        the threads other calls need; each wait sleeps until its own node has work. A
        node past the limit is answered at once and pulls again a second later.
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
        tls: ServerTls | None = None,
        insecure: bool = False,
        node_keys: Sequence[Ed25519PublicKey] = (),
        admin_token: str | None = None,
        audit_log: str | os.PathLike[str] | None = None,
        trusted_keys: Sequence[Ed25519PublicKey] | None = None,
        allow_unsigned: bool = False,
        driver_grace: float = DEFAULT_DRIVER_GRACE,
        upload_limits: UploadLimits | None = None,
        max_long_polls: int = DEFAULT_MAX_LONG_POLLS,
    ) -> None:
        if max_long_polls < 0:
            raise DeployError(f"max_long_polls must be 0 or more, got {max_long_polls}.")
        if tls is None and not insecure:
            raise DeployError(
                "A SuperLink serves TLS: pass tls=ServerTls.from_files(cert, key) (--tls-cert/--tls-key; "
                "`fedlab certs DIR` makes development files), or insecure=True (--insecure) for "
                "plaintext without authentication on a network you trust."
            )
        from fedlab.deploy.superlink.credentials import new_token

        self.tls = None if insecure else tls
        self.insecure = insecure
        self.node_keys = list(node_keys)
        self.admin_token = None if insecure else (admin_token or new_token())
        self.audit_log = audit_log
        self.trusted_keys = list(trusted_keys) if trusted_keys else None
        self.allow_unsigned = allow_unsigned
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
        self.max_long_polls = max_long_polls
        self.driver_grace = driver_grace
        self.upload_limits = upload_limits or UploadLimits()
        self.addresses: dict[str, str] = {}
        self.state: LinkState | None = None
        self.launcher: ServerAppLauncher | None = None
        self._servers: list[Any] = []
        self._stopped = threading.Event()
        self._janitor: threading.Thread | None = None
        self.audit: AuditLog = AuditLog(None)
        self.credentials: Credentials | None = None
        #: The Fleet API's servicer once started (its ``long_polls`` says how many wait now).
        self.fleet_servicer: FleetServicer | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def start(self) -> SuperLink:
        """Open the state and start listening.

        Raises
        ------
        DeployError
            If an address cannot be bound (in use?) or the state directory is taken.
        """
        state = self.state = LinkState(
            self.state_dir, patience=self.heartbeat_patience, driver_grace=self.driver_grace
        )
        try:
            if self.state_dir is not None:
                _private_tree(Path(self.state_dir))
            audit_path = self.audit_log
            if audit_path is None and self.state_dir is not None:
                audit_path = Path(self.state_dir) / "audit.jsonl"
            self.audit = AuditLog(audit_path)
            credentials = self.credentials = Credentials(
                state.db, admin_token=self.admin_token, fixed_node_keys=self.node_keys
            )
            servers = {
                name: open_server(self.max_workers + (self.max_long_polls if name == "fleet" else 0))
                for name in self._requested
            }
            for name, server in servers.items():
                port = _bind(server, self._requested[name], self.tls)
                host = self._requested[name].rpartition(":")[0]
                self.addresses[name] = f"{host}:{port}"
            self.launcher = ServerAppLauncher(
                state, _reachable(self.addresses["serverappio"]), stop_grace=self.stop_grace,
                security_args=self._serverapp_args(), trusted_keys=self.trusted_keys,
                allow_unsigned=self.allow_unsigned, audit=self.audit,
            )  # fmt: skip
            gates: dict[str, Gate] = {name: OpenGate() for name in servers}
            if not self.insecure:
                gates = {
                    "fleet": NodeGate(NodeVerifier(credentials.node_allowed), credentials.bound_node),
                    "serverappio": TokenGate(credentials.serverappio_caller, "ServerAppIo"),
                    "control": TokenGate(credentials.control_caller, "Control"),
                }
            fleet = self.fleet_servicer = FleetServicer(state, max_object_size=self.max_object_size, limits=self.upload_limits,
                                  max_workers=self.max_workers, max_long_polls=self.max_long_polls,
                                  credentials=credentials, audit=self.audit)  # fmt: skip
            serverappio = ServerAppIoServicer(state, max_object_size=self.max_object_size, credentials=credentials)
            control = ControlServicer(state, self.launcher, max_bundle_size=_MAX_BUNDLE_SIZE, info=self.info,
                                      credentials=credentials, audit=self.audit)  # fmt: skip
            for name, service, servicer in (
                ("fleet", "Fleet", fleet), ("serverappio", "ServerAppIo", serverappio), ("control", "Control", control)
            ):  # fmt: skip
                servers[name].add_generic_rpc_handlers(
                    (service_handler(service, servicer, gates[name], on_refused=self._refused),)
                )
            self.launcher.adopt_orphans()  # before serving, so no new run is mistaken for one
            for server in servers.values():
                server.start()
            self._servers = list(servers.values())
        except BaseException:
            self.audit.close()
            state.close()
            raise
        self._janitor = threading.Thread(target=self._sweep, name="superlink-janitor", daemon=True)
        self._janitor.start()
        _log.info("SuperLink listening: %s", self.ready_line())
        return self

    def _serverapp_args(self) -> list[str]:
        """How launched ServerApps connect: TLS trusting this SuperLink's own chain."""
        if self.tls is None:
            return ["--insecure"]
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fedlab-superlink-")
        root = Path(self._tmp.name) / "root.pem"
        root.write_bytes(self.tls.own_root())
        args = ["--root-cert", str(root)]
        name = _certificate_name(self.tls.certificate_chain)
        return args if name is None else [*args, "--tls-name", name]

    def _refused(self, method: str, peer: str, reason: str) -> None:
        """Audit a call without valid credentials and log it (one line, rate-limited)."""
        self.audit.record("auth.refused", "unauthenticated", method=method, peer=peer, reason=reason)
        refusals.refused(f"unauthenticated {method.rpartition('/')[2]}", peer.rpartition(":")[0], reason)

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
        self.audit.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> SuperLink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _sweep(self) -> None:
        # Often enough that a silent attached run fails about driver_grace after its last call.
        while not self._stopped.wait(min(_SWEEP_S, max(self.driver_grace / 4, 0.1))):
            try:
                assert self.state is not None
                self.state.sweep()
            except Exception:  # housekeeping must never take the SuperLink down
                _log.exception("State sweep failed; retrying later")


def _bind(server: Any, address: str, tls: ServerTls | None) -> int:
    try:
        port = server.add_insecure_port(address) if tls is None else server.add_secure_port(address, tls.credentials())
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


def _private_tree(directory: Path) -> None:
    """Make the state directory 0700 and what is in it owner-only (files 0600)."""
    directory.chmod(0o700)
    for path in directory.rglob("*"):
        if path.is_symlink():
            continue
        path.chmod(0o700 if path.is_dir() else 0o600)


def _certificate_name(chain: bytes) -> str | None:
    """The name a client on loopback must expect: None if the certificate covers 127.0.0.1."""
    import ipaddress

    from cryptography import x509

    try:
        certificate = x509.load_pem_x509_certificate(chain)
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    if ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress):
        return None
    dns = names.get_values_for_type(x509.DNSName)
    return dns[0] if dns else None
