"""``flwr.common.logger``: ``log(level, msg, *args)`` on the ``flwr`` logger."""

from __future__ import annotations

from fedlab.compat.flower.error import missing_attribute
from fedlab.compat.flower.logger import FLOWER_LOGGER, log

__all__ = ["FLOWER_LOGGER", "log"]


def __getattr__(name: str) -> object:
    raise missing_attribute(__name__, name, __all__)
