"""``python -m fedlab.deploy.superlink`` (and ``fedlab superlink``): run a SuperLink."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from fedlab.deploy.superlink.nodes import DEFAULT_PATIENCE
from fedlab.deploy.superlink.server import (
    DEFAULT_CONTROL_ADDRESS,
    DEFAULT_FLEET_ADDRESS,
    DEFAULT_MAX_LONG_POLLS,
    DEFAULT_MAX_OBJECT_SIZE,
    DEFAULT_SERVERAPPIO_ADDRESS,
    SuperLink,
)
from fedlab.deploy.security.keys import load_public_keys, write_private
from fedlab.deploy.security.settings import read_token
from fedlab.deploy.security.tls import ServerTls
from fedlab.deploy.superlink.state import DEFAULT_DRIVER_GRACE
from fedlab.errors import DeployError, FedlabError

__all__ = ["build_parser", "main"]

INSECURE_WARNING = (
    "WARNING: --insecure: the SuperLink accepts unencrypted, unauthenticated connections. "
    "Anyone who can reach the Control API can run code on every SuperNode. Use it only on "
    "loopback or a network you trust."
)


UNSIGNED_WARNING = (
    "WARNING: --insecure-allow-unsigned: this SuperLink launches ServerApp code that nobody it "
    "trusts signed. Use it only when everyone who can start runs is trusted."
)


def build_parser(prog: str = "python -m fedlab.deploy.superlink") -> argparse.ArgumentParser:
    """Return the argument parser of the SuperLink command."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a SuperLink: the server SuperNodes, ServerApps and the CLI connect to.",
    )
    parser.add_argument("--fleet-address", default=DEFAULT_FLEET_ADDRESS,
                        help="HOST:PORT for SuperNodes (Fleet API); port 0 picks a free one")  # fmt: skip
    parser.add_argument("--serverappio-address", default=DEFAULT_SERVERAPPIO_ADDRESS,
                        help="HOST:PORT for ServerApps (ServerAppIo API)")  # fmt: skip
    parser.add_argument("--control-address", default=DEFAULT_CONTROL_ADDRESS,
                        help="HOST:PORT for the CLI and notebooks (Control API)")  # fmt: skip
    state = parser.add_mutually_exclusive_group()
    state.add_argument("--state-dir", help="keep state in SQLite and files here (the default "
                       "is ./superlink-state); it survives restarts")  # fmt: skip
    state.add_argument("--state", choices=["memory"], help="keep state in memory only")
    parser.add_argument("--heartbeat-patience", type=float, default=DEFAULT_PATIENCE,
                        help="heartbeat intervals a SuperNode may miss before it counts as offline")  # fmt: skip
    parser.add_argument("--max-object-size", type=int, default=DEFAULT_MAX_OBJECT_SIZE,
                        help="largest message content in bytes that may be uploaded")  # fmt: skip
    parser.add_argument("--stop-grace", type=float, default=10.0,
                        help="seconds a stopped run may take to finish its round before its "
                        "ServerApp process is terminated")  # fmt: skip
    parser.add_argument("--driver-grace", type=float, default=DEFAULT_DRIVER_GRACE,
                        help="seconds an attached run may go without a call from the process "
                        "driving it before it is marked failed")  # fmt: skip
    parser.add_argument("--max-long-polls", type=int, default=DEFAULT_MAX_LONG_POLLS,
                        help="SuperNodes that may wait for work at once, each holding a server "
                        "thread; more are told to pull again a second later")  # fmt: skip
    security = parser.add_argument_group(
        "security", "TLS on all three APIs, SuperNodes admitted by key, users by token. "
        "`fedlab certs DIR` and `fedlab keys NAME` make development files."
    )  # fmt: skip
    security.add_argument("--tls-cert", metavar="FILE",
                          help="the server certificate chain, PEM (e.g. DIR/server.pem from `fedlab certs`)")  # fmt: skip
    security.add_argument("--tls-key", metavar="FILE", help="the server certificate's private key, PEM")
    security.add_argument("--node-keys", metavar="FILE", action="append", default=[],
                          help="SuperNode public keys to admit, one OpenSSH line each (repeatable); "
                          "more with `fedlab node add`")  # fmt: skip
    security.add_argument("--admin-token-file", metavar="FILE",
                          help="the admin's Control API token; made (0600) if missing. Default: "
                          "STATE_DIR/admin.token")  # fmt: skip
    security.add_argument("--audit-log", metavar="FILE",
                          help="append the audit log (JSONL) here (default STATE_DIR/audit.jsonl)")  # fmt: skip
    security.add_argument("--trusted-key", metavar="FILE", action="append", default=[],
                          help="an Ed25519 public key (PEM or a .pub of `fedlab keys`); the ServerApps "
                          "this SuperLink launches must be signed for their run by one of them (repeatable)")  # fmt: skip
    security.add_argument("--insecure-allow-unsigned", action="store_true",
                          help="launch ServerApp bundles without a trusted signature (only for code you trust)")  # fmt: skip
    security.add_argument("--insecure", action="store_true",
                          help="plaintext and no authentication on every API (only on loopback or a "
                          "network you trust)")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m fedlab.deploy.superlink") -> int:
    """Run a SuperLink until SIGTERM or Ctrl-C; return the exit status.

    Prints ``superlink ready fleet=HOST:PORT serverappio=HOST:PORT control=HOST:PORT`` on
    stdout once listening (with the real ports when 0 was asked for).

    ``prog`` is the command name its usage and help show.
    """
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.insecure and (args.tls_cert or args.tls_key):
        print("error: --insecure turns TLS off; drop it or drop --tls-cert/--tls-key.", file=sys.stderr)
        return 2
    if not args.insecure and not (args.tls_cert and args.tls_key):
        print(
            "error: the SuperLink serves TLS: pass --tls-cert FILE --tls-key FILE (`fedlab certs DIR` "
            "makes development files), or --insecure for plaintext without authentication.",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.umask(0o077)  # state, logs and tokens are the operator's alone
    state_dir = None if args.state == "memory" else (args.state_dir or "superlink-state")
    try:
        tls = None if args.insecure else ServerTls.from_files(args.tls_cert, args.tls_key)
        node_keys = load_public_keys(args.node_keys)
        trusted_keys = load_public_keys(args.trusted_key)
        token = None if args.insecure else _admin_token(args.admin_token_file, state_dir)
    except FedlabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.insecure:
        print(INSECURE_WARNING, file=sys.stderr, flush=True)
    if args.insecure_allow_unsigned:
        print(UNSIGNED_WARNING, file=sys.stderr, flush=True)
    superlink = SuperLink(
        fleet_address=args.fleet_address,
        serverappio_address=args.serverappio_address,
        control_address=args.control_address,
        state_dir=state_dir,
        heartbeat_patience=args.heartbeat_patience,
        max_object_size=args.max_object_size,
        stop_grace=args.stop_grace,
        tls=tls,
        insecure=args.insecure,
        node_keys=node_keys,
        admin_token=token,
        audit_log=args.audit_log,
        trusted_keys=trusted_keys,
        allow_unsigned=args.insecure_allow_unsigned,
        driver_grace=args.driver_grace,
        max_long_polls=args.max_long_polls,
    )
    try:
        superlink.start()
    except FedlabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    shutdown = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: shutdown.set())
    print(superlink.ready_line(), flush=True)
    try:
        while not shutdown.wait(1.0):  # a timeout, so that signal handlers get to run
            pass
    finally:
        superlink.stop()
    return 0


def _admin_token(path: str | None, state_dir: str | None) -> str:
    """Read the admin token file, or make it (0600) with a fresh token if it is missing."""
    from fedlab.deploy.superlink.credentials import new_token

    if path is None:
        if state_dir is None:
            raise DeployError("With --state memory, say where the admin token is: --admin-token-file FILE.")
        Path(state_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
        path = str(Path(state_dir) / "admin.token")
    if Path(path).exists():
        return read_token(path)
    token = new_token()
    write_private(path, (token + "\n").encode())
    print(f"superlink admin token written to {path}", file=sys.stderr, flush=True)
    return token
