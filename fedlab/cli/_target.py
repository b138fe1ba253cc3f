"""Which SuperLink a command talks to, and how: ``--superlink``, a project's federation, or the default.

Credentials come from the flags (``--root-cert``, ``--token``/``--token-file``,
``--insecure``), else from the project's federation (``root-cert``, ``token-file``,
``insecure``), else TLS against the system's CAs with the token in ``FEDLAB_TOKEN``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fedlab.cli._app_project import load_app_project
from fedlab.cli._project import DEFAULT_ADDRESS, FederationSpec
from fedlab.errors import FederationError

__all__ = ["add_credential_arguments", "add_target_arguments", "client_security", "control_client",
           "superlink_address"]  # fmt: skip


def add_credential_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--root-cert``, ``--token``, ``--token-file`` and ``--insecure`` to ``parser``."""
    parser.add_argument("--root-cert", metavar="FILE",
                        help="the CA certificate to check the SuperLink's against (ca.pem of `fedlab certs`)")  # fmt: skip
    parser.add_argument("--token", help="your Control API token (default: $FEDLAB_TOKEN)")
    parser.add_argument("--token-file", metavar="FILE", help="a file holding your token")
    parser.add_argument("--insecure", action="store_true",
                        help="plaintext without credentials (an --insecure SuperLink on a network you trust)")  # fmt: skip


def client_security(args: argparse.Namespace, federation: FederationSpec | None, base: Path) -> Any:
    """The :class:`~fedlab.deploy.security.ClientSecurity` for the flags and the federation."""
    from fedlab.deploy.security import ClientSecurity

    options = federation.options if federation is not None else {}

    def path(flag: str | None, option: str) -> Path | None:
        # A flag is relative to where the command runs; a project's setting to the project.
        if flag:
            return Path(flag)
        value = options.get(option)
        return None if value is None else base / str(value)

    security = ClientSecurity.from_options(
        insecure=bool(args.insecure or (federation is not None and federation.insecure)),
        root_cert=path(args.root_cert, "root-cert"),
        token=args.token,
        token_file=path(args.token_file, "token-file"),
    )
    if not security.insecure and not security.token:
        raise FederationError(
            "The SuperLink's Control API needs your token: pass --token-file FILE (or --token, or set "
            "FEDLAB_TOKEN; its operator makes one with `fedlab user add NAME`), and --root-cert ca.pem "
            "if its certificate comes from a private CA. Against an --insecure SuperLink pass --insecure."
        )
    return security


def control_client(args: argparse.Namespace) -> Any:
    """A :class:`~fedlab.deploy.ControlClient` for the command's target and credentials."""
    from fedlab.deploy import ControlClient

    address, federation, base = _target(args)
    return ControlClient(address, security=client_security(args, federation, base))


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``[APP] [FEDERATION]`` and ``--superlink HOST:PORT`` to ``parser``."""
    parser.add_argument("app", nargs="?", help="app project whose federation names the SuperLink")
    parser.add_argument("federation", nargs="?", help="federation in the project's pyproject.toml")
    parser.add_argument(
        "--superlink",
        metavar="HOST:PORT",
        help=f"the SuperLink's Control API (default: from the project, else {DEFAULT_ADDRESS})",
    )
    add_credential_arguments(parser)


def superlink_address(args: argparse.Namespace) -> str:
    """Return the Control API address the command should use."""
    return _target(args)[0]


def _target(args: argparse.Namespace) -> tuple[str, FederationSpec | None, Path]:
    """(address, the federation that named it or None, the directory its paths are relative to)."""
    app = getattr(args, "app", None)
    directory = Path(app) if app else Path.cwd()
    if args.superlink:
        return str(args.superlink), None, Path.cwd()
    if app is None and not (directory / "pyproject.toml").exists():
        return DEFAULT_ADDRESS, None, Path.cwd()
    project = load_app_project(directory)
    federation = project.federation(getattr(args, "federation", None))
    if federation.address is None:
        raise FederationError(
            f"Federation {federation.name!r} is a simulation, which runs inside `fedlab run`; "
            "name a federation with an address, or pass --superlink HOST:PORT."
        )
    return federation.address, federation, project.directory
