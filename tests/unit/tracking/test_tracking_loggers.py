"""Loggers write every round's and every client's metrics, the config and the final model,
read back with TensorBoard's and MLflow's own readers."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fedlab as fl
from fedlab.errors import FederationError
from fedlab.tracking import MLflowLogger, TensorBoardLogger

ROUNDS = 3
CLIENTS = 4


def _app() -> fl.ClientApp:
    app = fl.ClientApp()

    @app.train()
    def train(msg: fl.Message, ctx: fl.Context) -> fl.Message:
        pid = int(ctx.node_config["partition-id"])
        w = msg.content["arrays"].to_numpy()[0] + float(pid)
        metrics = {"num-examples": pid + 1, "loss": 10.0 * pid + float(w[0])}
        return msg.reply(
            fl.RecordDict({"arrays": fl.ArrayRecord([w]), "metrics": fl.MetricRecord(metrics)})
        )

    return app


def _federation(loggers: list[object]) -> fl.Federation:
    def evaluate(server_round: int, arrays: fl.ArrayRecord) -> dict[str, float]:
        return {"mean": float(arrays.to_numpy()[0].mean())}

    return fl.Federation(
        _app(),
        strategy=fl.strategy.FedAvg(),
        num_clients=CLIENTS,
        initial_arrays=[np.zeros(3)],
        config={"lr": 0.5, "mode": "fast"},
        evaluate_fn=evaluate,
        seed=3,
        display="none",
        loggers=loggers,  # type: ignore[arg-type]
    )


def _expected(
    result: fl.Result,
) -> tuple[dict[int, float], dict[int, float], dict[tuple[int, int], float]]:
    history = result.history
    assert history is not None
    loss = {r: float(m["loss"]) for r, m in result.train_metrics_clientapp.items()}
    server = {r: float(m["mean"]) for r, m in result.evaluate_metrics_serverapp.items()}
    per_client = {
        (int(row["round"]), int(row["partition_id"])): float(row["metrics"]["loss"])
        for row in history.clients
        if row["phase"] == "train"
    }
    assert len(loss) == ROUNDS and len(server) == ROUNDS + 1  # round 0 is before training
    return loss, server, per_client


def test_tensorboard_event_files_hold_every_round_every_client_the_config_and_the_model(
    tmp_path: Path,
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = _federation([TensorBoardLogger(tmp_path / "tb")]).run(rounds=ROUNDS)
    (run_dir,) = (tmp_path / "tb").iterdir()
    events = EventAccumulator(str(run_dir))
    events.Reload()
    scalars = set(events.Tags()["scalars"])

    loss, server, per_client = _expected(result)
    assert {e.step: e.value for e in events.Scalars("train/loss")} == pytest.approx(loss)
    assert {e.step: e.value for e in events.Scalars("server/mean")} == pytest.approx(server)
    assert [e.value for e in events.Scalars("train/replies")] == [CLIENTS] * ROUNDS
    assert len(per_client) == ROUNDS * CLIENTS
    for (rnd, pid), value in per_client.items():
        logged = {e.step: e.value for e in events.Scalars(f"client/{pid}/train/loss")}
        assert logged[rnd] == pytest.approx(value)
    assert {f"client/{p}/train/num-examples" for p in range(CLIENTS)} <= scalars

    config = events.Tensors("config")[0].tensor_proto.string_val[0].decode()
    assert "| config.lr | 0.5 |" in config and "| strategy | FedAvg |" in config
    model = np.load(run_dir / "final_model.npz")
    np.testing.assert_array_equal(next(iter(model.values())), result.arrays.to_numpy()[0])


def test_mlflow_runs_hold_every_round_every_client_the_params_and_the_model(
    tmp_path: Path,
) -> None:
    from mlflow.tracking import MlflowClient

    store = tmp_path / "mlruns"
    fed = _federation([MLflowLogger(store, experiment="digits")])
    first, second = fed.run(rounds=ROUNDS), fed.run(rounds=ROUNDS)

    client = MlflowClient(tracking_uri=store.resolve().as_uri())
    experiment = client.get_experiment_by_name("digits")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    assert len(runs) == 2  # one MLflow run per run of the federation
    for run, result in zip(runs, (first, second)):
        run_id = run.info.run_id
        assert run.info.status == "FINISHED"
        assert run.data.params["config.lr"] == "0.5"
        assert run.data.params["strategy"] == "FedAvg"
        assert run.data.params["num_rounds"] == str(ROUNDS)
        loss, server, per_client = _expected(result)
        history = client.get_metric_history(run_id, "train/loss")
        assert {m.step: m.value for m in history} == pytest.approx(loss)
        history = client.get_metric_history(run_id, "server/mean")
        assert {m.step: m.value for m in history} == pytest.approx(server)
        for (rnd, pid), value in per_client.items():
            steps = {
                m.step: m.value
                for m in client.get_metric_history(run_id, f"client/{pid}/train/loss")
            }
            assert steps[rnd] == pytest.approx(value)
        path = client.download_artifacts(run_id, "final_model.npz", str(tmp_path / run_id))
        model = np.load(io.BytesIO(Path(path).read_bytes()))
        np.testing.assert_array_equal(next(iter(model.values())), result.arrays.to_numpy()[0])


def test_loggers_by_name_write_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _federation(["tensorboard", "mlflow"]).run(rounds=1)
    assert len(list((tmp_path / "runs").glob("*/events.out.tfevents.*"))) == 1
    assert len(list((tmp_path / "mlruns").glob("*/*/metrics/train/loss"))) == 1


def test_an_unknown_logger_is_refused_naming_the_choices() -> None:
    with pytest.raises(FederationError, match=r"'wandb'.*'mlflow' or 'tensorboard'"):
        _federation(["wandb"])


def test_a_failing_logger_does_not_stop_the_run(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = _federation([TensorBoardLogger(blocker)]).run(rounds=1)
    assert result.rounds_completed == 1


def test_import_fedlab_imports_neither_tensorboard_nor_mlflow() -> None:
    code = (
        "import sys, fedlab, fedlab.tracking\n"
        "fedlab.Federation\n"
        "print([m for m in sys.modules if m.split('.')[0] in ('tensorboard', 'mlflow')])"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_tensorboard_logger_writes_and_reads_back_without_loading_tensorflow(
    tmp_path: Path,
) -> None:
    # TensorFlow is installed here (the Keras extension): loading it would cost seconds and
    # crash a process that also runs the CKKS Mods.
    code = (
        "import sys, numpy as np, fedlab as fl\n"
        "from fedlab.tracking import TensorBoardLogger\n"
        "app = fl.ClientApp()\n"
        "@app.train()\n"
        "def train(msg, ctx):\n"
        "    w = msg.content['arrays'].to_numpy()[0] + 1.0\n"
        "    return msg.reply(fl.RecordDict({'arrays': fl.ArrayRecord([w]),"
        " 'metrics': fl.MetricRecord({'num-examples': 1, 'loss': float(w[0])})}))\n"
        "fed = fl.Federation(app, strategy=fl.strategy.FedAvg(), num_clients=2,"
        f" initial_arrays=[np.zeros(2)], display='none', loggers=[TensorBoardLogger({str(tmp_path)!r})])\n"
        "fed.run(rounds=2)\n"
        "from tensorboard.backend.event_processing.event_accumulator import EventAccumulator\n"
        f"(run,) = __import__('pathlib').Path({str(tmp_path)!r}).iterdir()\n"
        "acc = EventAccumulator(str(run)); acc.Reload()\n"
        "print(len(acc.Scalars(sorted(acc.Tags()['scalars'])[0])), 'tensorflow' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split()[-2:] == ["2", "False"], out.stdout + out.stderr
