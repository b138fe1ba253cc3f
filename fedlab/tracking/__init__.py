"""Experiment tracking: a federation's runs logged to TensorBoard and MLflow.

Give ``Federation(..., loggers=["tensorboard", "mlflow"])`` (each tool's defaults: event
files under ``./runs``, an MLflow file store in ``./mlruns``) or logger objects with
options, e.g. ``loggers=[TensorBoardLogger("runs/digits"),
MLflowLogger("http://127.0.0.1:5000", experiment="digits")]``. Every run of that
federation, a variant's or fork's in :func:`fedlab.compare` included, then writes its
config, every round's metrics (train, evaluate, server), every client's metrics and the
final global arrays; :mod:`fedlab.tracking.logger` lists the names. Loggers are event
subscribers: a tool's package is imported when a run starts, never by ``import fedlab``,
and a logger that fails is reported and does not stop the run.

The modules:

``logger``
    :class:`Logger`, :class:`LoggedRun` and :class:`RunLog`, the subscriber for one run.
``tensorboard_logger``, ``mlflow_logger``
    The two tools.
``loggers``
    :func:`settle_loggers`: names and objects, checked.
"""

from __future__ import annotations

from fedlab.tracking.logger import LoggedRun, Logger, RunLog
from fedlab.tracking.loggers import LoggerSpec, settle_loggers
from fedlab.tracking.mlflow_logger import MLflowLogger
from fedlab.tracking.tensorboard_logger import TensorBoardLogger

__all__ = [
    "LoggedRun",
    "Logger",
    "LoggerSpec",
    "MLflowLogger",
    "RunLog",
    "TensorBoardLogger",
    "settle_loggers",
]
