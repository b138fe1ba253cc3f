"""Reading a Flower app project's [tool.flwr.*] tables and Flower's connection file."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedlab.cli._app_project import load_app_project as load_project
from fedlab.cli._flower_project import apply_federation_config, check_run_config
from fedlab.errors import FederationError

APP = """
[project]
name = "quick"
version = "1.0.0"

[tool.flwr.app]
publisher = "alice"

[tool.flwr.app.components]
serverapp = "quick.server_app:app"
clientapp = "quick.client_app:app"

[tool.flwr.app.config]
num-server-rounds = 3
lr = 0.1
optimizer.name = "sgd"
"""

LEGACY = """
[tool.flwr.federations]
default = "local-simulation"

[tool.flwr.federations.local-simulation]
options.num-supernodes = 7
options.backend.client-resources.num-cpus = 1

[tool.flwr.federations.remote]
address = "10.0.0.1:9093"
root-certificates = "certs/ca.pem"
"""

CONNECTIONS = """
[superlink]
default = "big"

[superlink.supergrid]
address = "api.flower.ai"

[superlink.local]
address = ":local:"

[superlink.big]
address = ":local:"
options.num-supernodes = 20

[superlink.lab]
address = "192.168.1.5:9093"
insecure = true
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty FLWR_HOME, so the reader's own ~/.flwr never leaks in."""
    path = tmp_path / "flwr-home"
    path.mkdir()
    monkeypatch.setenv("FLWR_HOME", str(path))
    return path


def write(tmp_path: Path, text: str) -> Path:
    root = tmp_path / "app"
    root.mkdir(exist_ok=True)
    (root / "pyproject.toml").write_text(text)
    return root


def test_components_and_a_nested_config_are_read_as_flower_reads_them(
    tmp_path: Path, home: Path
) -> None:
    project = load_project(write(tmp_path, APP))
    assert project.flower
    assert (project.clientapp, project.serverapp) == (
        "quick.client_app:app",
        "quick.server_app:app",
    )
    assert project.config == {"num-server-rounds": 3, "lr": 0.1, "optimizer.name": "sgd"}


def test_without_any_connection_the_federation_is_flowers_local_simulation_of_two(
    tmp_path: Path, home: Path
) -> None:
    federation = load_project(write(tmp_path, APP)).federation(None)
    assert (federation.name, federation.is_simulation, federation.num_clients) == ("local", True, 2)


def test_pyproject_federations_give_the_default_supernodes_and_a_remote_with_its_ca(
    tmp_path: Path, home: Path
) -> None:
    root = write(tmp_path, APP + LEGACY)
    project = load_project(root)
    local = project.federation(None)
    assert (local.name, local.num_clients, local.is_simulation) == ("local-simulation", 7, True)
    remote = project.federation("remote")
    assert remote.address == "10.0.0.1:9093" and not remote.insecure
    assert remote.options["root-cert"] == str(root / "certs" / "ca.pem")


def test_the_connection_file_in_flwr_home_gives_its_default_and_named_superlinks(
    tmp_path: Path, home: Path
) -> None:
    (home / "config.toml").write_text(CONNECTIONS)
    project = load_project(write(tmp_path, APP))
    assert project.federation(None).num_clients == 20
    assert project.federation("local").num_clients == 2
    lab = project.federation("lab")
    assert lab.address == "192.168.1.5:9093" and lab.insecure
    assert "supergrid" not in project.federations


def test_the_projects_federations_win_over_the_connection_file(tmp_path: Path, home: Path) -> None:
    (home / "config.toml").write_text(CONNECTIONS)
    project = load_project(write(tmp_path, APP + LEGACY))
    assert project.federation(None).name == "local-simulation"
    assert project.federation("big").num_clients == 20


def test_run_config_overrides_take_flowers_syntax_and_only_known_keys(
    tmp_path: Path, home: Path
) -> None:
    project = load_project(write(tmp_path, APP))
    assert check_run_config(project, ["num-server-rounds=5 lr=0.05", 'optimizer.name="adam"']) == {
        "num-server-rounds": 5,
        "lr": 0.05,
        "optimizer.name": "adam",
    }
    with pytest.raises(FederationError, match="'epochs', which \\[tool.flwr.app.config\\]"):
        check_run_config(project, ["epochs=2"])


def test_a_run_config_toml_file_overrides_like_pairs(tmp_path: Path, home: Path) -> None:
    project = load_project(write(tmp_path, APP))
    path = tmp_path / "override.toml"
    path.write_text("lr = 0.5\n[optimizer]\nname = 'adam'\n")
    assert check_run_config(project, [str(path)]) == {"lr": 0.5, "optimizer.name": "adam"}


def test_federation_config_sets_the_number_of_supernodes_and_refuses_unknown_keys(
    tmp_path: Path, home: Path
) -> None:
    federation = load_project(write(tmp_path, APP)).federation(None)
    changed = apply_federation_config(federation, ["num-supernodes=9 client-resources-num-cpus=2"])
    assert changed.num_clients == 9 and changed.options["flower"]["client-resources-num-cpus"] == 2
    with pytest.raises(
        FederationError, match="does not know 'num-clients'; it takes num-supernodes"
    ):
        apply_federation_config(federation, ["num-clients=9"])


def test_federation_config_is_refused_for_a_superlink(tmp_path: Path, home: Path) -> None:
    remote = load_project(write(tmp_path, APP + LEGACY)).federation("remote")
    with pytest.raises(FederationError, match="'remote' is the SuperLink at 10.0.0.1:9093"):
        apply_federation_config(remote, ["num-supernodes=3"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[tool.flwr.federations.f]\noptions.num-clients = 3\n", "unknown options num-clients"),
        ("[tool.flwr.federations.f]\noptions.num-supernodes = 0\n", "num-supernodes must be"),
        ("[tool.flwr.federations.f]\naddress = 9093\n", 'address must be "host:port"'),
    ],
)
def test_bad_federations_are_refused_naming_the_setting(
    tmp_path: Path, home: Path, extra: str, message: str
) -> None:
    with pytest.raises(FederationError, match=message):
        load_project(write(tmp_path, APP + extra))


def test_an_app_table_without_components_says_what_to_add(tmp_path: Path, home: Path) -> None:
    with pytest.raises(FederationError, match="no \\[tool.flwr.app.components\\] with clientapp"):
        load_project(write(tmp_path, "[tool.flwr.app]\npublisher = 'a'\n"))
