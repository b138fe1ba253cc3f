"""`MLflowLogger`: a federation's runs as MLflow runs, in a local store or any tracking server."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedlab.errors import MissingDependencyError
from fedlab.events import RunStarted
from fedlab.tracking._naming import config_rows, run_name
from fedlab.tracking.logger import MODEL_FILE, LoggedRun, Logger

__all__ = ["MLflowLogger"]

#: MLflow keeps at most this many metrics per request; longer batches are split.
_BATCH = 1000


class MLflowLogger(Logger):
    """Log every run as an MLflow run of experiment ``experiment``.

    Each round's metrics are MLflow metrics at step = round (names in
    :mod:`fedlab.tracking`), the config is the run's params (``strategy``, ``num_rounds``,
    ``num_nodes``, ``config.<key>``) and the final global arrays are the artifact
    ``final_model.npz``. A failed run ends as ``FAILED``. Needs ``mlflow`` or
    ``mlflow-skinny`` (``pip install "fedlab-sdk[tracking]"``), imported when a run starts.

    Parameters
    ----------
    tracking_uri
        Where MLflow stores runs: a folder (a local file store, ``./mlruns`` by default;
        this sets ``MLFLOW_ALLOW_FILE_STORE=true``, which MLflow 3 asks for to use one),
        a ``file:``, ``sqlite:`` or ``http(s):`` URI.
    experiment
        The experiment's name; made if missing.

    Examples
    --------
    >>> MLflowLogger("file:/tmp/mlruns", experiment="digits").experiment
    'digits'
    """

    name = "mlflow"

    def __init__(
        self, tracking_uri: str | os.PathLike[str] = "mlruns", experiment: str = "fedlab"
    ) -> None:
        uri = os.fspath(tracking_uri)
        self.tracking_uri = uri if re.match(r"[A-Za-z][A-Za-z0-9+.-]+:", uri) else _file_uri(uri)
        self.experiment = experiment

    def __repr__(self) -> str:
        return f"MLflowLogger({self.tracking_uri!r}, experiment={self.experiment!r})"

    def open(self, started: RunStarted) -> LoggedRun:
        """Start an MLflow run (and the experiment, if new) with the run's params."""
        if self.tracking_uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            from mlflow.entities import Param
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise MissingDependencyError("mlflow", "tracking", "MLflowLogger") from None
        client = MlflowClient(tracking_uri=self.tracking_uri)
        found = client.get_experiment_by_name(self.experiment)
        experiment_id = (
            found.experiment_id if found is not None else client.create_experiment(self.experiment)
        )
        run = client.create_run(experiment_id, run_name=run_name(started))
        params = [Param(k, v[:6000]) for k, v in config_rows(started).items()]
        for start in range(0, len(params), 100):
            client.log_batch(run.info.run_id, params=params[start : start + 100])
        return _MLflowRun(client, run.info.run_id)


class _MLflowRun(LoggedRun):
    def __init__(self, client: Any, run_id: str) -> None:
        from mlflow.entities import Metric

        self._client = client
        self._metric = Metric
        self.run_id = run_id

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        now = _millis()
        metrics = [self._metric(k, v, now, step) for k, v in values.items()]
        for start in range(0, len(metrics), _BATCH):
            self._client.log_batch(self.run_id, metrics=metrics[start : start + _BATCH])

    def model(self, data: bytes) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / MODEL_FILE
            path.write_bytes(data)
            self._client.log_artifact(self.run_id, str(path))

    def close(self, failed: bool) -> None:
        self._client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")


def _file_uri(folder: str) -> str:
    return Path(folder).resolve().as_uri()


def _millis() -> int:
    import time

    return int(time.time() * 1000)
