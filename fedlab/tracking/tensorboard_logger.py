"""`TensorBoardLogger`: a federation's runs as TensorBoard event files, one folder per run."""

from __future__ import annotations

import itertools
import os
import sys
import time
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedlab.errors import MissingDependencyError
from fedlab.events import RunStarted
from fedlab.tracking._naming import config_rows, run_name
from fedlab.tracking.logger import MODEL_FILE, LoggedRun, Logger

__all__ = ["TensorBoardLogger"]


class TensorBoardLogger(Logger):
    """Write every run to ``log_dir/<run name>/`` as TensorBoard event files.

    Each round's metrics are scalars at step = round (names in :mod:`fedlab.tracking`), the
    config is a text summary ``config`` (a Markdown table) and the final global arrays are
    ``final_model.npz`` beside the event file. View them with ``tensorboard --logdir
    <log_dir>``. Needs the ``tensorboard`` package (``pip install "fedlab-sdk[tracking]"``),
    imported when a run starts.

    Parameters
    ----------
    log_dir
        The folder holding one sub-folder per run (created when needed).

    Examples
    --------
    >>> TensorBoardLogger("runs/digits").log_dir.name
    'digits'
    """

    name = "tensorboard"

    def __init__(self, log_dir: str | os.PathLike[str] = "runs") -> None:
        self.log_dir = Path(log_dir)

    def __repr__(self) -> str:
        return f"TensorBoardLogger({str(self.log_dir)!r})"

    def open(self, started: RunStarted) -> LoggedRun:
        """Make the run's folder and event file, and write its config."""
        _without_tensorflow()
        try:
            from tensorboard.summary.writer.event_file_writer import EventFileWriter
        except ImportError:
            raise MissingDependencyError("tensorboard", "tracking", "TensorBoardLogger") from None
        folder = _new_folder(self.log_dir, run_name(started))
        run = _TensorBoardRun(EventFileWriter(str(folder)), folder)
        run.text("config", _markdown(config_rows(started)))
        return run


class _TensorBoardRun(LoggedRun):
    def __init__(self, writer: Any, folder: Path) -> None:
        from tensorboard.compat.proto import event_pb2, summary_pb2

        self._writer = writer
        self._event = event_pb2.Event
        self._summary = summary_pb2.Summary
        self.folder = folder

    def _write(self, step: int, values: list[Any]) -> None:
        summary = self._summary(value=values)
        self._writer.add_event(self._event(wall_time=time.time(), step=step, summary=summary))

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        self._write(step, [self._summary.Value(tag=t, simple_value=v) for t, v in values.items()])

    def text(self, tag: str, text: str) -> None:
        import numpy as np
        from tensorboard.plugins.text.metadata import create_summary_metadata
        from tensorboard.util.tensor_util import make_tensor_proto

        tensor = make_tensor_proto(np.array([text], dtype=object))
        metadata = create_summary_metadata(tag, "")
        self._write(0, [self._summary.Value(tag=tag, tensor=tensor, metadata=metadata)])

    def model(self, data: bytes) -> None:
        (self.folder / MODEL_FILE).write_bytes(data)

    def close(self, failed: bool) -> None:
        self._writer.close()


def _without_tensorflow() -> None:
    """Make TensorBoard's writer use its own file layer instead of importing TensorFlow.

    TensorBoard imports TensorFlow, when installed, for its file I/O unless the module
    ``tensorboard.compat.notf`` exists. Writing local event files needs none of it, and
    loading TensorFlow costs seconds and memory and, next to TenSEAL (the CKKS Mods),
    crashes the interpreter. A process that has already imported TensorFlow keeps it.
    """
    if "tensorflow" not in sys.modules:
        sys.modules.setdefault(
            "tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf")
        )


def _new_folder(parent: Path, name: str) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):  # two runs started in the same second get -2, -3, ...
        folder = parent / (name if n == 1 else f"{name}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise AssertionError("unreachable")


def _markdown(rows: Mapping[str, str]) -> str:
    lines = ["| setting | value |", "|---|---|"]
    lines += [f"| {key} | {value.replace('|', '/')} |" for key, value in rows.items()]
    return "\n".join(lines)
