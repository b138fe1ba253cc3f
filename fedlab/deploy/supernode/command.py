"""``python -m fedlab.deploy.supernode`` (and ``fedlab supernode``): run a SuperNode."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from fedlab.deploy.supernode.apps import load_app, parse_node_config
from fedlab.deploy.supernode.node import SuperNode
from fedlab.deploy.transport.channel import tls_not_available
from fedlab.errors import DeployError, FedlabError

__all__ = ["build_parser", "load_trusted_keys", "main"]

UNSIGNED_WARNING = (
    "WARNING: --insecure-allow-unsigned: this SuperNode runs bundles nobody it trusts signed, "
    "i.e. any code a SuperLink sends it. Use it only for development on a network you trust."
)
INSECURE_WARNING = (
    "WARNING: --insecure: this SuperNode talks to the SuperLink unencrypted and does not "
    "authenticate it. Use it only on loopback or a network you trust."
)


def build_parser(prog: str = "python -m fedlab.deploy.supernode") -> argparse.ArgumentParser:
    """Return the argument parser of the SuperNode command."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a SuperNode: pull instructions from a SuperLink, run the ClientApp, reply.",
    )
    parser.add_argument("--superlink", default="127.0.0.1:9092",
                        help="the SuperLink's Fleet API, HOST:PORT (default 127.0.0.1:9092)")  # fmt: skip
    parser.add_argument("--node-config", default="",
                        help='this node\'s settings, e.g. "partition-id=0 num-partitions=3"')  # fmt: skip
    parser.add_argument("--app", metavar="PACKAGE.MODULE:ATTR",
                        help="run this ClientApp for every run (importable from the current "
                        "directory) instead of the code runs ship")  # fmt: skip
    parser.add_argument("--trusted-key", action="append", default=[], metavar="FILE",
                        help="a PEM Ed25519 public key; when given, only bundles signed by one "
                        "of these keys are run (repeatable)")  # fmt: skip
    parser.add_argument("--insecure-allow-unsigned", action="store_true",
                        help="without --trusted-key, run bundles nobody signed (development only; "
                        "warns). Without either, the SuperNode refuses to start")  # fmt: skip
    parser.add_argument("--run-cpu-seconds", type=float, metavar="S",
                        help="CPU-time limit of each run's ClientApp process (default: none)")
    parser.add_argument("--run-memory-mb", type=int, metavar="MB",
                        help="memory (address space) limit of each run's ClientApp process "
                        "(default: none)")  # fmt: skip
    parser.add_argument("--heartbeat-interval", type=float, default=10.0,
                        help="seconds between heartbeats (default 10)")  # fmt: skip
    parser.add_argument("--max-retries", type=int,
                        help="give up after this many failed attempts to reach the SuperLink "
                        "(default: retry forever)")  # fmt: skip
    parser.add_argument("--max-wait-time", type=float,
                        help="give up after the SuperLink was unreachable this many seconds")
    parser.add_argument("--max-backoff", type=float, default=20.0,
                        help="longest pause between reconnection attempts (default 20 s)")  # fmt: skip
    security = parser.add_argument_group(
        "security", "TLS and SuperNode authentication are not implemented yet: --insecure is "
        "required, and the options below are refused until they are."
    )  # fmt: skip
    security.add_argument("--insecure", action="store_true",
                          help="connect without TLS (required for now)")  # fmt: skip
    security.add_argument("--root-certificates", help="CA certificate of the SuperLink (not implemented yet)")
    security.add_argument("--auth-supernode-private-key", help="this node's key (not implemented yet)")
    return parser


def load_trusted_keys(paths: Sequence[str]) -> list[Any]:
    """Read PEM Ed25519 public keys from ``paths``.

    Raises
    ------
    DeployError
        If a file cannot be read or does not hold an Ed25519 public key.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    keys = []
    for path in paths:
        try:
            with open(path, "rb") as file:
                key = load_pem_public_key(file.read())
        except (OSError, ValueError) as err:
            raise DeployError(f"Cannot read the trusted key {path}: {err}") from err
        if not isinstance(key, Ed25519PublicKey):
            raise DeployError(f"{path} holds a {type(key).__name__}; trusted keys are Ed25519.")
        keys.append(key)
    return keys


def main(argv: Sequence[str] | None = None, prog: str = "python -m fedlab.deploy.supernode") -> int:
    """Run a SuperNode until SIGTERM or Ctrl-C; return the exit status.

    Prints ``supernode registered node_id=N superlink=HOST:PORT`` on stdout each time it
    registers.

    ``prog`` is the command name its usage and help show.
    """
    args = build_parser(prog).parse_args(argv)
    for flag in ("root_certificates", "auth_supernode_private_key"):
        if getattr(args, flag):
            print(f"error: {tls_not_available('--' + flag.replace('_', '-'))}", file=sys.stderr)
            return 2
    if not args.insecure:
        print(
            "error: TLS is not implemented yet, so a SuperNode only runs with --insecure; "
            "pass it explicitly to connect without encryption.",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(INSECURE_WARNING, file=sys.stderr, flush=True)
    if args.insecure_allow_unsigned:
        print(UNSIGNED_WARNING, file=sys.stderr, flush=True)
    try:
        node = SuperNode(
            args.superlink,
            node_config=parse_node_config(args.node_config),
            app=load_app(args.app) if args.app else None,
            heartbeat_interval=args.heartbeat_interval,
            max_retries=args.max_retries,
            max_wait_time=args.max_wait_time,
            max_backoff=args.max_backoff,
            trusted_keys=load_trusted_keys(args.trusted_key) or None,
            allow_unsigned=args.insecure_allow_unsigned,
            run_cpu_seconds=args.run_cpu_seconds,
            run_memory_mb=args.run_memory_mb,
        )
    except FedlabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: node.stop())
    return node.run()
