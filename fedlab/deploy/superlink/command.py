"""``python -m fedlab.deploy.superlink`` (and ``fedlab superlink``): run a SuperLink."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from fedlab.deploy.superlink.nodes import DEFAULT_PATIENCE
from fedlab.deploy.superlink.server import (
    DEFAULT_CONTROL_ADDRESS,
    DEFAULT_FLEET_ADDRESS,
    DEFAULT_MAX_OBJECT_SIZE,
    DEFAULT_SERVERAPPIO_ADDRESS,
    SuperLink,
)
from fedlab.deploy.superlink.state import DEFAULT_DRIVER_GRACE
from fedlab.deploy.transport.channel import tls_not_available
from fedlab.errors import FedlabError

__all__ = ["build_parser", "main"]

INSECURE_WARNING = (
    "WARNING: --insecure: the SuperLink accepts unencrypted, unauthenticated connections. "
    "Anyone who can reach the Control API can run code on every SuperNode. Use it only on "
    "loopback or a network you trust."
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
    security = parser.add_argument_group(
        "security", "TLS and SuperNode authentication are not implemented yet: --insecure is "
        "required, and the options below are refused until they are."
    )  # fmt: skip
    security.add_argument("--insecure", action="store_true",
                          help="accept plaintext, unauthenticated connections (required for now)")  # fmt: skip
    security.add_argument("--ssl-certfile", help="server certificate (not implemented yet)")
    security.add_argument("--ssl-keyfile", help="server private key (not implemented yet)")
    security.add_argument("--ssl-ca-certfile", help="CA certificate (not implemented yet)")
    security.add_argument("--enable-supernode-auth", action="store_true",
                          help="accept only SuperNodes with registered keys (not implemented yet)")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m fedlab.deploy.superlink") -> int:
    """Run a SuperLink until SIGTERM or Ctrl-C; return the exit status.

    Prints ``superlink ready fleet=HOST:PORT serverappio=HOST:PORT control=HOST:PORT`` on
    stdout once listening (with the real ports when 0 was asked for).

    ``prog`` is the command name its usage and help show.
    """
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    for flag in ("ssl_certfile", "ssl_keyfile", "ssl_ca_certfile", "enable_supernode_auth"):
        if getattr(args, flag):
            print(f"error: {tls_not_available('--' + flag.replace('_', '-'))}", file=sys.stderr)
            return 2
    if not args.insecure:
        print(
            "error: TLS is not implemented yet, so the SuperLink only runs with --insecure; "
            "pass it explicitly to accept plaintext connections.",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(INSECURE_WARNING, file=sys.stderr, flush=True)
    state_dir = None if args.state == "memory" else (args.state_dir or "superlink-state")
    superlink = SuperLink(
        fleet_address=args.fleet_address,
        serverappio_address=args.serverappio_address,
        control_address=args.control_address,
        state_dir=state_dir,
        heartbeat_patience=args.heartbeat_patience,
        max_object_size=args.max_object_size,
        stop_grace=args.stop_grace,
        driver_grace=args.driver_grace,
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
