"""`settle_loggers`: what ``Federation(..., loggers=[...])`` accepts, as logger objects."""

from __future__ import annotations

from collections.abc import Sequence

from fedlab.errors import FederationError
from fedlab.tracking.logger import Logger
from fedlab.tracking.mlflow_logger import MLflowLogger
from fedlab.tracking.tensorboard_logger import TensorBoardLogger

__all__ = ["LoggerSpec", "settle_loggers"]

#: A logger by name (its default options) or a logger object.
LoggerSpec = str | Logger

_NAMED: dict[str, type[Logger]] = {"mlflow": MLflowLogger, "tensorboard": TensorBoardLogger}


def settle_loggers(loggers: Sequence[LoggerSpec] | None) -> tuple[Logger, ...]:
    """Turn ``loggers`` (names or Logger objects) into logger objects, checked.

    Raises
    ------
    FederationError
        If a name is unknown or an item is neither a name nor a Logger.

    Examples
    --------
    >>> settle_loggers(["tensorboard"])
    (TensorBoardLogger('runs'),)
    """
    if loggers is None:
        return ()
    if isinstance(loggers, str | Logger):
        loggers = [loggers]
    settled: list[Logger] = []
    for item in loggers:
        if isinstance(item, Logger):
            settled.append(item)
        elif isinstance(item, str) and item.lower() in _NAMED:
            settled.append(_NAMED[item.lower()]())
        else:
            raise FederationError(
                f"loggers got {item!r}; give {' or '.join(map(repr, sorted(_NAMED)))}, or a "
                "logger object such as fedlab.tracking.TensorBoardLogger(log_dir=...) or "
                "fedlab.tracking.MLflowLogger(tracking_uri=...)."
            )
    return tuple(settled)
