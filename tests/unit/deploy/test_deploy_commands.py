"""The SuperLink and SuperNode commands: what they insist on and how they read their options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fedlab.client import ClientApp
from fedlab.deploy import superlink, supernode
from fedlab.deploy.supernode import load_app, parse_node_config
from fedlab.deploy.supernode.command import load_trusted_keys
from fedlab.errors import DeployError


@pytest.mark.parametrize("main", [superlink.main, supernode.main], ids=["superlink", "supernode"])
def test_without_insecure_the_commands_refuse_to_start_and_say_why(
    main: object, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([]) == 2  # type: ignore[operator]
    assert "--insecure" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("main", "args", "says"),
    [(superlink.main, ["--insecure", "--tls-cert", "c.pem", "--tls-key", "k.pem"], "--insecure turns TLS off"),
     (superlink.main, ["--tls-cert", "c.pem"], "--tls-cert FILE --tls-key FILE"),
     (supernode.main, ["--insecure", "--node-key", "n.key"], "--insecure turns TLS and request signing off"),
     (supernode.main, ["--root-cert", "ca.pem"], "--node-key FILE")],
)  # fmt: skip
def test_contradictory_or_missing_security_options_are_refused_and_say_what_to_pass(
    main: object, args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2  # type: ignore[operator]
    assert says in capsys.readouterr().err


@pytest.mark.parametrize("interval", ["0.05", "7200", "nan"])
def test_a_heartbeat_interval_the_superlink_would_refuse_stops_the_node_at_once(
    interval: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Not a node that retries Register forever against INVALID_ARGUMENT.
    args = ["--insecure", "--insecure-allow-unsigned", "--superlink", "127.0.0.1:1", "--heartbeat-interval", interval]
    assert supernode.main(args) == 1
    assert "must be between 0.1 and 3600 seconds" in capsys.readouterr().err


def test_help_lists_the_security_options() -> None:
    expected = {
        "fedlab.deploy.superlink": ["--tls-cert", "--tls-key", "--node-keys", "--admin-token-file", "--audit-log"],
        "fedlab.deploy.supernode": ["--root-cert", "--node-key", "--trusted-key"],
    }
    for module, flags in expected.items():
        out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, check=True)
        assert all(flag in out.stdout for flag in flags) and "--insecure" in out.stdout


def test_a_superlink_on_a_port_already_in_use_exits_with_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    with superlink.SuperLink(
        fleet_address="127.0.0.1:0", serverappio_address="127.0.0.1:0", control_address="127.0.0.1:0", insecure=True
    ) as running:
        taken = running.addresses["fleet"]
        code = superlink.main(["--insecure", "--state", "memory", "--fleet-address", taken,
                               "--serverappio-address", "127.0.0.1:0", "--control-address", "127.0.0.1:0"])  # fmt: skip
    assert code == 1 and f"Cannot listen on {taken}" in capsys.readouterr().err


def test_node_config_values_read_as_int_float_bool_or_string() -> None:
    assert parse_node_config("partition-id=2 num-partitions=3 lr=1e-3 gpu=false region=eu-west") == {
        "partition-id": 2, "num-partitions": 3, "lr": 0.001, "gpu": False, "region": "eu-west",
    }  # fmt: skip
    assert parse_node_config("") == {}
    with pytest.raises(DeployError, match="KEY=VALUE"):
        parse_node_config("partition-id")


def test_app_accepts_a_clientapp_or_a_function_returning_one() -> None:
    assert isinstance(load_app("tests.contracts.grid_contract:contract_app"), ClientApp)
    assert isinstance(load_app("fedlab.client:ClientApp"), ClientApp)  # a class is a callable too
    with pytest.raises(DeployError, match="not an import path"):
        load_app("tests.contracts.grid_contract")
    with pytest.raises(DeployError, match="Cannot load"):
        load_app("no_such_module_here:app")
    with pytest.raises(DeployError, match="not a fedlab.ClientApp"):
        load_app("fedlab.message:DEFAULT_TTL")


def test_app_may_name_an_attribute_of_an_attribute_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "nested_supernode_app.py").write_text(
        "import fedlab as fl\n\nclass apps:\n    client = fl.ClientApp()\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "nested_supernode_app", raising=False)
    assert isinstance(load_app("nested_supernode_app:apps.client"), ClientApp)
    with pytest.raises(DeployError, match="^--app 'nested_supernode_app' is not an import path"):
        load_app("nested_supernode_app")


def test_trusted_keys_are_read_from_pem_files(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate().public_key()
    path = tmp_path / "trusted.pem"
    path.write_bytes(key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    (loaded,) = load_trusted_keys([str(path)])
    assert loaded.public_bytes(Encoding.Raw, PublicFormat.Raw) == key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(DeployError, match="Cannot parse .*junk.pem line 1 as a public key"):
        load_trusted_keys([str(tmp_path / "junk.pem")])
