"""Reading an app project's [tool.fedlab] table."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedlab.cli._project import load_project
from fedlab.errors import FederationError

PYPROJECT = """
[tool.fedlab]
clientapp = "pkg.client_app:app"
serverapp = "pkg.server_app:app"
default-federation = "sim"

[tool.fedlab.config]
num-server-rounds = 3
lr = 0.1

[tool.fedlab.federations.sim]
simulation = { num-clients = 4 }

[tool.fedlab.federations.remote]
address = "10.0.0.1:9093"
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "pyproject.toml").write_text(text)
    return tmp_path


def test_a_project_names_its_apps_config_and_federations(tmp_path: Path) -> None:
    project = load_project(write(tmp_path, PYPROJECT))
    assert project.config == {"num-server-rounds": 3, "lr": 0.1}
    assert project.federation(None).name == "sim" and project.federation(None).num_clients == 4
    remote = project.federation("remote")
    assert not remote.is_simulation and remote.address == "10.0.0.1:9093" and not remote.insecure


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "has no pyproject.toml"),
        ("[tool.other]\n", "no \\[tool.fedlab\\] table"),
        ("[tool.fedlab\n", "not valid TOML"),
        (
            '[tool.fedlab]\nclientapp = "a:b"\n[tool.fedlab.config]\nx = [1]\n',
            "only bool, int, float and str",
        ),
        (
            '[tool.fedlab]\nclientapp = "a:b"\n[tool.fedlab.federations.f]\nport = 1\n',
            "needs address",
        ),
        (
            '[tool.fedlab]\nclientapp = "a:b"\n[tool.fedlab.federations.f]\nsimulation = { num-clients = 0 }\n',
            "num-clients",
        ),
    ],
)
def test_a_broken_project_says_what_to_fix(text: str | None, message: str, tmp_path: Path) -> None:
    if text is not None:
        write(tmp_path, text)
    with pytest.raises(FederationError, match=message):
        load_project(tmp_path)


def test_an_unknown_federation_lists_the_known_ones(tmp_path: Path) -> None:
    project = load_project(write(tmp_path, PYPROJECT))
    with pytest.raises(FederationError, match="defined: sim, remote"):
        project.federation("prod")


def test_a_signing_key_must_be_an_ed25519_pem_file(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    from fedlab.cli.run import _signing_key

    def pem(key: object) -> Path:
        path = tmp_path / f"{type(key).__name__}.pem"
        path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))  # type: ignore[attr-defined]
        return path

    key = Ed25519PrivateKey.generate()
    assert _signing_key(pem(key)).public_key() == key.public_key()
    with pytest.raises(FederationError, match="signed with Ed25519 keys"):
        _signing_key(pem(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(FederationError, match="Cannot read the signing key"):
        _signing_key(tmp_path / "missing.pem")
