"""How a client reaches a SuperLink: TLS or not, and which credential it presents."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedlab.deploy.security.keys import load_private_key
from fedlab.deploy.security.tls import read_pem
from fedlab.errors import DeployError

__all__ = ["ClientSecurity", "INSECURE", "RUN_TOKEN_ENV", "TOKEN_ENV", "read_token"]

#: The environment variable the CLI reads a Control token from.
TOKEN_ENV = "FEDLAB_TOKEN"
#: The environment variable that hands a ServerApp the SuperLink launched its run's secret.
RUN_TOKEN_ENV = "FEDLAB_RUN_TOKEN"


@dataclass(frozen=True)
class ClientSecurity:
    """What a SuperNode, ServerApp or CLI uses to reach a SuperLink.

    The default is TLS verified against the system's certificate authorities, with no
    credential. ``root_certificates`` (PEM) replaces the system CAs (a development CA from
    ``fedlab certs``); ``node_key`` signs Fleet requests; ``token`` authenticates on the
    Control and ServerAppIo APIs; ``target_name`` is the name the server certificate must
    carry when it differs from the address (a ServerApp reaching its SuperLink on
    loopback). ``insecure=True`` is plaintext and ignores everything else.
    """

    insecure: bool = False
    root_certificates: bytes | None = field(default=None, repr=False)
    node_key: Ed25519PrivateKey | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    target_name: str | None = None

    @classmethod
    def from_options(
        cls,
        *,
        insecure: bool = False,
        root_cert: str | os.PathLike[str] | None = None,
        node_key: str | os.PathLike[str] | None = None,
        token: str | None = None,
        token_file: str | os.PathLike[str] | None = None,
    ) -> ClientSecurity:
        """Build from command-line style options (paths); the token may come from FEDLAB_TOKEN.

        Raises
        ------
        DeployError
            If a file cannot be read or holds the wrong thing.
        """
        if insecure:
            return INSECURE
        return cls(
            root_certificates=read_pem(root_cert, "CERTIFICATE") if root_cert else None,
            node_key=load_private_key(node_key) if node_key else None,
            token=token or (read_token(token_file) if token_file else os.environ.get(TOKEN_ENV) or None),
        )


#: Plaintext, no credentials: only against an ``--insecure`` SuperLink.
INSECURE = ClientSecurity(insecure=True)


def read_token(path: str | os.PathLike[str]) -> str:
    """Read a token file (its first line).

    Raises
    ------
    DeployError
        If the file cannot be read or is empty.
    """
    try:
        token = Path(path).read_text().strip().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DeployError(f"Cannot read the token file {path}: {err}") from err
    if not token or not token[0].strip():
        raise DeployError(f"The token file {path} is empty; ask the SuperLink's operator for a token.")
    return token[0].strip()
