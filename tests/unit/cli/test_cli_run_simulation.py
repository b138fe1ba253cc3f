"""`fedlab run` on a project's simulation federation runs its ServerApp with its run config."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedlab.cli.main import main
from fedlab.cli.new import create_project


@pytest.fixture
def isolated_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep each project's package and path out of the other tests."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    monkeypatch.setenv("FEDLAB_DISPLAY", "plain")
    yield
    for name in set(sys.modules) - before:
        if name.startswith("cli_run_"):
            del sys.modules[name]


@pytest.mark.parametrize("template", ["numpy", "sklearn", "pytorch"])
def test_a_new_project_runs_in_simulation_and_its_loss_falls(
    template: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_imports: None
) -> None:
    root = create_project(f"cli-run-{template}", template, tmp_path)
    status = main(["run", str(root), "--run-config", "num-server-rounds=2", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["success"] and report["mode"] == "simulation"
    assert report["rounds_completed"] == 2
    losses = [report["evaluate_metrics"][r]["loss"] for r in ("1", "2")]
    assert losses[1] < losses[0]
    # fraction-train 0.5 of 10 clients: 5 clients train per round, on 50 / 179-180 / 200 samples each.
    low, high = {"numpy": (250, 250), "sklearn": (5 * 179, 5 * 180), "pytorch": (1000, 1000)}[
        template
    ]
    for rnd in ("1", "2"):
        assert low <= report["train_metrics"][rnd]["num-examples"] <= high


@pytest.mark.parametrize(
    "overrides",
    [
        ["--run-config", "num-server-rounds=1 lr=0.0"],  # Flower's syntax: one quoted value
        ["--run-config", "num-server-rounds=1", "--run-config", "lr=0.0"],
        ["--run-config", "num-server-rounds=1", "lr=0.0"],
    ],
)
def test_run_config_overrides_reach_the_clients(
    overrides: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    isolated_imports: None,
) -> None:
    root = create_project("cli-run-override", "numpy", tmp_path)
    assert main(["run", str(root), "--format", "json", *overrides]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rounds_completed"] == 1
    # With lr=0 the weights stay zero: every client's loss is the mean of y**2 on its data.
    import numpy as np

    from fedlab.cli._project import load_project

    sys.path.insert(0, str(root))
    from cli_run_override.task import load_data

    project = load_project(root)
    num = int(project.federation(None).num_clients)
    per_client = [
        (np.mean(load_data(i, num)[1] ** 2), len(load_data(i, num)[1])) for i in range(num)
    ]
    expected = sum(l * n for l, n in per_client) / sum(n for _, n in per_client)
    assert report["evaluate_metrics"]["1"]["loss"] == pytest.approx(expected, rel=1e-12)


def test_a_text_run_prints_one_line_per_round(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_imports: None
) -> None:
    root = create_project("cli-run-text", "numpy", tmp_path)
    assert main(["run", str(root), "local-simulation", "--run-config", "num-server-rounds=2"]) == 0
    out = capsys.readouterr().out
    assert "round 1/2" in out and "round 2/2" in out and "Finished 2 round(s)." in out


def test_a_project_without_a_server_app_cannot_simulate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_imports: None
) -> None:
    root = create_project("cli-run-noserver", "numpy", tmp_path)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('serverapp = "cli_run_noserver.server_app:app"\n', "")
    )
    assert main(["run", str(root), "--format", "json"]) == 1
    assert "needs the project's ServerApp" in json.loads(capsys.readouterr().out)["error"]


def test_a_project_federation_picks_its_simulation_backend(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_imports: None
) -> None:
    root = create_project("cli-run-backends", "numpy", tmp_path)
    with (root / "pyproject.toml").open("a") as toml:
        toml.write(
            "\n[tool.fedlab.federations.parallel]\n"
            'simulation = { num-clients = 10, backend = "processes", max-workers = 2, seed = 0 }\n'
            "\n[tool.fedlab.federations.serial]\n"
            "simulation = { num-clients = 10, seed = 0 }\n"
        )
    reports = []
    for federation in ("parallel", "serial"):
        # Every client trains (the template's ServerApp samples without a seed otherwise).
        overrides = ["num-server-rounds=2", "fraction-train=1.0"]
        status = main(["run", str(root), federation, "--run-config", *overrides, "--format", "json"])
        assert status == 0
        reports.append(json.loads(capsys.readouterr().out))
    # The same run, whether the clients ran in two worker processes or inline (to the last
    # bits only: the template's matrix products may use BLAS threads differently there).
    for kind in ("train_metrics", "evaluate_metrics"):
        for rnd in ("1", "2"):
            assert reports[0][kind][rnd] == pytest.approx(reports[1][kind][rnd], rel=1e-12)


def test_an_unknown_backend_in_a_project_names_the_choices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_imports: None
) -> None:
    root = create_project("cli-run-badbackend", "numpy", tmp_path)
    with (root / "pyproject.toml").open("a") as toml:
        toml.write('\n[tool.fedlab.federations.odd]\nsimulation = { num-clients = 4, backend = "gpu" }\n')
    assert main(["run", str(root), "odd"]) != 0
    err = capsys.readouterr().err
    assert "'gpu' is not one of 'inline', 'threads', 'processes', 'ray'" in err


def test_a_malformed_run_config_value_is_a_cli_error_naming_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_imports: None
) -> None:
    root = create_project("cli-run-badvalue", "numpy", tmp_path)
    status = main(["run", str(root), "--run-config", "learning-rate=0.05 optimizer=adam"])
    assert status == 1
    assert capsys.readouterr().err == (
        "error: --run-config optimizer=adam: 'adam' is not a TOML value. Numbers and true/false "
        'are written bare, strings in double quotes: optimizer="adam" (in a shell, quote the '
        "whole pair: 'optimizer=\"adam\"').\n"
    )


def test_num_server_rounds_must_be_a_whole_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_imports: None
) -> None:
    root = create_project("cli-run-rounds", "numpy", tmp_path)
    assert main(["run", str(root), "--run-config", 'num-server-rounds="2"']) == 1
    assert capsys.readouterr().err == (
        "error: num-server-rounds must be a whole number of rounds, got '2'; write e.g. "
        "--run-config num-server-rounds=5.\n"
    )


def test_a_toml_file_of_overrides_sets_the_rounds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_imports: None
) -> None:
    root = create_project("cli-run-tomlfile", "numpy", tmp_path)
    (tmp_path / "short.toml").write_text("num-server-rounds = 1\n")
    status = main(
        ["run", str(root), "--format", "json", "--run-config", str(tmp_path / "short.toml")]
    )
    assert status == 0 and json.loads(capsys.readouterr().out)["rounds_completed"] == 1


def test_run_on_a_superlink_without_a_token_says_which_credentials_to_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_imports: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FEDLAB_TOKEN", raising=False)
    root = create_project("cli-run-superlink", "numpy", tmp_path)
    assert main(["run", str(root), "--superlink", "127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: The SuperLink's Control API needs your token: pass --token-file FILE")
    assert "--root-cert ca.pem" in err and "pass --insecure" in err


def test_a_run_whose_clients_all_reply_wrongly_exits_1_and_says_nothing_was_learned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_imports: None
) -> None:
    root = create_project("cli-run-allfail", "numpy", tmp_path)
    client_app = root / "cli_run_allfail" / "client_app.py"
    source = client_app.read_text()
    # Every client returns two arrays where the model has one.
    spoiled = source.replace('{"arrays": ArrayRecord([w]),', '{"arrays": ArrayRecord([w, w]),')
    assert spoiled != source
    client_app.write_text(spoiled)

    status = main(["run", str(root), "--run-config", "num-server-rounds=2", "--format", "json"])

    report = json.loads(capsys.readouterr().out)
    assert status == 1 and report["success"] is False
    assert report["error"].startswith(
        "No round aggregated anything: rounds 1, 2 kept the global arrays unchanged, with 10 "
        "client failures. First failure: client "
    )
    assert "refused: 'arrays' has extra ['1']: the global model's arrays are ['0']." in report["error"]
    assert main(["run", str(root), "--run-config", "num-server-rounds=1"]) == 1
    assert "error: No round aggregated anything: round 1 kept" in capsys.readouterr().err


def test_a_run_where_some_rounds_aggregated_nothing_succeeds_and_names_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_imports: None
) -> None:
    root = create_project("cli-run-somefail", "numpy", tmp_path)
    client_app = root / "cli_run_somefail" / "client_app.py"
    source = client_app.read_text()
    spoiled = source.replace(
        '    return msg.reply(RecordDict({"arrays": ArrayRecord([w]), "metrics": metrics}))',
        '    if msg.content["config"]["server-round"] == 2:\n'
        '        raise OSError("the data disk is offline")\n'
        '    return msg.reply(RecordDict({"arrays": ArrayRecord([w]), "metrics": metrics}))',
    )
    assert spoiled != source
    client_app.write_text(spoiled)

    status = main(["run", str(root), "--run-config", "num-server-rounds=3", "--format", "json"])

    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["success"]
    assert (report["rounds_completed"], report["rounds_not_aggregated"]) == (3, [2])
    assert main(["run", str(root), "--run-config", "num-server-rounds=3"]) == 0
    out = capsys.readouterr().out
    assert "run finished: 3 rounds in " in out and ", 5 client failures; round 2 aggregated nothing" in out
    assert "Finished 3 round(s); round 2 aggregated nothing." in out
