"""Flower's logger: ``flwr.common.logger.log(level, msg, *args)`` on the ``flwr`` logger."""

from __future__ import annotations

import logging

__all__ = ["FLOWER_LOGGER", "log", "logger"]

#: The logger Flower apps write to (named ``flwr``, as Flower's).
FLOWER_LOGGER = logging.getLogger("flwr")
logger = FLOWER_LOGGER


def log(level: int, msg: object, *args: object) -> None:
    """Log ``msg % args`` at ``level`` (``logging.INFO``...) on the ``flwr`` logger."""
    FLOWER_LOGGER.log(level, msg, *args)
