"""TLS for the three SuperLink APIs: development certificates and gRPC credentials.

``fedlab certs DIR`` (:func:`make_dev_certs`) writes a throwaway certificate authority and
a server certificate signed by it, for tutorials, tests and ``deploy(local=N)``. A real
deployment uses certificates from its own CA; the files have the same roles:

``ca.pem``
    the CA certificate: what SuperNodes, ServerApps and the CLI trust (``--root-cert``).
``ca.key``
    the CA's private key (0600): keep it offline; only needed to sign more certificates.
``server.pem``
    the SuperLink's certificate followed by the CA certificate (``--tls-cert``).
``server.key``
    the SuperLink's private key (0600, ``--tls-key``).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedlab.deploy.security.keys import write_private
from fedlab.errors import DeployError

__all__ = ["DevCerts", "ServerTls", "channel_credentials", "make_dev_certs", "read_pem"]

_DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class DevCerts:
    """Where :func:`make_dev_certs` wrote its four files."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


@dataclass(frozen=True)
class ServerTls:
    """A SuperLink's certificate chain and private key, PEM bytes."""

    certificate_chain: bytes
    private_key: bytes

    @classmethod
    def from_files(cls, cert: str | os.PathLike[str], key: str | os.PathLike[str]) -> ServerTls:
        """Read ``--tls-cert`` and ``--tls-key``; raise DeployError naming a bad file."""
        return cls(read_pem(cert, "CERTIFICATE"), read_pem(key, "PRIVATE KEY"))

    def credentials(self) -> Any:
        """gRPC server credentials for these files."""
        import grpc

        return grpc.ssl_server_credentials([(self.private_key, self.certificate_chain)])

    def own_root(self) -> bytes:
        """The last certificate of the chain: what a process on this host trusts to reach us."""
        marker = b"-----BEGIN CERTIFICATE-----"
        return self.certificate_chain[self.certificate_chain.rindex(marker):]


def read_pem(path: str | os.PathLike[str], kind: str) -> bytes:
    """Read a PEM file that must contain a ``kind`` block (e.g. ``CERTIFICATE``).

    Raises
    ------
    DeployError
        If the file cannot be read or holds no such block.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise DeployError(f"Cannot read {path}: {err}. Make development files with `fedlab certs DIR`.") from err
    if f" {kind}-----".encode() not in data:
        raise DeployError(f"{path} holds no PEM {kind.lower()}; pass the right file (see `fedlab certs --help`).")
    return data


def channel_credentials(root_certificates: bytes | None) -> Any:
    """gRPC channel credentials trusting ``root_certificates`` (PEM), or the system's CAs."""
    import grpc

    return grpc.ssl_channel_credentials(root_certificates=root_certificates)


def make_dev_certs(
    directory: str | os.PathLike[str], hosts: Sequence[str] = (), *, days: int = 365, overwrite: bool = False
) -> DevCerts:
    """Write a development CA and a server certificate for ``hosts`` into ``directory``.

    The server certificate is valid for localhost, 127.0.0.1, ::1 and every name or
    address in ``hosts``. Keys are ECDSA P-256 and written 0600.

    Raises
    ------
    DeployError
        If the directory already holds these files and ``overwrite`` is False, or
        ``days`` is not positive.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if days <= 0:
        raise DeployError(f"days must be positive, got {days}.")
    out = Path(directory)
    paths = DevCerts(out / "ca.pem", out / "ca.key", out / "server.pem", out / "server.key")
    if not overwrite and any(Path(p).exists() for p in vars(paths).values()):
        raise DeployError(f"{out} already holds certificates; pass --force to replace them.")
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)

    def name(common: str) -> Any:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fedlab development"),
                          x509.NameAttribute(NameOID.COMMON_NAME, common)])  # fmt: skip

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(name("fedlab development CA")).issuer_name(name("fedlab development CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys([*_DEFAULT_HOSTS, *hosts]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder().subject_name(name(hosts[0] if hosts else "localhost")).issuer_name(ca.subject)
        .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    pem = Encoding.PEM
    paths.ca_cert.write_bytes(ca.public_bytes(pem))
    write_private(paths.ca_key, ca_key.private_bytes(pem, PrivateFormat.PKCS8, NoEncryption()))
    paths.server_cert.write_bytes(server.public_bytes(pem) + ca.public_bytes(pem))
    write_private(paths.server_key, server_key.private_bytes(pem, PrivateFormat.PKCS8, NoEncryption()))
    return paths
