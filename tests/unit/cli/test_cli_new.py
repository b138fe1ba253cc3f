"""`fedlab new` writes a complete app project from the templates inside the package."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest

from fedlab.cli._project import load_project
from fedlab.cli.main import main
from fedlab.cli.new import TEMPLATES, create_project
from fedlab.errors import FederationError


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_becomes_a_project_with_apps_config_and_two_federations(
    template: str, tmp_path: Path
) -> None:
    root = create_project("my-app", template, tmp_path)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        "README.md",
        "my_app/__init__.py",
        "my_app/client_app.py",
        "my_app/server_app.py",
        "my_app/task.py",
        "pyproject.toml",
    ]
    project = load_project(root)
    assert (project.clientapp, project.serverapp) == (
        "my_app.client_app:app",
        "my_app.server_app:app",
    )
    assert project.config["num-server-rounds"] == 3
    assert project.federation(None).num_clients == 10
    remote = project.federation("local-deployment")
    assert (remote.address, remote.insecure) == ("127.0.0.1:9093", False)
    assert remote.options["root-cert"] == "creds/ca.pem" and remote.options["token-file"].endswith("admin.token")
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert "{{" not in text
        compile(text, str(path), "exec")  # the rendered code is valid Python
    assert "from my_app.task import" in (root / "my_app" / "client_app.py").read_text()


def test_templates_ship_as_package_data_not_as_importable_code() -> None:
    for template in TEMPLATES:
        folder = files("fedlab").joinpath("templates").joinpath(template)
        names = {entry.name for entry in folder.iterdir()}
        assert names == {"README.md.tmpl", "pyproject.toml.tmpl", "__package__"}
        assert not list(Path(str(folder)).rglob("*.py"))  # never collected or type-checked as code


def test_the_new_command_reports_the_project_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["new", "demo-app", "--template", "sklearn", "--dir", str(tmp_path), "--format", "json"]
    )
    assert status == 0
    assert '"template": "sklearn"' in capsys.readouterr().out
    assert (tmp_path / "demo-app" / "demo_app" / "client_app.py").exists()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("1app", "not a valid project name"),
        ("my app", "not a valid project name"),
        ("class", "keyword"),
    ],
)
def test_a_bad_project_name_is_refused(name: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(FederationError, match=message):
        create_project(name, "numpy", tmp_path)


def test_an_existing_directory_is_never_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "taken").mkdir()
    assert main(["new", "taken", "--dir", str(tmp_path)]) == 1
    assert "already exists" in capsys.readouterr().err
