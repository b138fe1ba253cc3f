"""``python -m fedlab.deploy.supernode`` (and ``fedlab supernode``): run a SuperNode."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from fedlab.deploy.supernode.apps import load_app, parse_node_config
from fedlab.deploy.supernode.node import SuperNode
from fedlab.deploy.security.keys import load_public_keys
from fedlab.deploy.security.settings import ClientSecurity
from fedlab.devices import DEVICE_KEY, node_device
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
    parser.add_argument("--device", default=os.environ.get("FEDLAB_DEVICE", "auto"),
                        help='the device this node\'s ClientApp gets as node_config["device"], '
                        'e.g. cuda:1 or cpu (default: $FEDLAB_DEVICE, else "auto": the first '
                        "GPU found, else cpu)")  # fmt: skip
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
        "security", "TLS to the SuperLink, and this node's key, which signs every request."
    )  # fmt: skip
    security.add_argument("--root-cert", metavar="FILE",
                          help="the CA certificate to check the SuperLink's against (default: the system's CAs)")  # fmt: skip
    security.add_argument("--node-key", metavar="FILE",
                          help="this node's Ed25519 private key (`fedlab keys NAME`; the SuperLink's "
                          "operator adds NAME.pub with `fedlab node add`)")  # fmt: skip
    security.add_argument("--insecure", action="store_true",
                          help="plaintext and unsigned requests (only against an --insecure SuperLink)")  # fmt: skip
    return parser


def load_trusted_keys(paths: Sequence[str]) -> list[Any]:
    """Read Ed25519 public keys (PEM, or OpenSSH lines as ``fedlab keys`` writes) from ``paths``.

    Raises
    ------
    DeployError
        If a file cannot be read or does not hold Ed25519 public keys.
    """
    return list(load_public_keys(paths))


def main(argv: Sequence[str] | None = None, prog: str = "python -m fedlab.deploy.supernode") -> int:
    """Run a SuperNode until SIGTERM or Ctrl-C; return the exit status.

    Prints ``supernode registered node_id=N superlink=HOST:PORT`` on stdout each time it
    registers.

    ``prog`` is the command name its usage and help show.
    """
    args = build_parser(prog).parse_args(argv)
    if args.insecure and (args.root_cert or args.node_key):
        print("error: --insecure turns TLS and request signing off; drop it or drop --root-cert/--node-key.",
              file=sys.stderr)  # fmt: skip
        return 2
    if not args.insecure and not args.node_key:
        print(
            "error: a SuperNode authenticates with its own key: pass --node-key FILE (make one with "
            "`fedlab keys NAME`), or --insecure against an --insecure SuperLink.",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.insecure:
        print(INSECURE_WARNING, file=sys.stderr, flush=True)
    if args.insecure_allow_unsigned:
        print(UNSIGNED_WARNING, file=sys.stderr, flush=True)
    try:
        node = SuperNode(
            args.superlink,
            node_config={DEVICE_KEY: node_device(args.device), **parse_node_config(args.node_config)},
            app=load_app(args.app) if args.app else None,
            heartbeat_interval=args.heartbeat_interval,
            max_retries=args.max_retries,
            max_wait_time=args.max_wait_time,
            max_backoff=args.max_backoff,
            trusted_keys=load_trusted_keys(args.trusted_key) or None,
            security=ClientSecurity.from_options(
                insecure=args.insecure, root_cert=args.root_cert, node_key=args.node_key
            ),
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
