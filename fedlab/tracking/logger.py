"""`Logger`: where a run's numbers are written for a tracking tool, and the run log that feeds it.

A :class:`Logger` is what a user hands to ``Federation(..., loggers=[...])``: a tool and
its options (a log directory, a tracking URI). For every run the federation starts, the
runner makes a :class:`RunLog`, an event subscriber that turns the run's events into
numbers and hands them to the :class:`LoggedRun` its logger opened for that run:

=====================  ===========================================================
event                  written as (at step = round)
=====================  ===========================================================
RunStarted             the config, the strategy, rounds and number of nodes
RoundAggregated        ``train/<metric>``, ``train/replies``, ``train/failures``
Evaluated (clients)    ``evaluate/<metric>``, ``evaluate/replies``, ``evaluate/failures``
Evaluated (server)     ``server/<metric>``
ClientReplied          ``client/<partition id>/<phase>/<metric>`` (``node/<id>/...``
                       where the partition is not known, as in a deployment)
end of the run         the final global arrays, as ``final_model.npz``
=====================  ===========================================================

Only finite numbers are written (an int, float or bool metric); a list, a NaN or an
infinity is left out.
"""

from __future__ import annotations

import io
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np

from fedlab.events import ClientReplied, Evaluated, Event, RoundAggregated, RunFinished, RunStarted
from fedlab.records import ArrayRecord

__all__ = ["LoggedRun", "Logger", "MODEL_FILE", "RunLog", "model_bytes"]

#: The file name the final global arrays are written under.
MODEL_FILE = "final_model.npz"


class LoggedRun(ABC):
    """One run as a tracking tool holds it: scalars by step, the final model, an end."""

    @abstractmethod
    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        """Write ``values`` (tag to number) at ``step`` (the round)."""

    @abstractmethod
    def model(self, data: bytes) -> None:
        """Keep the final global arrays, ``data`` being their ``.npz`` file."""

    @abstractmethod
    def close(self, failed: bool) -> None:
        """End the run (``failed`` if it raised); nothing is written afterwards."""


class Logger(ABC):
    """A tracking tool a federation logs its runs to; see :mod:`fedlab.tracking`.

    Subclasses import their tool in :meth:`open` only, so making a logger (and
    ``import fedlab``) never imports it.
    """

    #: The name ``loggers=[...]`` accepts for this tool with its default options.
    name: str = ""

    @abstractmethod
    def open(self, started: RunStarted) -> LoggedRun:
        """Start logging the run that ``started`` announces, with its config written."""


class RunLog:
    """The event subscriber that logs one run to ``logger``; the runner makes one per run.

    Parameters
    ----------
    logger
        Where to log.

    Examples
    --------
    >>> class Printed(LoggedRun):
    ...     def scalars(self, step, values): print(step, dict(values))
    ...     def model(self, data): print("model", len(data) > 0)
    ...     def close(self, failed): print("closed", failed)
    >>> class Printer(Logger):
    ...     def open(self, started): return Printed()
    >>> log = RunLog(Printer())
    >>> log(RunStarted(run_id=1, num_rounds=1, node_ids=(5,), strategy="FedAvg"))
    >>> log(RoundAggregated(run_id=1, round=1, metrics={"loss": 0.5}, num_replies=1,
    ...                     num_failures=0, train_duration_s=0.1, aggregate_duration_s=0.0))
    1 {'train/loss': 0.5, 'train/replies': 1.0, 'train/failures': 0.0}
    >>> log.finish(None)
    closed True
    """

    def __init__(self, logger: Logger) -> None:
        self.logger = logger
        self._run: LoggedRun | None = None
        self._error: str | None = None

    def __call__(self, event: Event) -> None:
        """Write what ``event`` says (its round's numbers), opening the run at its start."""
        if isinstance(event, RunStarted):
            self._run = self.logger.open(event)
            return
        run = self._run
        if run is None:
            return
        if isinstance(event, RoundAggregated):
            values = _numbers("train/", event.metrics)
            values.update(
                {
                    "train/replies": float(event.num_replies),
                    "train/failures": float(event.num_failures),
                }
            )
            run.scalars(event.round, values)
        elif isinstance(event, Evaluated):
            if event.source == "server":
                run.scalars(event.round, _numbers("server/", event.metrics))
            else:
                values = _numbers("evaluate/", event.metrics)
                values["evaluate/replies"] = float(event.num_replies)
                values["evaluate/failures"] = float(event.num_failures)
                run.scalars(event.round, values)
        elif isinstance(event, ClientReplied) and event.error is None and event.phase != "query":
            who = (
                f"client/{event.partition_id}"
                if event.partition_id is not None
                else f"node/{event.node_id}"
            )
            values = _numbers(f"{who}/{event.phase}/", event.metrics)
            if values:
                run.scalars(event.round, values)
        elif isinstance(event, RunFinished):
            self._error = event.error

    def finish(self, arrays: ArrayRecord | None) -> None:
        """Write the final ``arrays`` (None when the run failed) and end the run."""
        run, self._run = self._run, None
        if run is None:
            return
        try:
            if arrays is not None:
                run.model(model_bytes(arrays))
        finally:
            run.close(failed=arrays is None or self._error is not None)


def model_bytes(arrays: ArrayRecord) -> bytes:
    """The ``.npz`` file of ``arrays``, each under its name (``np.load`` reads it back)."""
    buffer = io.BytesIO()
    named: dict[str, Any] = {name: array.numpy() for name, array in arrays.items()}
    np.savez(buffer, **named)
    return buffer.getvalue()


def _numbers(prefix: str, metrics: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, bool | int | float) and math.isfinite(float(value)):
            out[prefix + key] = float(value)
    return out
